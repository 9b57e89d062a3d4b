"""Make the pictures of docs/ with the code they document: python docs/make_figures.py

Runs offline on a CPU in under a minute with `Session.tiny()` (random-init models: generated
frames are noise-like, while the image, paint, trajectory and motion-preview pictures are the
real thing). Writes small palette PNGs to docs/images/.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivcore import Session, Trajectory  # noqa: E402

OUT = Path(__file__).resolve().parent / "images"
SEED = 0


def make_scene(size: int) -> Image.Image:
    """The notebooks' picture: sky, hills, a sun, a red ball and a tree (64-unit space)."""
    u = size / 64
    y = np.linspace(0, 1, size)[:, None, None]
    sky = np.array([70, 130, 230]) * (1 - y) + np.array([250, 190, 150]) * y
    img = Image.fromarray((sky * np.ones((1, size, 1))).astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.polygon([(0, 64 * u), (0, 44 * u), (26 * u, 38 * u), (64 * u, 46 * u), (64 * u, 64 * u)], fill=(50, 120, 60))
    d.ellipse([40 * u, 8 * u, 52 * u, 20 * u], fill=(255, 230, 90))
    d.ellipse([10 * u, 44 * u, 20 * u, 54 * u], fill=(220, 40, 40))
    d.rectangle([50 * u, 36 * u, 53 * u, 48 * u], fill=(90, 60, 30))
    d.ellipse([45 * u, 25 * u, 58 * u, 38 * u], fill=(30, 90, 40))
    return img


def save(fig, name: str) -> Path:
    """Save a figure as an optimized palette PNG (small enough to commit)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    image = Image.open(buf).convert("RGB")
    image = image.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path = OUT / name
    image.save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")
    return path


def trajectories(u: float, size: int) -> dict[str, Trajectory]:
    """The trajectories of notebooks/trajectories.ipynb."""
    yy, xx = np.mgrid[0:size, 0:size] / u
    crown = ((xx - 51.5) / 6.5) ** 2 + ((yy - 31.5) / 7) ** 2 <= 1
    tree = crown | ((xx >= 50) & (xx <= 53) & (yy >= 36) & (yy <= 48))
    return {
        "ball": Trajectory(
            points=[(15 * u, 49 * u), (26 * u, 44 * u), (36 * u, 52 * u)], radius=6 * u, easing="ease-in-out"
        ),
        "sun": Trajectory(points=[(46 * u, 14 * u), (48 * u, 30 * u)], radius=7 * u, start=0.3, end=1.0),
        "anchor": Trajectory(points=[(51 * u, 36 * u), (51 * u, 36 * u)], mask=tree, kind="anchor"),
        "camera": Trajectory(points=[(32 * u, 32 * u), (24 * u, 32 * u)], kind="camera"),
    }


def blue_sun(size: int) -> Image.Image:
    u = size / 64
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(layer).ellipse([38 * u, 6 * u, 54 * u, 22 * u], fill=(40, 80, 230, 255))
    return layer


def blue_bird(size: int) -> Image.Image:
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(layer).ellipse([0.15 * size, 0.2 * size, 0.32 * size, 0.28 * size], fill=(30, 60, 220, 255))
    return layer


def checker(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] // max(1, size // 8)
    return np.where(((yy + xx) % 2)[..., None] == 0, 235, 200).astype(np.uint8) * np.ones((1, 1, 3), np.uint8)


def fig_instructions(s: Session) -> None:
    """x with paths, the paint layer, x~' (paint + every region at its target)."""
    size = s.size[0]
    layer = blue_bird(size)
    s.paint(layer)
    colors = {"object": "white", "anchor": "lime", "camera": "cyan"}
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
    size = s.size[0]
    u = size / 64
    every = trajectories(u, size)
    rows = [
        ("object: the ball along an eased curve", [every["ball"]]),
        ("object with start=0.3: the sun sets", [every["sun"]]),
        ("the same + an anchor (the tree's mask): the sun sets behind the tree", [every["sun"], every["anchor"]]),
        ("camera pan + the ball", [every["ball"], every["camera"]]),
    ]
    s.clear_paint()
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.35 * len(rows)))
    for ax, (title, trajs) in zip(axes, rows, strict=True):
        s.trajectories = trajs
        s.motion_preview(num_frames=8).grid(ax=ax, title=title)
        ax.title.set_fontsize(9)
    fig.tight_layout()
    save(fig, "trajectory_kinds.png")
    s.trajectories = [every["ball"], every["sun"], every["anchor"]]


def fig_preview_vs_generated(s: Session) -> None:
    s.clear_paint()
    s.lam = 0.0
    preview = s.motion_preview()
    video = s.generate(seed=SEED, progress=False)
    fig, axes = plt.subplots(2, 1, figsize=(9, 2.8))
    preview.grid(ax=axes[0], title="s.motion_preview(): trajectories on x~, no diffusion")
    video.grid(ax=axes[1], title="s.generate(lam=0): tiny random models, so noise-like frames")
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
    s.paint(blue_sun(s.size[0]))
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

    ends = dist(videos[0], videos[-1]) or 1.0
    fig, ax = plt.subplots(figsize=(4.6, 3))
    ax.plot(lams, [dist(v, videos[-1]) / ends for v in videos], "o-", label="to the lam=1 video (x~)")
    ax.plot(lams, [dist(v, videos[0]) / ends for v in videos], "s-", label="to the lam=0 video (x~')")
    ax.plot([0, 1], [1, 0], "--", color="gray", lw=0.8)
    ax.plot([0, 1], [0, 1], "--", color="gray", lw=0.8)
    ax.set_xlabel("lambda")
    ax.set_ylabel("relative RMS distance")
    ax.legend(fontsize=8)
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


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    s = Session.tiny(seed=SEED)
    size = s.size[0]
    s.image = make_scene(size)
    s.content = "a watercolor valley at sunset, a red ball on the grass, a tree"
    s.motion = "the ball rolls, the sun sets"
    s.content_strength = 0.0  # the tiny img2img makes noise; keep x~ = x so the pictures read
    every = trajectories(size / 64, size)
    s.trajectories = [every["ball"], every["sun"], every["anchor"]]
    fig_instructions(s)
    fig_trajectory_kinds(s)
    fig_preview_vs_generated(s)
    fig_lambda(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
