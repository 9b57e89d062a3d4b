"""Make the pictures of docs/ with the code they document: python docs/make_figures.py [architecture story demo]

Runs offline on a CPU in about a minute with `Session.shapes()`: small diffusion models trained
on the shapes world of `ivcore.shapes.world` (64 x 64 pictures, 8-frame clips), so the generated frames
show the method working: the red circle moves as the motion text says, the painted yellow
square stands at lambda 0 and fades out towards lambda 1, the dragged square follows its path.
Writes small palette PNGs to docs/images/.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivcore import Session, Trajectory  # noqa: E402
from ivcore.shapes import world  # noqa: E402
from ivcore.shapes.evaluate import painted_square  # noqa: E402

OUT = Path(__file__).resolve().parent / "images"
SEED = 0
# The notebooks' scene: a red circle and a white square on a sky over grass (64 x 64 world pixels).
SCENE = world.Scene("sky", (world.Shape("circle", "red", 18, 18, 14), world.Shape("square", "white", 46, 34, 14)))


def save(fig, name: str) -> Path:
    """Save a figure as an optimized palette PNG (small enough to commit)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    image = Image.open(buf).convert("RGB")
    # octree keeps small saturated patches (a yellow square among reds) that median cut merged into
    # brown, and smooth gradients (the sky) that max-coverage bands
    image = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    path = OUT / name
    image.save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")
    return path


def curve(start, bend, end, n: int = 9) -> list[tuple[float, float]]:
    """n points of the quadratic Bezier curve from `start` to `end`, pulled towards `bend`."""
    s = np.linspace(0, 1, n)[:, None]
    p = (1 - s) ** 2 * np.array(start) + 2 * (1 - s) * s * np.array(bend) + s**2 * np.array(end)
    return [(float(x), float(y)) for x, y in p]


def trajectories() -> dict[str, Trajectory]:
    """The trajectories of notebooks/trajectories.ipynb, plus two for the kinds figure."""
    square, circle = world.shape_mask(SCENE, 1), world.shape_mask(SCENE, 0)
    return {
        "square": Trajectory(points=curve((46, 34), (38, 54), (24, 44)), mask=square),
        "anchor": Trajectory(points=[(18, 18), (18, 18)], mask=circle, kind="anchor"),
        "drop": Trajectory(points=[(18, 18), (18, 40)], mask=circle, start=0.5),
        "across": Trajectory(points=[(46, 34), (30, 22), (14, 20)], mask=square, easing="ease-in-out"),
        "camera": Trajectory(points=[(32, 32), (16, 32)], kind="camera"),
    }


def checker(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] // max(1, size // 8)
    return np.where(((yy + xx) % 2)[..., None] == 0, 235, 200).astype(np.uint8) * np.ones((1, 1, 3), np.uint8)


def fig_instructions(s: Session) -> None:
    """x with paths, the paint layer, x~' (paint + every region at its target)."""
    size = s.size[0]
    layer, _ = painted_square(SCENE, "yellow")
    s.paint(layer)
    colors = {"object": "magenta", "anchor": "lime", "camera": "cyan"}
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
    axes[0].imshow(s.image, interpolation="nearest")
    for t in s.trajectories:
        xs, ys = zip(*t.points, strict=True)
        axes[0].plot(xs, ys, "-o", color=colors[t.kind], ms=2.5, lw=1.2)
        axes[0].annotate(t.kind, t.points[-1], color=colors[t.kind], fontsize=7)
    axes[0].set_title("x and trajectories r", fontsize=9)
    over = Image.alpha_composite(Image.fromarray(checker(size)).convert("RGBA"), layer)
    axes[1].imshow(over, interpolation="nearest")
    axes[1].set_title("paint layer (RGBA)", fontsize=9)
    axes[2].imshow(s.intermediate(), interpolation="nearest")
    axes[2].set_title("x~' (edited)", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    save(fig, "instructions.png")


def fig_trajectory_kinds(s: Session) -> None:
    """One row per kind of trajectory, as the motion preview shows it (no diffusion)."""
    every = trajectories()
    rows = [
        ("object: the white square along a curve (its mask)", [every["square"]]),
        ("object with start=0.5: the red circle drops in the second half", [every["drop"]]),
        ("the square dragged across an anchor (the red circle's mask): the circle stays on top",
         [every["across"], every["anchor"]]),
        ("camera pan (the content slides left: the camera pans right)", [every["camera"]]),
    ]  # fmt: skip
    s.clear_paint()
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.35 * len(rows)))
    for ax, (title, trajs) in zip(axes, rows, strict=True):
        s.trajectories = trajs
        s.motion_preview(num_frames=8).grid(ax=ax, title=title)
        ax.title.set_fontsize(9)
    fig.tight_layout()
    save(fig, "trajectory_kinds.png")
    s.trajectories = [every["square"], every["anchor"]]


