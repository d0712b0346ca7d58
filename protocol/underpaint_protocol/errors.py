"""Machine-readable error codes, shared by the daemon and every client.

Each code has one meaning; clients branch on the code and show ``message`` to the user.
"""

from __future__ import annotations

ERROR_CODES: dict[str, str] = {
    # the connection and its messages
    "bad_json": "A text frame was not a JSON object.",
    "unknown_message_type": "The message's `type` is not one this protocol version knows.",
    "invalid_field": "A field is missing, of the wrong type, or out of range; `field` names it.",
    "unsupported_protocol": "The client's protocol version is not the daemon's.",
    "handshake_required": "The first message on a connection must be `hello`.",
    "unauthorized": "The token is missing or wrong (required for browser origins and non-loopback binds).",
    "unexpected_binary": "A binary frame arrived that no message announced.",
    "frame_too_large": "A frame is larger than the daemon's `max_frame_bytes` limit.",
    # images
    "bad_image": "An attachment could not be decoded as the format it declared.",
    "size_mismatch": "An attachment's size does not match what the message or the region says.",
    "too_many_pixels": "An image or canvas exceeds the daemon's pixel limits.",
    "region_mismatch": "The uploaded region does not cover the pixels the job needs (see `plan`).",
    # jobs
    "unknown_model": "The model is not among those the daemon was configured with.",
    "unsupported_mode": "The chosen model cannot run this mode (e.g. txt2img on the classical engine).",
    "empty_selection": "The job needs a non-empty selection.",
    "nothing_to_outpaint": "An outpaint needs extents or a selection reaching past the canvas.",
    "invalid_value": "A value is well-formed but makes no sense for this job; `field` names it.",
    "unknown_job": "No job with this id is known (or its results have been removed).",
    "not_owner": "The job belongs to another client.",
    "not_cancellable": "The job has already finished, failed or been cancelled.",
    "queue_full": "The daemon's queue is full; try again later.",
    # engines
    "model_load_failed": "The model could not be loaded.",
    "unsafe_model_format": "Only .safetensors checkpoints and diffusers folders are loaded.",
    "out_of_memory": "The device ran out of memory.",
    "engine_failed": "The engine failed while generating.",
    "generation_failed": "The model produced an invalid image (NaN) even after a safe retry.",
    "worker_lost": "The worker running the job stopped (a Ray replica died or its machine became unreachable).",
    "shutting_down": "The daemon is shutting down; the job was interrupted.",
    "internal_error": "A bug in the daemon; the log has details.",
}
