"""ControlNet and IP-Adapter in the diffusion engine: tiny random models loaded from disk the ways users
have them, SD1.5 and SDXL families, every pipeline (txt2img, img2img, inpaint, and the 9-channel inpaint
UNet), several controls at once, models shared across modes, and pickles refused."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.diffusion.conftest import TinyModels, make_job, run
from tests.guides import TinyGuides, build_guides
from tests.pickles import Payload
from underpaint.engines.base import ControlInput, ReferenceInput
from underpaint.engines.diffusion import DiffusionEngine
from underpaint.engines.diffusion.controls import parse_control_source
from underpaint.errors import JobError
from underpaint.modes import Mode

SIZE = 64


@pytest.fixture(scope="module")
def guides(tmp_path_factory: pytest.TempPathFactory) -> TinyGuides:
    return build_guides(tmp_path_factory.mktemp("guides"))


@pytest.fixture(scope="module")
def engine(tiny_models: TinyModels, guides: TinyGuides) -> Iterator[DiffusionEngine]:
    engine = DiffusionEngine(
        sources=[
            str(tiny_models.sd15_folder),
            str(tiny_models.sd15_inpaint_folder),
            str(tiny_models.sdxl_folder),
            str(tiny_models.sdxl_inpaint_file),
        ],
        device="cpu",
        previews="none",
        controls=guides.control_sources(),
        adapters=guides.adapter_sources(),
        depth_model=str(guides.depth_folder),
    )
    yield engine
    engine.close()


def square(inverted: bool = False, left: bool = False) -> np.ndarray:
    """An RGBA control layer: a white square (or the left half) on transparent black."""
    layer = np.zeros((SIZE, SIZE, 4), np.uint8)
    if left:
        layer[:, : SIZE // 2] = 255
    else:
        layer[16:48, 16:48] = 255
    return 255 - layer if inverted else layer


def noise_photo(width: int, height: int, seed: int) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)
    return np.dstack([rgb, np.full((height, width), 255, np.uint8)])


def generate(engine: DiffusionEngine, mode: Mode, model: str, controls=(), references=()) -> np.ndarray:  # type: ignore[no-untyped-def]
    job = replace(make_job(mode, model, size=SIZE), controls=tuple(controls), references=tuple(references))
    (image,) = run(engine, job)
    return image


def model_id(engine: DiffusionEngine, family: str, inpaint_unet: bool = False) -> str:
    return next(
        s.id for s in engine._specs.values() if s.family == family and s.inpaint_unet == inpaint_unet and s.usable
    )


def test_models_announce_the_kinds_of_their_family(engine: DiffusionEngine) -> None:
    infos = {info.family: info for info in engine.models()}
    assert set(infos["sd1"].control_kinds) == {"canny", "scribble", "depth"}
    assert set(infos["sdxl"].control_kinds) == {"canny", "depth"}
    assert set(infos["sd1"].reference_modes) == set(infos["sdxl"].reference_modes) == {"style", "composition", "both"}


@pytest.mark.parametrize(
    ("family", "inpaint_unet", "mode"),
    [
        ("sd1", False, Mode.TXT2IMG),
        ("sd1", False, Mode.IMG2IMG),
        ("sd1", False, Mode.INPAINT),
        ("sd1", True, Mode.INPAINT),
        ("sd1", True, Mode.TXT2IMG),
        ("sdxl", False, Mode.TXT2IMG),
        ("sdxl", False, Mode.IMG2IMG),
        ("sdxl", False, Mode.INPAINT),
        ("sdxl", True, Mode.INPAINT),
    ],
)
def test_a_control_changes_the_result_in_every_pipeline(
    engine: DiffusionEngine, family: str, inpaint_unet: bool, mode: Mode
) -> None:
    model = model_id(engine, family, inpaint_unet)
    plain = generate(engine, mode, model)
    square_control = generate(engine, mode, model, [ControlInput("canny", square())])
    half_control = generate(engine, mode, model, [ControlInput("canny", square(left=True))])
    assert plain.shape == square_control.shape == (SIZE, SIZE, 3)
    assert not np.array_equal(plain, square_control), "the control did nothing"
    assert not np.array_equal(square_control, half_control), "two different controls gave the same picture"
    again = generate(engine, mode, model, [ControlInput("canny", square())])
    assert np.array_equal(again, square_control)  # same seed, same control: the same picture


def test_several_controls_strength_and_range(engine: DiffusionEngine) -> None:
    model = model_id(engine, "sd1")
    one = generate(engine, Mode.TXT2IMG, model, [ControlInput("canny", square())])
    two = generate(
        engine, Mode.TXT2IMG, model, [ControlInput("canny", square()), ControlInput("scribble", square(left=True))]
    )
    assert not np.array_equal(one, two)
    weaker = generate(engine, Mode.TXT2IMG, model, [ControlInput("canny", square(), strength=0.3)])
    late = generate(engine, Mode.TXT2IMG, model, [ControlInput("canny", square(), start=0.5, end=1.0)])
    off = generate(engine, Mode.TXT2IMG, model, [ControlInput("canny", square(), strength=0.0)])
    plain = generate(engine, Mode.TXT2IMG, model)
    assert not np.array_equal(weaker, one) and not np.array_equal(late, one)
    assert np.abs(off.astype(int) - plain).max() <= 1  # strength 0: as without control (float noise aside)
    params = engine.run_params(
        replace(
            make_job(Mode.TXT2IMG, model),
            controls=(ControlInput("canny", square()), ControlInput("scribble", square())),
        )
    )
    assert [c.split("=")[0] for c in params.controls] == ["canny", "scribble"]


def test_controlnets_load_once_and_are_shared_across_modes(engine: DiffusionEngine) -> None:
    model = model_id(engine, "sd1")
    for mode in (Mode.TXT2IMG, Mode.IMG2IMG, Mode.INPAINT):
        generate(engine, mode, model, [ControlInput("canny", square())])
    loaded = engine.loaded
    assert loaded is not None
    canny = [net for spec, net in engine._controlnets.items() if spec.kind == "canny" and spec.family == "sd1"]
    assert len(canny) == 1
    control_pipes = [pipe for key, pipe in loaded.pipes.items() if key.startswith("control-")]
    assert len(control_pipes) == 3
    for pipe in control_pipes:
        assert pipe.controlnet is canny[0]
        assert pipe.unet is loaded.base.unet and pipe.vae is loaded.base.vae  # from_pipe: nothing copied


def test_preprocessed_depth_uses_the_depth_model(engine: DiffusionEngine) -> None:
    model = model_id(engine, "sd1")
    photo = noise_photo(SIZE, SIZE, seed=1)
    raw = generate(engine, Mode.TXT2IMG, model, [ControlInput("depth", photo)])
    depth = generate(engine, Mode.TXT2IMG, model, [ControlInput("depth", photo, preprocess=True)])
    assert not np.array_equal(raw, depth)


def test_a_pose_map_cannot_be_made_from_a_picture(engine: DiffusionEngine) -> None:
    from underpaint.engines.diffusion.preprocess import prepare_control

    with pytest.raises(JobError) as refused:
        prepare_control("pose", square(), True, None, "job.controls.0")
    assert refused.value.field == "job.controls.0.preprocess"


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_a_reference_image_changes_the_result(engine: DiffusionEngine, family: str) -> None:
    model = model_id(engine, family)
    photo = noise_photo(56, 40, seed=2)
    plain = generate(engine, Mode.TXT2IMG, model)
    results = {
        take: generate(engine, Mode.TXT2IMG, model, references=[ReferenceInput(photo, take, 0.8)])
        for take in ("both", "style", "composition")
    }
    for take, image in results.items():
        assert not np.array_equal(image, plain), f"the {take} reference did nothing"
    assert not np.array_equal(results["style"], results["composition"])
    with_control = generate(
        engine, Mode.INPAINT, model, [ControlInput("canny", square())], [ReferenceInput(photo, "both", 0.8)]
    )
    assert with_control.shape == (SIZE, SIZE, 3)
    assert np.array_equal(generate(engine, Mode.TXT2IMG, model), plain)  # switched off again: as before


def test_pickled_controlnets_are_refused_without_being_opened(tmp_path: Path, guides: TinyGuides) -> None:
    marker = tmp_path / "pwned"

    folder = tmp_path / "evil-controlnet"
    folder.mkdir()
    (folder / "config.json").write_text((guides.canny_folder / "config.json").read_text())
    (folder / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match="pickle"):
        parse_control_source(f"canny={tmp_path / 'evil.pth'}")
    engine = DiffusionEngine(sources=["tiny-random"], device="cpu", previews="none", controls=[f"canny={folder}"])
    with pytest.raises(JobError) as refused:
        generate(engine, Mode.TXT2IMG, "tiny-random", [ControlInput("canny", square())])
    assert refused.value.code == "unsafe_model_format"
    assert not marker.exists()


def test_replicas_build_the_same_control_kinds(guides: TinyGuides) -> None:
    """``serve --workers ray`` hands its control sources to every replica's engines (built here in-process)."""
    from underpaint.scaleout.replica import EngineSettings

    settings = EngineSettings(
        engine="diffusion",
        models=("tiny-random",),
        device="cpu",
        controls=(f"canny={guides.canny_folder}", "scribble=tiny-random"),
        adapters=(str(guides.adapter_sd15),),
    )
    engines, default = settings.build()
    (info,) = [info for engine in engines for info in engine.models() if info.id == default]
    assert set(info.control_kinds) == {"canny", "scribble"} and "style" in info.reference_modes
