"""The non-modal panel (GTK 3): stays open while the user keeps painting in GIMP.

The plug-in process runs the GTK main loop; the daemon is only ever waited on by the protocol
client's thread and the model's worker threads, whose callbacks come back through GLib.idle_add.
Every GIMP call (reading pixels, pasting layers) therefore happens on this main thread.

Layout: what an artist touches on every run (model, prompt, strength, batch, seed, what Generate
will do, Generate/Cancel, progress, status, preview) fits the default window without scrolling;
the connection, the rarely changed fields and Expand sit in collapsed sections. The mouse wheel
scrolls the panel: it changes a field only when that field has the keyboard focus.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, Gimp, GimpUi, GLib, GObject, Gtk  # noqa: E402

from underpaint_protocol.constants import DEFAULT_URL  # noqa: E402
from underpaint_protocol.controller import Controller, Job, Request  # noqa: E402
from underpaint_protocol.session import ImageData  # noqa: E402

from .canvas import GimpCanvas  # noqa: E402
from .model import ImageHost, ignored_fields, ignored_hint, make_controller, parse_seed  # noqa: E402
from .settings import Settings, daemon_token  # noqa: E402

PREVIEW_SIDE = 160
DEFAULT_SIZE = (360, 700)
"""The window's default width and height; everything but the collapsed sections fits in it."""