def fig_preview_vs_generated(s: Session) -> None:
    s.clear_paint()
    s.motion = "the white square follows the path"
    s.lam = 0.0
    preview = s.motion_preview()
    video = s.generate(seed=SEED, progress=False)
    fig, axes = plt.subplots(2, 1, figsize=(9, 2.8))
    preview.grid(ax=axes[0], title="s.motion_preview(): trajectories on x~, no diffusion")
    video.grid(ax=axes[1], title="s.generate(lam=0): the shapes models, the square follows its path")
    for ax in axes:
        ax.title.set_fontsize(9)
    fig.tight_layout()
    save(fig, "preview_vs_generated.png")


def sweep(s: Session, lams: list[float]) -> list:
    if hasattr(s, "sweep"):
        return s.sweep(lams=lams, seed=SEED, progress=False)
    return [s.generate(seed=SEED, lam=lam, progress=False) for lam in lams]


def fig_lambda(s: Session) -> None:
    """Frames across lambda (rows), their distance to both ends, and a per-step schedule."""
    s.trajectories = []
    s.motion = "the red circle moves down"
    layer, painted = painted_square(SCENE, "yellow")
    s.paint(layer)
    lams = [0.0, 0.25, 0.5, 0.75, 1.0]
    videos = sweep(s, lams)
    ref1 = videos[-1].frames.astype(float)
    gap = np.abs(videos[0].frames.astype(float) - ref1).mean(axis=(0, 3)).max() or 1.0

    fig, axes = plt.subplots(len(lams), 2, figsize=(8, 1.25 * len(lams)), gridspec_kw={"width_ratios": [4, 1]})
    for row, (lam, v) in enumerate(zip(lams, videos, strict=True)):
        v[::2].grid(ax=axes[row, 0])
        axes[row, 0].set_axis_on()
        axes[row, 0].set_xticks([])
        axes[row, 0].set_yticks([])
        axes[row, 0].set_ylabel(f"lam={lam}", fontsize=8)
        diff = np.abs(v.frames.astype(float) - ref1).mean(axis=(0, 3))
        axes[row, 1].imshow(diff, cmap="magma", vmin=0, vmax=gap)
        axes[row, 1].set_axis_off()
    axes[0, 0].set_title("frames 0, 2, 4, 6", fontsize=9)
    axes[0, 1].set_title("|v(lam) - v(1)|", fontsize=9)
    fig.tight_layout()
    save(fig, "lambda_sweep.png")

    def dist(a, b):
        return float(np.sqrt(np.mean((a.frames.astype(float) - b.frames.astype(float)) ** 2)))

    def square_iou(video) -> float:
        segs = [world.segment(frame, "yellow") for frame in video.frames]
        return float(np.mean([(seg & painted).sum() / max(1, (seg | painted).sum()) for seg in segs]))

    ends = dist(videos[0], videos[-1]) or 1.0
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.4, 3))
    ax.plot(lams, [dist(v, videos[-1]) / ends for v in videos], "o-", label="to the lam=1 video (x~)")
    ax.plot(lams, [dist(v, videos[0]) / ends for v in videos], "s-", label="to the lam=0 video (x~')")
    ax.plot([0, 1], [1, 0], "--", color="gray", lw=0.8)
    ax.plot([0, 1], [0, 1], "--", color="gray", lw=0.8)
    ax.set_xlabel("lambda")
    ax.set_ylabel("relative RMS distance")
    ax.legend(fontsize=8)
    ax2.plot(lams, [square_iou(v) for v in videos], "o-", color="goldenrod")
    ax2.set_xlabel("lambda")
    ax2.set_ylabel("IoU with the painted square")
    ax2.set_ylim(-0.05, 1.05)
    fig.tight_layout()
    save(fig, "lambda_distance.png")

    steps = s.steps
    ramp = list(np.linspace(0.0, 1.0, steps))
    late = [0.0 if i < steps // 2 else 1.0 for i in range(steps)]
    fig, ax = plt.subplots(figsize=(4.6, 2.6))
    ax.step(range(steps), [0.5] * steps, where="mid", label="lam = 0.5")
    ax.step(range(steps), ramp, where="mid", label="lam = ramp 0 -> 1")
    ax.step(range(steps), late, where="mid", label="edit first, x~ last")
    ax.set_xlabel("denoising step")
    ax.set_ylabel("lambda")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, "lambda_schedule.png")


