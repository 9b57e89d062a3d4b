"""Pixel operations of the trajectory renderer (`ivcore.trajectory`), apart from its geometry.

* Hole filling: where an object left, colour is pulled in from the surroundings by a push-pull
  pyramid (smooth, no seams, a few milliseconds at 512 x 512).
* Sub-pixel shifts: a bilinear shift of premultiplied patches and a separable shift of whole
  frames with edges replicated, both mass-preserving so that centroids follow a path exactly.
"""

from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------------------------------------
# Hole filling (push-pull pyramid): smooth colour from the region's surroundings
# --------------------------------------------------------------------------------------------


def _upsample2(coarse: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Bilinear 2x upsampling along one axis to length ``n`` (half-pixel aligned, edges clamped).

    Written with slices rather than gathers: this runs once per pyramid level and axis.
    """
    c = np.moveaxis(coarse, axis, 0)
    prev = np.concatenate([c[:1], c[:-1]])
    nxt = np.concatenate([c[1:], c[-1:]])
    out = np.empty((2 * c.shape[0],) + c.shape[1:], c.dtype)
    out[0::2] = 0.75 * c + 0.25 * prev
    out[1::2] = 0.75 * c + 0.25 * nxt
    return np.moveaxis(out[:n], 0, axis)


def _downsample(s: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 mean of premultiplied colour ``s`` and weight ``k`` (odd sizes padded with weight 0)."""
    h, w = k.shape
    ph, pw = h % 2, w % 2
    if ph or pw:
        s = np.pad(s, ((0, ph), (0, pw), (0, 0)))
        k = np.pad(k, ((0, ph), (0, pw)))
    return _pool2(s), _pool2(k)


def _pool2(a: np.ndarray) -> np.ndarray:
    """Mean of 2x2 blocks: rows first (contiguous halves), then columns on half the data."""
    rows = a[0::2] + a[1::2]
    out = rows[:, 0::2] + rows[:, 1::2]
    out *= 0.25
    return out


def _push_pull(s: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Colour everywhere: known colour where k = 1, coarser-level colour blended in elsewhere."""
    h, w = k.shape
    if k.min() > 0:  # every block sees some background: its mean is the fill (and recursion ends)
        return s / k[..., None]
    if h == 1 and w == 1:
        return s
    s2, k2 = _downsample(s, k)
    coarse = _push_pull(s2, k2)
    up = _upsample2(_upsample2(coarse, h, 0), w, 1)
    return s + (1.0 - k)[..., None] * up


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def fill_holes(image: np.ndarray, hole: np.ndarray, parts: list[np.ndarray] | None = None) -> np.ndarray:
    """``image`` with the ``hole`` pixels replaced by a smooth fill from their surroundings.

    Why push-pull: it is a few numpy passes (no cv2, no scipy), always fills the whole hole,
    and gives the blurred-background colour a diffusion inpaint would, which is what the video
    model needs to see where an object used to be. A 2-pixel ring around the hole is excluded
    from the sources so that anti-aliased object edges do not bleed in. ``parts`` (masks whose
    union is ``hole``, e.g. one per moving region) are filled one crop each, so small regions
    far apart cost their own size rather than the whole image's.
    """
    out = image.copy()
    if not hole.any():
        return out
    known_all = ~_dilate(hole, 2)
    if not known_all.any():
        known_all = ~hole
    if not known_all.any():  # the hole covers everything: the image's mean colour is the best guess
        out[hole] = np.round(image.reshape(-1, 3).mean(0)).astype(np.uint8)
        return out
    for part in parts if parts is not None else [hole]:
        _fill_part(out, image, part, known_all)
    return out


def _fill_part(out: np.ndarray, image: np.ndarray, part: np.ndarray, known_all: np.ndarray) -> None:
    """Fill ``part`` from the known pixels in a crop of a few times its size around it."""
    y0, y1, x0, x1 = bbox(part)
    margin = max(8, (y1 - y0) // 2, (x1 - x0) // 2)
    h, w = part.shape
    known = np.zeros((0, 0), bool)
    while not known.any():  # widen the crop until it sees some background
        cy0, cy1 = max(0, y0 - margin), min(h, y1 + margin)
        cx0, cx1 = max(0, x0 - margin), min(w, x1 + margin)
        known = known_all[cy0:cy1, cx0:cx1]
        margin *= 2
    k = known.astype(np.float32)
    crop = image[cy0:cy1, cx0:cx1].astype(np.float32)
    crop *= k[..., None]
    coarse = _push_pull(*_downsample(crop, k))
    ys, xs = np.nonzero(part[cy0:cy1, cx0:cx1])
    values = _sample_half(coarse, ys, xs)
    out[cy0 + ys, cx0 + xs] = np.clip(values + 0.5, 0, 255).astype(np.uint8)


def _sample_half(coarse: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of a half-resolution image at full-resolution pixels (ys, xs).

    Only the hole's pixels need the full-resolution level, so they are gathered directly
    instead of upsampling the whole crop.
    """
    h, w = coarse.shape[:2]
    u, v = ys * 0.5 - 0.25, xs * 0.5 - 0.25
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = (u - u0)[:, None].astype(np.float32), (v - v0)[:, None].astype(np.float32)
    r0, r1 = np.clip(u0, 0, h - 1), np.clip(u0 + 1, 0, h - 1)
    c0, c1 = np.clip(v0, 0, w - 1), np.clip(v0 + 1, 0, w - 1)
    top = coarse[r0, c0] * (1 - fv) + coarse[r0, c1] * fv
    bottom = coarse[r1, c0] * (1 - fv) + coarse[r1, c1] * fv
    return top * (1 - fu) + bottom * fu


def shift_patch(p: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Bilinear sub-pixel shift by (fx, fy) in [0, 1): mass-preserving, so centroids move exactly."""
    if fx > 0:
        q = np.zeros((p.shape[0], p.shape[1] + 1, p.shape[2]), np.float32)
        q[:, :-1] = p * (1.0 - fx)
        q[:, 1:] += p * fx
        p = q
    if fy > 0:
        q = np.zeros((p.shape[0] + 1, p.shape[1], p.shape[2]), np.float32)
        q[:-1] = p * (1.0 - fy)
        q[1:] += p * fy
        p = q
    return p


def _shift_edge(src: np.ndarray, ox: int, oy: int, out: np.ndarray) -> np.ndarray:
    """``out(y, x) = src(clip(y - oy), clip(x - ox))``: an integer shift with replicated edges.

    ``out`` may be taller or wider than ``src``. Slices and broadcasts only (a gather over a
    512 x 512 frame costs ~10x more), written into a caller's buffer (fresh multi-megabyte
    arrays cost page faults on every frame).
    """
    h, w = src.shape[:2]
    h2, w2 = out.shape[:2]
    y0, y1 = min(max(oy, 0), h2), min(max(oy + h, 0), h2)
    x0, x1 = min(max(ox, 0), w2), min(max(ox + w, 0), w2)
    if y0 >= y1 or x0 >= x1:  # shifted entirely out: every pixel is a corner or edge value
        rows = np.clip(np.arange(h2) - oy, 0, h - 1)
        cols = np.clip(np.arange(w2) - ox, 0, w - 1)
        out[...] = src[rows[:, None], cols[None, :]]
        return out
    out[y0:y1, x0:x1] = src[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    out[y0:y1, :x0] = out[y0:y1, x0 : x0 + 1]
    out[y0:y1, x1:] = out[y0:y1, x1 - 1 : x1]
    out[:y0] = out[y0]
    out[y1:] = out[y1 - 1]
    return out


class Buffers:
    """Scratch arrays for whole-frame work, allocated once per call and reused by every frame."""

    def __init__(self, shape: tuple[int, ...]):
        tall = (shape[0] + 1, *shape[1:])  # one extra row for the vertical bilinear tap
        self.canvas = np.empty(shape, np.uint8)
        self.shifted = np.empty(tall, np.uint8)
        self.acc = np.empty(tall, np.float32)
        self.tap = np.empty(tall, np.float32)


def translate(src: np.ndarray, dx: float, dy: float, out: np.ndarray, buf: Buffers) -> None:
    """``out(y, x) = src(y - dy, x - dx)`` with bilinear weights and edge-replicated borders.

    Separable: the horizontal lerp runs on a frame one row taller (row r holds source row
    ``r - iy - 1``), so the vertical lerp is between two row-offset views of the same buffer.
    """
    ix, iy = math.floor(dx), math.floor(dy)
    fx, fy = dx - ix, dy - iy
    if fx == 0 and fy == 0:
        _shift_edge(src, ix, iy, out)
        return
    acc, tap = buf.acc, buf.tap
    np.multiply(_shift_edge(src, ix, iy + 1, buf.shifted), 1.0 - fx, out=acc, dtype=np.float32)
    if fx > 0:
        np.multiply(_shift_edge(src, ix + 1, iy + 1, buf.shifted), fx, out=tap, dtype=np.float32)
        acc += tap
    low, high = acc[1:], acc[:-1]  # source rows y - iy and y - iy - 1 for output row y
    if fy > 0:
        np.multiply(high, fy, out=tap[1:])
        low *= 1.0 - fy
        low += tap[1:]
    low += 0.5
    np.copyto(out, low, casting="unsafe")


def shift_mask(mask: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Integer (rounded) translation of a bool mask; what leaves the frame is dropped."""
    ix, iy = round(dx), round(dy)
    h, w = mask.shape
    out = np.zeros_like(mask)
    if abs(ix) >= w or abs(iy) >= h:
        return out
    out[max(iy, 0) : h + min(iy, 0), max(ix, 0) : w + min(ix, 0)] = mask[
        max(-iy, 0) : h - max(iy, 0), max(-ix, 0) : w - max(ix, 0)
    ]
    return out


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
