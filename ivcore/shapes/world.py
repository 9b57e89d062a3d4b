"""The shapes world: a procedural world of flat coloured shapes, with captions and known motion.

Small enough that diffusion models trained on two CPU cores learn it (see `ivcore.shapes.train`),
rich enough to exercise every instruction of the paper: a content caption names the shapes and
the background, a motion caption says which shape moves where (or that the camera pans), and
every clip carries the exact path of each object, so a generated video can be scored against
what was asked (`ivcore.shapes.world.segment`, `centroid`, used by the tests and `benchmarks/quality.py`).

The same seeded generator makes training data, test scenes and benchmark scenes: training draws
seeds from `TRAIN_SEEDS`, tests and benchmarks from `HELDOUT_SEEDS`, so they never overlap.

Conventions: pictures are 64 x 64 RGB uint8 (the models' training size; `size=(W, H)` renders and
samples scenes at another, e.g. 96 x 64 for a landscape session), clips 8 frames at 8 fps;
coordinates are pixels, x to the right and y down. "the camera pans right" means the view moves right, so the picture's
content (shapes and hills) shifts left, as in a film.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

from ivcore.trajectory import Trajectory, frame_times, trajectory_path_position

SIZE = 64
FRAMES = 8
Size = int | tuple[int, int]  # a side (square) or (width, height)
FPS = 8

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 50, 50),
    "green": (60, 190, 80),
    "blue": (60, 100, 230),
    "yellow": (240, 210, 60),
    "white": (240, 240, 240),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
BACKGROUNDS: tuple[str, ...] = ("night", "grey", "sky")
PLAIN_BACKGROUNDS: dict[str, tuple[int, int, int]] = {"night": (25, 25, 45), "grey": (128, 128, 128)}
SKY_TOP, SKY_BOTTOM, GRASS = (110, 165, 225), (175, 205, 235), (50, 110, 50)
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
MOTIONS: tuple[str, ...] = ("move", "pan", "still", "path")
MIN_SIZE, MAX_SIZE = 10, 18
MIN_SPEED, MAX_SPEED = 2, 4

# Training uses seeds below 10**9; held-out tests and benchmarks draw from above.
TRAIN_SEEDS = range(0, 10**9)
HELDOUT_SEEDS = range(10**9, 2 * 10**9)

# Every word a caption can hold: the shapes models' tokenizer gives each one token.
VOCABULARY: tuple[str, ...] = (
    *PALETTE, *SHAPES, *BACKGROUNDS, *DIRECTIONS,
    "a", "and", "on", "the", "moves", "camera", "pans", "nothing", "follows", "path",
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """One filled shape of one palette colour; (x, y) is the centre of its bounding box."""

    kind: str
    colour: str
    x: float
    y: float
    size: int

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"

    def moved(self, dx: float, dy: float) -> Shape:
        return replace(self, x=self.x + dx, y=self.y + dy)


@dataclass(frozen=True)
class Scene:
    """A background and one to three shapes of distinct colours (so a colour names a shape)."""

    background: str
    shapes: tuple[Shape, ...]

    def caption(self, with_background: bool = True) -> str:
        """The content caption: "a red circle and a white square on grey"."""
        text = " and ".join(f"a {s.name}" for s in self.shapes)
        return f"{text} on {self.background}" if with_background else text


@dataclass
class Clip:
    """A rendered clip and everything known about it.

    `paths[i]` is the centre of shape i in every frame; `camera` the view offset per frame;
    `trajectory` the Trajectory that reproduces the motion of the moving shape (None when
    nothing or the camera moves), with the shape's mask in frame 0.
    """

    scene: Scene
    caption: str
    motion: str
    kind: str
    frames: np.ndarray
    paths: list[list[tuple[float, float]]]
    camera: list[tuple[float, float]]
    mover: int | None = None
    direction: str | None = None
    trajectory: Trajectory | None = field(default=None, repr=False)


# ------------------------------------------------------------------------------------ rendering


def hex_colour(rgb: tuple[int, int, int]) -> str:
    """(r, g, b) -> "#rrggbb", as colour pickers and CSS take it."""
    return "#" + "".join(f"{v:02x}" for v in rgb)


def dims(size: Size) -> tuple[int, int]:
    """(width, height) of a size given as one side (a square, the world's own 64) or as (width, height).

    Every function that draws or places shapes takes either, so the 64 x 64 world and a session's
    (W, H) share one code path: at (64, 64) it computes exactly what the square world does.
    """
    if isinstance(size, (tuple, list)):
        width, height = size
        return int(width), int(height)
    return int(size), int(size)


def _background(name: str, size: Size, camera: tuple[float, float]) -> np.ndarray:
    """The background seen from `camera` (the view's offset in world pixels)."""
    width, height = dims(size)
    if name in PLAIN_BACKGROUNDS:
        return np.broadcast_to(np.array(PLAIN_BACKGROUNDS[name], np.uint8), (height, width, 3)).copy()
    if name != "sky":
        raise ValueError(f"background: {name!r} is not one of {BACKGROUNDS}")
    cx, cy = camera
    ys = np.arange(height)[:, None] + cy
    xs = np.arange(width)[None, :] + cx
    t = np.clip(ys / height, 0, 1)[..., None]
    sky = np.array(SKY_TOP) * (1 - t) + np.array(SKY_BOTTOM) * t
    # gentle hills on the grass band (the lower third): a horizontal pan visibly moves them
    horizon = height * 2 / 3 + 2.5 * np.sin(xs * 2 * math.pi / 24) + 1.5 * np.sin(xs * 2 * math.pi / 41 + 1.0)
    grass = ys >= horizon
    out = np.where(grass[..., None], np.array(GRASS, float), sky * np.ones((1, width, 1)))
    return np.round(out).astype(np.uint8)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape, camera: tuple[float, float], fill=None) -> None:
    x, y = round(shape.x - camera[0]), round(shape.y - camera[1])
    h = shape.size / 2
    box = [x - h, y - h, x + h - 1, y + h - 1]
    colour = PALETTE[shape.colour] if fill is None else fill
    if shape.kind == "circle":
        draw.ellipse(box, fill=colour)
    elif shape.kind == "square":
        draw.rectangle(box, fill=colour)
    elif shape.kind == "triangle":
        draw.polygon([(x, y - h), (x + h - 1, y + h - 1), (x - h, y + h - 1)], fill=colour)
    else:
        raise ValueError(f"shape: {shape.kind!r} is not one of {SHAPES}")


def render(scene: Scene, camera: tuple[float, float] = (0.0, 0.0), size: Size = SIZE) -> np.ndarray:
    """The scene as an (H, W, 3) uint8 picture (`size`: a side or (W, H)), seen from the view offset `camera`."""
    image = Image.fromarray(_background(scene.background, size, camera))
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        _draw_shape(draw, shape, camera)
    return np.asarray(image)


def shape_mask(scene: Scene, index: int, size: Size = SIZE) -> np.ndarray:
    """Where shape `index` is drawn (bool, H x W for `size` a side or (W, H)), occlusion by later shapes included."""
    ids = Image.new("L", dims(size), 0)
    draw = ImageDraw.Draw(ids)
    for i, shape in enumerate(scene.shapes):
        _draw_shape(draw, shape, (0.0, 0.0), fill=i + 1)
    return np.asarray(ids) == index + 1


# ------------------------------------------------------------------------------------ analysis


def segment(frame: np.ndarray, colour: str, tolerance: float = 60.0) -> np.ndarray:
    """Pixels of a palette colour: within `tolerance` of it and nearer to it than to anything else.

    "Anything else" is the other palette colours and the backgrounds' colours, so generated frames
    whose colours drift a little still segment, and a sky never passes for a blue shape.
    """
    frame = np.asarray(frame, dtype=np.float32)[..., :3]
    target = np.array(PALETTE[colour], np.float32)
    others = [np.array(c, np.float32) for name, c in PALETTE.items() if name != colour]
    others += [np.array(c, np.float32) for c in (*PLAIN_BACKGROUNDS.values(), SKY_TOP, SKY_BOTTOM, GRASS)]
    d = np.linalg.norm(frame - target, axis=-1)
    nearest_other = np.min([np.linalg.norm(frame - o, axis=-1) for o in others], axis=0)
    return (d < tolerance) & (d < nearest_other)


def centroid(mask: np.ndarray, min_pixels: int = 12) -> tuple[float, float] | None:
    """(x, y) centre of a mask's largest blob's pixels, or None when fewer than `min_pixels` are set."""
    mask = np.asarray(mask, bool)
    if mask.sum() < min_pixels:
        return None
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def classify_shape(mask: np.ndarray) -> str | None:
    """circle, square or triangle: the ideal shape filling the blob's bounding box that overlaps it most.

    Comparing against drawn shapes (IoU) rather than thresholding the fill ratio keeps soft,
    generated edges (a square with rounded corners) in their class. None for fewer than 12 pixels.
    """
    mask = np.asarray(mask, bool)
    if mask.sum() < 12:
        return None
    ys, xs = np.nonzero(mask)
    y0, x0 = ys.min(), xs.min()
    h, w = ys.max() - y0 + 1, xs.max() - x0 + 1
    blob = mask[y0 : y0 + h, x0 : x0 + w]
    best, best_iou = None, -1.0
    for kind in SHAPES:
        ideal = Image.new("L", (int(w), int(h)), 0)
        box = [0, 0, w - 1, h - 1]
        draw = ImageDraw.Draw(ideal)
        if kind == "circle":
            draw.ellipse(box, fill=1)
        elif kind == "square":
            draw.rectangle(box, fill=1)
        else:
            draw.polygon([((w - 1) / 2, 0), (w - 1, h - 1), (0, h - 1)], fill=1)
        ideal = np.asarray(ideal, bool)
        iou = (ideal & blob).sum() / (ideal | blob).sum()
        if iou > best_iou:
            best, best_iou = kind, iou
    return best


def track(frames: np.ndarray, colour: str) -> list[tuple[float, float] | None]:
    """The centroid of a colour in every frame (None where it is not found)."""
    return [centroid(segment(f, colour)) for f in frames]


# ------------------------------------------------------------------------------------ sampling


def is_free(x: float, y: float, size: int, taken: list[tuple[float, float, float, float]]) -> bool:
    """Whether a shape of `size` centred at (x, y) keeps 2 px clear of every box (x0, y0, x1, y1) in `taken`."""
    h = size / 2 + 2
    return all(x + h < a or x - h > c or y + h < b or y - h > d for a, b, c, d in taken)


def random_scene(
    rng: np.random.Generator,
    num_shapes: int | None = None,
    background: str | None = None,
    keep_clear: tuple[float, float, float, float] | None = None,
    margin: int = 2,
    size: Size = SIZE,
) -> Scene:
    """A scene of 1-3 shapes of distinct colours, not overlapping (nor `keep_clear`, a box), inside a
    `size` frame (a side or (W, H)): the same draws from `rng` at any size, so only the bounds differ."""
    width, height = dims(size)
    n = int(rng.integers(1, 4)) if num_shapes is None else int(num_shapes)
    background = background or str(rng.choice(BACKGROUNDS))
    colours = rng.choice(list(PALETTE), size=n, replace=False)
    taken = [keep_clear] if keep_clear else []
    shapes = []
    for colour in colours:
        for _ in range(200):
            side = int(rng.integers(MIN_SIZE, MAX_SIZE + 1))
            lo, hi_x, hi_y = side / 2 + margin, width - side / 2 - margin, height - side / 2 - margin
            x, y = float(rng.integers(round(lo), round(hi_x) + 1)), float(rng.integers(round(lo), round(hi_y) + 1))
            if is_free(x, y, side, taken):
                shapes.append(Shape(str(rng.choice(SHAPES)), str(colour), x, y, side))
                taken.append((x - side / 2, y - side / 2, x + side / 2, y + side / 2))
                break
    return Scene(background, tuple(shapes))


def _mover_path(rng: np.random.Generator, kind: str, size: int, num_frames: int, frame: Size = SIZE):
    """A start point and the moving shape's Trajectory points for a "move" or "path" clip in a `frame`."""
    width, height = dims(frame)
    lo, hi_x, hi_y = size / 2 + 1, width - size / 2 - 1, height - size / 2 - 1
    if kind == "move":
        direction = str(rng.choice(list(DIRECTIONS)))
        speed = int(rng.integers(MIN_SPEED, MAX_SPEED + 1))
        dx, dy = DIRECTIONS[direction]
        travel = speed * (num_frames - 1)
        x0 = float(rng.integers(round(lo + max(0, -dx) * travel), round(hi_x - max(0, dx) * travel) + 1))
        y0 = float(rng.integers(round(lo + max(0, -dy) * travel), round(hi_y - max(0, dy) * travel) + 1))
        return direction, [(x0, y0), (x0 + dx * travel, y0 + dy * travel)]
    # a smooth curve: a quadratic Bezier between two points 16-32 px apart, bending sideways
    for _ in range(100):
        x0, y0 = rng.uniform(lo, [hi_x, hi_y], size=2)
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(16, 32)
        x1, y1 = x0 + dist * math.cos(angle), y0 + dist * math.sin(angle)
        bend = rng.uniform(-0.5, 0.5) * dist
        cx, cy = (x0 + x1) / 2 - bend * math.sin(angle), (y0 + y1) / 2 + bend * math.cos(angle)
        ts = np.linspace(0, 1, 9)
        xs = (1 - ts) ** 2 * x0 + 2 * (1 - ts) * ts * cx + ts**2 * x1
        ys = (1 - ts) ** 2 * y0 + 2 * (1 - ts) * ts * cy + ts**2 * y1
        if xs.min() >= lo and xs.max() <= hi_x and ys.min() >= lo and ys.max() <= hi_y:
            return None, [(float(round(x, 1)), float(round(y, 1))) for x, y in zip(xs, ys, strict=True)]
    return None, [(width / 2, height / 2), (width / 2 + 16, height / 2)]


def random_clip(
    seed: int,
    kind: str | None = None,
    num_frames: int = FRAMES,
    num_shapes: int | None = None,
    background: str | None = None,
    size: Size = SIZE,
) -> Clip:
    """One seeded clip: scene, content caption, frames, motion caption and per-object paths.

    `size` (a side or (W, H)) is the frame the clip is placed and rendered in: held-out scenes at
    a session's shape, e.g. 96 x 64, come from the same seeds and draws, with other bounds.

    `kind`: "move" (a named shape moves left/right/up/down at 2-4 px a frame; the others stay),
    "pan" (the camera pans left/right at 2-4 px a frame), "still" ("nothing moves") or "path"
    (a shape follows a smooth curve, for the trajectory instruction). Default: drawn with
    probabilities 0.5 / 0.15 / 0.15 / 0.2.
    """
    rng = np.random.default_rng(seed)
    kind = kind or str(rng.choice(MOTIONS, p=[0.5, 0.15, 0.15, 0.2]))
    if kind not in MOTIONS:
        raise ValueError(f"kind: {kind!r} is not one of {MOTIONS}")
    times = frame_times(num_frames)
    camera = [(0.0, 0.0)] * num_frames
    mover, direction, trajectory = None, None, None
    if kind in ("move", "path"):
        side = int(rng.integers(MIN_SIZE, MAX_SIZE + 1))
        direction, points = _mover_path(rng, kind, side, num_frames, size)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        clear = (min(xs) - side / 2, min(ys) - side / 2, max(xs) + side / 2, max(ys) + side / 2)
        total = int(rng.integers(1, 4)) if num_shapes is None else int(num_shapes)
        others = random_scene(rng, num_shapes=total - 1, background=background, keep_clear=clear, size=size)
        colour = str(rng.choice([c for c in PALETTE if c not in {s.colour for s in others.shapes}]))
        moving = Shape(str(rng.choice(SHAPES)), colour, points[0][0], points[0][1], side)
        shapes = (*others.shapes, moving)
        order = rng.permutation(len(shapes))
        shapes = tuple(shapes[i] for i in order)
        mover = int(np.nonzero(order == len(shapes) - 1)[0][0])
        scene = Scene(others.background, shapes)
        trajectory = Trajectory(points=points, mask=shape_mask(scene, mover, size))
        positions = [trajectory_path_position(trajectory, t) for t in times]
        paths = [[(s.x, s.y)] * num_frames for s in shapes]
        paths[mover] = positions
        if kind == "move":
            motion = f"the {moving.name} moves {direction}"
        else:
            motion = f"the {moving.name} follows the path"
    else:
        if kind == "pan":
            direction = str(rng.choice(["left", "right"]))
            speed = int(rng.integers(MIN_SPEED, MAX_SPEED + 1))
            step = speed if direction == "right" else -speed
            camera = [(float(step * i), 0.0) for i in range(num_frames)]
            # the shapes stay in view all through the pan: keep them off the band that scrolls out
            travel = abs(step) * (num_frames - 1)
            width = dims(size)[0]
            band = (0.0, -99.0, travel, 99.0) if direction == "right" else (width - travel, -99.0, width, 99.0)
            scene = random_scene(rng, num_shapes=num_shapes, background=background, keep_clear=band, size=size)
        else:
            scene = random_scene(rng, num_shapes=num_shapes, background=background, size=size)
        paths = [[(s.x, s.y)] * num_frames for s in scene.shapes]
        if kind == "pan":
            paths = [[(x - cx, y) for (x, y), (cx, _) in zip(p, camera, strict=True)] for p in paths]
            motion = f"the camera pans {direction}"
        else:
            motion = "nothing moves"
    frames = np.stack([_render_frame(scene, [p[i] for p in paths], camera[i], size) for i in range(num_frames)])
    caption = scene.caption(with_background=bool(rng.random() < 0.7))
    return Clip(scene, caption, motion, kind, frames, paths, camera, mover, direction, trajectory)


def _render_frame(
    scene: Scene, positions: list[tuple[float, float]], camera: tuple[float, float], size: Size = SIZE
) -> np.ndarray:
    """One frame: the shapes at their frame positions over the background seen from `camera`."""
    placed = tuple(
        replace(s, x=x + camera[0], y=y + camera[1]) for s, (x, y) in zip(scene.shapes, positions, strict=True)
    )
    return render(Scene(scene.background, placed), camera=camera, size=size)


def clips(seed: int, count: int, **kwargs) -> Iterator[Clip]:
    """`count` clips from consecutive seeds (seed, seed + 1, ...): one stream for data or tests."""
    for i in range(count):
        yield random_clip(seed + i, **kwargs)


def heldout_clip(index: int, **kwargs) -> Clip:
    """Clip `index` of the held-out set (seeds never used in training)."""
    return random_clip(HELDOUT_SEEDS.start + index, **kwargs)
