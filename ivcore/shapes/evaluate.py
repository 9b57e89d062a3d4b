"""Scoring generated videos against the shapes world's ground truth (the quality benchmark's core).

Every check builds a held-out scene with `ivcore.shapes.world`, runs the public Session API on it the
way a user would (image, content, paint, motion, trajectories, lambda), and measures the result
by colour segmentation. `benchmarks/quality.py` runs them over many scenes and writes the table;
the tests run a handful. Scores are plain dicts of numbers so they can go into JSON and tables.

Scenes are placed and rendered at the session's size (`s.size`: 64 x 64 for `Session.shapes()`,
held-out scenes drawn at 96 x 64 for `Session.shapes(size=(96, 64))`), never cropped from 64 x 64.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image, ImageDraw

from ivcore.shapes import world
from ivcore.shapes.data import pixels
from ivcore.trajectory import Trajectory, frame_times, trajectory_path_position

HELDOUT = world.HELDOUT_SEEDS.start


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 pictures (or stacks)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def vae_psnr(vae, count: int = 64, offset: int = 0, size: world.Size = world.SIZE) -> float:
    """Reconstruction PSNR of the VAE (posterior mean) on held-out world pictures of `size` (a side or (W, H))."""
    pictures = np.stack(
        [world.random_clip(HELDOUT + offset + i, size=size).frames[i % world.FRAMES] for i in range(count)]
    )
    x = pixels(pictures).to(vae.device, vae.dtype)
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mean).sample.float()
    out = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return psnr(out, pictures)


def frame_size(session) -> tuple[int, int]:
    """(W, H) the session's pictures have: the frame held-out scenes are drawn at for it."""
    width, height = session.size
    return int(width), int(height)


def _reset(session, image: np.ndarray, motion: str, content: str = "", strength: float = 0.0) -> None:
    session.clear_paint()
    session.trajectories = []
    session.image = Image.fromarray(image)
    session.content = content
    session.content_strength = strength
    session.motion = motion
    session.lam = 1.0


def shapes_present(frame: np.ndarray, colours) -> set[str]:
    """The colours of `colours` that segment into a blob of at least 12 pixels in `frame`."""
    return {c for c in colours if world.segment(frame, c).sum() >= 12}


# ------------------------------------------------------------------------------------ motion text


@dataclass
class MotionScore:
    kind: str
    caption: str
    ok: bool  # moved as captioned (move/pan) or stayed (still)
    shift: float  # px in the captioned direction (move/pan), max drift (still)
    consistent: float  # fraction of frames whose set of shape colours equals frame 0's
    frame0_psnr: float  # frame 0 against x (content_strength 0)


def score_motion(session, index: int, kind: str = "move", seed: int = 0) -> MotionScore:
    """Generate held-out clip `index` of `kind` from its first frame and motion caption, and score it."""
    clip = world.random_clip(HELDOUT + index, kind=kind, size=frame_size(session))
    _reset(session, clip.frames[0], clip.motion)
    return score_frames(clip, session.generate(seed=seed, progress=False).frames)


def score_frames(clip: world.Clip, frames: np.ndarray) -> MotionScore:
    """Score frames generated from `clip`'s first frame and motion caption against the clip's truth."""
    kind = clip.kind
    colours = [s.colour for s in clip.scene.shapes]
    expected = shapes_present(clip.frames[0], colours)
    consistent = float(np.mean([shapes_present(f, colours) == expected for f in frames]))
    if kind == "move":
        colour = clip.scene.shapes[clip.mover].colour
        shift = _shift(frames, colour, world.DIRECTIONS[clip.direction])
        ok = shift >= 6
    elif kind == "pan":
        # the camera pans right: the content moves left
        content_dir = (-1, 0) if clip.direction == "right" else (1, 0)
        shifts = [_shift(frames, c, content_dir) for c in colours]
        shift = float(np.mean(shifts))
        ok = shift >= 6
    else:
        drifts = [_drift(frames, c) for c in colours]
        shift = float(max(drifts))
        ok = shift <= 2
    return MotionScore(kind, clip.motion, bool(ok), shift, consistent, psnr(frames[0], clip.frames[0]))


