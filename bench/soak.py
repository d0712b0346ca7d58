"""Soak and fuzz: a real daemon under hostile and broken peers for a few minutes, memory sampled.

Runs `underpaint serve --engine echo` as a subprocess (outputs on) and, at the same time:

- fuzzers: messages generated from ``protocol/schema.json`` (every client message type, built from its
  schema, then mutated: wrong types, huge and overflowing numbers, deep nesting, lone surrogates,
  unknown fields, garbage binary frames and headers), before and after ``hello``. After each one a
  sentinel ``list_jobs`` must be answered: an error or a reply is a structured answer; a close
  with 1011 or without a close frame is a handler crash; no answer within 10 s is a hang;
- plugin clients as separate processes submitting echo jobs, killed with SIGKILL at random and
  restarted with the same client id;
- slow readers (submit big jobs, never read), idle greeted connections, connections that never say
  hello, and half-open sockets (the websocket opened, then nothing ever read or sent);
- one SIGKILL and restart of the daemon itself, half way.

At the end every client id lists and fetches its jobs: a job the daemon reported ``finished`` whose
results cannot be fetched is lost. Prints messages tried, structured answers, handler crashes, hangs,
jobs submitted / finished / results delivered / lost, and peak RSS over baseline and RSS after the
run (targets: 0 crashes, 0 hangs, 0 lost, RSS after within 50 MB of baseline).

Run: ``python bench/soak.py --seconds 180``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "protocol" / "schema.json").read_text(encoding="utf-8"))
PROTOCOL = SCHEMA["$defs"]["Welcome"]["properties"]["protocol"]["default"]
DOCUMENTED_CLOSES = {1000, 1001, 1008, 1009}


# ------------------------------------------------------------------ messages from the schema


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def instance(node: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value valid against ``node`` (as far as this small generator knows JSON Schema)."""
    node = _resolve(node)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return rng.choice(node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            options = [o for o in node[key] if _resolve(o).get("type") != "null"] or node[key]
            return instance(rng.choice(options), rng, depth + 1)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        required = set(node.get("required", ()))
        return {
            name: instance(sub, rng, depth + 1)
            for name, sub in node.get("properties", {}).items()
            if name in required or rng.random() < 0.5
        }
    if kind == "integer":
        low, high = node.get("minimum", 0), node.get("maximum", 4096)
        return rng.randint(int(low), int(min(high, low + 4096)))
    if kind == "number":
        return rng.uniform(node.get("minimum", 0.0), node.get("maximum", 1.0))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [instance(node.get("items", {}), rng, depth + 1) for _ in range(rng.randint(0, 2))]
    if kind == "string":
        if "pattern" in node:
            return "".join(rng.choice("abcdef0123456789") for _ in range(max(16, node.get("minLength", 1))))
        return "".join(rng.choice("abc xyz") for _ in range(rng.randint(node.get("minLength", 0), 12)))
    return None


HOSTILE_VALUES: list[Any] = [
    10**5000,  # serialised with more digits than Python converts by default
    1e308 * 10,  # inf: serialised as Infinity
    -(2**70),
    "\ud800",
    "é✓ unicode",
    "x" * 200_000,
    [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]],
    {"nested": {"deeper": [None, True, 1.5]}},
    None,
    "",
    -1,
]


def mutate(message: Any, rng: random.Random) -> Any:
    """One random hostile change somewhere in the message."""
    if not isinstance(message, dict) or not message or rng.random() < 0.1:
        return rng.choice(HOSTILE_VALUES)
    key = rng.choice(list(message))
    roll = rng.random()
    if roll < 0.15:
        message[f"unknown_{rng.randint(0, 9)}"] = 1
    elif roll < 0.25:
        del message[key]
    elif isinstance(message[key], dict) and roll < 0.6:
        message[key] = mutate(message[key], rng)
    else:
        message[key] = rng.choice(HOSTILE_VALUES)
    return message


