"""`python -m ivcore demo`: every instruction of the paper at once, written as an mp4.

With no model arguments the demo runs the trained shapes-world models shipped in the package, on
the CPU (offline, seconds): a scene of coloured shapes with a painted square, a motion text, a
dragged shape and lambda, so every instruction of the paper shows in the mp4. `--preset tiny`
runs the random-init tiny models instead (noise-like video, every stage real). With
`--image-model/--video-model` (hub ids or local folders) it loads real weights. `--size 96x64`
makes the video that shape: the shapes scene (or the synthetic one) is laid out at it, and an
`--image` of another shape is brought to it by `--fit` (crop, pad or stretch).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ivcore.cli.exits import reported
from ivcore.errors import InstructionError


def _dims(size: int | tuple[int, int]) -> tuple[int, int]:
    return (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size), int(size))


def demo_image(size: int | tuple[int, int]) -> Image.Image:
    """A synthetic scene (sky, hills, sun) so the demo needs no input file; `size` a side or (W, H)."""
    width, height = _dims(size)
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (np.array([70, 130, 230]) * (1 - y) + np.array([250, 190, 150]) * y) * np.ones((1, width, 1))
    image = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse([width * 0.55, height * 0.15, width * 0.8, height * 0.4], fill=(255, 230, 90))
    hills = [(0, height), (0, height * 0.7), (width * 0.4, height * 0.55), (width, height * 0.75), (width, height)]
    draw.polygon(hills, fill=(50, 120, 60))
    return image


def demo_paint(size: int | tuple[int, int]) -> Image.Image:
    """A paint stroke as a user would draw it: a red bird-like blob in the sky; `size` a side or (W, H)."""
    width, height = _dims(size)
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.ellipse([width * 0.15, height * 0.2, width * 0.35, height * 0.3], fill=(220, 40, 40, 255))
    return layer


def demo_size(text: str | None) -> tuple[int, int] | None:
    """`--size WIDTHxHEIGHT` as (W, H) (None: the models' own); text that is not two integers is bad input.

    Whether the models take the size is the session's check (InstructionError naming the multiple).
    """
    if text is None:
        return None
    from ivcore.sizes import parse_size

    size = parse_size(text)
    if size is None:
        raise InstructionError("--size", text, "WIDTHxHEIGHT, e.g. 96x64")
    return size


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
    demo.add_argument("--size", help="WIDTHxHEIGHT of the video, e.g. 96x64 (default: the models' own)")
    demo.add_argument("--fit", choices=("crop", "pad", "stretch"), help="how --image is brought to the size (crop)")
    demo.add_argument(
        "--image-model", help="image model P_img, hub id or folder (real weights): SD1.5 and fine-tunes, SDXL, FLUX.1"
    )
    demo.add_argument(
        "--video-model",
        help="video model, hub id or folder (real weights): PIA's SD1.5 base, SVD, Wan 2.1/2.2, CogVideoX, "
        "LTX-Video, HunyuanVideo 1.5",
    )
    demo.add_argument("--motion-adapter", help="PIA condition adapter id or folder")
    demo.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    demo.set_defaults(run=run_demo)
    return demo


@reported("demo")
def run_demo(args: argparse.Namespace) -> Path:
    """Run the demo the options ask for and write its mp4; bad input (a size the models refuse) exits 2."""
    import torch

    from ivcore import Session, Trajectory

    start = time.perf_counter()
    size = demo_size(getattr(args, "size", None))
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

    if size is not None:
        session.size = size
    if getattr(args, "fit", None):
        session.fit = args.fit
    width, height = session.size
    session.image = args.image if args.image else demo_image((width, height))
    session.content = args.content or "a painting of a valley at sunset, a red bird in the sky"
    session.motion = args.motion or "the bird flies, clouds drift"
    session.paint(demo_paint((width, height)))
    points = [(width * 0.25, height * 0.25), (width * 0.6, height * 0.45)]
    session.trajectories = [Trajectory(points=points, radius=min(width, height) / 8)]
    session.lam = 0.5 if args.lam is None else args.lam
    if args.steps:
        session.steps = args.steps
    if args.frames:
        session.num_frames = args.frames
    print(
        f"[ivcore] image {width}x{height}, content {session.content!r}, motion {session.motion!r}, one paint stroke, "
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
    """The shapes-world demo: every instruction at once, on trained models, in seconds on a CPU.

    At `--size W x H` the scene, the paint and the path are laid out at W x H (`shapes_demo`), so a
    96 x 64 demo shows a landscape scene, not a crop of the square one.
    """
    from ivcore import Session
    from ivcore.shapes.demo import shapes_demo

    size = demo_size(getattr(args, "size", None))
    layout = ({"size": size} if size else {}) | ({"fit": args.fit} if getattr(args, "fit", None) else {})
    session = Session.shapes(seed=0, **layout)
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
        f"[ivcore] image: {scene.caption()!r} ({session.size[0]}x{session.size[1]}); content {session.content!r} "
        f"(img2img strength {session.content_strength})"
    )
    print(
        f"[ivcore] paint: a yellow square; motion: {session.motion!r}; trajectory: the {dragged.name} "
        f"dragged along a curve; lam={session.lam} (0 = follow the edits, 1 = ignore them)"
    )
    return _write(session, args, session.generate(seed=args.seed, progress=True))
