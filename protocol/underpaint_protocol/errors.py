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
    "unknown_style": "No style with this name exists (list them with a `styles` request).",
    "unknown_lora": "No LoRA with this name is in the daemon's models folders (list them with a `loras` request).",
    # engines
    "model_load_failed": "The model could not be loaded.",
    "unsafe_model_format": "Only .safetensors checkpoints and diffusers folders are loaded.",
    "out_of_memory": "The device ran out of memory.",
    "engine_failed": "The engine failed while generating.",
    "generation_failed": "The model produced an invalid image (NaN) even after a safe retry.",
    "worker_lost": "The worker running the job stopped (a Ray replica died or its machine became unreachable).",
    "shutting_down": "The daemon is shutting down; the job was interrupted.",
    "internal_error": "A bug in the daemon; the log has details.",
    "licence_refused": "The model's licence tag forbids this use (e.g. non-commercial only); it is not run.",
    # control layers and references
    "unsupported_control": "The model has no ControlNet for this control kind, or no IP-Adapter for references.",
    "too_many_controls": "More control layers or reference images than the daemon's limits allow.",
    # live painting
    "no_live_session": "A live frame or stop arrived on a connection without a live session (send `live_start`).",
}

USER_TEXT: dict[str, str] = {
    # the connection and its messages
    "bad_json": "The daemon could not read a message from this plugin. Update the plugin and the daemon together.",
    "unknown_message_type": "The daemon does not know a request this plugin sent. Update the plugin and the daemon "
    "together.",
    "invalid_field": "The daemon did not accept one of the values.",
    "unsupported_protocol": "This plugin and the daemon speak different protocol versions. Update both to the same "
    "release.",
    "handshake_required": "The connection did not start properly. Press Connect again.",
    "unauthorized": "The daemon refused the token. Run `underpaint token` and paste what it prints into Token.",
    "unexpected_binary": "The daemon received image data it did not expect. Generate again.",
    "frame_too_large": "The image is larger than the daemon accepts. Select a smaller area or raise the daemon's "
    "limits.",
    # images
    "bad_image": "The daemon could not read the image this plugin sent. Generate again.",
    "size_mismatch": "The image sent does not have the size the daemon expected. Generate again.",
    "too_many_pixels": "The image or the selection is too large for the daemon. Select a smaller area.",
    "region_mismatch": "The image changed while the job was being sent. Generate again.",
    # jobs
    "unknown_model": "The daemon does not have this model. Pick one from the list (press Connect to refresh it).",
    "unsupported_mode": "The chosen model cannot do this. Pick another model, or select an area to fill.",
    "empty_selection": "The selection is empty. Select the area to repaint first.",
    "nothing_to_outpaint": "Nothing to expand: set how many pixels to add on at least one side, or select past the "
    "edge of the image.",
    "invalid_value": "One of the values makes no sense for this job.",
    "unknown_job": "The daemon no longer knows this job (its results may have been removed).",
    "not_owner": "This job belongs to another client.",
    "not_cancellable": "The job had already ended.",
    "queue_full": "The daemon's queue is full. Try again when some jobs have finished.",
    "unknown_lora": "The daemon has no LoRA of this name. Put its .safetensors file in a models folder, or pick one "
    "from the list.",
    "unknown_style": "The daemon has no style of this name. Pick one from the list (it may have been renamed or "
    "deleted in another program).",
    # engines
    "model_load_failed": "The model could not be loaded. The daemon's log says why.",
    "unsafe_model_format": "The daemon only loads .safetensors checkpoints and diffusers folders.",
    "out_of_memory": "The graphics card ran out of memory. Select a smaller area, lower the batch, or close other "
    "programs using it.",
    "engine_failed": "The model failed while painting. The daemon's log says why.",
    "generation_failed": "The model produced a broken image even after a retry. Try another seed or model.",
    "worker_lost": "The machine running this job stopped or became unreachable. Generate again.",
    "shutting_down": "The daemon is shutting down; the job was stopped. Start it again and Generate again.",
    "internal_error": "The daemon hit a bug. Its log has the details; please report it.",
    "licence_refused": "The model's licence does not allow this use (it is for non-commercial use only). Pick "
    "another model.",
    # control layers and references
    "unsupported_control": "The chosen model cannot use this kind of control layer or reference. Pick another "
    "kind or model (the model list says what each takes).",
    "too_many_controls": "Too many control layers or references for one job. Turn some off.",
    # live painting
    "no_live_session": "Live painting is not running. Turn Live on again.",
}
"""What a user reads for each code: a sentence that says what to do, never the code itself."""


def user_text(code: str, message: str = "", field: str | None = None) -> str:
    """The sentence for an error the daemon sent, with its own words as detail when they add something."""
    text = USER_TEXT.get(code, USER_TEXT["internal_error"])
    detail = message.strip().rstrip(".")
    if field and field not in detail:
        detail = f"{field}: {detail}" if detail else field
    return f"{text} ({detail})" if detail else text