def _shift(frames: np.ndarray, colour: str, direction: tuple[int, int]) -> float:
    """How far a colour's centroid moved from the first to the last frame along `direction` (nan: lost)."""
    first, last = world.centroid(world.segment(frames[0], colour)), world.centroid(world.segment(frames[-1], colour))
    if first is None or last is None:
        return float("nan")
    return (last[0] - first[0]) * direction[0] + (last[1] - first[1]) * direction[1]


def _drift(frames: np.ndarray, colour: str) -> float:
    """The largest distance of a colour's centroid from where it is in frame 0 (inf: lost)."""
    track = world.track(frames, colour)
    if any(p is None for p in track):
        return float("inf")
    return float(max(np.hypot(p[0] - track[0][0], p[1] - track[0][1]) for p in track))


# ------------------------------------------------------------------------------------ stories


@dataclass
class StoryScore:
    caption: str  # the scene's
    mover: str  # the shape told to move right, then down
    followed: tuple[bool, bool]  # each segment moved its shape >= 6 px the captioned way
    seam_psnr: float  # the second segment's first frame against the first segment's last frame (dB)
    kept: bool  # the same colours on both sides of the seam, each shape where it was (mask IoU >= 0.5)


def story_scene(index: int, size: world.Size = world.SIZE) -> world.Clip:
    """Held-out move clip `index` with its moving shape placed where it has room to go right, then down.

    Shapes in the way (overlapping the square the mover sweeps) are left out, so each segment's
    text can be followed: a story scores the continuation, not collisions. `size`: the frame (a side or (W, H)).
    """
    width, height = world.dims(size)
    clip = world.random_clip(HELDOUT + index, kind="move", size=size)
    mover = clip.scene.shapes[clip.mover]
    room_x, room_y = width - mover.size / 2 - 24, height - mover.size / 2 - 24  # ~20 px a segment, a margin
    placed = mover.moved(min(0, room_x - mover.x), min(0, room_y - mover.y))
    low, high = (placed.x - placed.size / 2 - 2, placed.y - placed.size / 2 - 2), (width, height)

    def clear(shape: world.Shape) -> bool:
        half = shape.size / 2
        return (
            shape.x + half < low[0] or shape.x - half > high[0] or shape.y + half < low[1] or shape.y - half > high[1]
        )

    shapes = tuple(
        placed if i == clip.mover else s for i, s in enumerate(clip.scene.shapes) if i == clip.mover or clear(s)
    )
    scene = world.Scene(clip.scene.background, shapes)
    return replace(clip, scene=scene, mover=shapes.index(placed), frames=np.stack([world.render(scene, size=size)]))


def score_story(session, index: int, seed: int = 0) -> StoryScore:
    """A two-segment story on held-out scene `index`: "the X moves right", continue, "the X moves down"."""
    from ivcore.story import render

    clip = story_scene(index, frame_size(session))
    mover = clip.scene.shapes[clip.mover]
    _reset(session, clip.frames[0], f"the {mover.name} moves right")
    session.story.clear()
    segments = [{"seed": seed, "lam": 0.0}, {"motion": f"the {mover.name} moves down", "seed": seed + 1}]
    render(session, segments)
    first, second = (t.video.frames for t in session.story.segments)
    followed = (_shift(first, mover.colour, (1, 0)) >= 6, _shift(second, mover.colour, (0, 1)) >= 6)
    colours = [s.colour for s in clip.scene.shapes]
    before, after = first[-1], second[0]
    present = shapes_present(before, colours)
    # each shape where it was, in its colour: IoU of its mask on both sides of the seam (shape classes of
    # small blurred shapes flip between neighbouring frames, so IoU is the steadier measure of "kept")
    kept = present == shapes_present(after, colours) and all(
        _iou(world.segment(before, c), world.segment(after, c)) >= 0.5 for c in present
    )
    return StoryScore(clip.scene.caption(), mover.name, followed, psnr(after, before), kept)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# ------------------------------------------------------------------------------------ Eq. 4 and paint


