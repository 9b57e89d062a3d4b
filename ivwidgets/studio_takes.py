"""The Studio's takes and story: the takes strip, Restore, Continue from the last frame, Undo segment, the story.

A mixin of `ivwidgets.Studio` (like `StudioRuns`): it expects the Studio's controls, ``player``,
``showing``, ``status``, `show_error` and the worker (``_worker``, ``_submit``, `drop_sweep`,
``_buttons``). Restore, Continue and Undo run in the Studio's one worker, after a generation in
flight, so they never change the session under a running generation; what goes wrong is shown
in the app (``error`` and ``status``), never raised into the kernel's log.

The story strip under the player plays ``session.story.video`` and, once a take has been made
from the story's last frame since the last Continue (or Undo), that take as the next segment:
the seam can be judged before Continue keeps it.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w
import numpy as np

from ivcore.video import Video

from ._common import session_lock
from .lam_control import shape_of
from .player import VideoPlayer
from .scrub import Task
from .takes_strip import TakesStrip

__all__ = ["ACTION_KINDS", "StudioTakes"]

ACTION_KINDS = ("generate", "restore", "story")  # one at a time: each changes the session's instructions
FOLLOWED = {"seed": "seed", "num_frames": "frames", "steps": "steps"}  # session field -> Studio control


def _keep_width() -> w.Layout:
    """A button as wide as its label, even in a narrow row (the text beside it wraps instead)."""
    return w.Layout(width="auto", flex="0 0 auto")


class StudioTakes:
    """Takes and the story for the Studio (see `ivwidgets.Studio`)."""

    def _build_takes(self) -> tuple[w.Widget, w.Widget]:
        """Make the takes strip and the story strip with their buttons; returns (takes box, story box)."""
        self.takes_strip = TakesStrip(self.session)
        self.takes_strip.layout = w.Layout(width="auto")
        self.restore_button = w.Button(
            description="Restore", icon="history", disabled=True, layout=_keep_width(),
            tooltip="set every instruction and setting back to the selected take's (its video comes back)",
        )  # fmt: skip
        self.continue_button = w.Button(
            description="Continue from the last frame", icon="forward", disabled=True, layout=_keep_width(),
            tooltip="the take on screen (the selected one, else the last) joins the story; its last frame becomes "
            "the image of the next segment: paint, drag, write its motion and Generate",
        )  # fmt: skip
        self.undo_segment_button = w.Button(
            description="Undo segment", icon="step-backward", disabled=True, layout=_keep_width(),
            tooltip="drop the story's last segment and set back the instructions it continued from",
        )  # fmt: skip
        for button, name in (
            (self.restore_button, "ivw-restore"),
            (self.continue_button, "ivw-continue"),
            (self.undo_segment_button, "ivw-undo-segment"),
        ):
            button.add_class(name)
        self.story_status = w.HTML("", layout=w.Layout(flex="1 1 auto", min_width="0"))  # wraps, buttons don't
        self.story_status.add_class("ivw-story-status")
        self.story_player = VideoPlayer(filename="story.mp4")
        self.story_player.layout = w.Layout(width="auto", display="none")
        self.story_player.add_class("ivw-story-player")
        #: What the story strip plays: the story's segments, then the next one on trial (if any).
        self.story_segments: list[Any] = []
        self._story_lock = threading.RLock()
        self._story_key: tuple[Any, ...] | None = None
        self._story_mark = len(getattr(self.session, "takes", []))  # takes made since are next-segment trials
        self._continue_cache: dict[tuple[str, str], bool] = {}
        self._selecting = False  # True while the app moves the selection to the video on screen
        self._screen = ""  # where the player's video came from: "exact", "sweep", "take", "compare"

        self.takes_strip.on_select(self._on_takes_selected)
        self.restore_button.on_click(lambda _: self.restore())
        self.continue_button.on_click(lambda _: self.continue_story())
        self.undo_segment_button.on_click(lambda _: self.undo_segment())
        takes_box = w.VBox([
            w.HTML("<b>Takes</b> <small>(newest first)</small>"), self.takes_strip, w.HBox([self.restore_button]),
        ])  # fmt: skip
        # the story's player joins the box with the first story (a page shows one player until then)
        self._story_box = w.VBox([
            w.HBox([self.continue_button, self.undo_segment_button, self.story_status],
                   layout=w.Layout(align_items="center")),
        ])  # fmt: skip
        takes_box.add_class("ivw-takes-box")
        self._story_box.add_class("ivw-story-box")
        return takes_box, self._story_box

    @property
    def busy(self) -> bool:
        """True while a generation, a restore or a story step (Continue, Undo) is queued or running."""
        return bool(self._worker.tasks(ACTION_KINDS))

    def _takes_buttons(self, busy: bool) -> None:
        self.restore_button.disabled = busy or len(self.takes_strip.selected) != 1
        self.continue_button.disabled = busy or not getattr(self.session, "takes", [])
        self.undo_segment_button.disabled = busy or not len(getattr(self.session, "story", ()))

    # -- what the player shows ---------------------------------------------------------------------
    def _take_of(self, video: Any) -> Any:
        for take in reversed(getattr(self.session, "takes", [])):
            if take.video is video:
                return take
        return None

    def _select_on_screen(self, video: Any) -> None:
        """The strip marks the take the player shows (none for a swept lambda or a comparison)."""
        take = self._take_of(video) if video is not None else None
        tiles = {item["id"] for item in self.takes_strip.items}  # a take too old for a tile: none marked
        ids = [take.id] if take is not None and take.id in tiles else []
        if list(self.takes_strip.selected) != ids:
            self._selecting = True
            try:
                self.takes_strip.selected = ids
            finally:
                self._selecting = False

    def _show_take(self, video: Any, label: str, origin: str) -> None:
        with self._show_lock:
            if self.player.video is not video:
                self.player.show(video)
            self.showing.value = label
            self._screen = origin

    def _on_takes_selected(self, takes: list[Any]) -> None:
        """A click in the strip: one take plays in the player, two play side by side."""
        self._buttons()
        if self._selecting:
            return
        try:
            if takes:
                video, label = self.takes_strip.selection_video()
                self._show_take(video, label, "compare" if len(takes) == 2 else "take")
            self._update_story()
        except Exception as exc:  # shown in the app, never a traceback in the kernel's log
            self.show_error(f"takes: {type(exc).__name__}: {exc}")

    # -- Restore, Continue, Undo -------------------------------------------------------------------
    def _action(self, kind: str, run: Any, value: Any, status: str) -> bool:
        with self._run_lock:
            if self.busy:
                self.status.value = "already running"
                return False
            self.drop_sweep()  # the instructions change: held videos are stale
            self.show_error("")
            self.status.value = status
            self._submit(Task(kind, run, value=value, params=self._params(), epoch=self._epoch))
        return True

    def restore(self, take: Any = None) -> bool:
        """Set every instruction and setting back to ``take``'s (default: the one selected in the strip).

        Runs in the background worker (an evicted take is generated again); the controls, the paint
        and the trajectories follow, and the player shows the take. False (and an error shown) when
        no single take is selected or a task is running.
        """
        if take is None:
            chosen = self.takes_strip.selected_takes
            if len(chosen) != 1:
                self.show_error("Restore: select one take in the strip")
                return False
            take = chosen[0]
        return self._action("restore", self._run_restore, take, f"restoring {take.id}\u2026")

    def _run_restore(self, task: Task) -> None:
        take = task.value
        with session_lock(self.session):
            self.session.restore(take)  # the controls follow (_on_session_change)
        self._show_take(take.video, f"{take.id} (restored)", "take")
        self._select_on_screen(take.video)
        self.status.value = f"{take.id} restored"  # short: the status line does not wrap

    def continue_story(self) -> bool:
        """Continue from the last frame: the take on screen joins ``session.story`` (``continue_from``).

        The take is the one selected in the strip, else the last one; when the player shows a
        lambda from the background sweep (not a take), its exact video is generated first. The
        last frame becomes the image of the next segment.
        """
        chosen = self.takes_strip.selected_takes
        take = chosen[0] if len(chosen) == 1 else None
        exact = take is None and self._screen == "sweep" and self.player.video is not None
        return self._action("story", self._run_continue, (take, exact), "continuing\u2026")

    def _run_continue(self, task: Task) -> None:
        take, exact = task.value
        if exact:  # a swept lambda is no take: make its video exactly (a take), then continue from it
            self._generate(task, lam=self.session.lam)
            take = self.session.takes[-1]
        with session_lock(self.session):
            take = self.session.continue_from(take)
        self.status.value = f"{take.id} is segment {len(self.session.story)} of the story"

    def undo_segment(self) -> bool:
        """Drop the story's last segment (``session.story.pop()``): the image it continued from comes back."""
        return self._action("story", self._run_undo, None, "undoing a segment\u2026")

    def _run_undo(self, task: Task) -> None:
        with session_lock(self.session):
            take = self.session.story.pop()
        self.status.value = f"{take.id} left the story"

    # -- the session changed -------------------------------------------------------------------------
    def _follow(self, field: str) -> None:
        """The Studio's controls show what a restore (or a notebook cell) set: lambda, seed, frames, steps."""
        session = self.session
        self._syncing = True
        try:
            if field == "lam":
                shape = shape_of(session.lam)
                if shape is not None and session.lam != self._lam_for(self.lam.value):
                    value, mode = shape
                    self.lam_schedule.mode.value = mode
                    self.lam.value = value
            else:
                control = getattr(self, FOLLOWED[field])
                value = int(getattr(session, field))
                if control.value != value:
                    if getattr(control, "max", value) < value:
                        control.max = value
                    control.value = value
        finally:
            self._syncing = False

    def _on_takes_event(self, field: str) -> None:
        """Takes, restores and story changes: the strip's buttons, the story strip, the editors."""
        if field in ("restore", "story"):
            self.editor.show_session_trajectories()
        if field == "restore":  # the Seed control is the video's seed (s.seed, restored too, is P_img's)
            take = self._take_of(self.session.last_video)
            if take is not None and self.seed.value != take.seed:
                self._syncing = True
                try:
                    self.seed.value = take.seed
                finally:
                    self._syncing = False
        if field == "story":
            self._story_mark = len(self.session.takes)
        try:
            self._update_story()
        except Exception as exc:  # shown in the app, not a warning in the kernel's log
            self.show_error(f"story: {type(exc).__name__}: {exc}")
        self._buttons()

    # -- the story strip -----------------------------------------------------------------------------
    def _continues(self, take: Any, last: Any) -> bool:
        """True when ``take`` was made from ``last``'s last frame (its image is that frame)."""
        ref = take.settings.get("image")
        key = (str(ref), last.id)
        cache = self._continue_cache
        if key not in cache:
            try:
                image = np.asarray(self.session.take_images.get(ref).convert("RGB"))
            except Exception:  # no picture for it: not a continuation
                cache[key] = False
            else:
                frame = last.video.frames[-1]
                cache[key] = image.shape == frame.shape and bool(np.array_equal(image, frame))
        return cache[key]

    def _trial(self, segments: list[Any]) -> Any:
        """The take to show as the next segment: made since the last Continue or Undo from the last frame."""
        if not segments:
            return None
        kept = {t.id for t in segments}
        later = [
            t
            for t in self.session.takes[self._story_mark :]
            if t.video is not None and t.id not in kept and self._continues(t, segments[-1])
        ]
        chosen = self.takes_strip.selected_takes
        if len(chosen) == 1 and chosen[0] in later:
            return chosen[0]
        return later[-1] if later else None

    def _update_story(self) -> None:
        """Show the story (and the next segment on trial) in the story strip, with its segment count."""
        story = getattr(self.session, "story", None)
        if story is None:
            return
        with self._story_lock:
            segments = story.segments
            trial = self._trial(segments)
            shown = segments + ([trial] if trial is not None else [])
            key = (len(segments), *(t.id for t in shown))
            if key == self._story_key:
                return
            self._story_key = key
            self.story_segments = shown
            if not shown:
                self.story_player.layout.display = "none"
                self.story_status.value = (
                    "<small><b>Story</b>: none yet. <i>Continue from the last frame</i> keeps the take on screen "
                    "as its first segment.</small>"
                )
                return
            video = story.video
            if trial is not None:  # the story as it would be: the trial's first frame repeats the seam
                video = Video(np.concatenate([video.frames, trial.video.frames[1:]]), fps=video.fps)
            self.story_player.show(video)
            self.story_player.layout.display = None
            if self.story_player not in self._story_box.children:
                self._story_box.children = (*self._story_box.children, self.story_player)
            n = len(shown)
            text = f"<b>Story</b>: {n} segment{'s' if n != 1 else ''}, {video.num_frames} frames"
            if trial is not None:
                text += f" (the last, {trial.id}, is on trial: Continue keeps it)"
            else:
                text += ": paint, drag and Generate the next segment"
            self.story_status.value = f"<small>{text}</small>"
