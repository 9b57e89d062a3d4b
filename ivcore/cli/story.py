"""`python -m ivcore story spec.json --out story.mp4`: a story rendered segment by segment, for scripts.

The spec is a JSON list of segments, or an object with `segments` and optionally `preset`
("shapes", "tiny", a train-shapes folder) or `session` (a folder written by Session.save),
`image` and `content` (the first segment's picture and text) and `out`. A segment sets any of
motion, trajectories (as Trajectory.to_dict writes them), paint (an RGBA PNG, painted over the
segment's first frame), lam, seed, num_frames, steps, guidance, trajectory_mode, motion_scale;
each later segment starts from the last frame of the one before (`Session.continue_from`).
Paths are relative to the spec file. Bad input exits with 2 and one line naming the field.

    [{"motion": "the red circle moves right", "lam": 0, "seed": 0},
     {"motion": "the red circle moves down", "seed": 1}]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ivcore.cli.exits import reported
from ivcore.errors import InstructionError

SPEC_KEYS = ("segments", "preset", "session", "image", "content", "out", "save")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("story", help="render a story: segments, each from the last frame of the one before")
    p.add_argument("spec", help="a JSON file: a list of segments, or {segments, preset|session, image, content, out}")
    p.add_argument("--out", help="the mp4 to write (default: the spec's out, else story.mp4 beside the spec)")
    p.add_argument("--save", help="also save the session (takes and story) into this folder")
    p.set_defaults(run=run)
    return p


def load_spec(path: str) -> dict:
    """The spec as an object, paths made relative to its file; InstructionError naming the field."""
    file = Path(path)
    if not file.is_file():
        raise InstructionError("spec", path, "a JSON file")
    try:
        spec = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InstructionError("spec", path, f"valid JSON ({exc})") from None
    if isinstance(spec, list):
        spec = {"segments": spec}
    if not isinstance(spec, dict):
        raise InstructionError("spec", type(spec).__name__, "a list of segments or an object with segments")
    for key in spec:
        if key not in SPEC_KEYS:
            raise InstructionError(key, spec[key], f"one of the spec keys {', '.join(SPEC_KEYS)}")
    if "preset" in spec and "session" in spec:
        raise InstructionError("session", spec["session"], "either session or preset, not both")
    for key in ("session", "image", "out", "save"):
        if key in spec:
            if not isinstance(spec[key], str):
                raise InstructionError(key, spec[key], "a path (string), relative to the spec file")
            spec[key] = str(file.parent / spec[key])
    segments = spec.get("segments")
    if not isinstance(segments, list) or not segments:
        raise InstructionError("segments", segments, "a non-empty list of segments")
    for i, segment in enumerate(segments):
        if isinstance(segment, dict) and isinstance(segment.get("paint"), str):
            segment["paint"] = _picture(f"segments[{i}].paint", file.parent / segment["paint"])
    return spec


def _picture(field: str, path: Path):
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InstructionError(field, str(path.name), "an RGBA PNG file beside the spec")
    try:
        with Image.open(path) as im:
            return im.convert("RGBA")
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InstructionError(field, str(path.name), f"a picture PIL can read ({type(exc).__name__})") from None


@reported("story")
def run(args: argparse.Namespace) -> int:
    from ivcore import Session
    from ivcore.story import render

    start = time.perf_counter()
    spec = load_spec(args.spec)
    session = Session.load(spec["session"]) if "session" in spec else Session.preset(spec.get("preset", "shapes"))
    if "image" in spec:
        session.image = spec["image"]
    if "content" in spec:
        session.content = spec["content"]
    video = render(session, spec["segments"], progress=True)
    out = Path(args.out or spec.get("out") or Path(args.spec).parent / "story.mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    video.to_mp4(out)
    if args.save or spec.get("save"):
        session.save(args.save or spec["save"])
    print(
        f"[ivcore] wrote {out} ({out.stat().st_size} bytes): {len(session.story)} segments, {video.num_frames} frames "
        f"at {video.fps} fps (the seams once), in {time.perf_counter() - start:.1f}s"
    )
    return 0
