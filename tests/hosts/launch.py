"""Start real Krita / GIMP hosts with isolated settings, wait for what they report, clean up.

Everything runs with a clean environment (no venv, no PYTHONPATH leaking into the host's Python).
Hosts inside a Debian root run through tools/hosts/in-root.sh: host /tmp is shared with the root and
the repository is bind-mounted read-only at its own path, so any path under /tmp or the repo means the
same file on both sides; other folders a run needs are bind-mounted at their own path too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .discovery import IN_ROOT, REPO_ROOT, GimpHost, Host, KritaHost

SCREEN = "1600x1000x24"
_SHARED = (Path("/tmp"), REPO_ROOT)


class HostRunError(RuntimeError):
    """A host run failed (timeout, crash, no report); the message carries the host's output."""


def _tail(text: str, n: int = 4000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def _base_env(home: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(home / ".runtime"),
        # Krita/Qt put swap files, frame caches and single-instance locks in TMPDIR: keep them per run
        # (two Kritas sharing one would see each other as "already running").
        "TMPDIR": str(home / ".tmp"),
        "NO_AT_BRIDGE": "1",
    }
    for d in (".runtime", ".tmp"):
        (home / d).mkdir(parents=True, exist_ok=True)
        os.chmod(home / d, 0o700)
    env.update(extra or {})
    return env


def _under(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def host_command(host: Host, argv: Sequence[str], env: Mapping[str, str], visible: Iterable[Path] = ()) -> list[str]:
    """The argv that runs `argv` with exactly `env` in `host` (on this machine or inside its root).

    `visible`: folders that must be reachable at the same path inside a root (bind-mounted unless they
    already lie under /tmp or the repository).
    """
    envargs = ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items())]
    if host.root is None:
        return [*envargs, *argv]
    cmd = [str(IN_ROOT), str(host.root), "--ro-bind", str(REPO_ROOT)]
    seen: set[Path] = set()
    for p in visible:
        p = Path(p).resolve()
        if p in seen or any(_under(p, s) for s in _SHARED):
            continue
        seen.add(p)
        cmd += ["--bind", str(p)]
    return [*cmd, "--", *envargs, *argv]


def _kill_tree(proc: subprocess.Popen, grace: float = 8.0) -> None:
    """SIGTERM the process group (started with start_new_session), then SIGKILL what is left."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.1)
        if not _group_alive(pgid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies still count for killpg(…, 0); look at /proc for live members.
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _session_display(sid: int) -> str | None:
    """DISPLAY of a process in session `sid` (xvfb-run -a exports the display it picked)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != sid:
                continue
            for item in (d / "environ").read_bytes().split(b"\0"):
                if item.startswith(b"DISPLAY="):
                    return item[8:].decode()
        except (OSError, ValueError, IndexError):
            continue
    return None


# --------------------------------------------------------------------------------------------------
# Generic run


@dataclass
class HostRun:
    host: Host
    returncode: int | None  # None when the launcher ended the process itself
    stdout: str
    stderr: str
    elapsed: float
    report: dict | None = None
    report_path: Path | None = None
    screenshot: Path | None = None
    display: str | None = None
    extra: dict = field(default_factory=dict)

    def output(self) -> str:
        return f"--- stdout ---\n{_tail(self.stdout)}\n--- stderr ---\n{_tail(self.stderr)}"


def run_in_host(
    host: Host,
    argv: Sequence[str],
    *,
    home_dir: Path,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    visible: Iterable[Path] = (),
) -> HostRun:
    """Run a command to completion in `host` with HOME=home_dir and a clean environment."""
    home_dir = Path(home_dir).resolve()
    home_dir.mkdir(parents=True, exist_ok=True)
    cmd = host_command(host, argv, _base_env(home_dir, env), [home_dir, *visible])
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        out, err = proc.communicate()
        raise HostRunError(
            f"{host.label}: {' '.join(argv)} timed out after {timeout} s\n"
            f"--- stdout ---\n{_tail(out)}\n--- stderr ---\n{_tail(err)}"
        ) from None
    return HostRun(host, proc.returncode, out, err, time.monotonic() - t0)


# --------------------------------------------------------------------------------------------------
# Krita


def _desktop_library(desktop: Path) -> str:
    for line in desktop.read_text().splitlines():
        if line.strip().startswith("X-KDE-Library="):
            return line.split("=", 1)[1].strip()
    raise ValueError(f"{desktop}: no X-KDE-Library= line")


