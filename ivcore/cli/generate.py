"""`python -m ivcore generate`: one video from instructions given on the command line, for scripts.

    python -m ivcore generate --image x.png --content "a red circle on grey" --motion "the red circle moves left" \\
        [--paint layer.png] [--trajectories traj.json] [--lam 0.5 | --lam-schedule 0,1] [--seed 0] \\
        [--model shapes|tiny|HUB_ID_OR_FOLDER] [--size 768x512] [--fit crop|pad|stretch] --out clip.mp4
    python -m ivcore generate --session saved_folder [--lam 0.2 ...] --out clip.mp4

Bad input exits with status 2 and one line on stderr naming the option and what is allowed; a
model or runtime failure exits with 1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ivcore.cli.exits import reported
from ivcore.errors import InstructionError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("generate", help="one video from instructions given as options")
    p.add_argument("--out", required=True, help="the mp4 to write (H.264)")
    p.add_argument("--session", help="a folder written by Session.save: its instructions and models")
    p.add_argument("--image", help="the image instruction x (a picture file)")
    p.add_argument("--content", help="content text y (P_img prompt)")
    p.add_argument("--content-strength", type=float, help="img2img strength in [0, 1] (0 keeps x)")
    p.add_argument("--motion", help="motion text y' (P_video prompt)")
    p.add_argument("--paint", help="an RGBA PNG painted over x (transparent where nothing is painted)")
    p.add_argument("--trajectories", help="a JSON file: a list of trajectories as Trajectory.to_dict() writes them")
    p.add_argument("--trajectory-mode", choices=("path", "endpoint"))
    lam = p.add_mutually_exclusive_group()
    lam.add_argument("--lam", type=float, help="Eq. 4 weight in [0, 1] (1: ignore the edits, 0: follow them)")
    lam.add_argument("--lam-schedule", help="per-step weights, comma-separated, resampled over the steps: 0,1 ramps up")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--steps", type=int)
    p.add_argument("--frames", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--size", help="WIDTHxHEIGHT of the video, multiples of what the models take (default: theirs)")
    p.add_argument("--fit", choices=("crop", "pad", "stretch"), help="how --image is brought to the size (crop)")
    p.add_argument(
        "--model", "--image-model", dest="model", default=None,
        help="shapes (default: trained shapes-world models), tiny (random-init), a train-shapes folder, "
        "or the hub id or folder of the image model P_img: SD1.5 and fine-tunes, SDXL, FLUX.1 or another "
        "image family (docs/backbones.md)",
    )  # fmt: skip
    p.add_argument(
        "--video-model",
        help="hub id or folder of the video model: PIA's SD1.5 base (default: --model), SVD, or a DiT family "
        "(Wan 2.1/2.2, CogVideoX, LTX-Video, HunyuanVideo 1.5)",
    )
    p.add_argument("--motion-adapter", help="PIA condition adapter id or folder")
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.set_defaults(run=run)
    return p


class BadInput(ValueError):
    """A command-line value that cannot be used; its message is the one line the user sees."""


def _session(args: argparse.Namespace):
    from ivcore import Session, presets

    if args.session:
        if not Path(args.session).is_dir():
            raise BadInput(f"--session: {args.session!r} is not a folder (one written by Session.save)")
        kwargs = {}
        if args.model is not None and args.model not in presets.names():
            kwargs = {"image_model": args.model, "video_model": args.video_model or args.model}
        return Session.load(args.session, **kwargs)
    if not args.image:
        raise BadInput("--image: missing; give a picture file (or --session FOLDER)")
    model = args.model or "shapes"
    if model in presets.names() or presets.is_model_folder(model):  # a preset or a `train-shapes --out` folder
        return Session.preset(model)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return Session.from_pretrained(
        model, args.video_model or model, motion_adapter=args.motion_adapter, device=device,
        dtype=torch.float16 if device != "cpu" else None,
    )  # fmt: skip


def _file(option: str, path: str) -> Path:
    if not Path(path).is_file():
        raise BadInput(f"{option}: {path!r} is not a file")
    return Path(path)


def _picture(option: str, path: str, mode: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(_file(option, path)) as im:
            return im.convert(mode)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise BadInput(f"{option}: {path!r} is not a picture PIL can read ({type(exc).__name__})") from None


def _apply(session, args: argparse.Namespace) -> None:
    """Set the instructions given as options, in the order the method uses them (the size first)."""
    if args.size is not None:
        from ivcore.sizes import parse_size

        size = parse_size(args.size)
        if size is None:
            raise BadInput(f"--size: {args.size!r}; give WIDTHxHEIGHT, e.g. 768x512")
        session.size = size
    if args.fit is not None:
        session.fit = args.fit
    if args.image:
        session.image = _picture("--image", args.image, "RGB")
    if args.paint:
        session.paint(_picture("--paint", args.paint, "RGBA"))
    for name in ("content", "content_strength", "motion", "trajectory_mode", "steps", "guidance", "lam"):
        value = getattr(args, name)
        if value is not None:
            setattr(session, name, value)
    if args.frames is not None:
        session.num_frames = args.frames
    if args.lam_schedule is not None:
        try:
            weights = [float(v) for v in args.lam_schedule.split(",")]
        except ValueError:
            allowed = "numbers in [0, 1] separated by commas"
            raise BadInput(f"--lam-schedule: {args.lam_schedule!r}; give {allowed}") from None
        session.lam = weights
    if args.trajectories:
        try:
            data = json.loads(_file("--trajectories", args.trajectories).read_text())
        except json.JSONDecodeError as exc:
            raise BadInput(f"--trajectories: {args.trajectories!r} is not JSON ({exc})") from None
        session.trajectories = data["trajectories"] if isinstance(data, dict) and "trajectories" in data else data


@reported("generate", bad=(BadInput, InstructionError), failed=(OSError, ValueError, RuntimeError))
def run(args: argparse.Namespace) -> int:
    """Bad input exits 2; a model that cannot be found or loaded, or a failed run, exits 1."""
    start = time.perf_counter()
    session = _session(args)
    _apply(session, args)
    video = session.generate(seed=args.seed, progress=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    video.to_mp4(out)
    lam = session.lam if isinstance(session.lam, float) else f"schedule of {len(session.lam)}"
    print(
        f"[ivcore] wrote {out} ({out.stat().st_size} bytes, {video.num_frames} frames at {video.fps} fps) "
        f"with models {session.models}, lam {lam}, {len(session.trajectories)} trajectories, "
        f"paint {'yes' if session.paint_layer is not None else 'no'}, in {time.perf_counter() - start:.1f}s"
    )
    return 0
