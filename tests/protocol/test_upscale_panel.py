"""What every panel shows for Upscale, Refine-upscale and Restore, and the request each button sends."""

from __future__ import annotations

import pytest

from underpaint_protocol.upscale import UpscaleRequest
from underpaint_protocol.upscale_panel import (
    ACTION_ROLE,
    ACTIONS,
    LABELS,
    REFINE_STRENGTH_DEFAULT,
    ROLES,
    ROWS,
    models_for,
    upscale_request,
)

MODELS = [
    {"id": "classical", "modes": ["inpaint", "outpaint", "upscale"]},
    {"id": "sd", "modes": ["inpaint", "img2img", "refine_upscale"]},
    {"id": "RealESRGAN_x4plus", "modes": ["upscale"]},
    {"id": "GFPGANv1.4", "modes": ["restore"]},
    {"id": "old"},  # a daemon that lists no modes
]


def test_each_list_holds_the_models_that_run_its_mode_in_welcome_order() -> None:
    assert [m["id"] for m in models_for(MODELS, "upscaler")] == ["classical", "RealESRGAN_x4plus"]
    assert [m["id"] for m in models_for(MODELS, "refiner")] == ["sd"]
    assert [m["id"] for m in models_for(MODELS, "restorer")] == ["GFPGANv1.4"]


def test_each_button_sends_its_mode_with_only_what_it_uses() -> None:
    up = upscale_request("upscale", factor=2.5, upscaler="RealESRGAN_x4plus", prompt="ignored", refiner="sd")
    assert (up.mode, up.model, up.upscale, up.prompt, up.strength) == (
        "upscale",
        "RealESRGAN_x4plus",
        UpscaleRequest(2.5),
        "",
        None,
    )
    refine = upscale_request(
        "refine_upscale", factor=2, upscaler="classical", refiner="sd", strength_percent=25, prompt="fur", seed=9
    )
    assert (refine.mode, refine.model, refine.upscale) == ("refine_upscale", "sd", UpscaleRequest(2.0, "classical"))
    assert (refine.strength, refine.prompt, refine.seed) == (0.25, "fur", 9)
    assert upscale_request("refine_upscale").strength == REFINE_STRENGTH_DEFAULT / 100
    assert upscale_request("refine_upscale", steps=12).steps == 12
    assert upscale_request("refine_upscale", steps=0).steps is None, "0: the model's default"
    assert upscale_request("upscale", steps=12).steps is None, "no diffusion pass to set"
    restore = upscale_request("restore", restorer="GFPGANv1.4", factor=4)
    assert (restore.mode, restore.model, restore.upscale, restore.strength) == ("restore", "GFPGANv1.4", None, None)
    assert upscale_request("upscale").model is None  # no choice: the daemon's default
    with pytest.raises(ValueError, match="unknown action"):
        upscale_request("sharpen")


def test_the_buttons_read_the_same_everywhere() -> None:
    assert ACTIONS == {"upscale": "Upscale", "refine_upscale": "Refine-upscale", "restore": "Restore"}


def test_every_field_and_button_has_one_row_and_each_button_its_model_list() -> None:
    """What the hosts build their sections from: a row a field (with its caption) or a button."""
    assert sorted(ROWS) == sorted([*(key for key in LABELS if key != "section"), *ACTIONS])
    assert ROWS.index("upscaler") < ROWS.index("upscale") < ROWS.index("refiner") < ROWS.index("refine_upscale")
    assert ACTION_ROLE == {"upscale": "upscaler", "refine_upscale": "refiner", "restore": "restorer"}
    assert set(ROLES) == set(ACTION_ROLE.values())
