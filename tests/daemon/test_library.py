"""Styles and history over a real daemon: shared by every client, kept on disk, bad input answered."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.daemon.conftest import RunningDaemon, photo_like, start_daemon, submit_job
from tests.daemon.test_jobs import inpaint_job, rect_mask
from underpaint.library.styles import builtin_styles
from underpaint_protocol.client import DaemonError
from underpaint_protocol.library import Library, style


def names(reply: dict[str, Any]) -> list[str]:
    return [item["name"] for item in reply["styles"]]


def error_of(future: Future[Any]) -> dict[str, Any]:
    with pytest.raises(DaemonError) as raised:
        future.result(timeout=10)
    return raised.value.message


def test_shipped_styles_are_listed_and_hold_the_placeholder(make_client) -> None:
    client, _ = make_client()
    reply = Library(client).styles().result(timeout=10)
    shipped = [item for item in reply["styles"] if item["builtin"]]
    assert len(shipped) == len(builtin_styles()) >= 6
    assert all("{prompt}" in item["prompt"] for item in shipped)
    assert reply["notice"] is None


def test_a_style_saved_by_one_client_appears_for_another(make_client, daemon: RunningDaemon, tmp_path: Path) -> None:
    krita, _ = make_client(host=("krita", "5.2.9"))
    gimp, _ = make_client(host=("gimp", "3.0.4"))
    saved = Library(krita).save_style(style("Moody", "moody painting of {prompt}", "bright", steps=3)).result(10)
    assert "Moody" in names(saved)
    seen = Library(gimp).styles().result(timeout=10)
    (moody,) = [item for item in seen["styles"] if item["name"] == "Moody"]
    assert moody["prompt"] == "moody painting of {prompt}" and moody["steps"] == 3 and not moody["builtin"]
    # renamed and deleted from the second client, seen by the first
    Library(gimp).rename_style("Moody", "Dark mood").result(timeout=10)
    assert "Dark mood" in names(Library(krita).styles().result(timeout=10))
    Library(krita).delete_style("dark MOOD").result(timeout=10)  # names match regardless of case
    assert not {"Moody", "Dark mood"} & set(names(Library(gimp).styles().result(timeout=10)))
    # one file in the user's config folder
    on_disk = json.loads((tmp_path / "config" / "styles.json").read_text())
    assert on_disk["styles"] == []


def test_styles_survive_a_restart(tmp_path: Path, make_client) -> None:
    client, _ = make_client()
    Library(client).save_style(style("Kept", "kept {prompt}")).result(timeout=10)
    other = start_daemon(tmp_path)  # the same config folder
    try:
        from underpaint_protocol.client import UnderpaintClient

        again = UnderpaintClient(other.url, client_name="pytest")
        again.connect(timeout=10)
        assert "Kept" in names(Library(again).styles().result(timeout=10))
        again.close()
    finally:
        other.thread.stop()


def test_bad_styles_are_refused_naming_the_field(make_client) -> None:
    client, _ = make_client()
    library = Library(client)
    error = error_of(library.save_style(style("No placeholder", "a cat")))
    assert (error["code"], error["field"]) == ("invalid_value", "style.prompt")
    error = error_of(library.save_style(style("Photograph", "my {prompt}")))
    assert (error["code"], error["field"]) == ("invalid_value", "style.name")
    error = error_of(library.delete_style("Never saved"))
    assert (error["code"], error["field"]) == ("unknown_style", "name")
    error = error_of(client.request({"type": "styles", "action": "save"}, "style_list"))
    assert (error["code"], error["field"]) == ("invalid_field", "style")
    error = error_of(client.request({"type": "styles", "action": "save", "style": {"name": "x"}, "extra": 1}, "x"))
    assert error["code"] == "invalid_field"
    assert "Photograph" in names(library.styles().result(timeout=10))  # still serving


def test_a_corrupt_styles_file_is_kept_aside_not_overwritten(make_client, tmp_path: Path) -> None:
    path = tmp_path / "config" / "styles.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    broken = '{"version": 1, "styles": [{"name": "Mine", "prompt": "mine {prompt}"},'  # cut short
    path.write_text(broken)
    client, _ = make_client()
    reply = Library(client).styles().result(timeout=10)
    assert "could not be read" in reply["notice"] and "Photograph" in names(reply)
    (aside,) = path.parent.glob("styles.json.unreadable-*")
    assert aside.read_text() == broken and aside.name in reply["notice"]
    saved = Library(client).save_style(style("Fresh", "fresh {prompt}")).result(timeout=10)
    assert "Fresh" in names(saved)
    assert aside.read_text() == broken  # never overwritten
    assert json.loads(path.read_text())["styles"][0]["name"] == "Fresh"


def test_a_job_with_a_style_runs_the_resolved_prompt(make_client) -> None:
    client, events = make_client()
    Library(client).save_style(style("Framed", "framed {prompt}, gallery", "text", steps=4)).result(10)
    canvas = photo_like(200, 150)
    job = inpaint_job(prompt="a cat", negative_prompt="blur", style="framed", seed=3)
    accepted = submit_job(client, job, canvas, rect_mask(200, 150, 40, 30, 37, 29))
    assert events.wait_outcome(accepted["job_id"]).type == "finished"
    (result,) = events.of(accepted["job_id"], "result")
    params = result.message["params"]
    assert params["prompt"] == "framed a cat, gallery"
    assert params["negative_prompt"] == "blur, text"
    assert params["steps"] == 4  # the style's, the job left it unset
    assert (params["style"], params["user_prompt"], params["user_negative_prompt"]) == ("framed", "a cat", "blur")


def test_an_unknown_style_is_refused_at_plan_and_submit(make_client) -> None:
    client, _ = make_client()
    error = error_of(client.plan(inpaint_job(style="Nope")))
    assert (error["code"], error["field"]) == ("unknown_style", "job.style")
    assert "Photograph" in error["message"]


def test_history_is_shared_newest_first_and_kept_on_disk(make_client, daemon: RunningDaemon, tmp_path: Path) -> None:
    first, first_events = make_client()
    second, second_events = make_client()
    canvas = photo_like(200, 150)
    mask = rect_mask(200, 150, 40, 30, 37, 29)
    one = submit_job(first, inpaint_job(prompt="first prompt", seed=1), canvas, mask)
    two = submit_job(second, inpaint_job(prompt="second", style="Photograph", seed=2), canvas, mask)
    first_events.wait_outcome(one["job_id"])
    second_events.wait_outcome(two["job_id"])
    entries = Library(first).history(10).result(timeout=10)
    assert [e["prompt"] for e in entries[:2]] == ["second", "first prompt"]  # what the user typed
    assert entries[0]["style"] == "Photograph" and entries[0]["seed"] == 2
    assert (entries[1]["width"], entries[1]["height"], entries[1]["mode"]) == (200, 150, "inpaint")
    # the same request again moves to the top instead of repeating
    three = submit_job(first, inpaint_job(prompt="first prompt", seed=9), canvas, mask)
    first_events.wait_outcome(three["job_id"])
    entries = Library(second).history(10).result(timeout=10)
    assert [e["prompt"] for e in entries] == ["first prompt", "second"] and entries[0]["seed"] == 9
    lines = (tmp_path / "data" / "history.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["prompt"] == "first prompt"


def test_history_is_bounded(tmp_path: Path) -> None:
    from underpaint.library.history import HistoryStore
    from underpaint_protocol.messages import HistoryEntry

    path = tmp_path / "history.jsonl"
    store = HistoryStore(path, keep=5)
    for index in range(23):
        fields = {"mode": "txt2img", "model": "m", "negative_prompt": "", "width": 8, "height": 8}
        store.add(HistoryEntry(created=index, prompt=f"p{index}", seed=index, **fields))
    assert [e.prompt for e in store.recent(100)] == [f"p{i}" for i in range(22, 17, -1)]
    assert len(path.read_text().splitlines()) < 10
    path.write_text(path.read_text() + "not json\n")
    assert [e.prompt for e in HistoryStore(path, keep=5).recent(2)] == ["p22", "p21"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "underpaint", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_cli_lists_saves_and_deletes_styles_and_generates_with_one(daemon: RunningDaemon, tmp_path: Path) -> None:
    url = daemon.url
    listed = cli("styles", "--server", url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == len(builtin_styles()) and lines[0].startswith("Photograph\tphotograph of {prompt}")
    saved = cli("styles", "--server", url, "--save", "Inked", "--prompt", "inked {prompt}", "--negative", "colour")
    assert saved.returncode == 0, saved.stderr
    assert "Inked\tinked {prompt}\tnegative: colour" in saved.stdout.splitlines()
    refused = cli("styles", "--server", url, "--save", "Bad", "--prompt", "no placeholder")
    assert refused.returncode == 1 and "{prompt}" in refused.stderr and "style.prompt" in refused.stderr
    Image.fromarray(photo_like(64, 48)).save(tmp_path / "in.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    inputs = ["--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png")]
    made = cli(
        "generate", "inpaint", "--server", url, *inputs, "--prompt", "a boat", "--style", "Inked",
        "--out", str(out), "--layer-out", str(tmp_path / "layer.png"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    params = json.loads((tmp_path / "layer.json").read_text())["params"]
    assert (params["prompt"], params["negative_prompt"], params["style"]) == ("inked a boat", "colour", "Inked")
    history = cli("history", "--server", url, "--json")
    assert history.returncode == 0 and json.loads(history.stdout)[0]["prompt"] == "a boat"
    deleted = cli("styles", "--server", url, "--delete", "inked")
    assert deleted.returncode == 0 and "Inked" not in deleted.stdout
    unknown = cli("generate", "inpaint", "--server", url, *inputs, "--style", "Inked", "--out", str(out))
    assert unknown.returncode == 1 and "style" in unknown.stderr.lower()
