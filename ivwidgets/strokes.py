"""The paint canvas's shared stroke history: strokes checked, kept in arrival order, composited.

Why the kernel keeps it: the same PaintCanvas can be shown in several views at once (the Studio
displayed twice, two browser tabs, two people under jupyter-collaboration). A trait written by a
view is last-writer-wins, so two views that each sent their whole history would drop each other's
strokes. Instead each view sends one event per stroke (`PaintCanvas` messages), this history appends
it in the order the kernel receives it, and every view redraws from the kernel's ``strokes`` trait.

Each stroke arrives with its own pixels: the sending view's rendering of that stroke alone (opaque
colour, coverage in alpha), so the layer the session gets is made of the very pixels the user saw.
The composite follows the canvas's rules: a brush stroke goes over with ``opacity``, the eraser
removes by its coverage, ``clear`` empties the layer, a ``layer`` entry (the session's paint shown by
the kernel) goes over like an opaque stroke.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ivcore.instructions import check_float

from ._common import InstructionError, decode_png

TOOLS = ("brush", "eraser", "clear", "layer")
MAX_POINTS = 20_000  # coalesced pointer events of one long stroke
MAX_ID = 64
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def check_stroke(stroke: Any, size: tuple[int, int]) -> dict[str, Any]:
    """The stroke as plain data, checked; raises InstructionError naming the field and what is allowed."""
    if not isinstance(stroke, dict):
        raise InstructionError("stroke", stroke, "a dict with id, tool, color, size, opacity and points")
    sid = stroke.get("id")
    if not isinstance(sid, str) or not 0 < len(sid) <= MAX_ID:
        raise InstructionError("stroke.id", sid, f"a string of 1 to {MAX_ID} characters")
    tool = stroke.get("tool")
    if tool not in TOOLS[:3]:
        raise InstructionError("stroke.tool", tool, '"brush", "eraser" or "clear"')
    if tool == "clear":
        return {"id": sid, "tool": "clear"}
    colour = stroke.get("color", "#000000")
    if not isinstance(colour, str) or not _COLOUR.match(colour):
        raise InstructionError("stroke.color", colour, 'a colour "#rrggbb"')
    width, height = size
    points = stroke.get("points")
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
        raise InstructionError("stroke.points", points, f"a list of 1 to {MAX_POINTS} [x, y] pairs")
    reach = 4 * max(width, height)  # a stroke may start or end off the picture, not anywhere
    checked = []
    for k, point in enumerate(points):
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise InstructionError(f"stroke.points[{k}]", point, "an [x, y] pair of finite numbers")
        checked.append([check_float(v, f"stroke.points[{k}]", -reach, reach) for v in point])
    return {
        "id": sid,
        "tool": tool,
        "color": colour.lower(),
        "size": check_float(stroke.get("size", 6.0), "stroke.size", 0.5, 512.0),
        "opacity": check_float(stroke.get("opacity", 1.0), "stroke.opacity", 0.0, 1.0),
        "points": checked,
    }


def decode_raster(data: Any, size: tuple[int, int], max_bytes: int) -> np.ndarray:
    """A stroke's own pixels (PNG bytes from the view) as float32 (H, W, 4) in [0, 1]."""
    if data is None or len(data) == 0:
        raise InstructionError("stroke pixels", data, "a PNG of the stroke alone, the image's size")
    image = decode_png(data, field="stroke pixels", size=size, max_bytes=max_bytes)
    return np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0


class StrokeHistory:
    """Rasters by stroke id and the composite of a history, premultiplied, updated stroke by stroke."""

    def __init__(self, size: tuple[int, int]):
        self.size = size
        self._rasters: dict[str, np.ndarray] = {}
        self._composite = self._empty()

    def _empty(self) -> np.ndarray:
        width, height = self.size
        return np.zeros((height, width, 4), np.float32)

    def knows(self, stroke_id: str) -> bool:
        return stroke_id in self._rasters

    def keep(self, stroke_id: str, raster: np.ndarray | None) -> None:
        """Remember a stroke's pixels (None for a clear)."""
        self._rasters[stroke_id] = raster

    def forget_except(self, ids: set[str]) -> None:
        """Drop the pixels of strokes neither in the history nor on the redo stack."""
        for key in [k for k in self._rasters if k not in ids]:
            del self._rasters[key]

    def reset(self, size: tuple[int, int]) -> None:
        """A new picture size: no stroke of the old one applies."""
        self.size = size
        self._rasters.clear()
        self._composite = self._empty()

    def over(self, stroke: dict[str, Any]) -> None:
        """Composite one more stroke on top (the common case: a new stroke, a redo)."""
        out, tool = self._composite, stroke["tool"]
        if tool == "clear":
            out[:] = 0.0
            return
        raster = self._rasters[stroke["id"]]
        coverage = raster[..., 3:4]
        if tool == "eraser":
            out *= 1.0 - coverage
            return
        alpha = coverage * (stroke.get("opacity", 1.0) if tool == "brush" else 1.0)
        out[..., :3] = raster[..., :3] * alpha + out[..., :3] * (1.0 - alpha)
        out[..., 3:4] = alpha + out[..., 3:4] * (1.0 - alpha)

    def rebuild(self, strokes: list[dict[str, Any]]) -> None:
        """The composite of a whole history (after an undo)."""
        self._composite = self._empty()
        for stroke in strokes:
            self.over(stroke)

    def layer(self) -> np.ndarray | None:
        """The RGBA uint8 layer (straight alpha), or None when nothing is painted."""
        out = self._composite
        alpha = out[..., 3:4]
        if not (alpha > 0.5 / 255).any():
            return None
        rgb = np.divide(out[..., :3], alpha, out=np.zeros_like(out[..., :3]), where=alpha > 0)
        straight = np.concatenate([rgb, alpha], axis=-1)
        return np.clip(np.round(straight * 255.0), 0, 255).astype(np.uint8)
