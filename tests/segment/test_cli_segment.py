"""`underpaint segment`: the command a user runs, against a real daemon, writing the mask file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.daemon.conftest import start_daemon
from tests.segment.scenes import composite, iou
from underpaint.cli import main
from underpaint.engines.segment.classical import RefineEngine


def test_segment_writes_the_mask_at_the_image_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene = composite("coffee.jpg", 1)
    image = tmp_path / "photo.png"
    Image.fromarray(scene.rgb).save(image)
    running = start_daemon(tmp_path, engines=[RefineEngine()], default_model="refine")
    common = ["--server", running.url, "--token", running.token, "--image", str(image)]
    try:
        out = tmp_path / "mask.png"
        x, y, w, h = scene.box
        assert main(["segment", *common, "--box", f"{x},{y},{w},{h}", "--out", str(out)]) == 0
        with Image.open(out) as written:
            assert written.mode == "L" and written.size == (scene.rgb.shape[1], scene.rgb.shape[0])
            mask = np.asarray(written)
        assert iou(mask, scene.truth) > 0.8
        assert "wrote" in capsys.readouterr().out
        rough = tmp_path / "rough.png"
        Image.fromarray(scene.truth.astype(np.uint8) * 255).save(rough)
        again = tmp_path / "refined.png"
        assert main(["segment", *common, "--mask", str(rough), "--point", f"{x + w // 2},{y + h // 2}",
                     "--out", str(again)]) == 0  # fmt: skip
        assert main(["segment", *common, "--text", "a cat", "--out", str(tmp_path / "no.png")]) == 1
        assert "job.segment.text" in capsys.readouterr().err
        assert main(["segment", *common, "--box", "1,2,3", "--out", str(tmp_path / "no.png")]) == 1
        assert "X,Y,W,H" in capsys.readouterr().err
    finally:
        running.thread.stop()
