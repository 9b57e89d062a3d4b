"""Studio: the composed InteractiveVideo app (paint, drag, prompt, blend, generate, play)."""

from __future__ import annotations

import html
import io
import threading
from typing import Any

import ipywidgets as w
import numpy as np
from ipycanvas import Canvas
from PIL import Image

from ivcore.fields import widget_hints
from ivcore.stages.preview import LATENT_RGB

from ._common import InstructionError, encode_png, session_lock
from .lam_control import LamSchedule
from .paint import PaintCanvas
from .player import VideoPlayer
from .scrub import DEFAULT_SCRUB_LAMS, SweepStore, Worker, check_scrub_lams
from .studio_runs import PREVIEW_EVERY_S, SETTLE_S, StudioRuns, frames_strip, latents_to_rgb
from .studio_size import StudioSize
from .studio_takes import FOLLOWED, StudioTakes
from .trajectory import TrajectoryEditor

__all__ = ["LATENT_RGB", "PREVIEW_EVERY_S", "Studio", "frames_strip", "latents_to_rgb"]


# A slider over all 1000 scheduler steps would be unusable; the session still takes more from code.
STEPS_UI_MAX = 100


def _int_slider(session: Any, hints: dict, name: str, label: str, style: dict, ui_max: int | None = None):
    """An IntSlider for a declared int field: its bounds, its current value and its doc as tooltip."""
    hint = hints[name]
    high = hint["high"] if hint["high"] is not None else ui_max
    if ui_max is not None:
        high = min(high, ui_max)
    value = getattr(session, name)
    return w.IntSlider(
        value=value, min=hint["low"], max=max(high, value), step=hint.get("step", 1), description=label,
        tooltip=hint["doc"], style=style,
    )  # fmt: skip


