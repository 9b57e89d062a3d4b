"""`python -m ivcore demo`: every instruction of the paper at once, written as an mp4.

With no model arguments the demo runs the trained shapes-world models shipped in the package, on
the CPU (offline, seconds): a scene of coloured shapes with a painted square, a motion text, a
dragged shape and lambda, so every instruction of the paper shows in the mp4. `--preset tiny`
runs the random-init tiny models instead (noise-like video, every stage real). With
`--image-model/--video-model` (hub ids or local folders) it loads real weights.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def demo_image(size: int) -> Image.Image:
    """A synthetic scene (sky, hills, sun) so the demo needs no input file."""
    y = np.linspace(0, 1, size)[:, None, None]
    sky = (np.array([70, 130, 230]) * (1 - y) + np.array([250, 190, 150]) * y) * np.ones((1, size, 1))
    image = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse([size * 0.55, size * 0.15, size * 0.8, size * 0.4], fill=(255, 230, 90))
    hills = [(0, size), (0, size * 0.7), (size * 0.4, size * 0.55), (size, size * 0.75), (size, size)]
    draw.polygon(hills, fill=(50, 120, 60))
    return image


def demo_paint(size: int) -> Image.Image:
    """A paint stroke as a user would draw it: a red bird-like blob in the sky."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.ellipse([size * 0.15, size * 0.2, size * 0.35, size * 0.3], fill=(220, 40, 40, 255))
    return layer


def add_parser(sub) -> argparse.ArgumentParser:
    demo = sub.add_parser("demo", help="paint, prompt, drag, blend with lambda and write an mp4 (no weights needed)")
    demo.add_argument("--out", default="demo.mp4", help="where to write the mp4 (default: demo.mp4)")
    demo.add_argument("--image", help="reference image (default: a synthetic scene)")
    demo.add_argument(
        "--preset",
        choices=("shapes", "tiny"),
        default="shapes",
        help="models when no real weights are given: trained shapes world (default) or random tiny",
    )
    demo.add_argument("--content", help="content text (default: the scene's caption)")
    demo.add_argument("--motion", help="motion text (default: one that fits the scene)")
    demo.add_argument("--lam", type=float, help="Eq. 4 weight in [0, 1] (default: 0 shapes, 0.5 otherwise)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, help="denoising steps (default: the preset's)")
    demo.add_argument("--frames", type=int, help="number of frames (default: the preset's)")
    demo.add_argument("--image-model", help="SD1.5-family model id or folder (real weights)")
    demo.add_argument("--video-model", help="SD1.5 base for PIA, id or folder (real weights)")
    demo.add_argument("--motion-adapter", help="PIA condition adapter id or folder")
    demo.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    demo.set_defaults(run=run_demo)
    return demo


def run_demo(args: argparse.Namespace) -> Path:
    import torch

    from ivcore import Session, Trajectory

    start = time.perf_counter()
    if not (args.image_model or args.video_model) and args.preset == "shapes":
        return run_shapes_demo(args, start)
    if args.image_model or args.video_model:
        dtype = torch.float16 if (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) != "cpu" else None
        session = Session.from_pretrained(
            args.image_model, args.video_model, motion_adapter=args.motion_adapter, device=args.device, dtype=dtype
        )
        what = f"real weights ({args.image_model or 'default'} + {args.video_model or 'default'})"
    else:
        session = Session.tiny(seed=0)
        what = "the tiny random-init preset (no weights: the video is noise-like, the pipeline is real)"
    print(f"[ivcore] models: {what}, loaded in {time.perf_counter() - start:.1f}s")

    size = session.size[0]
    session.image = args.image if args.image else demo_image(size)
    session.content = args.content or "a painting of a valley at sunset, a red bird in the sky"
    session.motion = args.motion or "the bird flies, clouds drift"
    session.paint(demo_paint(size))
    session.trajectories = [Trajectory(points=[(size * 0.25, size * 0.25), (size * 0.6, size * 0.45)], radius=size / 8)]
    session.lam = 0.5 if args.lam is None else args.lam
    if args.steps:
        session.steps = args.steps
    if args.frames:
        session.num_frames = args.frames
    print(
        f"[ivcore] image {size}x{size}, content {session.content!r}, motion {session.motion!r}, one paint stroke, "
        f"one trajectory, lam={session.lam}, {session.num_frames} frames, {session.steps} steps"
    )
    return _write(session, args, session.generate(seed=args.seed, progress=True))


def _write(session, args: argparse.Namespace, video) -> Path:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    video.to_mp4(out)
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in session.last_timings.items())
    print(f"[ivcore] {timings}")
    print(f"[ivcore] wrote {out.resolve()} ({out.stat().st_size} bytes, {video.num_frames} frames at {video.fps} fps)")
    return out


def run_shapes_demo(args: argparse.Namespace, start: float) -> Path:
    """The shapes-world demo: every instruction at once, on trained models, in seconds on a CPU."""
    from ivcore import Session
    from ivcore.shapes.demo import shapes_demo

    session = Session.shapes(seed=0)
    print(
        f"[ivcore] models: the trained shapes-world models shipped with ivcore, loaded in "
        f"{time.perf_counter() - start:.1f}s"
    )
    scene = shapes_demo(session, lam=0.0 if args.lam is None else args.lam)
    if args.image:
        session.image = args.image
    if args.content:
        session.content = args.content
    if args.motion:
        session.motion = args.motion
    dragged = scene.shapes[1]
    if args.steps:
        session.steps = args.steps
    print(
        f"[ivcore] image: {scene.caption()!r} (64x64); content {session.content!r} "
        f"(img2img strength {session.content_strength})"
    )
    print(
        f"[ivcore] paint: a yellow square; motion: {session.motion!r}; trajectory: the {dragged.name} "
        f"dragged along a curve; lam={session.lam} (0 = follow the edits, 1 = ignore them)"
    )
    return _write(session, args, session.generate(seed=args.seed, progress=True))