def painted_square(
    scene: world.Scene,
    colour: str = "yellow",
    size: int = 14,
    at: tuple[int, int] | None = None,
    frame_size: world.Size = world.SIZE,
) -> tuple[Image.Image, np.ndarray]:
    """An RGBA layer of `frame_size` (a side or (W, H)) with a filled square of `colour` (`size` px) centred
    `at` (default: where the scene has room, searched row by row), and its mask."""
    width, height = world.dims(frame_size)
    taken = [(s.x - s.size / 2, s.y - s.size / 2, s.x + s.size / 2, s.y + s.size / 2) for s in scene.shapes]
    spots = [at] if at is not None else [
        (x, y)
        for y in range(size // 2 + 4, height - size // 2 - 3, 4)
        for x in range(size // 2 + 4, width - size // 2 - 3, 4)
    ]  # fmt: skip
    for x, y in spots:
        if at is not None or world.is_free(x, y, size, taken):
            layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
            box = [x - size // 2, y - size // 2, x + size // 2 - 1, y + size // 2 - 1]
            ImageDraw.Draw(layer).rectangle(box, fill=(*world.PALETTE[colour], 255))
            return layer, np.asarray(layer)[..., 3] > 0
    raise ValueError("painted_square: no free spot in the scene")


def paint_scene(index: int, size: world.Size = world.SIZE) -> world.Clip:
    """A held-out still scene of `size` without yellow (the paint colour)."""
    k = 0
    while True:
        clip = world.random_clip(HELDOUT + 500_000 + index * 97 + k, kind="still", size=size)
        if "yellow" not in {s.colour for s in clip.scene.shapes}:
            return clip
        k += 1


def score_paint(session, index: int, lams=(0.0, 0.25, 0.5, 0.75, 1.0), seed: int = 0) -> dict:
    """Paint a yellow square on x; per lambda: IoU with the painted square and its area (fractions)."""
    clip = paint_scene(index, frame_size(session))
    _reset(session, clip.frames[0], "nothing moves")
    layer, mask = painted_square(clip.scene, frame_size=frame_size(session))
    session.paint(layer)
    videos = session.sweep(list(lams), seed=seed, progress=False)
    out = {}
    for lam, video in zip(lams, videos, strict=True):
        ious, areas = [], []
        for frame in video.frames:
            seg = world.segment(frame, "yellow")
            ious.append((seg & mask).sum() / max(1, (seg | mask).sum()))
            areas.append(seg.sum() / mask.sum())
        out[float(lam)] = {
            "present": float(np.mean(np.array(ious) >= 0.5)),
            "iou": float(np.mean(ious)),
            "area": float(np.mean(areas)),
        }
    return out


# ------------------------------------------------------------------------------------ trajectories


def requested_track(clip: world.Clip, frame0: np.ndarray) -> list[tuple[float, float]]:
    """Where the moving shape's colour centroid should be in each frame: frame 0's centroid plus the path."""
    colour = clip.scene.shapes[clip.mover].colour
    start = world.centroid(world.segment(frame0, colour))
    points = clip.trajectory.points
    times = frame_times(len(clip.frames))
    return [
        (start[0] + p[0] - points[0][0], start[1] + p[1] - points[0][1])
        for p in (trajectory_path_position(clip.trajectory, t) for t in times)
    ]


def score_trajectory(session, index: int, mode: str | None = "path", lam: float = 0.0, seed: int = 0) -> dict:
    """ObjMC (mean px from the requested track) and end-point error for held-out path clip `index`.

    `mode` "path" or "endpoint" sets the trajectory (with the shape's mask); None runs the plain
    video with no trajectory (the baseline).
    """
    clip = world.random_clip(HELDOUT + 700_000 + index, kind="path", size=frame_size(session))
    _reset(session, clip.frames[0], clip.motion)
    if mode is not None:
        session.trajectory_mode = mode
        session.trajectories = [clip.trajectory]
        session.lam = lam
    frames = session.generate(seed=seed, progress=False).frames
    colour = clip.scene.shapes[clip.mover].colour
    want = requested_track(clip, clip.frames[0])
    got = world.track(frames, colour)
    dist = [np.hypot(g[0] - w[0], g[1] - w[1]) if g is not None else 32.0 for g, w in zip(got, want, strict=True)]
    return {"objmc": float(np.mean(dist)), "end": float(dist[-1])}


def score_anchor(session, index: int, lam: float = 0.0, seed: int = 0) -> float | None:
    """Max drift (px) of an anchored shape while another follows a path (None: clip has one shape)."""
    clip = world.random_clip(HELDOUT + 800_000 + index, kind="path", num_shapes=2, size=frame_size(session))
    still = [i for i in range(len(clip.scene.shapes)) if i != clip.mover]
    if not still:
        return None
    _reset(session, clip.frames[0], clip.motion)
    anchored = still[0]
    shape = clip.scene.shapes[anchored]
    mask = world.shape_mask(clip.scene, anchored, frame_size(session))
    anchor = Trajectory(points=[(shape.x, shape.y)] * 2, mask=mask, kind="anchor")
    session.trajectories = [clip.trajectory, anchor]
    session.trajectory_mode = "path"
    session.lam = lam
    frames = session.generate(seed=seed, progress=False).frames
    return _drift(frames, shape.colour)


# ------------------------------------------------------------------------------------ P_img


def score_caption(session, index: int) -> dict:
    """Generate a scene from its caption (strength 1); are the named colours there with the named shapes?"""
    clip = world.random_clip(HELDOUT + 900_000 + index, kind="still", size=frame_size(session))
    session.clear_paint()
    session.trajectories = []
    session.image = Image.new("RGB", session.size, (128, 128, 128))
    session.content = clip.scene.caption()
    session.content_strength = 1.0
    picture = np.asarray(session.intermediate(edited=False))
    colours = [s.colour for s in clip.scene.shapes]
    found = shapes_present(picture, colours)
    kinds = {s.colour: world.classify_shape(_largest(world.segment(picture, s.colour))) for s in clip.scene.shapes}
    right = [s.colour in found and kinds[s.colour] == s.kind for s in clip.scene.shapes]
    return {"colours": float(np.mean([c in found for c in colours])), "shapes": float(np.mean(right)),
            "all": bool(all(right))}  # fmt: skip


def score_img2img(session, index: int, strength: float = 0.5) -> float:
    """Largest centroid move (px) of a held-out scene's shapes after img2img at `strength`."""
    clip = world.random_clip(HELDOUT + 950_000 + index, kind="still", size=frame_size(session))
    _reset(session, clip.frames[0], "", content=clip.scene.caption(), strength=strength)
    picture = np.asarray(session.intermediate(edited=False))
    moves = []
    for s in clip.scene.shapes:
        a, b = world.centroid(world.segment(clip.frames[0], s.colour)), world.centroid(world.segment(picture, s.colour))
        moves.append(32.0 if a is None or b is None else float(np.hypot(a[0] - b[0], a[1] - b[1])))
    return float(max(moves))


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected blob of a mask (flood fill; masks here are small, 64 x 64 or 96 x 64)."""
    mask = np.asarray(mask, bool)
    seen = np.zeros_like(mask)
    best: list = []
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        stack, blob = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            blob.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        if len(blob) > len(best):
            best = blob
    out = np.zeros_like(mask)
    if best:
        ys, xs = zip(*best, strict=True)
        out[list(ys), list(xs)] = True
    return out


# ------------------------------------------------------------------------------------ the table


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share (95 % by default): how far 21 of 24 can be from the truth."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def metrics_table(rows: list[dict]) -> str:
    """The benchmark's markdown table from its rows (`metric`, `target`, `value`, `passed`, `count`).

    A target in parentheses is context, not a target. `count` is (passed, counted) for rows that
    are a share of clips or scenes: a share of 24 clips moves 4 points per clip, so such a row shows
    its count and 95 % interval. One formatter for benchmarks/quality.py and the model card.
    """
    lines = ["| metric | target | measured | pass |", "|---|---|---|---|"]
    for r in rows:
        value = r["value"]
        shown = f"{value:.1f}" if abs(value) >= 10 or value == 0 else f"{value:.2f}"
        if r.get("count"):
            low, high = wilson(*r["count"])
            shown += f" ({r['count'][0]}/{r['count'][1]}; 95 % CI {100 * low:.0f}-{100 * high:.0f})"
        verdict = "-" if r["target"].startswith("(") else "yes" if r["passed"] else "**no**"
        lines.append(f"| {r['metric']} | {r['target']} | {shown} | {verdict} |")
    return "\n".join(lines)
