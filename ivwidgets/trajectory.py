"""TrajectoryEditor: drag handles to targets over x~; synced as plain data into ``session.trajectories``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import anywidget
import numpy as np
import traitlets as t
from PIL import Image, ImageDraw

from ._common import BYTES, InstructionError, Jobs, SafeStateMixin, asset, encode_png, session_lock

KINDS = ("object", "anchor", "camera")
EASINGS = ("linear", "ease-in-out")
MAX_TRAJECTORIES = 64
MAX_POINTS = 1024


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InstructionError(field, value, "a finite number")
    return float(value)


def _points(value: Any, field: str, *, min_len: int = 1) -> list[tuple[float, float]]:
    if not isinstance(value, (list, tuple)) or not (min_len <= len(value) <= MAX_POINTS):
        raise InstructionError(field, value, f"a list of {min_len} to {MAX_POINTS} [x, y] pairs")
    out = []
    for k, p in enumerate(value):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise InstructionError(f"{field}[{k}]", p, "an [x, y] pair of finite numbers")
        out.append((_number(p[0], f"{field}[{k}][0]"), _number(p[1], f"{field}[{k}][1]")))
    return out


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """A bool mask as the editor's RLE shape: ivcore's RLE (``Trajectory.to_dict``) plus ``type``.

    ``runs`` are the lengths of alternating runs of False and True over the row-major mask,
    starting with False, so the front end can draw it and ivcore can read it back unchanged.
    """
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = [int(r) for r in np.diff(bounds)]
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"type": "rle", "shape": [int(mask.shape[0]), int(mask.shape[1])], "runs": runs}


def rasterize_mask(shapes: Any, size: tuple[int, int], field: str) -> np.ndarray | None:
    """Turn the editor's mask shapes (brush strokes, lasso polygons, RLE) into a bool (H, W) mask."""
    if shapes is None:
        return None
    w, h = size
    if isinstance(shapes, dict) and "runs" in shapes:  # a bare ivcore RLE, as Trajectory.to_dict writes
        shapes = [{"type": "rle", **shapes}]
    if not isinstance(shapes, list):
        raise InstructionError(field, shapes, "null or a list of mask shapes")
    if not shapes:
        return None
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    extra = np.zeros((h, w), dtype=bool)
    for k, shape in enumerate(shapes):
        where = f"{field}[{k}]"
        kind = shape.get("type") if isinstance(shape, dict) else None
        if kind == "lasso":
            pts = _points(shape.get("points"), f"{where}.points", min_len=3)
            draw.polygon(pts, fill=255)
        elif kind == "brush":
            pts = _points(shape.get("points"), f"{where}.points")
            size_px = _number(shape.get("size"), f"{where}.size")
            if not 0 < size_px <= 4 * max(w, h):
                raise InstructionError(f"{where}.size", size_px, f"a brush size in (0, {4 * max(w, h)}]")
            r = size_px / 2
            if len(pts) > 1:
                draw.line(pts, fill=255, width=max(1, round(size_px)), joint="curve")
            for x, y in pts:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
        elif kind == "rle":
            if list(shape.get("shape", [])) != [h, w]:
                raise InstructionError(f"{where}.shape", shape.get("shape"), f"[{h}, {w}] (the image size)")
            counts = shape.get("runs")
            if (
                not isinstance(counts, list)
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
                or sum(counts) != h * w
            ):
                raise InstructionError(f"{where}.runs", counts, f"non-negative run lengths summing to {h * w}")
            values = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
            extra |= values.reshape(h, w)
        else:
            raise InstructionError(where, shape, 'a dict with type "brush", "lasso" or "rle"')
    return (np.asarray(canvas) > 0) | extra


def parse_trajectories(data: Any, size: tuple[int, int]) -> list[Any]:
    """Validate the editor's plain data and build ``ivcore.Trajectory`` objects.

    Everything is checked before anything is built, so a bad entry anywhere leaves the session as it
    was. The session validates again (bounds, model-specific limits) when they are assigned.
    """
    from ivcore import Trajectory

    if not isinstance(data, list) or len(data) > MAX_TRAJECTORIES:
        raise InstructionError("trajectories", data, f"a list of at most {MAX_TRAJECTORIES} trajectories")
    out = []
    for i, item in enumerate(data):
        field = f"trajectories[{i}]"
        if not isinstance(item, dict):
            raise InstructionError(field, item, "a dict with points, kind, easing, radius, start, end, mask")
        points = _points(item.get("points"), f"{field}.points", min_len=2)
        kind = item.get("kind", "object")
        if kind not in KINDS:
            raise InstructionError(f"{field}.kind", kind, " or ".join(KINDS))
        easing = item.get("easing", "linear")
        if easing not in EASINGS:
            raise InstructionError(f"{field}.easing", easing, " or ".join(EASINGS))
        radius = _number(item.get("radius", 16.0), f"{field}.radius")
        if radius <= 0:
            raise InstructionError(f"{field}.radius", radius, "a positive number of pixels")
        start = _number(item.get("start", 0.0), f"{field}.start")
        end = _number(item.get("end", 1.0), f"{field}.end")
        if not 0.0 <= start < end <= 1.0:
            raise InstructionError(f"{field}.start/end", (start, end), "0 <= start < end <= 1")
        mask = rasterize_mask(item.get("mask"), size, f"{field}.mask")
        out.append(dict(points=points, mask=mask, radius=radius, easing=easing, start=start, end=end, kind=kind))
    return [Trajectory(**kw) for kw in out]


