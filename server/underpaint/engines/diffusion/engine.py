"""DiffusionEngine: the daemon's Engine for Stable Diffusion 1.x/2.x/SDXL through diffusers."""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import (
    Engine,
    GenerationInput,
    JobCancelled,
    LiveModel,
    LoraInfo,
    ModelInfo,
    ProgressCallback,
    StepProgress,
    no_progress,
)
from underpaint.engines.diffusion.controls import (
    REFERENCE_MODES,
    AdapterSpec,
    ControlSpec,
    LoadedAdapter,
    adapter_scale,
    load_adapter,
    load_controlnet,
    parse_adapter_source,
    parse_control_source,
)
from underpaint.engines.diffusion.device import (
    Offload,
    decide_vae_tiling,
    free_device_bytes,
    pick_dtype,
    release_memory,
    resolve_device,
)
from underpaint.engines.diffusion.live_decoder import (
    LiveDecoderSpec,
    decoder_for,
    load_live_decoder,
    parse_live_decoder,
)
from underpaint.engines.diffusion.loading import LoadedModel, load_model
from underpaint.engines.diffusion.loras import resolve, scan_loras
from underpaint.engines.diffusion.preprocess import DepthEstimator, over_white, prepare_control
from underpaint.engines.diffusion.previews import Previewer, make_previewer
from underpaint.engines.diffusion.registry import Family, ModelSpec, build_registry, model_info, resolution_for
from underpaint.errors import JobError
from underpaint.modes import Mode

MAX_STEPS = 500
MAX_ADAPTERS = 4
_ADAPTER_NAMES = itertools.count()
"""Adapter names unique in the process: engines built on tiny-random share its modules."""
"""Job LoRAs kept loaded on the model at once (each costs its own weights in memory)."""