def prepare_krita_home(home_dir: Path, pykrita_dir: Path | None = None, kritarc_extra: str = "") -> list[str]:
    """Make `home_dir` an isolated Krita HOME.

    `pykrita_dir` is a folder laid out like Krita's own pykrita folder (NAME.desktop + package NAME/,
    one or more plugins); its contents are copied to HOME/.local/share/krita/pykrita and every plugin
    in it is enabled in HOME/.config/kritarc ([python] enable_NAME=true). Returns the plugin names.
    """
    home_dir = Path(home_dir)
    dest = home_dir / ".local" / "share" / "krita" / "pykrita"
    dest.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    if pykrita_dir is not None:
        for item in Path(pykrita_dir).iterdir():
            if item.name == "__pycache__":
                continue
            if item.is_dir():
                shutil.copytree(
                    item, dest / item.name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(item, dest / item.name)
            if item.suffix == ".desktop":
                names.append(_desktop_library(item))
    config = home_dir / ".config"
    config.mkdir(parents=True, exist_ok=True)
    python_section = "".join(f"enable_{n}=true\n" for n in sorted(names))
    (config / "kritarc").write_text(f"[python]\n{python_section}\n{kritarc_extra}")
    # The software (QPainter) canvas: Krita 5.1's OpenGL canvas aborts now and then on its own
    # "m_textureTiles.size() > tile" assertion when a document is resized under Xvfb's software GL
    # (seen during the upscale scenario); what the tests check never depends on the canvas kind.
    (config / "kritadisplayrc").write_text("[General]\nOpenGLRenderer=none\n")
    return names


def run_krita(
    host: KritaHost,
    home_dir: Path,
    timeout: float = 120,
    *,
    pykrita_dir: Path | None = None,
    report_path: Path | None = None,
    screenshot: Path | None = None,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    screen: str = SCREEN,
    settle: float = 3.0,
) -> HostRun:
    """Start `xvfb-run -a krita --nosplash` in `host` with HOME=home_dir, wait for the plugin's report.

    If `pykrita_dir` is given, prepare_krita_home() installs and enables it first (else home_dir must
    already be prepared). The plugin learns where to write from the environment variable
    UNDERPAINT_TEST_REPORT (= report_path, default home_dir/"report.json"); it must write JSON
    atomically (write a temp file, then os.replace) and should then leave Krita running: once the
    report is there the launcher waits `settle` seconds (Krita 6 repaints canvas and dockers lazily),
    takes the screenshot (if `screenshot` is a path; black screen borders trimmed), then ends Krita's
    whole process tree (SIGTERM, then SIGKILL). Krita's stdout/stderr go to home_dir/krita.*.log and
    into the returned HostRun. Raises HostRunError (with Krita's stdout/stderr) when Krita exits without a
    report or `timeout` seconds pass.
    """
    home_dir = Path(home_dir).resolve()
    home_dir.mkdir(parents=True, exist_ok=True)
    if pykrita_dir is not None:
        prepare_krita_home(home_dir, pykrita_dir)
    elif not (home_dir / ".config" / "kritarc").exists():
        prepare_krita_home(home_dir)
    report_path = Path(report_path or home_dir / "report.json").resolve()
    report_path.unlink(missing_ok=True)
    run_env = {"UNDERPAINT_TEST_REPORT": str(report_path), **(env or {})}
    xauth = home_dir / ".Xauthority"  # -f: no xvfb-run temp dir left behind when the run is killed
    argv = ["xvfb-run", "-a", "-f", str(xauth), "-s", f"-screen 0 {screen} -nolisten tcp", "krita", "--nosplash", *args]
    cmd = host_command(host, argv, _base_env(home_dir, run_env), [home_dir, report_path.parent])
    out_path, err_path = home_dir / "krita.stdout.log", home_dir / "krita.stderr.log"
    t0 = time.monotonic()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    report = None
    display = None
    shot = None
    returncode: int | None = None
    problem = None
    try:
        deadline = t0 + timeout
        while True:
            if report_path.exists():
                try:
                    report = json.loads(report_path.read_text())
                    break
                except (json.JSONDecodeError, UnicodeDecodeError):
                    pass  # still being written
            if proc.poll() is not None:
                if report_path.exists():
                    continue
                returncode = proc.returncode
                problem = f"Krita exited with code {returncode} before writing {report_path}"
                break
            if time.monotonic() > deadline:
                problem = f"no report at {report_path} after {timeout} s"
                break
            time.sleep(0.25)
        display = _session_display(proc.pid)
        if report is not None and screenshot is not None:
            if proc.poll() is not None:
                problem = "Krita exited right after its report; leave it running for the screenshot"
            elif display is None:
                problem = "could not find the Xvfb display Krita runs on"
            else:
                time.sleep(settle)
                shot = take_screenshot(display, Path(screenshot), xauthority=str(xauth), trim=True)
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
        else:
            returncode = proc.returncode
    run = HostRun(
        host,
        returncode,
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
        time.monotonic() - t0,
        report=report,
        report_path=report_path,
        screenshot=shot,
        display=display,
    )
    if problem:
        raise HostRunError(f"{host.describe()}: {problem}\n{run.output()}")
    return run


def take_screenshot(
    display: str,
    out: Path,
    *,
    xauthority: str | None = None,
    window: str = "root",
    trim: bool = False,
    timeout: float = 30,
) -> Path:
    """Save a PNG of an X display (ImageMagick `import` on this machine; a root's Xvfb is reachable
    because /tmp/.X11-unix and the abstract X sockets are shared)."""
    tool = shutil.which("import")
    if tool is None:
        raise HostRunError("ImageMagick `import` is missing: run tools/hosts/provision.sh")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "DISPLAY": display}
    if xauthority:
        env["XAUTHORITY"] = xauthority
    extra = ["-trim", "+repage"] if trim else []
    res = subprocess.run(
        [tool, "-display", display, "-window", window, *extra, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if res.returncode != 0 or not out.is_file():
        raise HostRunError(f"screenshot of {display} failed: {res.stderr.strip()}")
    return out


# --------------------------------------------------------------------------------------------------
# GIMP


def prepare_gimp_config(config_dir: Path, plugin_dirs: Sequence[Path] = ()) -> Path:
    """Make `config_dir` an isolated GIMP 3 config folder (passed as GIMP3_DIRECTORY) with each
    plug-in folder (NAME/NAME.py, standard GIMP 3 layout) copied to config_dir/plug-ins/NAME; the
    entry file NAME/NAME.py is made executable. Returns config_dir."""
    config_dir = Path(config_dir)
    plug_ins = config_dir / "plug-ins"
    plug_ins.mkdir(parents=True, exist_ok=True)
    for src in plugin_dirs:
        src = Path(src)
        dst = plug_ins / src.name
        shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        entry = dst / f"{src.name}.py"
        if not entry.is_file():
            raise ValueError(f"{src}: a GIMP 3 plug-in folder needs {src.name}/{src.name}.py")
        entry.chmod(0o755)
    return config_dir


def run_gimp_batch(
    host: GimpHost,
    script_text: str,
    plugin_dirs: Sequence[Path] = (),
    timeout: float = 120,
    *,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> HostRun:
    """Run a python-fu-eval script in headless GIMP:
    `gimp-console-3.x -idf --batch-interpreter python-fu-eval -b - --quit` (script on stdin), with an
    isolated config folder (GIMP3_DIRECTORY) holding `plugin_dirs` as plug-ins and HOME next to it.

    `config_dir` defaults to a fresh temp folder under /tmp. In the script `Gimp` is already imported;
    do `gi.require_version('Gegl', '0.4'); from gi.repository import Gegl` yourself. Scripts report
    back by writing files (give them absolute paths under /tmp or the folder you passed). With
    `check`, a non-zero exit raises HostRunError with GIMP's output; a timeout always does.
    """
    if config_dir is None:
        config_dir = Path(tempfile.mkdtemp(prefix=f"underpaint-{host.label}-"))
    config_dir = Path(config_dir).resolve()
    prepare_gimp_config(config_dir / "GIMP", plugin_dirs)
    home = config_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    run_env = {"GIMP3_DIRECTORY": str(config_dir / "GIMP"), **(env or {})}
    argv = [host.exe, "-idf", "--batch-interpreter", "python-fu-eval", "-b", "-", "--quit"]
    run = run_in_host(host, argv, home_dir=home, timeout=timeout, env=run_env, stdin=script_text, visible=[config_dir])
    run.extra["config_dir"] = config_dir
    if check and run.returncode != 0:
        raise HostRunError(f"{host.describe()}: GIMP exited with {run.returncode}\n{run.output()}")
    return run
