"""Running one job on a worker thread: canvas pipeline in, engine, canvas pipeline out, store.

This is the whole data path of a job after it was accepted: the uploaded region is prepared at
model resolution, the engine generates each batch item, and every item is composited back into
a layer, saved, and only then reported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from underpaint import __version__, canvas
from underpaint.canvas.controls import control_at_model_size
from underpaint.daemon.outputs import OutputStore, StoredResult, owner_key
from underpaint.daemon.records import Job, Publish, blend_settings, result_message
from underpaint.daemon.upscaling import execute_upscale
from underpaint.engines.base import (
    ControlInput,
    GenerationInput,
    JobCancelled,
    ReferenceInput,
    SegmentPrompt,
    StepProgress,
)
from underpaint.modes import Mode
from underpaint_protocol import PROTOCOL_VERSION
from underpaint_protocol import messages as wire


def execute(job: Job, publish: Publish, store: OutputStore) -> int:
    """Generate, composite, store and report every batch item; returns how many were made.

    The manager binds ``store`` and calls this on a worker thread as its ``Execute`` step.
    """
    if job.cancel.is_set():
        raise JobCancelled()
    if job.upscale is not None:
        return execute_upscale(job, publish, store, store.folder or Path(tempfile.gettempdir()))
    plan = job.plan
    through_pipeline = job.engine.uses_canvas_pipeline
    model_image: np.ndarray | None
    model_mask: np.ndarray | None
    if through_pipeline:
        prepared = canvas.prepare_job(plan, job.image, job.mask, blend_settings(job.spec), seed=job.seed)
        model_image, model_mask = prepared.image if job.image is not None else None, prepared.denoise_mask
    else:
        model_image, model_mask = job.image, job.mask
    generation = GenerationInput(
        mode=Mode(job.spec.mode),
        model=job.model.id,
        prompt=job.spec.prompt,
        negative_prompt=job.spec.negative_prompt,
        seed=job.seed,
        steps=job.steps,
        guidance=job.guidance,
        strength=job.strength,
        width=plan.model_width,
        height=plan.model_height,
        image=model_image,
        mask=model_mask,
        segment=segment_prompt(job),
        loras=tuple((ref.name, ref.weight) for ref in job.spec.loras or ()),
        controls=tuple(
            ControlInput(
                kind=control.kind,
                image=control_at_model_size(plan, pixels),
                strength=control.strength,
                start=control.start,
                end=control.end,
                preprocess=control.preprocess,
            )
            for control, pixels in zip(job.spec.controls, job.controls, strict=True)
        ),
        references=tuple(
            ReferenceInput(image=pixels, mode=reference.take, weight=reference.weight)
            for reference, pixels in zip(job.spec.references, job.references, strict=True)
        ),
    )

    def on_progress(progress: StepProgress) -> None:
        message = wire.Progress(job_id=job.id, step=progress.step, total=progress.total)
        publish(message, progress.preview)

    engine_params: dict[str, Any] | None = None
    count = 0
    for index, generated in enumerate(job.engine.generate(generation, job.spec.batch, on_progress, job.cancel)):
        if job.cancel.is_set():
            raise JobCancelled()
        if engine_params is None:  # asked once the engine has made an image: it has resolved everything by then
            engine_params = job.engine.reproduction_params(generation)
        if through_pipeline:
            layer = canvas.finish_job(prepared, generated)
        else:
            pixels = generated if generated.ndim == 3 else mask_layer(generated)
            layer = canvas.PixelLayer(pixels=pixels, x=plan.upload.x, y=plan.upload.y, canvas=plan.new_canvas)
        item_seed = (job.seed + index) % 2**32
        stored = store.save(
            StoredResult(
                job_id=job.id,
                index=index,
                owner_key=owner_key(job.owner),
                name=layer_name(job.spec, job.model.id, item_seed),
                x=layer.x,
                y=layer.y,
                canvas={
                    "x": layer.canvas.x,
                    "y": layer.canvas.y,
                    "width": layer.canvas.width,
                    "height": layer.canvas.height,
                },
                params={**reproduction_params(job, index, item_seed), "engine_params": engine_params},
                pixels=np.ascontiguousarray(layer.pixels),
                output=None,
            )
        )
        job.results = count = index + 1
        publish(result_message(stored), stored.pixels)
    return count


def segment_prompt(job: Job) -> SegmentPrompt | None:
    """A segment job's prompts moved into the uploaded region's pixels."""
    segment = job.spec.segment
    if segment is None:
        return None
    dx, dy = job.plan.upload.x, job.plan.upload.y
    box = segment.box
    return SegmentPrompt(
        box=None if box is None else (box.x - dx, box.y - dy, box.width, box.height),
        points=tuple((p.x - dx, p.y - dy) for p in segment.points),
        negative_points=tuple((p.x - dx, p.y - dy) for p in segment.negative_points),
        text=segment.text,
        threshold=segment.threshold,
        soften=segment.soften,
    )


def mask_layer(mask: np.ndarray) -> np.ndarray:
    """A segment mask as the result layer the protocol sends: white, with the mask as alpha."""
    layer = np.full((*mask.shape, 4), 255, np.uint8)
    layer[..., 3] = mask
    return layer


def layer_name(spec: wire.JobSpec, model: str, seed: int) -> str:
    """What the host names the new layer: the prompt (or the mode) and the seed."""
    words = " ".join(spec.prompt.split())
    label = (words[:48] + "…") if len(words) > 48 else words
    return f"{label or spec.mode.capitalize() + ' (' + model + ')'} [seed {seed}]"


def reproduction_params(job: Job, index: int, item_seed: int) -> dict[str, Any]:
    """Everything needed to make this exact item again."""
    spec = job.spec
    return {
        "mode": spec.mode,
        "model": job.model.id,
        "engine": job.model.engine,
        "prompt": spec.prompt,
        "negative_prompt": spec.negative_prompt,
        "seed": item_seed,
        "job_seed": job.seed,
        "batch_index": index,
        "batch": spec.batch,
        "steps": job.steps,
        "guidance": job.guidance,
        "strength": job.strength,
        "canvas": spec.canvas.model_dump(),
        "selection": spec.selection.model_dump() if spec.selection else None,
        "extend": spec.extend.model_dump() if spec.extend else None,
        "blend": spec.blend.model_dump() if spec.blend else None,
        **({"segment": spec.segment.model_dump()} if spec.segment else {}),
        "controls": [control.model_dump() for control in spec.controls],
        "references": [reference.model_dump() for reference in spec.references],
        "work": {
            "x": job.plan.work.x,
            "y": job.plan.work.y,
            "width": job.plan.work.width,
            "height": job.plan.work.height,
        },
        "model_size": {"width": job.plan.model_width, "height": job.plan.model_height},
        "underpaint": __version__,
        "protocol": PROTOCOL_VERSION,
        "loras": [ref.model_dump() for ref in spec.loras or ()],
        **style_params(job),
    }


def style_params(job: Job) -> dict[str, Any]:
    """When a style or LoRA tags rewrote the job: the style and what the user typed (``prompt`` above
    is what ran)."""
    if job.asked is None:
        return {}
    asked = job.asked
    return {"style": asked.style, "user_prompt": asked.prompt, "user_negative_prompt": asked.negative_prompt}
