"""PaintCanvas: paint on the image instruction x; each stroke becomes ``session.paint(layer)``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from ._common import (
    BYTES,
    BYTES_NO_ECHO,
    InstructionError,
    Jobs,
    SafeStateMixin,
    asset,
    decode_png,
    encode_png,
    session_lock,
)


class PaintCanvas(SafeStateMixin, anywidget.AnyWidget):
    """A brush, an eraser, undo/redo and clear over the session's image.

    The front end keeps a canvas at the image's native size and sends the whole RGBA layer as a PNG
    when a stroke ends (not on every move). The kernel validates it and calls ``session.paint``; a
    bad payload sets ``error`` and leaves the session as it was. The stroke history lives in the
    ``strokes`` trait (plain data), so undo/redo and the drawing survive a page reload.
    """

    _esm = asset("paint_canvas.js")
    _css = asset("widgets.css")

    image = t.Bytes(b"", help="PNG of the image instruction x").tag(**BYTES)
    width = t.Int(64, min=1).tag(sync=True)
    height = t.Int(64, min=1).tag(sync=True)
    color = t.Unicode("#ff0000").tag(sync=True)
    swatches = t.List(t.Unicode(), help="one-click brush colours ('#rrggbb') beside the picker").tag(sync=True)
    brush_size = t.Float(6.0, min=0.5, max=512.0).tag(sync=True)
    opacity = t.Float(1.0, min=0.0, max=1.0).tag(sync=True)
    tool = t.Enum(["brush", "eraser"], "brush").tag(sync=True)
    strokes = t.List(t.Dict(), help="undo history: one dict a stroke").tag(sync=True)
    undone = t.List(t.Dict(), help="redo stack").tag(sync=True)
    layer = t.Bytes(b"", help="PNG of the RGBA paint layer, sent on stroke end").tag(**BYTES_NO_ECHO)
    edited = t.Bytes(b"", help="PNG of the edited intermediate x~'").tag(**BYTES)
    show_edited = t.Bool(True, help="compute and show x~' beside the canvas").tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    #: Largest layer PNG accepted from the front end. A 1024x1024 RGBA layer of noise is ~4 MB.
    max_bytes: int = 16 * 1024 * 1024

    def __init__(self, session: Any, *, show_edited: bool = True, **kwargs: Any):
        if getattr(session, "models", {}).get("preset") == "shapes":
            # the shapes models know the world's colours: offer them, starting with yellow
            from ivcore.shapes.world import PALETTE, hex_colour

            kwargs.setdefault("swatches", [hex_colour(c) for c in PALETTE.values()])
            kwargs.setdefault("color", hex_colour(PALETTE["yellow"]))
        super().__init__(show_edited=show_edited, **kwargs)
        self.session = session
        self._jobs = Jobs(on_error=self._job_failed)
        self._listeners: list[Callable[[PaintCanvas], None]] = []
        self._following = False  # True while the canvas shows the session's paint set elsewhere
        self.refresh()

    # -- kernel -> front end -------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the session's current image (call after setting ``session.image`` elsewhere)."""
        image = self.session.image
        with self.hold_sync():
            self.width, self.height = image.size
            self.image = encode_png(image.convert("RGB"))
        if self.show_edited:
            self.update_edited()

    def update_edited(self) -> None:
        """Recompute x~' in the background and show it when ready."""
        self.busy = True

        def job() -> None:
            try:
                with session_lock(self.session):
                    edited = self.session.intermediate(edited=True)
                self.edited = encode_png(edited)
            finally:
                self.busy = False

        self._jobs.submit("edited", job)

    def on_paint(self, callback: Callable[[PaintCanvas], None]) -> None:
        """Call ``callback(self)`` after each accepted layer (the Studio refreshes its views)."""
        self._listeners.append(callback)

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Wait for background previews; True when idle."""
        return self._jobs.wait(timeout)

    def clear(self) -> None:
        """Remove all paint: the history, the layer and the session's paint."""
        with self.hold_sync():
            self.strokes = []
            self.undone = []
            self.layer = b""

    def show_session_paint(self) -> None:
        """Show the session's paint layer as it is now (a new image, a restored take), sending nothing back.

        The history becomes one ``{"tool": "layer", "src": <PNG data URL>}`` entry that draws the
        layer, so new strokes go over it and Undo removes it; no layer: an empty history.
        """
        layer = getattr(self.session, "paint_layer", None)
        strokes = []
        if layer is not None:
            src = "data:image/png;base64," + base64.b64encode(encode_png(layer)).decode()
            strokes = [{"tool": "layer", "src": src}]
        self._following = True
        try:
            with self.hold_sync():
                self.strokes = strokes
                self.undone = []
                self.layer = b""
        finally:
            self._following = False

    # -- front end -> kernel -------------------------------------------------------------------
    @t.observe("layer")
    def _on_layer(self, change: dict[str, Any]) -> None:
        if self._following:  # the kernel showing the session's own paint: nothing to apply
            return
        try:
            self.apply_layer(change["new"])
        except (InstructionError, ValueError, TypeError) as exc:
            self.error = str(exc)

    def apply_layer(self, data: bytes | memoryview | bytearray) -> None:
        """Validate a layer PNG and hand it to the session; raises InstructionError when bad."""
        if data is None or len(data) == 0:
            self.session.clear_paint()
        else:
            layer = decode_png(data, field="paint layer", size=(self.width, self.height), max_bytes=self.max_bytes)
            if not np.asarray(layer)[..., 3].any():
                self.session.clear_paint()  # an empty layer (after undo or clear) is no paint at all
            else:
                self.session.paint(layer)
        self.error = ""
        for callback in self._listeners:
            callback(self)
        if self.show_edited:
            self.update_edited()

    def _job_failed(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
