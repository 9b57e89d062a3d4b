"""Trajectory instructions: move regions of an image along paths, frame by frame.

The paper's Trajectory Instruction drags the content of a masked region from a handle point to a
target point in the intermediate image x~, giving the edited image x~'. This module is the pure,
model-free part of that: it turns a list of trajectories into

* ``apply_endpoint``: x~' (every region at its target), the paper's edit;
* ``animate``: one image per frame, each region at its eased position along its path at that
  frame's time, which the session shows as an instant motion preview and uses as per-frame
  conditioning of the video model;
* ``animate_with_masks``: the same frames plus where the moving content is in each frame.

Conventions (the widgets and the session rely on them):

* Coordinates are image pixels, x to the right and y down; pixel (row r, column c) has its centre
  at (x=c, y=r). Points must satisfy ``0 <= x <= width`` and ``0 <= y <= height``.
* Frame i of F has clip time ``t = i / (F - 1)`` (``t = 0`` when F is 1). A trajectory's progress
  is ``easing(clip((t - start) / (end - start), 0, 1))`` and its handle sits at that fraction of
  the arc length of the polyline through its points. "ease-in-out" is the cubic smoothstep
  ``3p^2 - 2p^3``. So a one-frame clip is just the image; ``apply_endpoint`` gives x~'.
* Kinds: "object" moves its region (the hole it leaves is filled from the surrounding background
  by a push-pull pyramid fill); "anchor" keeps its region bitwise unchanged in every frame, in
  frame coordinates, on top of everything else; "camera" translates the whole frame (edges
  replicated) by the handle's displacement, after objects have moved. Camera displacements add
  up; a camera trajectory's mask is ignored.
* Objects are drawn in list order (later ones on top); sub-pixel positions use a bilinear shift
  of premultiplied colour and alpha, so the region's centroid follows the path exactly.

Masks in ``to_dict`` are run-length encoded (see ``Trajectory.to_dict``) because a 512 x 512 mask
as nested lists is megabytes of JSON; ``from_dict`` also accepts nested lists of bools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ivcore.errors import InstructionError
from ivcore.stages.raster import Buffers, bbox, fill_holes, shift_mask, shift_patch, translate

EASINGS = ("linear", "ease-in-out")
KINDS = ("object", "anchor", "camera")
_FIELDS = ("points", "mask", "radius", "easing", "start", "end", "kind")


# --------------------------------------------------------------------------------------------
# The instruction
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Trajectory:
    """A handle point dragged along a path to a target, moving (or pinning) a region of the image.

    ``points``: handle first, then path points, target last, as (x, y) image pixels.
    ``mask``: bool (height, width) region that moves; None means a disk of ``radius`` pixels
    around the handle. ``start``/``end``: the fractions of the clip during which the motion
    happens. ``kind``: "object", "anchor" (the region stays still) or "camera" (the whole frame
    pans along the path). Construction does not check anything, so that a widget can build one
    from raw input; ``validate_trajectories`` does, and names the offending index.
    """

    points: list[tuple[float, float]]
    mask: np.ndarray | None = None
    radius: float = 16.0
    easing: str = "linear"
    start: float = 0.0
    end: float = 1.0
    kind: str = "object"

    def __eq__(self, other: object) -> bool:
        """Compare field by field; masks compare by content (numpy's ``==`` is elementwise)."""
        if not isinstance(other, Trajectory):
            return NotImplemented
        if (self.mask is None) != (other.mask is None):
            return False
        if self.mask is not None and not np.array_equal(self.mask, other.mask):
            return False
        mine = [[float(v) for v in p] for p in self.points]
        theirs = [[float(v) for v in p] for p in other.points]
        return mine == theirs and all(
            getattr(self, k) == getattr(other, k) for k in ("radius", "easing", "start", "end", "kind")
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like a plain dataclass with eq

    def to_dict(self, mask_format: str = "rle") -> dict[str, Any]:
        """Plain JSON types, for Session.save and for widget traits.

        The mask is None, or with ``mask_format="rle"`` (the default) a dict
        ``{"shape": [height, width], "runs": [n0, n1, ...]}``: lengths of alternating runs of
        False and True over the row-major flattened mask, starting with False (so ``n0`` may be
        0). ``mask_format="list"`` gives nested lists of bools instead.
        """
        if mask_format not in ("rle", "list"):
            raise InstructionError("mask_format", mask_format, "'rle' or 'list'")
        mask: Any = None
        if self.mask is not None:
            arr = np.asarray(self.mask, dtype=bool)
            mask = _rle_encode(arr) if mask_format == "rle" else arr.tolist()
        return {
            "points": [[float(x), float(y)] for x, y in self.points],
            "mask": mask,
            "radius": float(self.radius),
            "easing": str(self.easing),
            "start": float(self.start),
            "end": float(self.end),
            "kind": str(self.kind),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        """Inverse of ``to_dict``; checks structure only (``validate_trajectories`` checks values)."""
        return _from_dict(d, "trajectory")


def _rle_encode(mask: np.ndarray) -> dict[str, Any]:
    flat = mask.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"shape": [int(mask.shape[0]), int(mask.shape[1])], "runs": [int(r) for r in runs]}


def _rle_decode(data: dict[str, Any], field: str) -> np.ndarray:
    allowed = '{"shape": [height, width], "runs": [non-negative ints summing to height*width]}'
    try:
        h, w = (int(v) for v in data["shape"])
        runs = np.asarray(data["runs"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise InstructionError(field, data, allowed) from exc
    if h < 1 or w < 1 or runs.ndim != 1 or (runs < 0).any() or int(runs.sum()) != h * w:
        raise InstructionError(field, data, allowed)
    values = np.arange(runs.size) % 2 == 1
    return np.repeat(values, runs).reshape(h, w)


def _from_dict(d: Any, prefix: str) -> Trajectory:
    if not isinstance(d, dict):
        raise InstructionError(prefix, d, "a Trajectory or a dict with its fields")
    unknown = sorted(set(d) - set(_FIELDS))
    if unknown:
        raise InstructionError(f"{prefix}.{unknown[0]}", d[unknown[0]], f"one of the keys {_FIELDS}")
    if "points" not in d:
        raise InstructionError(f"{prefix}.points", None, "a list of two or more (x, y) points")
    points = d["points"]
    if isinstance(points, (list, tuple)):
        points = [tuple(p) if isinstance(p, (list, tuple)) else p for p in points]
    mask = d.get("mask")
    if isinstance(mask, dict):
        mask = _rle_decode(mask, f"{prefix}.mask")
    elif isinstance(mask, (list, tuple)):
        mask = _list_to_array(mask, f"{prefix}.mask")
    defaults = Trajectory(points=[])
    kwargs = {k: d.get(k, getattr(defaults, k)) for k in ("radius", "easing", "start", "end", "kind")}
    return Trajectory(points=points, mask=mask, **kwargs)


def _list_to_array(value: Any, field: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise InstructionError(field, value, "a rectangular bool array (height, width)") from exc


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def validate_trajectories(trajectories: Any, size: tuple[int, int]) -> list[Trajectory]:
    """Check trajectories against an image of ``size`` = (width, height); return clean copies.

    Raises InstructionError naming ``trajectories[i].<field>`` so a notebook user sees which
    drag is wrong. Never mutates its input: the session must keep its last good trajectories.
    The copies have points as float tuples, masks as fresh bool arrays (or None) and float
    radius/start/end.
    """
    width, height = _check_size(size)
    if not isinstance(trajectories, (list, tuple)):
        raise InstructionError("trajectories", trajectories, "a list of Trajectory objects or dicts")
    out = []
    for i, item in enumerate(trajectories):
        prefix = f"trajectories[{i}]"
        if isinstance(item, dict):
            item = _from_dict(item, prefix)
        elif not isinstance(item, Trajectory):
            raise InstructionError(prefix, item, "a Trajectory or a dict with its fields")
        out.append(_normalize(item, prefix, width, height))
    return out


def _check_size(size: Any) -> tuple[int, int]:
    ok = isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_real(v) for v in size)
    if not ok or int(size[0]) < 1 or int(size[1]) < 1:
        raise InstructionError("size", size, "(width, height), positive integers")
    return int(size[0]), int(size[1])


def _normalize(traj: Trajectory, prefix: str, width: int, height: int) -> Trajectory:
    points = _check_points(traj.points, f"{prefix}.points", width, height)
    radius = _check_number(traj.radius, f"{prefix}.radius", "a finite number > 0", lambda r: r > 0)
    if not isinstance(traj.easing, str) or traj.easing not in EASINGS:
        raise InstructionError(f"{prefix}.easing", traj.easing, f"one of {EASINGS}")
    if not isinstance(traj.kind, str) or traj.kind not in KINDS:
        raise InstructionError(f"{prefix}.kind", traj.kind, f"one of {KINDS}")
    start, end = _check_window(traj.start, traj.end, prefix)
    mask = _check_mask(traj.mask, f"{prefix}.mask", width, height)
    return Trajectory(points, mask, radius, traj.easing, start, end, traj.kind)


def _check_points(points: Any, field: str, width: int, height: int) -> list[tuple[float, float]]:
    allowed = f"a list of two or more (x, y) points with 0 <= x <= {width} and 0 <= y <= {height}"
    if isinstance(points, np.ndarray):
        points = points.tolist()
    if not isinstance(points, (list, tuple)) or len(points) < 2:
        raise InstructionError(field, points, allowed)
    out = []
    for j, p in enumerate(points):
        if isinstance(p, np.ndarray):
            p = p.tolist()
        if not isinstance(p, (list, tuple)) or len(p) != 2 or not all(_is_real(v) for v in p):
            raise InstructionError(f"{field}[{j}]", p, allowed)
        x, y = float(p[0]), float(p[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InstructionError(f"{field}[{j}]", p, "finite coordinates (no NaN or inf)")
        if not (0.0 <= x <= width and 0.0 <= y <= height):
            raise InstructionError(f"{field}[{j}]", p, allowed)
        out.append((x, y))
    return out


def _check_number(value: Any, field: str, allowed: str, ok: Any) -> float:
    if not _is_real(value) or not math.isfinite(float(value)) or not ok(float(value)):
        raise InstructionError(field, value, allowed)
    return float(value)


def _check_window(start: Any, end: Any, prefix: str) -> tuple[float, float]:
    def in_unit(v: float) -> bool:
        return 0.0 <= v <= 1.0

    s = _check_number(start, f"{prefix}.start", "a number in [0, 1], less than end", in_unit)
    e = _check_number(end, f"{prefix}.end", "a number in [0, 1], greater than start", in_unit)
    if s >= e:
        raise InstructionError(f"{prefix}.start", (s, e), "start < end (fractions of the clip)")
    return s, e


def _check_mask(mask: Any, field: str, width: int, height: int) -> np.ndarray | None:
    if mask is None:
        return None
    allowed = f"None or a bool array of shape ({height}, {width}) with at least one True"
    if isinstance(mask, (list, tuple)):
        mask = _list_to_array(mask, field)
    if not isinstance(mask, np.ndarray):
        raise InstructionError(field, mask, allowed)
    if mask.dtype != np.bool_:
        raise InstructionError(field, f"array of dtype {mask.dtype}", allowed + " (use mask > 0)")
    if mask.shape != (height, width):
        raise InstructionError(field, f"array of shape {mask.shape}", allowed)
    if not mask.any():
        raise InstructionError(field, "an all-False mask", allowed)
    return mask.copy()


# --------------------------------------------------------------------------------------------
# Paths and timing
# --------------------------------------------------------------------------------------------


def _ease(p: float, easing: str) -> float:
    return p * p * (3.0 - 2.0 * p) if easing == "ease-in-out" else p


class _Path:
    """A polyline parametrised by arc length, with its timing window and easing."""

    def __init__(self, traj: Trajectory):
        self.points = np.asarray(traj.points, dtype=np.float64).reshape(-1, 2)
        seg = np.hypot(*np.diff(self.points, axis=0).T)
        self.cum = np.concatenate([[0.0], np.cumsum(seg)])
        self.easing, self.start, self.end = traj.easing, float(traj.start), float(traj.end)

    def progress(self, t: float) -> float:
        p = (t - self.start) / (self.end - self.start)
        return _ease(min(1.0, max(0.0, p)), self.easing)

    def position(self, t: float) -> tuple[float, float]:
        p = self.progress(t)
        if p >= 1.0:  # exact target, free of float error in the arc-length arithmetic
            return float(self.points[-1, 0]), float(self.points[-1, 1])
        s = p * self.cum[-1]
        k = int(np.searchsorted(self.cum, s, side="right")) - 1
        k = min(max(k, 0), len(self.points) - 2)
        length = self.cum[k + 1] - self.cum[k]
        f = 0.0 if length <= 0 else (s - self.cum[k]) / length
        x, y = self.points[k] + f * (self.points[k + 1] - self.points[k])
        return float(x), float(y)

    def displacement(self, t: float) -> tuple[float, float]:
        x, y = self.position(t)
        return x - float(self.points[0, 0]), y - float(self.points[0, 1])


def trajectory_path_position(traj: Trajectory, t: float) -> tuple[float, float]:
    """The handle's eased position at clip time ``t`` in [0, 1] (what frames are measured against)."""
    if isinstance(traj, dict):
        traj = Trajectory.from_dict(traj)
    return _Path(traj).position(float(t))


def frame_times(num_frames: int) -> list[float]:
    """Clip time of each frame: ``i / (F - 1)``, and ``[0.0]`` for a single frame."""
    if num_frames == 1:
        return [0.0]
    return [i / (num_frames - 1) for i in range(num_frames)]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _as_rgb(image: Any) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    shown = f"array {image.shape} {image.dtype}" if isinstance(image, np.ndarray) else image
    raise InstructionError("image", shown, "a PIL.Image or an (H, W, 3) uint8 array")


def _check_num_frames(num_frames: Any) -> int:
    if not isinstance(num_frames, (int, np.integer)) or isinstance(num_frames, bool) or num_frames < 1:
        raise InstructionError("num_frames", num_frames, "an integer >= 1")
    return int(num_frames)


def _region_mask(traj: Trajectory, width: int, height: int) -> np.ndarray:
    """The trajectory's mask, or the disk of ``radius`` around the handle (never empty)."""
    if traj.mask is not None:
        return traj.mask
    hx, hy = traj.points[0]
    ys, xs = np.ogrid[:height, :width]
    disk = (xs - hx) ** 2 + (ys - hy) ** 2 <= traj.radius**2
    disk[min(height - 1, round(hy)), min(width - 1, round(hx))] = True
    return disk


class _Layer:
    """A moving region: premultiplied RGBA patch on its bounding box, and its path."""

    def __init__(self, image: np.ndarray, mask: np.ndarray, path: _Path):
        self.y0, y1, self.x0, x1 = bbox(mask)
        alpha = mask[self.y0 : y1, self.x0 : x1].astype(np.float32)[..., None]
        rgb = image[self.y0 : y1, self.x0 : x1].astype(np.float32)
        self.patch = np.concatenate([rgb * alpha, alpha], axis=2)
        self.path = path
        self.region = mask

    def draw(self, frame: np.ndarray, d: tuple[float, float], where: np.ndarray | None) -> None:
        """Composite the patch displaced by ``d`` = (dx, dy) onto ``frame`` (in place)."""
        ix, iy = math.floor(d[0]), math.floor(d[1])
        p = shift_patch(self.patch, d[0] - ix, d[1] - iy)
        h, w = frame.shape[:2]
        ty, tx = self.y0 + iy, self.x0 + ix
        fy0, fy1 = max(ty, 0), min(ty + p.shape[0], h)
        fx0, fx1 = max(tx, 0), min(tx + p.shape[1], w)
        if fy0 >= fy1 or fx0 >= fx1:
            return
        sub = p[fy0 - ty : fy1 - ty, fx0 - tx : fx1 - tx]
        alpha = sub[..., 3:]
        region = frame[fy0:fy1, fx0:fx1]
        mixed = region.astype(np.float32)
        mixed *= 1.0 - alpha
        mixed += sub[..., :3]
        mixed += 0.5
        region[...] = mixed.astype(np.uint8)
        if where is not None:
            where[fy0:fy1, fx0:fx1] |= alpha[..., 0] >= 0.5


class _Scene:
    """Everything that does not depend on time, computed once per call."""

    def __init__(self, image: np.ndarray, trajectories: list[Trajectory]):
        h, w = image.shape[:2]
        self.image = image
        self.buffers: Buffers | None = None
        self.layers: list[_Layer] = []
        self.cameras = [_Path(t) for t in trajectories if t.kind == "camera"]
        hole = np.zeros((h, w), bool)
        anchor = np.zeros((h, w), bool)
        for traj in trajectories:
            if traj.kind == "object":
                mask = _region_mask(traj, w, h)
                self.layers.append(_Layer(image, mask, _Path(traj)))
                hole |= mask
            elif traj.kind == "anchor":
                anchor |= _region_mask(traj, w, h)
        self.rest = hole  # where object content is before anything moves
        parts = [layer.region for layer in self.layers]
        self.background = fill_holes(image, hole, parts) if self.layers else image
        self.anchor_box = bbox(anchor) if anchor.any() else None
        if self.anchor_box:
            y0, y1, x0, x1 = self.anchor_box
            self.anchor_mask = anchor[y0:y1, x0:x1, None]

    def render(self, t: float, out: np.ndarray, where: np.ndarray | None) -> None:
        """Write the frame at clip time ``t`` into ``out`` (and moving-content mask into ``where``)."""
        shifts = [layer.path.displacement(t) for layer in self.layers]
        cam = [c.displacement(t) for c in self.cameras]
        cx, cy = sum(d[0] for d in cam), sum(d[1] for d in cam)
        if not any(d != (0.0, 0.0) for d in shifts) and cx == 0 and cy == 0:
            out[...] = self.image  # nothing has moved yet: bitwise the image
            if where is not None:
                where[...] = self.rest
        else:
            self._compose(shifts, (cx, cy), out, where)
        self._pin_anchors(out, where)

    def _compose(self, shifts: list, cam: tuple[float, float], out: np.ndarray, where: Any) -> None:
        moving = cam != (0.0, 0.0)
        canvas = self._buffers().canvas if moving else out
        canvas[...] = self.background
        for layer, d in zip(self.layers, shifts, strict=True):
            layer.draw(canvas, d, where)
        if moving:
            translate(canvas, cam[0], cam[1], out, self._buffers())
            if where is not None:
                where[...] = shift_mask(where, cam[0], cam[1])

    def _buffers(self) -> Buffers:
        if self.buffers is None:
            self.buffers = Buffers(self.image.shape)
        return self.buffers

    def _pin_anchors(self, out: np.ndarray, where: np.ndarray | None) -> None:
        if self.anchor_box is None:
            return
        y0, y1, x0, x1 = self.anchor_box
        np.copyto(out[y0:y1, x0:x1], self.image[y0:y1, x0:x1], where=self.anchor_mask)
        if where is not None:
            where[y0:y1, x0:x1] &= ~self.anchor_mask[..., 0]


def _render(image: Any, trajectories: Any, num_frames: Any, masks: bool) -> tuple[np.ndarray, Any]:
    img = _as_rgb(image)
    n = _check_num_frames(num_frames)
    h, w = img.shape[:2]
    scene = _Scene(img, validate_trajectories(trajectories, (w, h)))
    frames = np.empty((n, h, w, 3), np.uint8)
    where = np.zeros((n, h, w), bool) if masks else None
    for i, t in enumerate(frame_times(n)):
        scene.render(t, frames[i], None if where is None else where[i])
    return frames, where


def animate(image: Any, trajectories: Any, num_frames: int) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 of the image with every trajectory applied at each frame's time.

    Frame 0 is the image itself; the last frame equals ``apply_endpoint``. This is the motion
    preview the user sees while dragging and the per-frame conditioning of the video model, so
    it must be fast (a few ms per 512 x 512 frame on a laptop CPU) and must not invent content.
    """
    return _render(image, trajectories, num_frames, masks=False)[0]


def animate_with_masks(image: Any, trajectories: Any, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``animate`` plus bool masks (F, H, W) of where object content is in each frame.

    The session blends the moving region's x0 into the first denoising steps with these, so
    the masks follow the region (camera motion included, anchors excluded), covering every
    pixel that is at least half the region's colour after sub-pixel shifting.
    """
    return _render(image, trajectories, num_frames, masks=True)


def apply_endpoint(image: Any, trajectories: Any) -> np.ndarray:
    """x~' of the paper: the image with every region at its target (= animate's last frame)."""
    img = _as_rgb(image)
    h, w = img.shape[:2]
    scene = _Scene(img, validate_trajectories(trajectories, (w, h)))
    out = np.empty_like(img)
    scene.render(1.0, out, None)
    return out