def trajectory_to_data(traj: Any) -> dict[str, Any]:
    """The editor's plain-data form of an ``ivcore.Trajectory`` (a mask becomes one RLE shape)."""
    mask = getattr(traj, "mask", None)
    return {
        "points": [[float(x), float(y)] for x, y in traj.points],
        "kind": str(getattr(traj, "kind", "object")),
        "easing": str(getattr(traj, "easing", "linear")),
        "radius": float(getattr(traj, "radius", 16.0)),
        "start": float(getattr(traj, "start", 0.0)),
        "end": float(getattr(traj, "end", 1.0)),
        "mask": None if mask is None else [rle_encode(np.asarray(mask, dtype=bool))],
    }


class TrajectoryEditor(SafeStateMixin, anywidget.AnyWidget):
    """Drag trajectories over the intermediate image x~ and watch the motion preview loop beside it.

    Trajectories are plain lists and dicts in the ``trajectories`` trait (no custom messages), so
    they survive a page reload and can be set from Python too. Each change is validated and assigned
    to ``session.trajectories``; a bad one sets ``error`` and leaves the session unchanged.
    """

    _esm = asset("trajectory_editor.js")
    _css = asset("widgets.css")

    image = t.Bytes(b"", help="PNG of the intermediate image x~").tag(**BYTES)
    width = t.Int(64, min=1).tag(sync=True)
    height = t.Int(64, min=1).tag(sync=True)
    trajectories = t.List(t.Dict()).tag(sync=True)
    selected = t.Int(-1, min=-1).tag(sync=True)
    tool = t.Enum(["drag", "path", "anchor", "mask", "lasso"], "drag").tag(sync=True)
    easing = t.Enum(list(EASINGS), "linear").tag(sync=True)
    radius = t.Float(16.0, min=0.5).tag(sync=True)
    mask_size = t.Float(8.0, min=0.5).tag(sync=True)
    live = t.Bool(True, help="sync while dragging (throttled), so the preview follows").tag(sync=True)
    preview = t.Bytes(b"", help="mp4 of the motion preview").tag(**BYTES)
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    def __init__(self, session: Any, *, show_preview: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.session = session
        self.show_preview = show_preview
        self._jobs = Jobs(on_error=self._job_failed)
        self._listeners: list[Callable[[TrajectoryEditor], None]] = []
        self._following = False  # True while the editor shows trajectories the session already has
        self.width, self.height = session.image.size
        current = list(getattr(session, "trajectories", None) or [])
        if current:
            self.set_trait("trajectories", [trajectory_to_data(tr) for tr in current])
        self.refresh()

    def refresh(self) -> None:
        """Recompute x~ (and the preview) in the background; call after the image or content changed."""
        size = self.session.image.size
        with self.hold_sync():
            self.width, self.height = size
        self.busy = True

        def job() -> None:
            try:
                with session_lock(self.session):
                    base = self.session.intermediate(edited=False)
                self.image = encode_png(base)
            finally:
                self.busy = False

        self._jobs.submit("image", job)
        self.update_preview()

    def update_preview(self) -> None:
        if not self.show_preview:
            return

        def job() -> None:
            with session_lock(self.session):
                video = self.session.motion_preview()
                data = video.to_mp4(scale="auto")
            self.preview = data

        self._jobs.submit("preview", job)

    def on_change(self, callback: Callable[[TrajectoryEditor], None]) -> None:
        """Call ``callback(self)`` after each accepted change of the trajectories."""
        self._listeners.append(callback)

    def wait(self, timeout: float | None = 60.0) -> bool:
        return self._jobs.wait(timeout)

    def show_session_trajectories(self) -> None:
        """Show the session's trajectories as they are now (a restored take, a new segment), applying nothing."""
        data = [trajectory_to_data(tr) for tr in getattr(self.session, "trajectories", None) or []]
        self._following = True
        try:
            with self.hold_sync():
                self.width, self.height = self.session.image.size
                if self.selected >= len(data):
                    self.selected = -1
                self.trajectories = data
                self.error = ""
        finally:
            self._following = False
        self.update_preview()

    @t.observe("trajectories")
    def _on_trajectories(self, change: dict[str, Any]) -> None:
        if self._following:
            return
        try:
            self.apply(change["new"])
        except (InstructionError, ValueError, TypeError) as exc:
            self.error = str(exc)

    def apply(self, data: Sequence[dict[str, Any]]) -> None:
        """Validate plain-data trajectories and assign them to the session (raises when bad)."""
        parsed = parse_trajectories(list(data), (self.width, self.height))
        self.session.trajectories = parsed
        self.error = ""
        for callback in self._listeners:
            callback(self)
        self.update_preview()

    def _job_failed(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
