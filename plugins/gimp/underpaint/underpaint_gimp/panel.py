"""The non-modal panel (GTK 3): stays open while the user keeps painting in GIMP.

The plug-in process runs the GTK main loop; the daemon is only ever waited on by the protocol
client's thread and the model's worker threads, whose callbacks come back through GLib.idle_add.
Every GIMP call (reading pixels, pasting layers) therefore happens on this main thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, Gimp, GimpUi, GLib, Gtk  # noqa: E402

from underpaint_protocol.constants import DEFAULT_URL  # noqa: E402
from underpaint_protocol.controller import Controller, Request  # noqa: E402
from underpaint_protocol.session import ImageData  # noqa: E402

from .canvas import GimpCanvas  # noqa: E402
from .model import ImageHost, make_controller  # noqa: E402
from .settings import Settings, daemon_token  # noqa: E402

PREVIEW_SIDE = 192


def idle_dispatch(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the GTK main thread (GLib.idle_add is safe to call from any thread)."""

    def once() -> bool:
        fn()
        return False

    GLib.idle_add(once)


class Panel:
    def __init__(self, image: Gimp.Image, settings: Settings, store: Callable[[Settings], None], version: str) -> None:
        self.canvas = GimpCanvas(image)
        self.settings = settings
        self.store = store
        self._models_of: int | None = None  # id() of the welcome the model list was filled from
        self._preview: ImageData | None = None
        self.controller = make_controller(ImageHost(self.canvas, self._show), idle_dispatch, version)
        self.window = Gtk.Window(title=f"underpaint — {_image_name(image)}")
        self.window.set_default_size(360, 640)
        self.window.set_keep_above(True)
        self.window.connect("delete-event", self._on_close)
        self.closed = False
        self._build()
        self._load_settings()
        self._connect()
        self._refresh_mode()
        GLib.timeout_add(1500, self._refresh_mode)

    # ---------------------------------------------------------------- layout

    def _build(self) -> None:
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6, margin=10)
        scroller = Gtk.ScrolledWindow()
        scroller.set_policy(Gtk.PolicyType.NEVER, Gtk.PolicyType.AUTOMATIC)
        scroller.add(box)
        self.window.add(scroller)

        grid = Gtk.Grid(column_spacing=6, row_spacing=4)
        self.server = Gtk.Entry(hexpand=True)
        self.token = Gtk.Entry(visibility=False, placeholder_text="not needed on this machine")
        connect = Gtk.Button(label="Connect")
        connect.connect("clicked", lambda _: self._connect())
        grid.attach(Gtk.Label(label="Server", xalign=0), 0, 0, 1, 1)
        grid.attach(self.server, 1, 0, 1, 1)
        grid.attach(Gtk.Label(label="Token", xalign=0), 0, 1, 1, 1)
        grid.attach(self.token, 1, 1, 1, 1)
        grid.attach(connect, 1, 2, 1, 1)
        box.pack_start(grid, False, False, 0)
        self.state = Gtk.Label(label="Not connected", xalign=0, wrap=True, selectable=True)
        box.pack_start(self.state, False, False, 0)

        box.pack_start(Gtk.Separator(), False, False, 4)
        self.model = Gtk.ComboBoxText()
        box.pack_start(_row("Model", self.model), False, False, 0)
        box.pack_start(Gtk.Label(label="Prompt", xalign=0), False, False, 0)
        self.prompt = Gtk.TextView(wrap_mode=Gtk.WrapMode.WORD_CHAR, height_request=70)
        frame = Gtk.Frame()
        frame.add(self.prompt)
        box.pack_start(frame, False, False, 0)
        self.negative = Gtk.Entry(placeholder_text="negative prompt")
        box.pack_start(self.negative, False, False, 0)
        self.strength = Gtk.SpinButton.new_with_range(0.0, 1.0, 0.05)
        self.strength.set_digits(2)
        box.pack_start(_row("Strength", self.strength), False, False, 0)
        self.seed = Gtk.SpinButton.new_with_range(-1, 2**31 - 1, 1)
        self.seed.set_tooltip_text("-1: a new random seed every time")
        box.pack_start(_row("Seed", self.seed), False, False, 0)
        self.batch = Gtk.SpinButton.new_with_range(1, 16, 1)
        box.pack_start(_row("Batch", self.batch), False, False, 0)
        self.steps = Gtk.SpinButton.new_with_range(0, 500, 1)
        self.steps.set_tooltip_text("0: the model's default")
        box.pack_start(_row("Steps", self.steps), False, False, 0)

        self.mode_hint = Gtk.Label(label="", xalign=0, wrap=True)
        box.pack_start(self.mode_hint, False, False, 0)
        buttons = Gtk.Box(spacing=6)
        self.generate = Gtk.Button(label="Generate")
        self.generate.connect("clicked", lambda _: self._start(None))
        self.cancel = Gtk.Button(label="Cancel", sensitive=False)
        self.cancel.connect("clicked", lambda _: self.controller.cancel())
        buttons.pack_start(self.generate, True, True, 0)
        buttons.pack_start(self.cancel, True, True, 0)
        box.pack_start(buttons, False, False, 0)

        expander = Gtk.Expander(label="Expand (outpaint)")
        sides = Gtk.Grid(column_spacing=6, row_spacing=4, margin_top=4)
        self.sides: dict[str, Gtk.SpinButton] = {}
        for index, side in enumerate(("left", "top", "right", "bottom")):
            spin = Gtk.SpinButton.new_with_range(0, 8192, 8)
            self.sides[side] = spin
            sides.attach(Gtk.Label(label=side.title(), xalign=0), (index % 2) * 2, index // 2, 1, 1)
            sides.attach(spin, (index % 2) * 2 + 1, index // 2, 1, 1)
        self.expand = Gtk.Button(label="Expand")
        self.expand.connect("clicked", lambda _: self._start("outpaint"))
        sides.attach(self.expand, 0, 2, 4, 1)
        expander.add(sides)
        box.pack_start(expander, False, False, 0)

        box.pack_start(Gtk.Separator(), False, False, 4)
        self.progress = Gtk.ProgressBar(show_text=True)
        box.pack_start(self.progress, False, False, 0)
        self.status = Gtk.Label(label="", xalign=0, wrap=True, selectable=True)
        box.pack_start(self.status, False, False, 0)
        self.preview_image = Gtk.Image()
        box.pack_start(self.preview_image, False, False, 0)

    def _load_settings(self) -> None:
        s = self.settings
        self.server.set_text(s.server or DEFAULT_URL)
        self.token.set_text(s.token)
        self.prompt.get_buffer().set_text(s.prompt)
        self.negative.set_text(s.negative_prompt)
        self.strength.set_value(s.strength)
        self.seed.set_value(s.seed)
        self.batch.set_value(s.batch)
        self.steps.set_value(s.steps)
        for side, spin in self.sides.items():
            spin.set_value(getattr(s, f"expand_{side}"))

    def _read_settings(self) -> Settings:
        s = self.settings
        s.server = self.server.get_text().strip() or DEFAULT_URL
        s.token = self.token.get_text().strip()
        buffer = self.prompt.get_buffer()
        s.prompt = buffer.get_text(buffer.get_start_iter(), buffer.get_end_iter(), False)
        s.negative_prompt = self.negative.get_text()
        s.strength = float(self.strength.get_value())
        s.seed = int(self.seed.get_value())
        s.batch = int(self.batch.get_value())
        s.steps = int(self.steps.get_value())
        s.model = self.model.get_active_id() or s.model
        for side, spin in self.sides.items():
            setattr(s, f"expand_{side}", int(spin.get_value()))
        return s

    # ---------------------------------------------------------------- actions

    def _connect(self) -> None:
        s = self._read_settings()
        self.controller.connect(s.server, s.token or daemon_token(), retry=True)

    def _start(self, mode: str | None) -> None:
        s = self._read_settings()
        self._save()
        extend = None
        if mode == "outpaint":
            extend = (s.expand_left, s.expand_top, s.expand_right, s.expand_bottom)
        request = Request(
            prompt=s.prompt,
            negative_prompt=s.negative_prompt,
            strength=s.strength,
            seed=None if s.seed < 0 else s.seed,
            batch=s.batch,
            model=self.model.get_active_id() or None,
            mode=mode,
            extend=extend,
            steps=s.steps or None,
        )
        if self.controller.generate(request) is not None:
            self.preview_image.clear()

    def _refresh_mode(self) -> bool:
        if self.closed:
            return False
        self.generate.set_sensitive(self.canvas.is_open())
        self.mode_hint.set_text(self.controller.mode_hint(float(self.strength.get_value())))
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
        self.state.set_text(controller.status)
        if controller.connected and self._models_of != id(controller.welcome):
            self._models_of = id(controller.welcome)
            self._fill_models()
        job = controller.jobs[-1] if controller.jobs else None
        if job is not None:
            self.progress.set_fraction(job.fraction)
            self.progress.set_text(job.describe())
        self.status.set_text(controller.error)
        self.cancel.set_sensitive(controller.busy)
        if controller.preview is not None and controller.preview is not self._preview:
            self._show_preview(controller.preview)
        self._preview = controller.preview

    def _fill_models(self) -> None:
        models = self.controller.models
        wanted = self.model.get_active_id() or self.settings.model or self.controller.default_model
        self.model.remove_all()
        for model in models:
            modes = ", ".join(model.get("modes", []))
            self.model.append(str(model["id"]), f"{model['id']} ({modes})")
        ids = [str(model["id"]) for model in models]
        if wanted in ids:
            self.model.set_active_id(wanted)
        elif ids:
            self.model.set_active(0)

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


def _row(label: str, widget: Gtk.Widget) -> Gtk.Box:
    row = Gtk.Box(spacing=6)
    row.pack_start(Gtk.Label(label=label, xalign=0, width_chars=9), False, False, 0)
    row.pack_start(widget, True, True, 0)
    return row


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