def fig_demo() -> None:
    """README's picture: what `python -m ivcore demo` makes (the same instructions, the same seed)."""
    from ivcore.shapes.demo import shapes_demo

    s = Session.shapes(seed=SEED)
    shapes_demo(s)
    video = s.generate(seed=0, progress=False)
    panels = [("x", s.image), ("paint", s.paint_layer), ("x~' (edited)", s.intermediate())]
    panels += [(f"frame {i}", f) for i, f in enumerate(video.frames)]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.3 * len(panels), 1.7))
    for ax, (title, im) in zip(axes, panels, strict=True):
        ax.imshow(np.asarray(im), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.suptitle(f"python -m ivcore demo: motion {s.motion!r}, the white square dragged, lam = {s.lam}", fontsize=9)
    fig.tight_layout()
    save(fig, "demo.png")


def fig_architecture() -> None:
    """docs/architecture.md's picture: the flow of a generation and the packages around it."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(13, 5.6))
    ax.set_xlim(0, 130)
    ax.set_ylim(0, 56)
    ax.set_axis_off()

    def box(x, y, w, h, title, lines="", colour="#dde8f7"):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.4", fc=colour, ec="#445", lw=1))
        ax.text(x + w / 2, y + h - 1.4, title, ha="center", va="top", fontsize=9.5, weight="bold")
        if lines:
            ax.text(x + w / 2, y + h - 4.8, lines, ha="center", va="top", fontsize=7.6, linespacing=1.35)

    def arrow(a, b, style="-|>", colour="#445"):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=12, color=colour, lw=1.2))

    clients = "#fbe9d0"
    tops = [
        (1, 27, "ivwidgets + js/", "PaintCanvas, TrajectoryEditor,\nVideoPlayer, Studio"),
        (31, 19, "ivcore.cli", "python -m ivcore: demo,\ngenerate, grid, train-shapes"),
        (53, 17, "ivcore.batch", "run_grid\n(local or Ray)"),
        (73, 27, "ivcore.shapes", "world, models, training, evaluation,\nthe `shapes` preset, shipped weights"),
        (103, 26, "notebooks, docs", "benchmarks, tests"),
    ]
    for x, w, title, lines in tops:
        box(x, 45, w, 10, title, lines, clients)
        arrow((x + w / 2, 44.4), (x + w / 2, 39.4), colour="#a86")
    ax.text(
        1,
        41.2,
        "clients: they use the Session; the engine imports none of them",
        fontsize=8,
        style="italic",
        color="#864",
    )

    box(
        1,
        21,
        19,
        17,
        "instructions",
        "image x, content y\n+ paint, motion y',\ntrajectories r, lambda\n\nfields.py, instructions.py,\ntrajectory.py",
    )
    box(
        24,
        21,
        20,
        17,
        "Session",
        "session.py: declared fields,\nobserve, generate\npresets.py: models by name\n"
        "persistence.py: save / load\nmemory.py: memory plan",
    )
    stages = [
        ("P_img", "x~ and x~'\n(img2img)"),
        ("trajectories", "animate x~'\nalong paths"),
        ("denoise", "Eq. 4 blend\nof two UNet\npredictions"),
        ("decode", "VAE"),
        ("align", "Eq. 5"),
    ]
    for i, (name, what) in enumerate(stages):
        box(48 + i * 13, 21, 11, 17, name, what, "#e3f1e0")
    box(115, 21, 14, 17, "Video", "video.py: frames,\nmp4, inline HTML")
    ax.text(
        80.5,
        39.2,
        "ivcore.stages: pipeline.py chains them; cache.py keys each by its inputs",
        ha="center",
        fontsize=8,
        color="#363",
    )
    arrow((20.6, 29.5), (23.4, 29.5))
    arrow((44.6, 29.5), (47.4, 29.5))
    for i in range(4):
        arrow((59.6 + i * 13, 29.5), (60.4 + i * 13, 29.5))
    arrow((111.6, 29.5), (114.4, 29.5))

    box(24, 1, 90, 14, "ivcore.backends",
        "ImageBackend (SD1.5 img2img), PIAVideoBackend, SVD; build.py: from_pretrained and the tiny models;\n"
        "LoRAs, checkpoints, few-step samplers, the out-of-memory fallback.\n"
        "diffusers components in, tensors out: they never import the session", "#ece4f4")  # fmt: skip
    for x in (34, 53, 79, 92):
        arrow((x, 20.4), (x, 15.6), style="<|-|>", colour="#756")
    save(fig, "architecture.png")


def fig_story() -> None:
    """docs/guide.md's story picture: four segments, each from the last frame of the one before, trace a square."""
    from ivcore.shapes.demo import SQUARE, square_story

    s = Session.shapes(seed=SEED)
    video = square_story(s)
    per = s.story.segments[0].video.num_frames - 1  # frames a segment adds after the first
    track = [world.centroid(world.segment(f, "red")) for f in video.frames]
    shown = [0] + [i for seg in range(len(SQUARE)) for i in (seg * per + (per + 1) // 2, (seg + 1) * per)]
    fig = plt.figure(figsize=(1.25 * len(shown) + 3.0, 2.3))
    grid = fig.add_gridspec(1, len(shown) + 2, width_ratios=[1] * len(shown) + [0.25, 2.2])
    colours = ["tab:orange", "tab:green", "tab:purple", "tab:blue"]
    for k, i in enumerate(shown):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(video.frames[i], interpolation="nearest")
        segment = min(len(SQUARE) - 1, max(0, (i - 1) // per))
        seam = 0 < i < video.num_frames - 1 and i % per == 0
        ax.set_title(f"frame {i}" + (" (seam)" if seam else ""), fontsize=7, color=colours[segment])
        ax.set_axis_off()
    ax = fig.add_subplot(grid[0, -1])
    ax.imshow(video.frames[0], interpolation="nearest", alpha=0.5)
    for seg, way in enumerate(SQUARE):
        points = [p for p in track[seg * per : (seg + 1) * per + 1] if p is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], "-o", ms=2, color=colours[seg], label=way)
    ax.legend(fontsize=6, loc="lower left", ncol=2)
    ax.set_title("the red circle's track", fontsize=8)
    ax.set_axis_off()
    fig.suptitle(
        f"s.continue_from(): {len(s.story)} segments, motion 'the red circle moves right / down / left / up', "
        f"{video.num_frames} frames (each seam once)",
        fontsize=8,
    )
    save(fig, "story_square.png")


FIGURES = {"architecture": fig_architecture, "story": fig_story, "demo": fig_demo}


def main() -> int:
    """Every figure, or only those named: `python docs/make_figures.py architecture story`."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:]:
        if name not in FIGURES:
            raise SystemExit(f"make_figures: {name!r} is not one of {', '.join(FIGURES)} (or no name: all)")
        FIGURES[name]()
    if sys.argv[1:]:
        return 0
    for make in FIGURES.values():
        make()
    s = Session.shapes(seed=SEED)
    s.image = world.render(SCENE)
    s.content = SCENE.caption()
    s.motion = "the white square follows the path"
    s.content_strength = 0.0  # x~ = x: the scene's masks fit x~ exactly
    every = trajectories()
    s.trajectories = [every["square"], every["anchor"]]
    fig_instructions(s)
    fig_trajectory_kinds(s)
    fig_preview_vs_generated(s)
    fig_lambda(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