def dumps(message: Any, rng: random.Random) -> str:
    """JSON text, sometimes broken or nested past any parser's depth."""
    roll = rng.random()
    if roll < 0.05:
        return "[" * 100_000 + "]" * 100_000
    if roll < 0.1:
        return json.dumps(message)[: rng.randint(0, 40)]
    sys.set_int_max_str_digits(0)
    text = json.dumps(message, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # the client library cannot send it raw: send it escaped
        text = json.dumps(message, ensure_ascii=True, allow_nan=True)
    return text


def binary_frame(rng: random.Random, declared: dict[str, Any] | None) -> bytes:
    if declared is not None and rng.random() < 0.5:
        header = json.dumps(declared).encode("utf-8", "surrogatepass")
        try:
            size = int(declared["width"]) * int(declared["height"]) * (1 if declared.get("format") == "gray8" else 4)
        except (KeyError, TypeError, ValueError, OverflowError):
            size = 16
        return struct.pack(">I", len(header)) + header + os.urandom(max(0, min(size, 1 << 20)))
    choice = rng.random()
    if choice < 0.3:
        header = json.dumps({"id": "\ud800", "format": "rgba8", "width": 10**400, "height": 1e308 * 10}).encode(
            "utf-8", "surrogatepass"
        )
        return struct.pack(">I", len(header)) + header
    if choice < 0.6:
        return struct.pack(">I", 2**32 - 1) + b"{}"
    return os.urandom(rng.randint(0, 64))


CLIENT_TYPES = ["Hello", "PlanRequest", "Submit", "Cancel", "ListJobs", "Fetch"]


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.notes: list[str] = []

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def note(self, text: str) -> None:
        with self.lock:
            if len(self.notes) < 20:
                self.notes.append(text)


def hello(client_id: str | None = None) -> str:
    message: dict[str, Any] = {"type": "hello", "protocol": PROTOCOL, "client": {"name": "soak"}}
    if client_id:
        message["client_id"] = client_id
    return json.dumps(message)


def open_socket(url: str) -> ClientConnection | None:
    try:
        return connect(url, compression=None, max_size=None, open_timeout=10, close_timeout=2)
    except (OSError, InvalidStatus, TimeoutError):
        return None  # daemon restarting, or the connection cap: both fine


def classify_close(error: ConnectionClosed, tally: Tally, what: str) -> None:
    code = error.rcvd.code if error.rcvd is not None else None
    if code in DOCUMENTED_CLOSES:
        tally.add("documented closes")
    else:
        tally.add("handler crashes")
        tally.note(f"{what}: closed with {code}")


def fuzzer(url: str, stop: threading.Event, tally: Tally, seed: int, daemon_up: threading.Event) -> None:
    rng = random.Random(seed)
    sentinel = 0
    while not stop.is_set():
        daemon_up.wait()
        ws = open_socket(url)
        if ws is None:
            time.sleep(0.2)
            continue
        greeted = rng.random() < 0.85
        try:
            if greeted:
                ws.send(hello())
                if json.loads(ws.recv(timeout=10))["type"] != "welcome":
                    tally.add("hangs")
            for _ in range(rng.randint(1, 40)):
                if stop.is_set():
                    break
                kind = rng.choice(CLIENT_TYPES)
                message = instance(SCHEMA["$defs"][kind], rng)
                if rng.random() < 0.8:
                    message = mutate(message, rng)
                declared = [message.get(name) for name in ("image", "mask")] if isinstance(message, dict) else []
                ws.send(dumps(message, rng))
                tally.add("messages tried")
                for ref in declared:
                    if isinstance(ref, dict):
                        ws.send(binary_frame(rng, ref))
                if rng.random() < 0.1:
                    ws.send(binary_frame(rng, None))
                    tally.add("messages tried")
                sentinel += 1
                ws.send(json.dumps({"type": "list_jobs", "request_id": f"sentinel-{sentinel}"}))
                deadline = time.monotonic() + 10
                while True:
                    frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                    if isinstance(frame, bytes):
                        continue
                    reply = json.loads(frame)
                    if reply.get("request_id") == f"sentinel-{sentinel}":
                        break
                    tally.add("structured answers")
        except TimeoutError:
            tally.add("hangs")
            tally.note("a fuzzed message was not answered within 10 s")
        except ConnectionClosed as error:
            if daemon_up.is_set():
                classify_close(error, tally, "fuzzer")
        finally:
            ws.close()


def slow_reader(url: str, stop: threading.Event, tally: Tally, daemon_up: threading.Event) -> None:
    """Submits big echo jobs and never reads: the daemon must drop it, not buffer without limit."""
    while not stop.is_set():
        daemon_up.wait()
        try:
            ws = connect(url, compression=None, max_size=None, max_queue=1, open_timeout=10)
        except (OSError, InvalidStatus, TimeoutError):
            time.sleep(0.5)
            continue
        side = 1024
        try:
            ws.send(hello())
            job = {"mode": "img2img", "model": "echo", "canvas": {"width": side, "height": side}}
            ref = {"id": "i", "format": "rgba8", "width": side, "height": side}
            for n in range(8):
                ws.send(json.dumps({"type": "submit", "request_id": f"s{n}", "job": job, "image": ref}))
                header = json.dumps(ref).encode()
                ws.send(struct.pack(">I", len(header)) + header + bytes(side * side * 4))
            stop.wait(20)
            tally.add("slow readers")
        except (ConnectionClosed, OSError, TimeoutError):
            tally.add("slow readers")
        finally:
            ws.close()


def idlers(url: str, stop: threading.Event, tally: Tally, daemon_up: threading.Event) -> None:
    """Greeted idle connections, connections that never say hello, half-open sockets."""
    while not stop.is_set():
        daemon_up.wait()
        held: list[Any] = []
        for _ in range(3):
            ws = open_socket(url)
            if ws is not None:
                ws.send(hello())
                held.append(ws)
            mute = open_socket(url)
            if mute is not None:
                held.append(mute)
        host, port = url.removeprefix("ws://").split(":")
        for _ in range(3):
            try:
                raw = socket.create_connection((host, int(port)), timeout=5)
                raw.sendall(
                    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                )
                held.append(raw)  # opened, then never read from or written to again
            except OSError:
                pass
        tally.add("idle and half-open connections", len(held))
        stop.wait(15)
        for item in held:
            with contextlib.suppress(OSError):
                item.close()


CLIENT_SCRIPT = """
import sys, time, threading, random
sys.path.insert(0, {root!r})
from underpaint_protocol.client import UnderpaintClient
from underpaint_protocol.session import ImageData
url, client_id, log = sys.argv[1], sys.argv[2], open(sys.argv[3], "a", buffering=1)
def on_event(event):
    if event.type == "finished":
        log.write(f"finished {{event.job_id}}\\n")
client = UnderpaintClient(url, client_name="soak-client", client_id=client_id, on_event=on_event, previews=False)
client.connect(timeout=60)
rng = random.Random()
while True:
    side = rng.choice((64, 256, 512))
    canvas = {{"width": side, "height": side}}
    job = {{"mode": "img2img", "model": "echo", "canvas": canvas, "batch": rng.randint(1, 2)}}
    try:
        image = ImageData("rgba8", side, side, bytes(side * side * 4))
        accepted = client.submit(job, {{"x": 0, "y": 0, "width": side, "height": side}}, image).result(timeout=60)
        log.write(f"accepted {{accepted['job_id']}} {{time.time()}}\\n")
    except Exception as error:
        log.write(f"refused {{type(error).__name__}}\\n")
        time.sleep(0.5)
    time.sleep(rng.uniform(0.0, 0.2))
"""


def plugin_clients(
    url: str, stop: threading.Event, tally: Tally, folder: Path, count: int, daemon_up: threading.Event
) -> dict[str, Path]:
    """Starts ``count`` client processes that are killed with SIGKILL and restarted (same id)."""
    script = folder / "client.py"
    script.write_text(CLIENT_SCRIPT.format(root=str(ROOT / "protocol")), encoding="utf-8")
    logs = {f"soak-client-{n:04d}-xxxxxxxx": folder / f"client-{n}.log" for n in range(count)}

    def run(client_id: str, log: Path) -> None:
        rng = random.Random(client_id)
        while not stop.is_set():
            daemon_up.wait()
            process = subprocess.Popen(
                [sys.executable, str(script), url, client_id, str(log)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stop.wait(rng.uniform(5, 25))
            process.send_signal(signal.SIGKILL)
            process.wait()
            tally.add("client kill -9")

    for client_id, log in logs.items():
        threading.Thread(target=run, args=(client_id, log), daemon=True).start()
    return logs


# ------------------------------------------------------------------ the daemon process


class Daemon:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None
        self.log = open(folder / "daemon.log", "ab")  # noqa: SIM115 - kept open for the whole run

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "underpaint", "serve", "--engine", "echo", "--port", str(self.port)]
        command += ["--outputs", str(self.folder / "outputs"), "--token-file", str(self.folder / "token")]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the daemon did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def rss(self) -> int:
        assert self.process is not None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
        return 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)


def warm_up(url: str) -> None:
    """A few jobs and a fetch, so the baseline includes what a used daemon keeps loaded."""
    from underpaint_protocol.client import UnderpaintClient
    from underpaint_protocol.session import ImageData

    client = UnderpaintClient(url, client_name="soak-warmup", previews=False)
    client.connect(timeout=30)
    for side in (64, 512):
        job = {"mode": "img2img", "model": "echo", "canvas": {"width": side, "height": side}}
        image = ImageData("rgba8", side, side, bytes(side * side * 4))
        client.submit(job, {"x": 0, "y": 0, "width": side, "height": side}, image).result(timeout=60)
    time.sleep(1)
    client.close()


def check_results(url: str, logs: dict[str, Path], tally: Tally, restarted_at: float) -> None:
    """Fetch every job each client had accepted. A job seen finished, or accepted after the daemon's
    restart, must come back finished with its results; one accepted before the kill may be gone
    (it was queued or running when the daemon died) and is only counted."""
    from underpaint_protocol.client import UnderpaintClient

    for client_id, log in logs.items():
        lines = [line.split() for line in (log.read_text().splitlines() if log.exists() else [])]
        accepted = {words[1]: float(words[2]) for words in lines if words[0] == "accepted" and len(words) == 3}
        finished = {words[1] for words in lines if words[0] == "finished"}
        tally.add("jobs submitted", len(accepted))
        tally.add("jobs seen finished", len(finished))
        results: dict[str, int] = {}
        ended: dict[str, str] = {}

        def on_event(event: Any, results: dict[str, int] = results, ended: dict[str, str] = ended) -> None:
            if event.type == "result":
                results[event.job_id] = results.get(event.job_id, 0) + 1
            elif event.type in ("finished", "failed", "cancelled"):
                ended[event.job_id] = event.type
            elif event.type == "error" and event.job_id:
                ended[event.job_id] = f"error {event.message.get('code')}"

        client = UnderpaintClient(url, client_name="soak-check", client_id=client_id, on_event=on_event)
        client.connect(timeout=30)
        wanted = set(accepted) | finished
        for job_id in wanted:
            client.fetch(job_id)
        deadline = time.monotonic() + 60 + 0.1 * len(wanted)
        while time.monotonic() < deadline and not all(j in ended for j in wanted):
            time.sleep(0.1)
        client.close()
        for job_id in wanted:
            if ended.get(job_id) == "finished" and results.get(job_id, 0) > 0:
                tally.add("results delivered", results[job_id])
            elif job_id in finished or accepted.get(job_id, 0.0) > restarted_at:
                tally.add("lost")
                tally.note(f"job {job_id[:8]} of {client_id[:16]}: fetch ended {ended.get(job_id)}")
            else:
                tally.add("jobs interrupted by the daemon kill")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--fuzzers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="underpaint-soak-"))
    daemon = Daemon(folder)
    daemon.start()
    warm_up(daemon.url)
    baseline = daemon.rss()
    tally = Tally()
    stop, up = threading.Event(), threading.Event()
    up.set()
    peak = [0]

    def sample() -> None:
        while not stop.is_set():
            if up.is_set():
                peak[0] = max(peak[0], daemon.rss() - baseline)
            stop.wait(0.25)

    threads = [threading.Thread(target=sample, daemon=True)]
    threads += [
        threading.Thread(target=fuzzer, args=(daemon.url, stop, tally, seed, up), daemon=True)
        for seed in range(args.fuzzers)
    ]
    threads.append(threading.Thread(target=slow_reader, args=(daemon.url, stop, tally, up), daemon=True))
    threads.append(threading.Thread(target=idlers, args=(daemon.url, stop, tally, up), daemon=True))
    for thread in threads:
        thread.start()
    logs = plugin_clients(daemon.url, stop, tally, folder, args.clients, up)
    started = time.monotonic()
    print(f"soaking {daemon.url} for {args.seconds:.0f} s (files in {folder})", flush=True)
    time.sleep(args.seconds / 2)
    up.clear()
    daemon.kill()
    tally.add("daemon kill -9")
    daemon.start()
    restarted_at = time.time()
    warm_up(daemon.url)
    baseline = daemon.rss()  # a new process: its own baseline
    up.set()
    time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
    stop.set()
    for thread in threads:
        thread.join(30)
    time.sleep(45)  # keepalive timeouts close what the peers left half-open
    check_results(daemon.url, logs, tally, restarted_at)
    time.sleep(5)
    after = daemon.rss() - baseline
    daemon.stop()
    counts = tally.counts
    print()
    for name in (
        "messages tried",
        "structured answers",
        "documented closes",
        "handler crashes",
        "hangs",
        "slow readers",
        "idle and half-open connections",
        "client kill -9",
        "daemon kill -9",
        "jobs submitted",
        "jobs seen finished",
        "results delivered",
        "lost",
        "jobs interrupted by the daemon kill",
    ):
        print(f"{name:>38}: {counts.get(name, 0)}")
    print(f"{'peak RSS over baseline':>38}: {peak[0] / 2**20:.1f} MB")
    print(f"{'RSS after the run over baseline':>38}: {after / 2**20:.1f} MB")
    for note in tally.notes:
        print(f"  note: {note}")
    ok = not counts.get("handler crashes") and not counts.get("hangs") and not counts.get("lost") and after < 50 * 2**20
    print("\ntargets: 0 crashes, 0 hangs, 0 lost, RSS after within 50 MB of baseline:", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
