"""`python -m ivcore grid spec.json`: render a grid of videos (seeds, lambdas, motion texts, trajectories).

    python -m ivcore grid spec.json [--out DIR] [--engine local|ray] [--workers N] [--address ADDR]

The spec file (JSON, docs/batch.md) names a saved session folder or a preset, the grid axes and
the output folder; options given here override it. Exit status: 0 when every cell is written,
2 on a bad spec (one line naming the field), 1 when cells still fail after retries (listed in
out/index.json) or the models cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ivcore import presets
from ivcore.cli.exits import reported
from ivcore.errors import InstructionError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("grid", help="render a grid of seeds, lambdas, motion texts and trajectories (local or Ray)")
    p.add_argument("spec", help="a JSON spec file: session or preset, grid, out (docs/batch.md)")
    p.add_argument("--out", help="output folder (default: the spec's out, or grid/ beside the spec)")
    p.add_argument("--engine", choices=("local", "ray"), help="local processes (default) or a Ray cluster")
    p.add_argument("--workers", type=int, help="workers (default: 1 local; the cluster's GPUs or 1 on Ray)")
    p.add_argument("--address", help="Ray cluster address for ray.init (default: start a local one)")
    p.add_argument("--retries", type=int, help="extra attempts for a failed cell (default 1)")
    p.set_defaults(run=run)
    return p


SPEC_KEYS = frozenset("session preset grid out engine workers retries address steps frames threads save_frames".split())


def load_spec(path: str | os.PathLike) -> dict:
    """Read a `python -m ivcore grid` spec file (docs/batch.md); paths in it are relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise InstructionError("spec", str(path), "a JSON spec file (see docs/batch.md)")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InstructionError("spec", str(path), f"valid JSON ({exc})") from None
    if not isinstance(spec, dict):
        raise InstructionError("spec", type(spec).__name__, "a JSON object with session or preset, grid and out")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise InstructionError(unknown[0], spec[unknown[0]], f"one of the spec keys {', '.join(sorted(SPEC_KEYS))}")
    if ("session" in spec) == ("preset" in spec):
        raise InstructionError("session", spec.get("session"), "exactly one of session (a folder) or preset")
    if "preset" in spec and spec["preset"] not in presets.names():
        raise InstructionError("preset", spec["preset"], f"one of {', '.join(presets.names())}")
    if "grid" not in spec:
        raise InstructionError("grid", None, "a mapping of axes to lists of values")
    for key in ("session", "out"):
        if key in spec:
            if not isinstance(spec[key], str):
                raise InstructionError(key, spec[key], "a path (string), relative to the spec file")
            spec[key] = str(path.parent / spec[key])
    return spec


@reported("grid")
def run(args: argparse.Namespace) -> int:
    from ivcore import Session
    from ivcore.batch import run_grid

    spec = load_spec(args.spec)
    out = Path(args.out or spec.get("out") or Path(args.spec).parent / "grid")
    source = spec.get("session")
    if source is None:  # a preset: saved into out/session by run_grid
        source = Session.preset(spec["preset"])
    options = {
        "engine": args.engine or spec.get("engine", "local"),
        "workers": args.workers if args.workers is not None else spec.get("workers"),
        "retries": args.retries if args.retries is not None else spec.get("retries", 1),
        "address": args.address or spec.get("address"),
        "steps": spec.get("steps"),
        "num_frames": spec.get("frames"),
        "threads": spec.get("threads"),
        "save_frames": bool(spec.get("save_frames", False)),
    }
    index = run_grid(source, spec["grid"], out=out, **options)  # GridError (cells failed) is a RuntimeError: 1
    print(f"[ivcore] grid: index {index}, contact sheet {index.parent / 'contact_sheet.png'}")
    return 0
