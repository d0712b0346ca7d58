"""The non-modal panel (GTK 3): stays open while the user keeps painting in GIMP.

The plug-in process runs the GTK main loop; the daemon is only ever waited on by the protocol
client's thread and the model's worker threads, whose callbacks come back through GLib.idle_add.
Every GIMP call (reading pixels, pasting layers) therefore happens on this main thread.

Layout: what an artist touches on every run (model, prompt, strength, batch, seed, what Generate
will do, Generate/Cancel, progress, status, preview) fits the default window without scrolling;
the connection, the rarely changed fields, Expand and the history sit in collapsed sections. The
mouse wheel scrolls the panel: it changes a field only when that field has the keyboard focus.
Every rule (what Generate will do, which fields a model ignores, seeds, progress wording, preview
then apply, history) is the shared controller's (``underpaint_protocol.controller`` / ``.panel``).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, Gimp, GimpUi, Gio, GLib, GObject, Gtk  # noqa: E402

from underpaint_protocol.constants import DEFAULT_URL  # noqa: E402
from underpaint_protocol.controller import Controller, HistoryItem, Request  # noqa: E402
from underpaint_protocol.panel import (  # noqa: E402
    SEED_MAX,
    ignored_summary,
    model_label,
    parse_seed,
    strength_fraction,
    strength_percent,
)
from underpaint_protocol.session import ImageData  # noqa: E402

from .canvas import GimpCanvas  # noqa: E402
from .guides_ui import GuidesSection  # noqa: E402
from .live_ui import LiveSection  # noqa: E402
from .model import ImageHost, make_controller  # noqa: E402
from .prompt_ui import PromptSection  # noqa: E402
from .segment_ui import SegmentSection  # noqa: E402
from .settings import Settings, daemon_token  # noqa: E402
from .upscale_ui import UpscaleSection  # noqa: E402

PREVIEW_SIDE = 160
THUMBNAIL_SIDE = 48
HISTORY_THUMBNAILS = 8
"""How many of the newest history rows fetch their results (thumbnails) by themselves."""
DEFAULT_SIZE = (380, 700)
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


def open_folder(folder: str) -> None:
    """The file manager on ``folder`` (the daemon's outputs), as the desktop opens any folder."""
    Gio.AppInfo.launch_default_for_uri(pathlib.Path(folder).as_uri(), None)


class Panel:
    def __init__(self, image: Gimp.Image, settings: Settings, store: Callable[[Settings], None], version: str) -> None:
        self.canvas = GimpCanvas(image)
        self.settings = settings
        self.store = store
        self._models_of: int | None = None  # id() of the welcome the model list was filled from
        self._preview: ImageData | None = None
        self._history_shown: list[tuple[str, int, str]] = []
        self._settled = 0  # how many of the controller's jobs had settled at the last redraw
        self._connection = ""
        self._fetched: set[str] = set()  # history rows whose results were asked for (once each)
        self.controller = make_controller(
            ImageHost(self.canvas, self._show),
            idle_dispatch,
            version,
            land_directly=settings.land_directly,
            client_id=settings.client_id or None,
        )
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

        self.more = Gtk.Expander(label="More: negative prompt, steps, preview")
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
        self.land_directly = Gtk.CheckButton(label="Results land directly (no preview layer)")
        self.land_directly.connect("toggled", lambda _: self._land_directly_toggled())
        more.attach(self.land_directly, 0, 2, 2, 1)
        self.more.add(more)
        box.pack_start(self.more, False, False, 0)
        self.prompt_library = PromptSection(self, wheel_scrolls_past, lambda: self._show(self.controller))
        box.pack_start(self.prompt_library.expander, False, False, 0)

        self.expander = Gtk.Expander(label="Expand the canvas (outpaint)")
        sides = _grid()
        self.sides: dict[str, Gtk.SpinButton] = {}
        for index, side in enumerate(("left", "top", "right", "bottom")):
            spin = _spin(0, 8192, 8, f"Pixels to add on the {side}")
            self.sides[side] = spin
            sides.attach(Gtk.Label(label=side.title(), xalign=0), (index % 2) * 2, index // 2, 1, 1)
            sides.attach(spin, (index % 2) * 2 + 1, index // 2, 1, 1)
        self.expand = Gtk.Button(label="Expand")
        self.expand.connect("clicked", lambda _: self._start(expand=True))
        sides.attach(self.expand, 0, 2, 4, 1)
        self.expander.add(sides)
        box.pack_start(self.expander, False, False, 0)
        self.segment = SegmentSection(self)
        box.pack_start(self.segment.expander, False, False, 0)
        self.guides = GuidesSection(self, wheel_scrolls_past)
        box.pack_start(self.guides.expander, False, False, 0)
        self.upscale = UpscaleSection(self.controller, self.controller.generate, wheel_scrolls_past)
        box.pack_start(self.upscale.expander, False, False, 0)
        self.live = LiveSection(self.controller, lambda: self.request(expand=False))
        box.pack_start(self.live.expander, False, False, 0)

        self.mode_hint = Gtk.Label(label="", xalign=0, wrap=True)
        box.pack_start(self.mode_hint, False, False, 0)
        buttons = Gtk.Box(spacing=6)
        self.generate = Gtk.Button(label="Generate")
        self.generate.connect("clicked", lambda _: self._start(expand=False))
        self.cancel = Gtk.Button(label="Cancel", sensitive=False)
        self.cancel.set_tooltip_text("Cancel the running job: nothing of it is pasted")
        self.cancel.connect("clicked", lambda _: self.controller.cancel_current())
        buttons.pack_start(self.generate, True, True, 0)
        buttons.pack_start(self.cancel, True, True, 0)
        box.pack_start(buttons, False, False, 0)

        self.progress = Gtk.ProgressBar(show_text=True)
        box.pack_start(self.progress, False, False, 0)
        self.status = Gtk.Label(label="", xalign=0, wrap=True, selectable=True)
        box.pack_start(self.status, False, False, 0)

        self.staged_row = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4, no_show_all=True)
        self.previous_result = Gtk.Button(label="◀")
        self.previous_result.set_tooltip_text("The batch's previous result in the preview layer")
        self.previous_result.connect("clicked", lambda _: self.controller.preview_step(-1))
        self.staged_label = Gtk.Label(label="")
        self.next_result = Gtk.Button(label="▶")
        self.next_result.set_tooltip_text("The batch's next result in the preview layer")
        self.next_result.connect("clicked", lambda _: self.controller.preview_step(1))
        self.apply = Gtk.Button(label="Apply")
        self.apply.set_tooltip_text("Keep the previewed result as a layer (one undo step)")
        self.apply.connect("clicked", lambda _: self.controller.apply())
        self.apply_all = Gtk.Button(label="Apply all")
        self.apply_all.set_tooltip_text("Keep every result of the batch as layers in one group (one undo step)")
        self.apply_all.connect("clicked", lambda _: self.controller.apply_all())
        self.discard = Gtk.Button(label="Discard")
        self.discard.set_tooltip_text("Remove the preview layer; the results stay in the history")
        self.discard.connect("clicked", lambda _: self.controller.discard())
        # the stepper, then the buttons on their own row: in one row they would widen the panel
        stepper = Gtk.Box(spacing=4)
        for widget in (self.previous_result, self.staged_label, self.next_result):
            stepper.pack_start(widget, False, False, 0)
        buttons = Gtk.Box(spacing=4, homogeneous=True)
        for widget in (self.apply, self.apply_all, self.discard):
            buttons.pack_start(widget, True, True, 0)
        for row in (stepper, buttons):
            row.show_all()  # visible inside the row; the row itself shows only while a result is staged
            self.staged_row.pack_start(row, False, False, 0)
        box.pack_start(self.staged_row, False, False, 0)

        self.preview_image = Gtk.Image(height_request=PREVIEW_SIDE)
        box.pack_start(self.preview_image, False, False, 0)

        self.history_expander = Gtk.Expander(label="History")
        self.history_expander.connect("notify::expanded", lambda *_: self._history_opened())
        history = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
        history_buttons = Gtk.Box(spacing=4)
        refresh = Gtk.Button(label="Refresh")
        refresh.connect("clicked", lambda _: self.controller.refresh_history())
        self.outputs = Gtk.Button(label="Open outputs folder")
        self.outputs.connect("clicked", lambda _: self._open_outputs())
        history_buttons.pack_start(refresh, False, False, 0)
        history_buttons.pack_start(self.outputs, False, False, 0)
        history.pack_start(history_buttons, False, False, 0)
        self.history = Gtk.ListBox(selection_mode=Gtk.SelectionMode.NONE)
        history.pack_start(self.history, False, False, 0)
        self.history_expander.add(history)
        box.pack_start(self.history_expander, False, False, 0)

    def _load_settings(self) -> None:
        s = self.settings
        self.server.set_text(s.server or DEFAULT_URL)
        self.token.set_text(s.token)
        self.prompt.get_buffer().set_text(s.prompt)
        self.negative.set_text(s.negative_prompt)
        self.strength.set_value(strength_percent(s.strength))
        self.seed.set_text(str(s.seed) if s.seed_locked else "")
        self.seed_lock.set_active(s.seed_locked)
        self.batch.set_value(s.batch)
        self.model_steps.set_active(s.model_steps)
        self.steps.set_value(s.steps)
        self.land_directly.set_active(s.land_directly)
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
        s.strength = strength_fraction(self.strength.get_value())
        s.seed_locked = self.seed_lock.get_active()
        try:
            seed = parse_seed(self.seed.get_text())
        except ValueError:
            seed = None
        if seed is not None:
            s.seed = seed
        s.batch = int(self.batch.get_value())
        s.model_steps = self.model_steps.get_active()
        s.steps = int(self.steps.get_value())
        s.model = self.model.get_active_id() or s.model
        s.land_directly = self.land_directly.get_active()
        s.client_id = self.controller.client_id or s.client_id
        for side, spin in self.sides.items():
            setattr(s, f"expand_{side}", int(spin.get_value()))
        return s

    def request(self, expand: bool) -> Request:
        """What the fields ask for (the seed field as typed: ``_start`` checks it)."""
        buffer = self.prompt.get_buffer()
        seed = None
        if self.seed_lock.get_active():
            try:
                seed = parse_seed(self.seed.get_text())
            except ValueError:
                seed = None
        sides = tuple(int(self.sides[side].get_value()) for side in ("left", "top", "right", "bottom"))
        controls, references = self.guides.fields.guides()
        return Request(
            prompt=buffer.get_text(buffer.get_start_iter(), buffer.get_end_iter(), False),
            negative_prompt=self.negative.get_text(),
            strength=strength_fraction(self.strength.get_value()),
            seed=seed,
            batch=int(self.batch.get_value()),
            model=self.model.get_active_id() or None,
            mode="outpaint" if expand else None,
            extend=(sides[0], sides[1], sides[2], sides[3]) if expand else None,
            steps=None if self.model_steps.get_active() else int(self.steps.get_value()),
            style=self.prompt_library.prompts.style or None,
            controls=controls,
            references=references,
        )

    # ---------------------------------------------------------------- actions

    def _connect(self) -> None:
        s = self._read_settings()
        self.controller.connect(s.server, s.token or daemon_token(), retry=True)

    def _seed_lock_toggled(self) -> None:
        locked = self.seed_lock.get_active()
        last = self.controller.last_seed
        if locked and not self.seed.get_text().strip() and last is not None:
            self.seed.set_text(str(last))
        self.seed.set_sensitive(locked and "seed" not in self._ignored())
        tip = "This seed is used for every Generate" if locked else "Random for every Generate"
        if last is not None:
            tip += f"; the last job used {last} (tick Lock to keep it)"
        self.seed.set_tooltip_text(f"{tip}. Any whole number 0..{SEED_MAX}.")

    def _land_directly_toggled(self) -> None:
        self.controller.land_directly = self.land_directly.get_active()
        self._save()

    def _start(self, expand: bool) -> None:
        if self.seed_lock.get_active():
            try:
                parse_seed(self.seed.get_text())
            except ValueError as error:
                self._say(f"{error} Untick Lock for a random seed.")
                return
        self._save()
        if self.controller.generate(self.request(expand)) is not None:
            self.preview_image.clear()

    def _say(self, text: str) -> None:
        """A problem found by the panel itself, shown like the controller's (cleared by the next job)."""
        self.controller.error = text
        self._show(self.controller)

    def _ignored(self) -> dict[str, str]:
        return self.controller.ignored(self.model.get_active_id() or None)

    def _refresh(self) -> bool:
        """Periodic and on change: what Generate would do, which fields count, the elapsed time."""
        if self.closed:
            return False
        self.guides.refresh()
        plan = self.controller.plan(self.request(expand=False))
        self.mode_hint.set_text(plan.sentence)
        self.generate.set_sensitive(self.canvas.is_open() and plan.refusal is None)
        self.generate.set_tooltip_text(plan.refusal)
        ignored = self._ignored()
        for name, widgets in (
            ("prompt", (self.prompt,)),
            ("negative_prompt", (self.negative,)),
            ("strength", (self.strength,)),
            ("steps", (self.model_steps,)),
            ("seed", (self.seed_lock,)),
        ):
            for widget in widgets:
                widget.set_sensitive(name not in ignored)
                widget.set_tooltip_text(ignored.get(name))
        self.steps.set_sensitive("steps" not in ignored and not self.model_steps.get_active())
        self._seed_lock_toggled()
        hint = ignored_summary(self.controller.model_info(self.model.get_active_id() or None))
        self.ignored_hint.set_text(hint)
        self.ignored_hint.set_visible(bool(hint))
        self._show_progress(self.controller)
        return True

    def _save(self) -> None:
        self.store(self._read_settings())

    def _open_outputs(self) -> None:
        folder = self.controller.outputs_folder
        if folder:
            try:
                open_folder(folder)
            except GLib.Error as error:
                self._say(f"Could not open {folder}: {error.message}")

    def _history_opened(self) -> None:
        if self.history_expander.get_expanded():
            self.controller.refresh_history()

    def _on_close(self, *_: Any) -> bool:
        self.closed = True
        self._save()
        self.controller.cancel()
        self.controller.discard()
        self.controller.close()
        Gtk.main_quit()
        return False

    # ---------------------------------------------------------------- controller -> widgets (main thread)

    def _show(self, controller: Controller) -> None:
        if self.closed:
            return
        self.state.set_text(controller.status)
        if controller.connection != self._connection:  # open the section when it needs the user
            self._connection = controller.connection
            self.connection.set_expanded(controller.connection in ("refused", "disconnected"))
        if controller.connected and self._models_of != id(controller.welcome):
            self._models_of = id(controller.welcome)
            self._fill_models()
            self.segment.fill_models(controller.segment_models)
            if controller.client_id and controller.client_id != self.settings.client_id:
                self._save()  # the same identity, so the same history, after a restart
            controller.refresh_history()
        settled = sum(1 for job in controller.jobs if job.settled)
        if settled != self._settled:
            self._settled = settled
            controller.refresh_history()
        job = controller.current
        if job is not None and job.seed is not None and job.job_id is not None and not self.seed_lock.get_active():
            self.seed.set_text(str(job.seed))
        self._show_progress(controller)
        self.upscale.show(controller)
        self.prompt_library.show()
        self.live.show(controller)
        self.cancel.set_sensitive(controller.busy)
        self._show_staged(controller)
        if controller.preview is not None and controller.preview is not self._preview:
            self._show_preview(controller.preview)
        self._preview = controller.preview
        self._show_history(controller)
        self.outputs.set_sensitive(bool(controller.outputs_folder))

    def _show_progress(self, controller: Controller) -> None:
        """Progress bar: the step, image k of n and elapsed time; status line: the error, else the seed."""
        job = controller.current
        self.progress.set_fraction(controller.progress_fraction)
        self.progress.set_text(controller.progress_text() or "idle")
        if controller.error:
            self.status.set_text(controller.error)
        elif job is not None:
            seed = f"seed {job.seed}" if job.seed is not None else "seed: random"
            self.status.set_text(f"{job.mode}, {seed}, {job.batch} image{'s' if job.batch != 1 else ''}")
        else:
            self.status.set_text("")

    def _show_staged(self, controller: Controller) -> None:
        staged = controller.staged
        self.staged_row.set_visible(staged is not None)
        if staged is None:
            return
        self.staged_row.show_all()
        count = len(staged.job.results)
        self.staged_label.set_text(f"Result {staged.index + 1} of {count}")
        self.previous_result.set_sensitive(count > 1)
        self.next_result.set_sensitive(count > 1)
        self.apply_all.set_sensitive(count > 1)
        if staged.job.results:
            self._show_preview(staged.job.results[staged.index].image)

    def _show_history(self, controller: Controller) -> None:
        for item in controller.history[:HISTORY_THUMBNAILS]:
            if item.job_id not in self._fetched:
                self._fetched.add(item.job_id)
                controller.fetch_history(item)
        shown = [(item.job_id, len(item.thumbnails), item.label()) for item in controller.history]  # progress too
        if shown == self._history_shown:
            return
        self._history_shown = shown
        for row in self.history.get_children():
            self.history.remove(row)
        for item in controller.history:
            self.history.add(self._history_row(item))
        self.history.show_all()

    def _history_row(self, item: HistoryItem) -> Gtk.Widget:
        row = Gtk.Box(spacing=6, margin=2)
        picture = Gtk.Image(width_request=THUMBNAIL_SIDE, height_request=THUMBNAIL_SIDE)
        if item.thumbnails:
            pixbuf = _pixbuf(item.thumbnails[0], THUMBNAIL_SIDE)
            if pixbuf is not None:
                picture.set_from_pixbuf(pixbuf)
        row.pack_start(picture, False, False, 0)
        label = Gtk.Label(label=item.label(), xalign=0, wrap=True, max_width_chars=24)
        label.set_tooltip_text(str(item.summary.get("prompt") or ""))
        row.pack_start(label, True, True, 0)
        actions = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=2)
        again = Gtk.Button(label="Re-apply")
        again.set_tooltip_text("Paste this result into the image again (one undo step)")
        again.connect("clicked", lambda _: self.controller.reapply(item))
        reuse = Gtk.Button(label="Reuse")
        reuse.set_tooltip_text("Copy its prompt, model, strength, steps and seed (locked) into the panel")
        reuse.connect("clicked", lambda _: self.reuse(item))
        for button in (again, reuse):
            button.set_sensitive(bool(item.results))
            actions.pack_start(button, False, False, 0)
        row.pack_start(actions, False, False, 0)
        return row

    def reuse(self, item: HistoryItem, index: int = 0) -> None:
        """A history result's parameters into the fields, its seed locked."""
        if index < len(item.results):
            self.fill(self.controller.reuse(item.results[index]))

    def fill(self, request: Request) -> None:
        """The fields from ``request`` (a history result, a recent prompt, a PNG's parameters): a seed
        it carries is locked, its style chosen."""
        self.set_prompt(request.prompt)
        self.negative.set_text(request.negative_prompt)
        if request.strength is not None:
            self.strength.set_value(strength_percent(request.strength))
        self.model_steps.set_active(request.steps is None)
        if request.steps is not None:
            self.steps.set_value(request.steps)
        if request.seed is not None:
            self.seed.set_text(str(request.seed))
            self.seed_lock.set_active(True)
        if request.model:
            self.model.set_active_id(request.model)
        if request.extend is not None:
            for side, value in zip(("left", "top", "right", "bottom"), request.extend, strict=True):
                self.sides[side].set_value(value)
        if request.style != (self.prompt_library.prompts.style or None):
            self.prompt_library.prompts.set_style(request.style or "")
        self._refresh()

    def set_prompt(self, text: str) -> None:
        self.prompt.get_buffer().set_text(text)

    def _fill_models(self) -> None:
        models = self.controller.models
        wanted = self.model.get_active_id() or self.settings.model or self.controller.default_model
        self.model.remove_all()
        for model in models:
            self.model.append(str(model["id"]), model_label(model))
        ids = [str(model["id"]) for model in models]
        if wanted in ids:
            self.model.set_active_id(wanted)
        elif ids:
            self.model.set_active(0)
        active = self.controller.model_info(self.model.get_active_id())
        self.model.set_tooltip_text(str(active.get("description", "")) if active else "")

    def _show_preview(self, image: ImageData) -> None:
        pixbuf = _pixbuf(image, PREVIEW_SIDE)
        if pixbuf is not None:
            self.preview_image.set_from_pixbuf(pixbuf)


def _pixbuf(image: ImageData, side: int) -> GdkPixbuf.Pixbuf | None:
    """An rgba8 image scaled to fit ``side`` x ``side`` (None for another format)."""
    if image.format != "rgba8" or image.width <= 0 or image.height <= 0:
        return None
    pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(
        GLib.Bytes.new(bytes(image.data)),
        GdkPixbuf.Colorspace.RGB,
        True,
        8,
        image.width,
        image.height,
        image.width * 4,
    )
    scale = min(side / image.width, side / image.height)
    width, height = max(1, int(image.width * scale)), max(1, int(image.height * scale))
    return pixbuf.scale_simple(width, height, GdkPixbuf.InterpType.BILINEAR)


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