@dataclass(frozen=True)
class RunParams:
    """What one job actually runs with, after clamping: enough to reproduce it (item k uses seed + k)."""

    model: str
    source: str
    family: str
    mode: str
    seed: int
    steps: int
    steps_run: int
    guidance: float
    strength: float
    width: int
    height: int
    scheduler: str
    device: str
    dtype: str
    adjustments: tuple[str, ...] = field(default_factory=tuple)
    lora: str | None = None
    """The LoRA fused into the model (its configured file, folder or repo), if any."""
    few_step: str | None = None
    """The few-step profile that set scheduler/guidance/step limits (turbo, lcm, lightning, hyper)."""
    controls: tuple[str, ...] = ()
    """The ControlNet of each control layer (``kind=source``), in the job's order."""
    adapter: str | None = None
    """The IP-Adapter that read the reference images, if any."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DiffusionEngine(Engine):
    """Runs diffusion jobs on one device, keeping one model loaded at a time.

    Args:
        sources: configured models: HF repo ids, diffusers folders, ``.safetensors`` files, or
            ``tiny-random`` (random weights, draws noise). ``#lora=<file or repo>`` fuses a few-step LoRA.
        models_dirs: folders scanned for more single files / diffusers folders.
        device: ``auto`` | ``cuda`` | ``cuda:N`` | ``mps`` | ``cpu``.
        offload: ``auto`` (model CPU offload when free GPU memory is short) | ``none`` | ``model`` | ``sequential``.
        previews: ``auto`` | ``linear`` | ``taesd`` | ``none`` | a TAESD folder.
        dtype: ``auto`` (fp16 on GPU, fp32 on CPU) | ``fp16`` | ``bf16`` | ``fp32``.
        controls: ControlNets as ``KIND=SOURCE`` (see ``controls.parse_control_source``); a model takes the
            kinds configured for its family.
        adapters: IP-Adapter ``.safetensors`` files (with ``image_encoder/`` beside them), one per family.
        depth_model: a depth estimation model (HF id or folder) for ``depth`` controls with ``preprocess``.
        live_decoders: fast latent decoders for live frames (``AutoencoderTiny``), one per family (see
            ``live_decoder.parse_live_decoder``); a family without one decodes live frames with its VAE.
    """

    name = "diffusion"

    def __init__(
        self,
        sources: list[str],
        models_dirs: list[Path] | None = None,
        device: str = "auto",
        offload: Offload = "auto",
        previews: str = "auto",
        dtype: str = "auto",
        controls: list[str] | None = None,
        adapters: list[str] | None = None,
        depth_model: str | None = None,
        live_decoders: list[str] | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.offload: Offload = offload
        self.previews = previews
        self._specs: dict[str, ModelSpec] = build_registry(sources, [Path(p) for p in models_dirs or []])
        self._lora_folders = [Path(p) for p in models_dirs or []]
        self._adapters: OrderedDict[str, str] = OrderedDict()
        """LoRA file -> peft adapter name, loaded on the current model (least recently used first)."""
        self._active_loras: tuple[tuple[str, float], ...] | None = None
        """The LoRAs ``_set_loras`` made active last (None: unknown, after a load)."""
        self._loaded: LoadedModel | None = None
        self._previewer: Previewer | None = None
        self._lock = threading.Lock()
        self._control_specs: dict[tuple[str, str], ControlSpec] = {}
        for source in controls or []:
            control = parse_control_source(source)
            self._control_specs[(control.family, control.kind)] = control
        self._controlnets: dict[ControlSpec, Any] = {}
        """Loaded ControlNets, kept across jobs and modes (only those of the loaded model's family)."""
        self._adapter_specs: dict[str, AdapterSpec] = {}
        for source in adapters or []:
            adapter = parse_adapter_source(source)
            self._adapter_specs[adapter.family] = adapter
        self._adapter: LoadedAdapter | None = None
        self._adapter_applied = False
        """Whether the loaded model's UNet carries the IP-Adapter's attention processors now."""
        self._depth = DepthEstimator(depth_model, self.device, self.dtype) if depth_model else None
        self._live_decoder_specs: dict[Family, LiveDecoderSpec] = {}
        for source in live_decoders or []:
            decoder = parse_live_decoder(source)
            self._live_decoder_specs[decoder.family] = decoder
        self._live_decoders: dict[LiveDecoderSpec, Any] = {}
        """Loaded fast decoders (small: kept once loaded)."""
        self.last_decode_redone = False
        """True when the last image's fp16 VAE decode gave NaN/black and was redone in fp32."""

    # --- Engine contract ----------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        loaded_id = self._loaded.spec.id if self._loaded else None
        return [self._with_guides(model_info(s, loaded=s.id == loaded_id)) for s in self._specs.values() if s.usable]

    def _with_guides(self, info: ModelInfo) -> ModelInfo:
        """The control kinds and reference modes configured for the model's family."""
        kinds = tuple(kind for family, kind in self._control_specs if family == info.family)
        modes = REFERENCE_MODES if info.family in self._adapter_specs else ()
        return replace(info, control_kinds=kinds, reference_modes=modes)

    def resolution(self, model: str) -> ModelResolution:
        return resolution_for(self._spec(model))

    def loras(self) -> list[LoraInfo]:
        """Scanned on every call, so a LoRA dropped into a models folder is there without a restart."""
        found, pickles = scan_loras(self._lora_folders)
        usable = [LoraInfo(lora.name, lora.triggers, lora.base) for lora in found.values()]
        refused = [
            LoraInfo(name, refused=f"{path.name} is a pickle; only .safetensors LoRAs are loaded")
            for name, path in pickles.items()
            if name not in found
        ]
        return sorted(usable + refused, key=lambda info: info.name.casefold())

    def generate(
        self,
        job: GenerationInput,
        batch_count: int,
        on_progress: ProgressCallback,
        cancel: threading.Event,
    ) -> Iterator[np.ndarray]:
        spec = self._spec(job.model)
        if not spec.usable:
            raise JobError("unsafe_model_format", " ".join(spec.notes), "job.model")
        self._check_inputs(job, batch_count)
        if cancel.is_set():
            raise JobCancelled()
        with self._lock:
            loaded = self._ensure_loaded(spec)
            self._set_loras(loaded, job.loras)
            params = self.run_params(job)
            kind, call_kwargs = self._call_kwargs(loaded, job, params)
            controlnet = self._guide_kwargs(loaded, job, kind, call_kwargs)
            pipe = loaded.pipeline_for(kind, controlnet)
            self._use_adapter(pipe, job, call_kwargs)
            self._set_vae_tiling(pipe, spec, job)
            for k in range(batch_count):
                if cancel.is_set():
                    raise JobCancelled()
                latents = self._denoise(pipe, call_kwargs, job, params, k, batch_count, on_progress, cancel)
                yield self._decode(pipe, latents)

    def close(self) -> None:
        with self._lock:
            self._unload()

    def open_live(self, job: GenerationInput) -> LiveModel:
        return DiffusionLive(self, job)

    def live_decoder(self, model: str) -> str | None:
        spec = decoder_for(self._live_decoder_specs, self._spec(model).family)
        return spec.location if spec is not None else "vae"

    def reproduction_params(self, job: GenerationInput) -> dict[str, Any]:
        return self.run_params(job).as_dict()

    # --- public helpers for the daemon / CLI ----------------------------------------------------------

    def run_params(self, job: GenerationInput) -> RunParams:
        """Validate and clamp a job's numbers; raises JobError(invalid_value) for what cannot be fixed."""
        spec = self._spec(job.model)
        notes: list[str] = []
        steps, guidance, strength = job.steps, job.guidance, job.strength
        if spec.few_step:
            if steps > spec.few_step.max_steps:
                notes.append(f"steps {steps} -> {spec.few_step.max_steps} (few-step model)")
                steps = spec.few_step.max_steps
            if guidance != spec.few_step.guidance:
                notes.append(f"guidance {guidance} -> {spec.few_step.guidance} ({spec.few_step.name} model)")
                guidance = spec.few_step.guidance
        if job.mode == Mode.TXT2IMG:
            strength = 1.0
        if int(steps * strength) < 1:
            # int(steps * strength) steps run; 0 would be a silent no-op (img2img) or an exception (inpaint).
            new_steps = math.ceil(1.0 / strength - 1e-9)
            while int(new_steps * strength) < 1:
                new_steps += 1
            notes.append(f"steps {steps} -> {new_steps} so that strength {strength} runs at least one step")
            steps = new_steps
        loaded = self._loaded if self._loaded and self._loaded.spec.id == spec.id else None
        scheduler = type(loaded.base.scheduler).__name__ if loaded else "default"
        return RunParams(
            model=spec.id,
            source=spec.location,
            family=spec.family,
            mode=job.mode.value,
            seed=job.seed,
            steps=steps,
            steps_run=max(1, int(steps * strength)),
            guidance=guidance,
            strength=strength,
            width=job.width,
            height=job.height,
            scheduler=scheduler,
            device=self.device,
            dtype=str(self.dtype).removeprefix("torch."),
            adjustments=tuple(notes),
            lora=spec.lora,
            few_step=spec.few_step.name if spec.few_step else None,
            controls=tuple(
                f"{c.kind}={self._control_specs[(spec.family, c.kind)].location}"
                for c in job.controls
                if (spec.family, c.kind) in self._control_specs
            ),
            adapter=self._adapter_specs[spec.family].location
            if job.references and spec.family in self._adapter_specs
            else None,
        )

    def adopt_pipeline(self, model_id: str, pipe: Any, family: Family, inpaint_unet: bool = False) -> None:
        """Use an already built inpaint pipeline as model ``model_id`` (benchmarks with random weights).

        The engine owns it from now on: it is freed when another model is loaded.
        """
        spec = ModelSpec(id=model_id, kind="tiny", location="<in memory>", family=family, inpaint_unet=inpaint_unet)
        with self._lock:
            self._unload()
            self._specs[model_id] = spec
            pipe.set_progress_bar_config(disable=True)
            self._loaded = LoadedModel(spec, pipe, self.device, self.dtype, "none", 0.0, {"inpaint": pipe})
            self._previewer = make_previewer(self.previews, family, self.device, self.dtype)

    @property
    def loaded(self) -> LoadedModel | None:
        """The model in memory (None before the first job)."""
        return self._loaded

    # --- internals -------------------------------------------------------------------------------------

    def _spec(self, model: str) -> ModelSpec:
        # The only place a client's model string is used: a dict lookup, never a path.
        spec = self._specs.get(model) if isinstance(model, str) else None
        if spec is None:
            raise JobError(
                "unknown_model",
                f"no configured model is called {model!r}; ask the daemon for its model list",
                "job.model",
            )
        return spec

    def _check_inputs(self, job: GenerationInput, batch_count: int) -> None:
        if not 1 <= job.steps <= MAX_STEPS:
            raise JobError("invalid_value", f"steps must be 1..{MAX_STEPS}, got {job.steps}", "job.steps")
        if job.mode != Mode.TXT2IMG and not 0.0 < job.strength <= 1.0:
            raise JobError("invalid_value", f"strength must be in (0, 1], got {job.strength}", "job.strength")
        if job.width % 8 or job.height % 8 or job.width < 64 or job.height < 64:
            raise JobError("invalid_value", f"size {job.width}x{job.height} must be multiples of 8, >= 64", "job.size")
        if batch_count < 1:
            raise JobError("invalid_value", "batch_count must be >= 1", "job.batch_count")
        if job.mode != Mode.TXT2IMG:
            if job.image is None or job.image.shape != (job.height, job.width, 3) or job.image.dtype != np.uint8:
                raise JobError("invalid_value", "image must be uint8 (height, width, 3)", "job.image")
            if job.mask is not None and job.mask.shape != (job.height, job.width):
                raise JobError("invalid_value", "mask must be (height, width)", "job.mask")

    def _ensure_loaded(self, spec: ModelSpec) -> LoadedModel:
        if self._loaded is not None and self._loaded.spec.id == spec.id:
            return self._loaded
        self._unload()  # free the old model before the new one takes its memory
        self._loaded = load_model(spec, self.device, self.dtype, self.offload)
        self._previewer = make_previewer(self.previews, spec.family, self.device, self.dtype)
        return self._loaded

    def _set_loras(self, loaded: LoadedModel, wanted: tuple[tuple[str, float], ...]) -> None:
        """Make exactly the job's LoRAs active, as peft adapters on the loaded model: a LoRA used
        before is switched on, not loaded again, and the base model is never reloaded. At most
        MAX_ADAPTERS stay loaded (least recently used go)."""
        pipe = loaded.base
        self._active_loras = None  # until they are all on
        if not wanted:
            if self._adapters or getattr(pipe.unet, "peft_config", None):  # shared modules: another engine's
                pipe.disable_lora()
            self._active_loras = ()
            return
        found, pickles = scan_loras(self._lora_folders)
        chosen = resolve(list(wanted), found, pickles, "job.loras")
        names: list[str] = []
        for index, (lora, _) in enumerate(chosen):
            key = str(lora.path)
            if key in self._adapters:
                self._adapters.move_to_end(key)
            else:
                in_use = {str(item.path) for item, _ in chosen}
                for old in [k for k in self._adapters if k not in in_use][
                    : max(0, len(self._adapters) + 1 - MAX_ADAPTERS)
                ]:
                    pipe.delete_adapters(self._adapters.pop(old))
                name = f"job_lora_{next(_ADAPTER_NAMES)}"
                try:
                    pipe.load_lora_weights(str(lora.path.parent), weight_name=lora.path.name, adapter_name=name)
                except (ValueError, KeyError, RuntimeError, ImportError) as error:
                    with contextlib.suppress(Exception):  # a half-loaded adapter must not linger
                        pipe.delete_adapters(name)
                    raise JobError(
                        "invalid_value",
                        f"LoRA {lora.name} does not fit model {loaded.spec.id}: {error}",
                        f"job.loras[{index}].name",
                    ) from None
                self._adapters[key] = name
            names.append(self._adapters[key])
        pipe.enable_lora()
        pipe.set_adapters(names, adapter_weights=[weight for _, weight in chosen])
        self._active_loras = wanted

    def _unload(self) -> None:
        if self._loaded is None:
            return
        if self._adapters:  # the modules may be shared (tiny-random): leave them as they were loaded
            self._loaded.base.unload_lora_weights()
            self._adapters.clear()
        self._active_loras = None
        self._loaded.pipes.clear()
        self._loaded = None
        self._adapter_applied = False
        self._previewer = None
        release_memory(self.device)

    def _call_kwargs(self, loaded: LoadedModel, job: GenerationInput, params: RunParams) -> tuple[str, dict]:
        """Which pipeline (txt2img/img2img/inpaint) and its arguments for this job.

        A 9-channel inpaint UNet only runs the inpaint pipeline: txt2img is an inpaint of a grey image
        under a full mask; img2img an inpaint of the image under a full mask at the job's strength.
        """
        kwargs: dict[str, Any] = {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt or None,
            "num_inference_steps": params.steps,
            "guidance_scale": params.guidance,
        }
        full = np.full((job.height, job.width), 255, np.uint8)
        kind = {Mode.TXT2IMG: "txt2img", Mode.IMG2IMG: "img2img"}.get(job.mode, "inpaint")
        if loaded.spec.inpaint_unet and kind != "inpaint":
            image = job.image if job.image is not None else np.full((job.height, job.width, 3), 127, np.uint8)
            kwargs.update(image=Image.fromarray(image), mask_image=Image.fromarray(full), strength=params.strength)
            kind = "inpaint"
        elif kind == "txt2img":
            pass
        elif kind == "img2img":
            assert job.image is not None  # checked in _check_inputs
            kwargs.update(image=Image.fromarray(job.image), strength=params.strength)
        else:
            assert job.image is not None
            mask = job.mask if job.mask is not None else full
            kwargs.update(image=Image.fromarray(job.image), mask_image=Image.fromarray(mask), strength=params.strength)
        if kind != "img2img":
            kwargs.update(width=job.width, height=job.height)
        return kind, kwargs

    def _guide_kwargs(self, loaded: LoadedModel, job: GenerationInput, kind: str, kwargs: dict) -> Any:
        """Add the control layers to ``kwargs``; returns the ControlNet (or several) the job needs, or None.

        ControlNets load once and stay for every later job and mode; those of another family are freed.
        """
        if not job.controls:
            return None
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        family = loaded.spec.family
        for held in [s for s in self._controlnets if s.family != family]:
            del self._controlnets[held]
        models, images = [], []
        for index, control in enumerate(job.controls):
            spec = self._control_specs.get((family, control.kind))
            if spec is None:
                raise JobError(
                    "unsupported_control",
                    f"no {control.kind} ControlNet for {family} models",
                    f"job.controls.{index}.kind",
                )
            if spec not in self._controlnets:
                self._controlnets[spec] = load_controlnet(spec, loaded.base.unet, self.device, loaded.base.unet.dtype)
            models.append(self._controlnets[spec])
            rgb = prepare_control(control.kind, control.image, control.preprocess, self._depth, f"job.controls.{index}")
            images.append(Image.fromarray(rgb))
        single = len(models) == 1
        kwargs["image" if kind == "txt2img" else "control_image"] = images[0] if single else images
        kwargs["controlnet_conditioning_scale"] = (
            job.controls[0].strength if single else [c.strength for c in job.controls]
        )
        kwargs["control_guidance_start"] = [c.start for c in job.controls]
        kwargs["control_guidance_end"] = [c.end for c in job.controls]
        return models[0] if single else MultiControlNetModel(models)

    def _use_adapter(self, pipe: Any, job: GenerationInput, kwargs: dict) -> None:
        """Switch the IP-Adapter on for a job with a reference image (weights kept in memory), off otherwise."""
        if not job.references:
            if self._adapter_applied:
                pipe.unload_ip_adapter()
                self._adapter_applied = False
            return
        family = self._loaded.spec.family if self._loaded else "unknown"
        spec = self._adapter_specs.get(family)
        if spec is None:
            raise JobError("unsupported_control", f"no IP-Adapter for {family} models", "job.references.0.take")
        if self._adapter is None or self._adapter.spec != spec:
            self._adapter = load_adapter(spec, self.device, pipe.unet.dtype)
        adapter = self._adapter
        pipe.register_modules(image_encoder=adapter.image_encoder, feature_extractor=adapter.feature_extractor)
        if not self._adapter_applied:
            pipe.load_ip_adapter([adapter.state_dict], subfolder=[""], weight_name=[Path(spec.location).name])
            self._adapter_applied = True
        reference = job.references[0]
        pipe.set_ip_adapter_scale(adapter_scale(pipe.unet, reference.mode, reference.weight))
        kwargs["ip_adapter_image"] = Image.fromarray(over_white(reference.image))

    def _set_vae_tiling(self, pipe: Any, spec: ModelSpec, job: GenerationInput) -> bool:
        """Tile the VAE for this job or not (see :func:`decide_vae_tiling`); returns the decision."""
        tile = decide_vae_tiling(
            job.width, job.height, resolution_for(spec).pixel_budget, free_device_bytes(self.device), pipe.vae.dtype
        )
        if tile:
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()
        return tile

    def _denoise(
        self,
        pipe: Any,
        call_kwargs: dict,
        job: GenerationInput,
        params: RunParams,
        k: int,
        batch_count: int,
        on_progress: ProgressCallback,
        cancel: threading.Event,
    ) -> torch.Tensor:
        """Run the denoising loop for item k; returns latents (decoding is ours, so cancel skips it)."""
        total = params.steps_run * batch_count
        previewer = self._previewer if job.previews else None

        def on_step_end(p: Any, i: int, t: Any, tensors: dict) -> dict:
            preview = previewer(tensors["latents"]) if previewer is not None else None
            on_progress(StepProgress(step=min(k * params.steps_run + i + 1, total), total=total, preview=preview))
            if cancel.is_set():
                p._interrupt = True  # the loop skips the remaining steps; output_type="latent" skips decode
            return {}

        generator = torch.Generator("cpu").manual_seed(job.seed + k)
        with torch.inference_mode():
            latents = pipe(
                **call_kwargs,
                generator=generator,
                output_type="latent",
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"],
            ).images
        if cancel.is_set():
            raise JobCancelled()
        return latents

    def _live_vae(self, family: Family) -> Any | None:
        """The fast decoder configured for ``family``'s live frames, loaded on first use; None: none."""
        spec = decoder_for(self._live_decoder_specs, family)
        if spec is None:
            return None
        if spec not in self._live_decoders:
            self._live_decoders[spec] = load_live_decoder(spec, self.device, self.dtype)
        return self._live_decoders[spec]

    @torch.inference_mode()
    def _decode(self, pipe: Any, latents: torch.Tensor, vae: Any = None) -> np.ndarray:
        """VAE decode (the pipeline's, or ``vae``) with a NaN/black guard: an fp16 overflow is redone
        in fp32, never returned."""
        vae = vae if vae is not None else pipe.vae
        self.last_decode_redone = False
        if not torch.isfinite(latents).all():
            raise JobError("generation_failed", "the model produced NaN latents; try --dtype bf16 or fp32")
        upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        image = self._vae_decode(vae, latents, torch.float32 if upcast else vae.dtype)
        if not torch.isfinite(image).all() or bool((image <= -0.999).all()):
            self.last_decode_redone = True
            image = self._vae_decode(vae, latents, torch.float32)
            if not torch.isfinite(image).all():
                raise JobError("generation_failed", "the VAE decode produced NaN even in fp32")
        rgb = ((image[0].float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        return rgb.permute(1, 2, 0).cpu().numpy()

    @staticmethod
    def _vae_decode(vae: Any, latents: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        original = vae.dtype
        if dtype != original:
            vae.to(dtype=dtype)
        try:
            scaled = latents.to(dtype) / vae.config.scaling_factor
            return vae.decode(scaled, return_dict=False)[0]
        finally:
            if dtype != original:
                vae.to(dtype=original)


class DiffusionLive(LiveModel):
    """A live session on a diffusion model: the pipeline, its arguments (mask, steps, guidance, the
    few-step profile's clamps), the prompt's embeddings (encoded with the session's LoRAs on), the
    scheduler's timesteps, the pipeline's execution device and the decoder (the fast one configured
    for the family, else the VAE) are made once; a frame sets its image, runs the steps and decodes.
    An ordinary job between two frames may load another model: the next frame then sets the session
    up again (``setups`` counts it); one that switched LoRAs has them switched back and the prompt
    encoded again (``encodes`` counts it)."""

    def __init__(self, engine: DiffusionEngine, job: GenerationInput) -> None:
        super().__init__(engine, job)
        self.diffusion = engine
        self._loaded: LoadedModel | None = None
        self._pipe: Any = None
        self._kwargs: dict[str, Any] = {}
        self._params: RunParams | None = None
        self._scheduler: Any = None
        self._pipe_class: type | None = None
        self._vae: Any = None
        """The fast decoder for the session's frames (None: the model's VAE)."""
        self.setups = 0
        self.encodes = 0
        spec = engine._spec(job.model)
        if not spec.usable:
            raise JobError("unsafe_model_format", " ".join(spec.notes), "job.model")

    def _setup(self) -> None:
        """Everything that does not change per frame (under the engine's lock)."""
        engine, job = self.diffusion, self.job
        spec = engine._spec(job.model)
        loaded = engine._ensure_loaded(spec)
        engine._set_loras(loaded, job.loras)
        params = engine.run_params(job)
        placeholder = replace(job, image=np.zeros((job.height, job.width, 3), np.uint8))
        engine._check_inputs(placeholder, 1)
        kind, kwargs = engine._call_kwargs(loaded, placeholder, params)
        pipe = loaded.pipeline_for(kind, None)
        self._loaded, self._pipe, self._kwargs, self._params = loaded, pipe, kwargs, params
        self._encode()
        self._scheduler = session_scheduler(pipe.scheduler)
        self._pipe_class = fixed_device_pipeline(type(pipe), pipe._execution_device)
        self._vae = engine._live_vae(loaded.spec.family)
        self.setups += 1

    def _encode(self) -> None:
        """The prompt and negative prompt encoded once (with the session's LoRAs on), as the
        pipeline would encode them per call."""
        pipe, params = self._pipe, self._params
        assert self._loaded is not None and params is not None
        prompt, negative = self.job.prompt, self.job.negative_prompt or None
        cfg = params.guidance > 1.0 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None
        with torch.inference_mode():
            if self._loaded.spec.family == "sdxl":
                embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
                    prompt=prompt,
                    device=pipe._execution_device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=cfg,
                    negative_prompt=negative,
                )
                extra = {"pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": negative_pooled}
            else:
                embeds, negative_embeds = pipe.encode_prompt(prompt, pipe._execution_device, 1, cfg, negative)
                extra = {}
        self._kwargs.update(
            prompt=None, negative_prompt=None, prompt_embeds=embeds, negative_prompt_embeds=negative_embeds, **extra
        )
        self.encodes += 1

    def frame(self, image: np.ndarray, cancel: threading.Event) -> np.ndarray:
        engine = self.diffusion
        frame_job = replace(self.job, image=image)
        with engine._lock:
            if self._loaded is None or engine._loaded is not self._loaded:
                self._setup()
            elif engine._active_loras != self.job.loras:  # a job between two frames switched adapters
                engine._set_loras(self._loaded, self.job.loras)
                if self.job.loras:
                    self._encode()
            loaded, params = self._loaded, self._params
            assert loaded is not None and params is not None
            kwargs = {**self._kwargs, "image": Image.fromarray(image)}
            engine._use_adapter(self._pipe, frame_job, kwargs)  # off again if a job with a reference ran
            engine._set_vae_tiling(self._pipe, loaded.spec, frame_job)
            with self._session_pipe() as pipe:
                latents = engine._denoise(pipe, kwargs, frame_job, params, 0, 1, no_progress, cancel)
            return engine._decode(self._pipe, latents, self._vae)

    @contextlib.contextmanager
    def _session_pipe(self) -> Iterator[Any]:
        """The shared pipeline with the session's scheduler and its fixed execution device for one
        frame (the pipeline looks the device up per call by walking every module: 12 ms a frame on
        tiny-random's 154), put back as it was afterwards for the jobs that share it."""
        pipe = self._pipe
        kept = pipe.__class__, pipe.__dict__["scheduler"]
        pipe.__class__, pipe.__dict__["scheduler"] = self._pipe_class, self._scheduler
        try:
            yield pipe
        finally:
            pipe.__class__, pipe.__dict__["scheduler"] = kept

    def params(self) -> dict[str, Any]:
        return self.diffusion.run_params(self.job).as_dict()


def session_scheduler(scheduler: Any) -> Any:
    """A copy of ``scheduler`` whose ``set_timesteps`` runs once: later calls with the same arguments
    (every frame of a live session asks for the same steps) restore the state it made."""
    base = type(scheduler)

    def set_timesteps(self: Any, *args: Any, **kwargs: Any) -> None:
        key = repr((args, sorted(kwargs.items())))
        if self.__dict__.get("_live_key") != key:
            base.set_timesteps(self, *args, **kwargs)
            self.__dict__["_live_state"] = {k: v for k, v in self.__dict__.items() if not k.startswith("_live_")}
            self.__dict__["_live_key"] = key
        for name, value in self.__dict__["_live_state"].items():
            self.__dict__[name] = list(value) if isinstance(value, list) else value  # a step appends to lists

    live: Any = type(f"Live{base.__name__}", (base,), {"set_timesteps": set_timesteps})
    return live.from_config(scheduler.config)


def fixed_device_pipeline(base: type, device: torch.device) -> type:
    """``base`` whose ``_execution_device`` is ``device`` without a look-up (see ``_session_pipe``)."""
    return type(base.__name__, (base,), {"_execution_device": property(lambda self: device)})