def idle_dispatch(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the GTK main thread (GLib.idle_add is safe to call from any thread)."""

    def once() -> bool:
        fn()
        return False

    GLib.idle_add(once)


def wheel_scrolls_past(widget: Gtk.Widget) -> None:
    """The wheel changes ``widget`` only while it has the keyboard focus; otherwise the event goes on
    to the scrolled window (stopping the widget's own handler, not the event's propagation)."""

    def on_scroll(item: Gtk.Widget, _event: Any) -> bool:
        if not item.has_focus():
            GObject.signal_stop_emission_by_name(item, "scroll-event")
        return False

    widget.connect("scroll-event", on_scroll)


class Panel:
    def __init__(self, image: Gimp.Image, settings: Settings, store: Callable[[Settings], None], version: str) -> None:
        self.canvas = GimpCanvas(image)
        self.settings = settings
        self.store = store
        self._models_of: int | None = None  # id() of the welcome the model list was filled from
        self._preview: ImageData | None = None
        self._started: dict[int, float] = {}  # job ticket -> when Generate was pressed
        self._ended: dict[int, float] = {}
        self._stale_error = ""  # an error shown before the connection changed: no longer true
        self._connection = ""
        self.controller = make_controller(ImageHost(self.canvas, self._show), idle_dispatch, version)
        self.window = Gtk.Window(title=f"underpaint — {_image_name(image)}")
        self.window.set_default_size(*DEFAULT_SIZE)
        self.window.set_keep_above(True)
        self.window.connect("delete-event", self._on_close)
        self.closed = False
        self._build()
        self._load_settings()
        self._connect()
        self._refresh()
        GLib.timeout_add(500, self._refresh)

    # ---------------------------------------------------------------- layout

    def _build(self) -> None:
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4, margin=8)
        self.scroller = Gtk.ScrolledWindow()
        self.scroller.set_policy(Gtk.PolicyType.NEVER, Gtk.PolicyType.AUTOMATIC)
        self.scroller.add(box)
        self.window.add(self.scroller)

        self.state = Gtk.Label(label="Not connected", xalign=0, wrap=True, selectable=True)
        box.pack_start(self.state, False, False, 0)
        self.connection = Gtk.Expander(label="Connection")
        grid = _grid()
        self.server = Gtk.Entry(hexpand=True)
        self.token = Gtk.Entry(visibility=False, placeholder_text="not needed on this machine")
        self.connect_button = Gtk.Button(label="Connect")
        self.connect_button.connect("clicked", lambda _: self._connect())
        _attach(grid, 0, "Server", self.server)
        _attach(grid, 1, "Token", self.token)
        grid.attach(self.connect_button, 1, 2, 1, 1)
        self.connection.add(grid)
        box.pack_start(self.connection, False, False, 0)

        fields = _grid()
        self.model = Gtk.ComboBoxText(hexpand=True)
        self.model.connect("changed", lambda _: self._refresh())
        wheel_scrolls_past(self.model)
        _attach(fields, 0, "Model", self.model)
        self.prompt = Gtk.TextView(wrap_mode=Gtk.WrapMode.WORD_CHAR, height_request=52, accepts_tab=False)
        prompt_frame = Gtk.Frame()
        prompt_frame.add(self.prompt)
        _attach(fields, 1, "Prompt", prompt_frame)
        self.strength = _spin(0, 100, 5, "How much to repaint: 100% paints anew, lower keeps more of the image")
        self.batch = _spin(1, 16, 1, "How many results per Generate (seed, seed+1, …)")
        strength_row = Gtk.Box(spacing=4)
        strength_row.pack_start(self.strength, True, True, 0)
        strength_row.pack_start(Gtk.Label(label="%"), False, False, 0)
        strength_row.pack_start(Gtk.Label(label="Batch", margin_start=8), False, False, 0)
        strength_row.pack_start(self.batch, True, True, 0)
        _attach(fields, 2, "Strength", strength_row)
        self.seed = Gtk.Entry(width_chars=10, max_length=10, placeholder_text="random", hexpand=True)
        self.seed.set_input_purpose(Gtk.InputPurpose.DIGITS)
        self.seed_lock = Gtk.CheckButton(label="Lock")
        self.seed_lock.set_tooltip_text("Locked: every Generate uses this seed. Unlocked: a new random one each time")
        self.seed_lock.connect("toggled", lambda _: self._seed_lock_toggled())
        seed_row = Gtk.Box(spacing=4)
        seed_row.pack_start(self.seed, True, True, 0)
        seed_row.pack_start(self.seed_lock, False, False, 0)
        _attach(fields, 3, "Seed", seed_row)
        box.pack_start(fields, False, False, 0)
        self.ignored_hint = Gtk.Label(xalign=0, wrap=True, no_show_all=True)
        box.pack_start(self.ignored_hint, False, False, 0)

        self.more = Gtk.Expander(label="Negative prompt, steps")
        more = _grid()
        self.negative = Gtk.Entry(placeholder_text="what to avoid", hexpand=True)
        _attach(more, 0, "Negative", self.negative)
        self.model_steps = Gtk.CheckButton(label="model default")
        self.model_steps.connect("toggled", lambda _: self._refresh())
        self.steps = _spin(1, 200, 1, "Denoising steps: more is slower and finer")
        steps_row = Gtk.Box(spacing=4)
        steps_row.pack_start(self.model_steps, False, False, 0)
        steps_row.pack_start(self.steps, True, True, 0)
        _attach(more, 1, "Steps", steps_row)
        self.more.add(more)
        box.pack_start(self.more, False, False, 0)

        self.expander = Gtk.Expander(label="Expand the canvas (outpaint)")
        sides = _grid()
        self.sides: dict[str, Gtk.SpinButton] = {}
        for index, side in enumerate(("left", "top", "right", "bottom")):
            spin = _spin(0, 8192, 8, f"Pixels to add on the {side}")
            self.sides[side] = spin
            sides.attach(Gtk.Label(label=side.title(), xalign=0), (index % 2) * 2, index // 2, 1, 1)
            sides.attach(spin, (index % 2) * 2 + 1, index // 2, 1, 1)
        self.expand = Gtk.Button(label="Expand")
        self.expand.connect("clicked", lambda _: self._start("outpaint"))
        sides.attach(self.expand, 0, 2, 4, 1)
        self.expander.add(sides)
        box.pack_start(self.expander, False, False, 0)

        self.mode_hint = Gtk.Label(label="", xalign=0, wrap=True)
        box.pack_start(self.mode_hint, False, False, 0)
        buttons = Gtk.Box(spacing=6)
        self.generate = Gtk.Button(label="Generate")
        self.generate.connect("clicked", lambda _: self._start(None))
        self.cancel = Gtk.Button(label="Cancel", sensitive=False)
        self.cancel.set_tooltip_text("Cancel the running job: nothing of it is pasted")
        self.cancel.connect("clicked", lambda _: self.controller.cancel())
        buttons.pack_start(self.generate, True, True, 0)
        buttons.pack_start(self.cancel, True, True, 0)
        box.pack_start(buttons, False, False, 0)

        self.progress = Gtk.ProgressBar(show_text=True)
        box.pack_start(self.progress, False, False, 0)
        self.status = Gtk.Label(label="", xalign=0, wrap=True, selectable=True)
        box.pack_start(self.status, False, False, 0)
        self.preview_image = Gtk.Image(height_request=PREVIEW_SIDE)
        box.pack_start(self.preview_image, False, False, 0)

    def _load_settings(self) -> None:
        s = self.settings
        self.server.set_text(s.server or DEFAULT_URL)
        self.token.set_text(s.token)
        self.prompt.get_buffer().set_text(s.prompt)
        self.negative.set_text(s.negative_prompt)
        self.strength.set_value(round(s.strength * 100))
        self.seed.set_text(str(s.seed) if s.seed_locked else "")
        self.seed_lock.set_active(s.seed_locked)
        self._last_seed: int | None = None
        self.batch.set_value(s.batch)
        self.model_steps.set_active(s.model_steps)
        self.steps.set_value(s.steps)
        for side, spin in self.sides.items():
            spin.set_value(getattr(s, f"expand_{side}"))
        self._seed_lock_toggled()

    def _read_settings(self) -> Settings:
        """The fields as settings; an unreadable seed keeps the last good one (Generate says why)."""
        s = self.settings
        s.server = self.server.get_text().strip() or DEFAULT_URL
        s.token = self.token.get_text().strip()
        buffer = self.prompt.get_buffer()
        s.prompt = buffer.get_text(buffer.get_start_iter(), buffer.get_end_iter(), False)
        s.negative_prompt = self.negative.get_text()
        s.strength = float(self.strength.get_value()) / 100
        s.seed_locked = self.seed_lock.get_active()
        seed = parse_seed(self.seed.get_text())
        if isinstance(seed, int):
            s.seed = seed
        s.batch = int(self.batch.get_value())
        s.model_steps = self.model_steps.get_active()
        s.steps = int(self.steps.get_value())
        s.model = self.model.get_active_id() or s.model
        for side, spin in self.sides.items():
            setattr(s, f"expand_{side}", int(spin.get_value()))
        return s

    # ---------------------------------------------------------------- actions

    def _connect(self) -> None:
        s = self._read_settings()
        self.controller.connect(s.server, s.token or daemon_token(), retry=True)

    def _seed_lock_toggled(self) -> None:
        locked = self.seed_lock.get_active()
        self.seed.set_sensitive(locked)
        if locked and not self.seed.get_text().strip() and self._last_seed is not None:
            self.seed.set_text(str(self._last_seed))
        tip = "This seed is used for every Generate" if locked else "Random for every Generate"
        if self._last_seed is not None:
            tip += f"; the last job used {self._last_seed} (tick Lock to keep it)"
        self.seed.set_tooltip_text(tip)

    def _start(self, mode: str | None) -> None:
        seed: int | None = None
        if self.seed_lock.get_active():
            parsed = parse_seed(self.seed.get_text())
            if isinstance(parsed, str):
                self.status.set_text(f"{parsed} Untick Lock for a random seed.")
                return
            seed = parsed
        s = self._read_settings()
        self._save()
        extend = None
        if mode == "outpaint":
            extend = (s.expand_left, s.expand_top, s.expand_right, s.expand_bottom)
        request = Request(
            prompt=s.prompt,
            negative_prompt=s.negative_prompt,
            strength=s.strength,
            seed=seed,
            batch=s.batch,
            model=self.model.get_active_id() or None,
            mode=mode,
            extend=extend,
            steps=None if s.model_steps else s.steps,
        )
        job = self.controller.generate(request)
        if job is not None:
            self._started[job.ticket] = time.monotonic()
            self.preview_image.clear()

    def _refresh(self) -> bool:
        """Periodic and on change: what Generate would do, which fields count, the elapsed time."""
        if self.closed:
            return False
        self.generate.set_sensitive(self.canvas.is_open())
        self.mode_hint.set_text(self.controller.mode_hint(float(self.strength.get_value()) / 100))
        model_id = self.model.get_active_id() or self.controller.default_model
        info = next((m for m in self.controller.models if m.get("id") == model_id), None)
        ignored = ignored_fields(info)
        for name, widgets in (
            ("prompt", (self.prompt,)),
            ("negative_prompt", (self.negative,)),
            ("strength", (self.strength,)),
            ("steps", (self.model_steps,)),
        ):
            for widget in widgets:
                widget.set_sensitive(name not in ignored)
        self.steps.set_sensitive("steps" not in ignored and not self.model_steps.get_active())
        self.ignored_hint.set_text(ignored_hint(str(model_id), ignored))
        self.ignored_hint.set_visible(bool(ignored))
        self._show_job(self.controller.jobs[-1] if self.controller.jobs else None)
        return True

    def _save(self) -> None:
        self.store(self._read_settings())

    def _on_close(self, *_: Any) -> bool:
        self.closed = True
        self._save()
        self.controller.cancel()
        self.controller.close()
        Gtk.main_quit()
        return False

    # ---------------------------------------------------------------- controller -> widgets (main thread)

    def _show(self, controller: Controller) -> None:
        if self.closed:
            return
        if controller.connection != self._connection:
            self._connection = controller.connection
            self._stale_error = controller.error  # said before the connection changed: no longer news
            self.connection.set_expanded(controller.connection in ("refused", "disconnected"))
        self.state.set_text(controller.status)
        if controller.connected and self._models_of != id(controller.welcome):
            self._models_of = id(controller.welcome)
            self._fill_models()
        job = controller.jobs[-1] if controller.jobs else None
        if job is not None and job.seed is not None and job.job_id is not None and job.seed != self._last_seed:
            self._last_seed = job.seed
            if not self.seed_lock.get_active():
                self.seed.set_text(str(job.seed))
            self._seed_lock_toggled()
        self._show_job(job)
        self.cancel.set_sensitive(controller.busy)
        if controller.preview is not None and controller.preview is not self._preview:
            self._show_preview(controller.preview)
        self._preview = controller.preview

    def _show_job(self, job: Job | None) -> None:
        """Progress bar and status line: the job's step, image k of n and elapsed time, or the error."""
        error = self.controller.error
        if error and error != self._stale_error:
            self.status.set_text(error)
        elif job is None:
            self.status.set_text("")
        if job is None:
            self.progress.set_text("idle")
            return
        if job.done and job.ticket not in self._ended:
            self._ended[job.ticket] = time.monotonic()
        started = self._started.get(job.ticket)
        elapsed = ""
        if started is not None:
            seconds = self._ended.get(job.ticket, time.monotonic()) - started
            elapsed = f" · {seconds:.0f} s" if seconds >= 1 else ""
        self.progress.set_fraction(job.fraction)
        self.progress.set_text(f"{job.describe()}{elapsed}")
        if not (error and error != self._stale_error):
            seed = f"seed {job.seed}" if job.seed is not None else "seed: random"
            self.status.set_text(f"{seed}, {job.batch} image{'s' if job.batch != 1 else ''}")

    def _fill_models(self) -> None:
        models = self.controller.models
        wanted = self.model.get_active_id() or self.settings.model or self.controller.default_model
        self.model.remove_all()
        for model in models:
            self.model.append(str(model["id"]), str(model["id"]))
        ids = [str(model["id"]) for model in models]
        if wanted in ids:
            self.model.set_active_id(wanted)
        elif ids:
            self.model.set_active(0)
        active = next((m for m in models if m.get("id") == self.model.get_active_id()), None)
        self.model.set_tooltip_text(str(active.get("description", "")) if active else "")

    def _show_preview(self, image: ImageData) -> None:
        if image.format != "rgba8" or image.width <= 0 or image.height <= 0:
            return
        pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(
            GLib.Bytes.new(bytes(image.data)),
            GdkPixbuf.Colorspace.RGB,
            True,
            8,
            image.width,
            image.height,
            image.width * 4,
        )
        scale = min(PREVIEW_SIDE / image.width, PREVIEW_SIDE / image.height)
        width, height = max(1, int(image.width * scale)), max(1, int(image.height * scale))
        self.preview_image.set_from_pixbuf(pixbuf.scale_simple(width, height, GdkPixbuf.InterpType.BILINEAR))


def _grid() -> Gtk.Grid:
    return Gtk.Grid(column_spacing=6, row_spacing=4, margin_top=2)


def _attach(grid: Gtk.Grid, row: int, label: str, widget: Gtk.Widget) -> None:
    grid.attach(Gtk.Label(label=label, xalign=0, yalign=0.5), 0, row, 1, 1)
    grid.attach(widget, 1, row, 1, 1)


def _spin(low: int, high: int, step: int, tip: str) -> Gtk.SpinButton:
    spin = Gtk.SpinButton.new_with_range(low, high, step)
    spin.set_width_chars(len(str(high)))
    spin.set_tooltip_text(tip)
    wheel_scrolls_past(spin)
    return spin


def _image_name(image: Gimp.Image) -> str:
    try:
        return str(image.get_name())
    except Exception:
        return "image"


def run_panel_window(
    image: Gimp.Image, load: Callable[[], Settings], store: Callable[[Settings], None], version: str
) -> None:
    GimpUi.init("underpaint")
    panel = Panel(image, load(), store, version)
    panel.window.show_all()
    Gtk.main()