class Studio(StudioTakes, StudioRuns, StudioSize, w.VBox):
    """All four instructions of InteractiveVideo in one app bound to a ``Session``.

    Generation runs in a background worker thread, so the notebook stays responsive; the Generate
    button is a no-op while a generation is in flight (a second one never starts), and Cancel stops
    the worker's task between steps. Every control is a widget with synced traits, so the app
    survives a page reload.

    Scrubbing lambda: after each generation the same worker runs ``session.sweep(scrub_lams)`` in
    the background (None turns it off). While the slider moves, the player shows the swept video
    of the nearest lambda at once (``showing`` says so); when the slider rests ``settle_s`` seconds
    (a release) at a lambda the sweep does not hold, the exact video is generated and replaces it.
    A change of any other instruction or setting drops the sweep; a new Generate cancels it.

    Takes and stories (``ivwidgets.studio_takes``): the takes strip under the player shows every
    take, newest first; a click plays one, two selected play side by side with their differences
    listed, Restore sets the selected take's instructions back. "Continue from the last frame"
    starts the next segment of ``session.story`` from the take on screen; the story strip plays
    the story; "Undo segment" drops its last segment.

    Picture shape (``ivwidgets.studio_size``): Size offers the sizes the models take (native, square,
    landscape and portrait), Fit how a picture of another shape is brought to it.

    Several views: the Studio may be displayed twice, open in two tabs, or shared by two people
    (jupyter-collaboration); every view is built from the same kernel-side widgets. Strokes from all
    views land in arrival order (``PaintCanvas``), a run started in one view shows its progress and
    video in all, Cancel works from any, and a Generate while one runs starts nothing and says so.
    """

    def __init__(
        self,
        session: Any,
        *,
        size: int = 256,
        scrub_lams: Any = DEFAULT_SCRUB_LAMS,
        settle_s: float = SETTLE_S,
        **kwargs: Any,
    ):
        self.session = session
        self.scrub_lams = check_scrub_lams(scrub_lams)
        self.settle_s = float(settle_s)
        self._run_lock = threading.Lock()
        self._state = threading.RLock()  # the sweep store, the epoch and the settle timer
        self._show_lock = threading.Lock()
        self._worker = Worker(on_error=self._task_failed, on_done=lambda _: self._buttons())
        self._sweep = SweepStore()
        self._epoch = 0  # bumped by every change that makes held videos stale
        self._settle: threading.Timer | None = None
        self._syncing = False  # True while the controls follow a change made in code
        self._last_preview = 0.0
        self._preview_cost = 0.0  # seconds the last preview took (decode and send)
        self._t0 = 0.0
        self._done = ""
        #: The last preview while denoising: (F, H, W, 3) uint8 frames, how they were decoded, the step.
        self.preview_frames: np.ndarray | None = None
        self.preview_source = ""
        self.preview_step = 0

        self.paint = PaintCanvas(session, show_edited=False)
        self.editor = TrajectoryEditor(session)
        self.player = VideoPlayer()
        for widget in (self.paint, self.editor, self.player):
            widget.layout = w.Layout(width="auto")
        self.player.add_class("ivw-main-player")  # the story strip has a player of its own
        style = {"description_width": "70px"}
        text_layout = w.Layout(width="420px")
        self.content = w.Text(
            value=str(getattr(session, "content", "") or ""),
            description="Content",
            placeholder="text for the image (y)",
            continuous_update=False,
            layout=text_layout,
            style=style,
        )
        self.motion = w.Text(
            value=str(getattr(session, "motion", "") or ""),
            description="Motion",
            placeholder="text for the motion (y')",
            continuous_update=False,
            layout=text_layout,
            style=style,
        )
        lam = getattr(session, "lam", 0.5)
        self.lam = w.FloatSlider(
            value=float(lam) if isinstance(lam, (int, float)) else 0.5,
            min=0.0,
            max=1.0,
            step=0.01,
            description="\u03bb",
            continuous_update=self.scrub_lams is not None,  # scrubbing shows swept videos while it moves
            readout_format=".2f",
            style=style,
        )
        self.lam.add_class("ivw-lam")
        self.lam_schedule = LamSchedule()
        # bounds, values and tooltips come from the session's declared fields (ivcore.fields)
        hints = widget_hints(session)
        self.steps = _int_slider(session, hints, "steps", "Steps", style, ui_max=STEPS_UI_MAX)
        self.frames = _int_slider(session, hints, "num_frames", "Frames", style)
        self.seed = w.IntText(value=session.seed, description="Seed", tooltip=hints["seed"]["doc"], style=style)
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Image…")
        self.upload.add_class("ivw-upload")
        self.generate_button = w.Button(description="Generate", button_style="primary", icon="play")
        self.generate_button.add_class("ivw-generate")
        self.cancel_button = w.Button(description="Cancel", disabled=True, icon="stop")
        self.cancel_button.add_class("ivw-cancel")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", layout=w.Layout(width="240px"))
        self.status = w.Label(value="")
        self.status.add_class("ivw-status")
        self.notice = w.Label(value="")  # a Generate that started nothing says so until the run ends
        self.notice.add_class("ivw-notice")
        self.error = w.HTML(value="")
        self.error.add_class("ivw-studio-error")
        self.latents = Canvas(width=size, height=64, layout=w.Layout(width=f"{size * 2}px", height="auto"))
        self.preview_caption = w.HTML("<small>clean-video estimate while denoising</small>")
        self.showing = w.Label(value="")  # what the player shows: "lambda 0.5 from the sweep"
        self.showing.add_class("ivw-showing")
        self.latents.add_class("ivw-previews")
        self.preview_caption.add_class("ivw-preview-caption")
        self.x_tilde = w.Image(format="png", layout=w.Layout(width=f"{size}px"))
        self.x_tilde_edited = w.Image(format="png", layout=w.Layout(width=f"{size}px"))
        self.x_tilde.add_class("ivw-x-tilde")
        self.x_tilde_edited.add_class("ivw-x-edited")

        takes_box, story_box = self._build_takes()
        size_box = self._build_size()

        def figure(widget: w.Widget, caption: str) -> w.VBox:
            return w.VBox([widget, w.HTML(f"<small>{caption}</small>")])

        super().__init__(
            [
                w.HBox([self.paint, self.editor]),
                w.HBox(
                    [
                        figure(self.x_tilde, "x\u0303 (intermediate)"),
                        figure(self.x_tilde_edited, "x\u0303\u2032 (edited)"),
                    ]
                ),
                w.HBox(
                    [
                        w.VBox([w.HBox([self.upload, size_box]), self.content, self.motion]),
                        w.VBox([self.lam, self.lam_schedule, self.steps, self.frames, self.seed]),
                    ]
                ),
                w.HBox([self.generate_button, self.cancel_button, self.progress, self.status, self.notice]),
                w.VBox([self.latents, self.preview_caption]),
                self.error,
                self.player,
                self.showing,
                takes_box,
                story_box,
            ],
            **kwargs,
        )
        self.add_class("ivw-studio")

        self.content.observe(lambda c: self._set("content", c["new"], refresh_base=True), "value")
        self.motion.observe(lambda c: self._set("motion", c["new"]), "value")
        self.lam.observe(self._on_lam, "value")
        self.lam_schedule.mode.observe(self._on_lam_mode, "value")
        for control in (self.steps, self.frames, self.seed):
            control.observe(self._on_setting, "value")
        self.paint.on_paint(lambda _: self.refresh(base=True))
        self.editor.on_change(lambda _: self.refresh(base=False))
        self.upload.observe(self._on_upload, "value")
        self.generate_button.on_click(lambda _: self.generate())
        self.cancel_button.on_click(lambda _: self.cancel())
        if hasattr(session, "observe"):
            session.observe(self._on_session_change)
        self._draw_schedule()
        self._update_story()
        self._buttons()
        self.refresh(base=True)

    def _on_session_change(self, field: str) -> None:
        """A notebook cell changed the session: show it. The app's own edits come back as no-ops."""
        session = self.session
        # the rest makes held videos stale (a restore or a new segment sets fields, announced one by one)
        if field not in ("lam", "video", "preview_decoder", "takes", "restore", "story"):
            self.drop_sweep()
        if field in ("image", "commit", "size", "fit"):
            if field in ("size", "fit"):
                self._show_layout()  # the pickers; a refit picture also drops paint and trajectories
            self.paint.show_session_paint()  # none after a new image; a restored take's paint
            self.paint.refresh()
            if field != "image":
                self.editor.show_session_trajectories()
            self.refresh(base=True)
        elif field == "paint" and not self.paint.applying:  # s.paint(...) in a cell: the canvas shows it
            self.paint.show_session_paint()
        elif field in FOLLOWED:
            self._follow(field)
        elif field in ("takes", "restore", "story"):
            self._on_takes_event(field)
        elif field in ("content", "motion"):
            box = getattr(self, field)
            if box.value != getattr(session, field):
                box.value = getattr(session, field)
        elif field == "lam":
            self._follow("lam")  # set in code or restored: the controls follow, nothing runs
            self._draw_schedule()

    # -- instructions ----------------------------------------------------------------------------
    def _set(self, name: str, value: Any, *, refresh_base: bool = False) -> None:
        try:
            setattr(self.session, name, value)
        except (InstructionError, ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return
        self.show_error("")
        if refresh_base:
            self.refresh(base=True)

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        try:
            self.set_image(Image.open(io.BytesIO(bytes(files[0]["content"]))))
        except (InstructionError, ValueError, OSError) as exc:
            self.show_error(f"image: {exc}")

    def set_image(self, image: Any) -> None:
        """A new Image Instruction x (PIL, array or path): clears the paint and refreshes every view."""
        self.session.image = image  # resized, paint dropped; _on_session_change redraws the views
        self.show_error("")

    def show_error(self, message: str) -> None:
        """Errors are shown in the app, not only in a log."""
        self.error.value = (
            f'<div style="color:#b00020;background:#fdecea;padding:4px 8px">{html.escape(message)}</div>'
            if message
            else ""
        )

    def refresh(self, *, base: bool = True) -> None:
        """Recompute x~ (when ``base``) and x~' in the editor's background jobs and show them."""

        def job() -> None:
            with session_lock(self.session):
                if base:
                    self.x_tilde.value = encode_png(self.session.intermediate(edited=False))
                self.x_tilde_edited.value = encode_png(self.session.intermediate(edited=True))

        if base:
            self.editor.refresh()
        self.editor._jobs.submit("studio-intermediates" if base else "studio-edited", job)
