"""PaintCanvas: paint on the image instruction x; the strokes of every view become ``session.paint(layer)``."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from ._common import BYTES, InstructionError, Jobs, SafeStateMixin, asset, encode_png, session_lock
from .strokes import StrokeHistory, check_stroke, decode_raster


class PaintCanvas(SafeStateMixin, anywidget.AnyWidget):
    """A brush, an eraser, undo/redo and clear over the session's image, shared by every view.

    The front end keeps a canvas at the image's native size. When a stroke ends (not on every move)
    it sends one message: the stroke as plain data plus its own pixels as a PNG. Undo, Redo and
    Clear are messages too. The kernel owns the history (``strokes``, ``undone``): it appends in the
    order strokes arrive, from any number of views (the same widget displayed twice, two tabs, two
    people under jupyter-collaboration), composites the layer (``ivwidgets.strokes``) and calls
    ``session.paint``; every view redraws from the synced history, so none is lost or doubled and a
    page reload or a late joiner sees it all. Traits would be last-writer-wins across views, which
    is why strokes are events, not a trait a view writes. A bad message sets ``error`` and leaves
    the session as it was.
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
    strokes = t.List(t.Dict(), help="the shared history, oldest first: kernel-owned, one dict a stroke").tag(sync=True)
    undone = t.List(t.Dict(), help="the shared redo stack (kernel-owned)").tag(sync=True)
    edited = t.Bytes(b"", help="PNG of the edited intermediate x~'").tag(**BYTES)
    show_edited = t.Bool(True, help="compute and show x~' beside the canvas").tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    #: Largest stroke PNG accepted from the front end. A 1024x1024 RGBA stroke of noise is ~4 MB.
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
        self._history = StrokeHistory(self.session.image.size)
        # strokes arrive on the kernel's shell thread; a restore shows the session's paint from a worker
        self._lock = threading.RLock()
        #: True while the canvas hands its composite to the session (its own "paint" announcement).
        self.applying = False
        self.on_msg(self._on_frontend_msg)
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

    # -- the shared history ----------------------------------------------------------------------
    def add_stroke(self, stroke: dict[str, Any], pixels: Any = None) -> bool:
        """Append one stroke (plain data as the front end sends it) with its own pixels (PNG bytes).

        Returns False for a stroke already in the history or on the redo stack (a message delivered
        twice is drawn once). Everything is checked before anything changes.
        """
        with self._lock:
            size = self.session.image.size
            stroke = check_stroke(stroke, size)
            if self._history.size != size:  # the picture changed size: strokes on the old one do not apply
                self._reset_history()
                with self.hold_sync():
                    self.strokes, self.undone = [], []
            if self._history.knows(stroke["id"]):
                return False
            raster = None if stroke["tool"] == "clear" else decode_raster(pixels, size, self.max_bytes)
            self._history.keep(stroke["id"], raster)
            self._history.over(stroke)
            with self.hold_sync():
                self.strokes = [*self.strokes, stroke]
                self.undone = []
            self._history.forget_except({s["id"] for s in self.strokes})
            self._apply()
            return True

    def undo(self) -> None:
        """Take back the newest stroke, whoever drew it (undo is shared, one stroke at a time)."""
        with self._lock:
            if not self.strokes:
                return
            *rest, last = self.strokes
            self._history.rebuild(rest)
            with self.hold_sync():
                self.strokes = rest
                self.undone = [*self.undone, last]
            self._apply()

    def redo(self) -> None:
        """Put back the stroke undone last."""
        with self._lock:
            if not self.undone:
                return
            *rest, stroke = self.undone
            self._history.over(stroke)
            with self.hold_sync():
                self.strokes = [*self.strokes, stroke]
                self.undone = rest
            self._apply()

    def clear(self) -> None:
        """Remove all paint: the history, the redo stack and the session's paint (not undoable)."""
        with self._lock:
            self._reset_history()
            with self.hold_sync():
                self.strokes = []
                self.undone = []
            self._apply()

    def _reset_history(self) -> None:
        self._history.reset(self.session.image.size)

    def show_session_paint(self) -> None:
        """Show the session's paint layer as it is now (a new image, a restored take), changing nothing.

        The history becomes one ``{"tool": "layer", "src": <PNG data URL>}`` entry that draws the
        layer, so new strokes go over it and Undo removes it; no layer: an empty history.
        """
        with self._lock:
            self._reset_history()
            layer = getattr(self.session, "paint_layer", None)
            strokes = []
            if layer is not None:
                data = encode_png(layer)
                entry = {"id": f"layer-{uuid.uuid4().hex[:12]}", "tool": "layer"}
                entry["src"] = "data:image/png;base64," + base64.b64encode(data).decode()
                self._history.keep(entry["id"], np.asarray(layer.convert("RGBA"), dtype=np.float32) / 255.0)
                self._history.over(entry)
                strokes = [entry]
            with self.hold_sync():
                self.strokes = strokes
                self.undone = []

        # -- front end -> kernel -------------------------------------------------------------------

    def _on_frontend_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        """One event from a view: {"event": "stroke", "stroke": {...}} with its PNG, "undo", "redo", "clear"."""
        event = content.get("event") if isinstance(content, dict) else None
        try:
            if event == "stroke":
                self.add_stroke(content.get("stroke"), buffers[0] if buffers else None)
            elif event == "undo":
                self.undo()
            elif event == "redo":
                self.redo()
            elif event == "clear":
                self.add_stroke({"id": str(content.get("id") or uuid.uuid4().hex), "tool": "clear"})
            else:
                raise InstructionError("paint event", event, '"stroke", "undo", "redo" or "clear"')
        except (InstructionError, ValueError, TypeError) as exc:
            self.error = str(exc)
            stroke = content.get("stroke") if isinstance(content, dict) else None
            if isinstance(stroke, dict) and isinstance(stroke.get("id"), str):
                self.send({"refused": stroke["id"]})  # the sending view stops showing it as pending

    def _apply(self) -> None:
        """The composite becomes the session's paint (None: no paint); then the listeners and x~'."""
        layer = self._history.layer()
        self.applying = True
        try:
            if layer is None:
                self.session.clear_paint()
            else:
                self.session.paint(layer)
        finally:
            self.applying = False
        self.error = ""
        for callback in self._listeners:
            callback(self)
        if self.show_edited:
            self.update_edited()

    def _job_failed(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
