"""Studio: the composed InteractiveVideo app (paint, drag, prompt, blend, generate, play)."""

from __future__ import annotations

import html
import io
import threading
import time
from typing import Any

import ipywidgets as w
import numpy as np
from ipycanvas import Canvas
from PIL import Image

from ._common import InstructionError, encode_png, session_lock
from .paint import PaintCanvas
from .player import VideoPlayer
from .trajectory import TrajectoryEditor

# Linear map from the 4 SD-VAE latent channels to RGB (the usual cheap preview; no VAE decode).
LATENT_RGB = np.array(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]],
    dtype=np.float32,
)
PREVIEW_EVERY_S = 0.15  # latent previews are throttled: the kernel's socket, not the UNet, is the limit


def latents_to_rgb(latents: Any, max_frames: int = 8, cell: int = 64) -> np.ndarray:
    """A (H, W, 3) uint8 strip of the first frames of (B, 4, F, h, w) latents, upscaled to ``cell`` px."""
    arr = latents.detach().float().cpu().numpy() if hasattr(latents, "detach") else np.asarray(latents)
    arr = arr[0] if arr.ndim == 5 else arr  # (4, F, h, w)
    arr = arr[:, :max_frames]
    rgb = np.einsum("cfhw,cr->fhwr", arr[:4], LATENT_RGB[: arr.shape[0]])
    img = np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)  # (F, h, w, 3)
    scale = max(1, cell // max(1, img.shape[1]))
    img = img.repeat(scale, axis=1).repeat(scale, axis=2)
    return np.concatenate(list(img), axis=1)


def _cancelled_type() -> type[BaseException] | None:
    try:
        import ivcore

        return getattr(ivcore, "Cancelled", None)
    except ImportError:  # pragma: no cover
        return None


class Studio(w.VBox):
    """All four instructions of InteractiveVideo in one app bound to a ``Session``.

    Generation runs in a background thread, so the notebook stays responsive; the Generate button is
    a no-op while a run is in flight (a second run never starts), and Cancel asks the session to stop
    between steps. Every control is a widget with synced traits, so the app survives a page reload.
    """

    def __init__(self, session: Any, *, size: int = 256, **kwargs: Any):
        self.session = session
        self._run_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_preview = 0.0
        self._t0 = 0.0

        self.paint = PaintCanvas(session, show_edited=False)
        self.editor = TrajectoryEditor(session)
        self.player = VideoPlayer()
        for widget in (self.paint, self.editor, self.player):
            widget.layout = w.Layout(width="auto")
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
            continuous_update=False,
            readout_format=".2f",
            style=style,
        )
        self.lam.add_class("ivw-lam")
        self.steps = w.IntSlider(
            value=int(getattr(session, "steps", 10)), min=1, max=100, description="Steps", style=style
        )
        max_frames = int(getattr(getattr(session, "video_backend", None), "max_frames", 64) or 64)
        self.frames = w.IntSlider(
            value=int(getattr(session, "num_frames", 8)),
            min=1,
            max=max_frames,
            description="Frames",
            style=style,
        )
        self.seed = w.IntText(value=int(getattr(session, "seed", 0) or 0), description="Seed", style=style)
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Image…")
        self.upload.add_class("ivw-upload")
        self.generate_button = w.Button(description="Generate", button_style="primary", icon="play")
        self.generate_button.add_class("ivw-generate")
        self.cancel_button = w.Button(description="Cancel", disabled=True, icon="stop")
        self.cancel_button.add_class("ivw-cancel")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", layout=w.Layout(width="240px"))
        self.status = w.Label(value="")
        self.status.add_class("ivw-status")
        self.error = w.HTML(value="")
        self.error.add_class("ivw-studio-error")
        self.latents = Canvas(width=size, height=64, layout=w.Layout(width=f"{size * 2}px", height="auto"))
        self.x_tilde = w.Image(format="png", layout=w.Layout(width=f"{size}px"))
        self.x_tilde_edited = w.Image(format="png", layout=w.Layout(width=f"{size}px"))

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
                        w.VBox([self.upload, self.content, self.motion]),
                        w.VBox([self.lam, self.steps, self.frames, self.seed]),
                    ]
                ),
                w.HBox([self.generate_button, self.cancel_button, self.progress, self.status]),
                figure(self.latents, "latents while denoising (linear RGB projection)"),
                self.error,
                self.player,
            ],
            **kwargs,
        )
        self.add_class("ivw-studio")

        self.content.observe(lambda c: self._set("content", c["new"], refresh_base=True), "value")
        self.motion.observe(lambda c: self._set("motion", c["new"]), "value")
        self.lam.observe(lambda c: self._set("lam", float(c["new"])), "value")
        self.paint.on_paint(lambda _: self.refresh(base=True))
        self.editor.on_change(lambda _: self.refresh(base=False))
        self.upload.observe(self._on_upload, "value")
        self.generate_button.on_click(lambda _: self.generate())
        self.cancel_button.on_click(lambda _: self.cancel())
        if hasattr(session, "observe"):
            session.observe(self._on_session_change)
        self.refresh(base=True)

    def _on_session_change(self, field: str) -> None:
        """A notebook cell changed the session: show it. The app's own edits come back as no-ops."""
        session = self.session
        if field in ("image", "commit"):
            self.paint.clear()
            self.paint.refresh()
            if field == "commit" and self.editor.trajectories:
                self.editor.trajectories = []
            self.refresh(base=True)
        elif field in ("content", "motion"):
            box = getattr(self, field)
            if box.value != getattr(session, field):
                box.value = getattr(session, field)
        elif field == "lam" and isinstance(session.lam, float) and abs(self.lam.value - session.lam) > 1e-9:
            self.lam.value = session.lam

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

    # -- generation ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def generate(self) -> bool:
        """Start a generation in the background; returns False (and starts nothing) if one is running."""
        with self._run_lock:
            if self.running:
                self.status.value = "already running"
                return False
            self.show_error("")
            self.generate_button.disabled = True
            self.cancel_button.disabled = False
            self.progress.value = 0
            self.progress.max = max(1, int(self.steps.value))
            self.status.value = "starting\u2026"
            self._thread = threading.Thread(target=self._run, name="ivwidgets-generate", daemon=True)
            self._thread.start()
        return True

    def cancel(self) -> None:
        """Ask the session to stop between denoising steps; the last good video stays."""
        if self.running:
            self.status.value = "cancelling\u2026"
            self.session.cancel()

    def wait(self, timeout: float | None = 600.0) -> bool:
        """Block until the generation and the background previews are done (True if they are)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return not self.running and self.editor.wait(left) and self.paint.wait(left)

    def _on_step(self, step: int, total: int, latents: Any) -> None:
        now = time.monotonic()
        done = max(1, int(step))
        per_step = (now - self._t0) / done
        left = per_step * max(0, int(total) - done)
        self.progress.max = max(1, int(total))
        self.progress.value = min(int(step), int(total))
        self.status.value = f"step {step}/{total} \u00b7 {left:.1f} s left"
        if latents is not None and (now - self._last_preview >= PREVIEW_EVERY_S or step >= total):
            self._last_preview = now
            strip = latents_to_rgb(latents)
            if (self.latents.width, self.latents.height) != (strip.shape[1], strip.shape[0]):
                self.latents.width, self.latents.height = strip.shape[1], strip.shape[0]
            self.latents.put_image_data(strip, 0, 0)

    def _run(self) -> None:
        cancelled = _cancelled_type()
        self._t0 = time.monotonic()
        self._last_preview = 0.0
        try:
            with session_lock(self.session):
                video = self.session.generate(
                    seed=int(self.seed.value),
                    num_frames=int(self.frames.value),
                    steps=int(self.steps.value),
                    callback=self._on_step,
                    progress=False,
                )
            self.player.show(video)
            self.status.value = f"done in {time.monotonic() - self._t0:.1f} s"
        except BaseException as exc:  # shown in the app; a thread's traceback would be lost
            if cancelled is not None and isinstance(exc, cancelled):
                self.status.value = "cancelled (the last video is kept)"
            else:
                self.status.value = "failed"
                self.show_error(f"{type(exc).__name__}: {exc}")
        finally:
            self.generate_button.disabled = False
            self.cancel_button.disabled = True
