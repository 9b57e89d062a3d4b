"""The Studio's runs: generation, the lambda sweep to scrub, exact runs on release, x0 previews.

A mixin of `ivwidgets.Studio` (kept apart so each module stays readable): it expects the
Studio's controls (``lam``, ``lam_schedule``, ``steps``, ``frames``, ``seed``, ``progress``,
``status``, ``latents``, ``preview_caption``, ``player``, ``showing``, the buttons) and the state
set up in ``Studio.__init__`` (``_worker``, ``_sweep``, ``_state``, ``_epoch``, ``_settle``...).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np

from ivcore.instructions import lam_schedule
from ivcore.stages.denoise import Cancelled
from ivcore.stages.preview import decode_preview, latents_to_frames, preview_source

from ._common import InstructionError, session_lock
from .lam_control import lam_for
from .scrub import LAM_TOL, Task

__all__ = ["PREVIEW_BUDGET", "PREVIEW_EVERY_S", "SETTLE_S", "StudioRuns", "frames_strip", "latents_to_rgb"]

PREVIEW_EVERY_S = 0.15  # previews are throttled: the kernel's socket, not the UNet, is the limit
PREVIEW_BUDGET = 0.1  # and take at most this share of a run: a decode of c seconds waits 9c for the next
SETTLE_S = 0.3  # the lambda slider counts as released when it has rested this long
# Settings a sweep depends on that a session may change without telling observers; the
# instructions that do notify (image, paint, content, motion, trajectories) drop the sweep at once.
SIGNED_SETTINGS = (
    "negative_prompt", "content_strength", "guidance", "motion_scale", "trajectory_mode",
    "trajectory_strength", "align", "image_steps", "image_guidance",
)  # fmt: skip
SOURCE_NAMES = {"vae": "VAE", "decoder": "preview decoder", "linear": "linear RGB map"}


def frames_strip(frames: np.ndarray, max_frames: int = 8, cell: int = 64) -> np.ndarray:
    """A (cell, n * cell', 3) strip of the first frames of (F, H, W, 3) uint8 frames.

    Small frames are repeated up to ``cell`` pixels high, big ones strided down to about it, so
    the strip costs the same few kilobytes a step whatever the model size.
    """
    img = np.asarray(frames)[:max_frames]
    h = img.shape[1]
    if h < cell:
        scale = max(1, cell // max(1, h))
        img = img.repeat(scale, axis=1).repeat(scale, axis=2)
    elif h > cell:
        stride = h // cell
        img = img[:, ::stride, ::stride]
    return np.ascontiguousarray(np.concatenate(list(img), axis=1))


def latents_to_rgb(latents: Any, max_frames: int = 8, cell: int = 64) -> np.ndarray:
    """A (H, W, 3) uint8 strip of the first frames of (B, 4, F, h, w) latents by the linear RGB map."""
    return frames_strip(latents_to_frames(latents), max_frames, cell)


class StudioRuns:
    """Generation and lambda scrubbing for the Studio (see `ivwidgets.Studio`)."""

    # -- lambda: schedule and scrubbing ------------------------------------------------------------
    def _lam_for(self, value: float, mode: str | None = None, steps: int | None = None) -> Any:
        mode = self.lam_schedule.mode.value if mode is None else mode
        return lam_for(value, mode, int(self.steps.value) if steps is None else steps)

    def _draw_schedule(self) -> None:
        """Plot what the session will run: its lam over the steps of the next generation."""
        try:
            self.lam_schedule.draw(lam_schedule(self.session.lam, max(1, int(self.steps.value))))
        except (InstructionError, ValueError, TypeError):  # pragma: no cover - lam is always valid
            pass

    def _apply_lam(self) -> bool:
        """The slider and the shape become ``session.lam``; False (error shown) when refused."""
        try:
            self.session.lam = self._lam_for(self.lam.value)
        except (InstructionError, ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return False
        self.show_error("")
        self._draw_schedule()
        return True

    def _on_lam(self, change: dict[str, Any]) -> None:
        if self._syncing:  # the session already has it; show a held video, run nothing
            self._scrub(float(change["new"]), run=False)
        elif self._apply_lam():
            self._scrub(float(change["new"]), run=True)

    def _on_lam_mode(self, change: dict[str, Any]) -> None:
        self.drop_sweep()  # the sweep's videos are of the old shape
        if not self._syncing:
            self._apply_lam()

    def _on_setting(self, change: dict[str, Any]) -> None:
        self.drop_sweep()  # steps, frames or seed: the held videos are of other settings
        if change["owner"] is self.steps and self.lam_schedule.mode.value != "constant" and not self._syncing:
            self._apply_lam()  # a ramp has one weight a step
        else:
            self._draw_schedule()

    def _signature(self, params: dict[str, Any] | None = None) -> str:
        """What the held videos depend on besides lambda: the session's settings and the app's."""
        params = self._params() if params is None else params
        state = {name: getattr(self.session, name, None) for name in SIGNED_SETTINGS}
        scheduler = getattr(getattr(self.session, "video_backend", None), "scheduler", None)
        config = dict(getattr(scheduler, "config", {}) or {})
        return json.dumps([state, params, type(scheduler).__name__, config], sort_keys=True, default=repr)

    def _params(self) -> dict[str, Any]:
        return {
            "seed": int(self.seed.value),
            "num_frames": int(self.frames.value),
            "steps": int(self.steps.value),
            "mode": self.lam_schedule.mode.value,
        }

    def drop_sweep(self) -> None:
        """Forget the held videos and stop the sweep or exact run for them (instructions changed)."""
        with self._state:
            self._epoch += 1
            self._sweep.reset(None)
            self._cancel_settle()
        self._worker.cancel(("sweep", "exact"))

    def _cancel_settle(self) -> None:
        with self._state:
            if self._settle is not None:
                self._settle.cancel()
                self._settle = None

    def _scrub(self, value: float, *, run: bool) -> None:
        """Show the held video nearest ``value`` at once; on a settled slider, make the exact one."""
        if self.scrub_lams is None:
            return
        with self._state:
            self._cancel_settle()
            hit = self._sweep.nearest(value, self._signature())
        if hit is None:  # nothing held yet: a running sweep applies the slider when it ends
            return
        lam, video, origin = hit
        self._show(video, lam, origin)
        stale = [t for t in self._worker.tasks(("exact",)) if abs(t.value - value) >= LAM_TOL]
        for task in stale:
            task.cancel.set()
        if abs(lam - value) < LAM_TOL or not run:
            return
        with self._state:
            self._settle = threading.Timer(self.settle_s, self._settled, args=(value, self._epoch))
            self._settle.daemon = True
            self._settle.start()

    def _settled(self, value: float, epoch: int) -> None:
        """The slider rested at ``value``: generate its exact video unless it is held or coming."""
        with self._state:
            if self._settle is threading.current_thread():
                self._settle = None
            if epoch != self._epoch or abs(float(self.lam.value) - value) >= LAM_TOL:
                return
            if self._sweep.holds(value, self._signature()):
                return
        if self._worker.tasks(("generate", "sweep")):
            return  # they end by applying the slider
        if any(abs(t.value - value) < LAM_TOL for t in self._worker.tasks(("exact",))):
            return
        self._submit(Task("exact", self._run_exact, value=value, params=self._params(), epoch=epoch))

    def _show(self, video: Any, lam: float | None, origin: str) -> None:
        """Put ``video`` in the player, with a line that says which lambda it is and where it came from."""
        label = "" if lam is None else f"lambda {lam:g}" + (" from the sweep" if origin == "sweep" else "")
        with self._show_lock:
            if self.player.video is not video:
                self.player.show(video)
            self.showing.value = label
            self._screen = origin
        self._select_on_screen(video)  # the takes strip marks the take on screen

    # -- generation ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a generation (a Generate click) is queued or running."""
        return bool(self._worker.tasks(("generate",)))

    @property
    def sweeping(self) -> bool:
        """True while the background lambda sweep is queued or running."""
        return bool(self._worker.tasks(("sweep",)))

    def generate(self) -> bool:
        """Start a generation in the background; returns False (and starts nothing) if one is running.

        A background sweep or exact run yields: it is cancelled between steps and the generation
        starts as soon as it has stopped.
        """
        with self._run_lock:
            if self.busy:  # a generation, a restore or a story step, started in this view or another
                self.notice.value = "already running: this Generate started nothing"
                return False
            self.drop_sweep()
            self.show_error("")
            self.progress.value = 0
            self.progress.max = max(1, int(self.steps.value))
            self.status.value = "starting\u2026"
            self._submit(Task("generate", self._run_generate, params=self._params(), epoch=self._epoch))
        return True

    def cancel(self) -> None:
        """Stop the running task between denoising steps and drop the queued ones; the last video stays."""
        for task in self._worker.cancel():
            if task.kind == "sweep":
                self.status.value = f"{self._done} \u00b7 lambda sweep cancelled".lstrip(" \u00b7")
            else:
                self.status.value = "cancelling\u2026"
        self._cancel_settle()
        self._buttons()

    def wait(self, timeout: float | None = 600.0) -> bool:
        """Block until the generation, the sweep, a pending release and the previews are done."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        while True:
            with self._state:
                timer = self._settle
            if timer is not None:
                timer.join(left())
            if not self._worker.wait(left()):
                return False
            with self._state:
                if self._settle is None and not self._worker.tasks():
                    break
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return self.editor.wait(left()) and self.paint.wait(left())

    def _submit(self, task: Task) -> None:
        self._worker.submit(task)
        self._buttons()

    def _buttons(self) -> None:
        busy = self.busy
        if not busy:
            self.notice.value = ""
        self.generate_button.disabled = busy
        self.cancel_button.disabled = not self._worker.tasks()
        self._takes_buttons(busy)

    def _callback(self, task: Task, *, progress: bool) -> Any:
        """The denoising callback of a task: stops it when cancelled, shows progress and previews."""

        def callback(step: int, total: int, latents: Any, x0: Any = None) -> None:
            if task.cancel.is_set():
                raise Cancelled(f"{task.kind} cancelled after step {step} of {total}")
            if progress:
                self._on_step(step, total, latents)
                self._preview(step, total, latents, x0)
            else:
                self.status.value = f"{self._done} \u00b7 lambda sweep: step {step}/{total}".lstrip(" \u00b7")
            if task.cancel.is_set():
                raise Cancelled(f"{task.kind} cancelled after step {step} of {total}")

        return callback

    def _on_step(self, step: int, total: int, latents: Any) -> None:
        now = time.monotonic()
        done = max(1, int(step))
        per_step = (now - self._t0) / done
        left = per_step * max(0, int(total) - done)
        self.progress.max = max(1, int(total))
        self.progress.value = min(int(step), int(total))
        self.status.value = f"step {step}/{total} \u00b7 {left:.1f} s left"

    def _preview(self, step: int, total: int, latents: Any, x0: Any) -> None:
        """Show the clean-video estimate x0 (or, from a scheduler without one, the noisy latents)."""
        now = time.monotonic()
        gap = max(PREVIEW_EVERY_S, self._preview_cost * (1 - PREVIEW_BUDGET) / PREVIEW_BUDGET)
        if latents is None or not (now - self._last_preview >= gap or step >= total):
            return
        target = x0 if x0 is not None else latents
        decoder = getattr(self.session, "preview_decoder", None)
        source = preview_source(self.session.video_backend, tuple(target.shape), decoder)
        frames = decode_preview(self.session.video_backend, target, decoder=decoder, source=source)
        self._last_preview = time.monotonic()
        self._preview_cost = self._last_preview - now  # a VAE decode can cost half a step (shapes, CPU)
        self.preview_frames, self.preview_source, self.preview_step = frames, source, int(step)
        strip = frames_strip(frames)
        if (self.latents.width, self.latents.height) != (strip.shape[1], strip.shape[0]):
            self.latents.width, self.latents.height = strip.shape[1], strip.shape[0]
        self.latents.put_image_data(strip, 0, 0)
        what = "clean-video estimate x0" if x0 is not None else "noisy latents"
        self.preview_caption.value = f"<small>{what} at step {step}/{total} ({SOURCE_NAMES[source]})</small>"

    def _generate(self, task: Task, lam: Any = None) -> Any:
        p = task.params
        self._t0 = time.monotonic()
        self._last_preview = 0.0
        with session_lock(self.session):
            return self.session.generate(
                seed=p["seed"],
                num_frames=p["num_frames"],
                steps=p["steps"],
                lam=lam,
                callback=self._callback(task, progress=True),
                progress=False,
            )

    def _run_generate(self, task: Task) -> None:
        value = float(self.lam.value)
        lam = self.session.lam  # read once: the slider may move while the run goes on
        ours = lam == self._lam_for(value, task.params["mode"], task.params["steps"])
        signature = self._signature(task.params)
        try:
            video = self._generate(task, lam=lam)
        finally:
            task.done = True
            self._buttons()
        self._done = f"done in {time.monotonic() - self._t0:.1f} s"
        self.status.value = self._done
        self._show(video, value if ours else None, "exact")
        if self.scrub_lams is None or not ours:
            return
        with self._state:
            if task.epoch != self._epoch:
                return
            self._sweep.reset(signature)
            self._sweep.add(value, video, "exact")
            lams = tuple(v for v in self.scrub_lams if abs(v - value) >= LAM_TOL)
            if not lams:
                self._sweep.complete = True
                return
        self._submit(Task("sweep", self._run_sweep, value=lams, params=task.params, epoch=task.epoch))

    def _run_sweep(self, task: Task) -> None:
        p = task.params
        clock = time.monotonic()
        with session_lock(self.session):
            if task.epoch != self._epoch:
                return
            videos = self.session.sweep(
                [lam_for(v, p["mode"], p["steps"]) for v in task.value],
                seed=p["seed"],
                num_frames=p["num_frames"],
                steps=p["steps"],
                callback=self._callback(task, progress=False),
                progress=False,
            )
        for video in videos:  # encode here, so a slider move only swaps bytes (mp4s are cached per Video)
            video.to_mp4(scale="auto")
        task.done = True
        with self._state:
            if task.epoch != self._epoch or task.cancel.is_set():
                return  # stale: never shown
            for lam, video in zip(task.value, videos, strict=True):
                self._sweep.add(lam, video, "sweep")
            self._sweep.complete = True
        n = len(self._sweep.videos)
        self.status.value = f"{self._done} \u00b7 {n} lambdas ready to scrub ({time.monotonic() - clock:.1f} s)"
        self._scrub(float(self.lam.value), run=True)

    def _run_exact(self, task: Task) -> None:
        value = float(task.value)
        signature = self._signature(task.params)
        try:
            video = self._generate(task, lam=lam_for(value, task.params["mode"], task.params["steps"]))
        finally:
            task.done = True
            self._buttons()
        self.status.value = f"lambda {value:g}: exact video in {time.monotonic() - self._t0:.1f} s"
        with self._state:
            if task.epoch == self._epoch and self._sweep.signature == signature:
                self._sweep.add(value, video, "exact")
            current = abs(float(self.lam.value) - value) < LAM_TOL
        if current:
            self._show(video, value, "exact")

    def _task_failed(self, task: Task, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            if task.kind == "sweep":
                self.status.value = f"{self._done} \u00b7 lambda sweep stopped".lstrip(" \u00b7")
            else:
                self.status.value = "cancelled (the last video is kept)"
        elif task.kind == "sweep":  # the click's video stands; only scrubbing is off until the next one
            self.status.value = f"{self._done} \u00b7 lambda sweep failed (no scrubbing)".lstrip(" \u00b7")
            self.show_error(f"lambda sweep: {type(exc).__name__}: {exc}")
        else:
            self.status.value = "failed" if task.kind in ("generate", "exact") else f"{task.kind} failed"
            self.show_error(f"{type(exc).__name__}: {exc}")
