"""`python -m ivcore train-shapes`: its flags derived from the recipe's dataclasses.

Every field of `TrainConfig` is a flag (`--pool-refresh`, `--init`) and every field of a stage's
`StageConfig` one per stage (`--video-lr`, `--image-snr-gamma`), so a new recipe field is on the
command line without another hand-written pair, and a value goes through the same checks as
config.json (a bad one is refused naming the field, the value and what is allowed).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import get_type_hints

from ivcore.shapes import recipe as st


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _kinds(text: str) -> dict[str, float]:
    """ "move=0.5,pan=0.5" -> {"move": 0.5, "pan": 0.5} (checked by TrainConfig)."""
    try:
        return {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(",") if part.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: kind=weight pairs, e.g. move=0.45,pan=0.25") from None


def _value_type(hint):
    """argparse's `type` for a field's annotation: int, float or str (`X | None` as X)."""
    for kind in (int, float, str):
        if hint is kind or kind in getattr(hint, "__args__", ()):
            return kind
    return _kinds  # video_kinds, the one dict field


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("train-shapes", help="train (or fine-tune) the shapes-world models, resumable")
    add_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The train-shapes flags: the command's own, then one per recipe field (default: the run's config.json)."""
    parser.add_argument("--out", required=True, help="folder for weights, checkpoints, card.md and losses.png")
    parser.add_argument(
        "--stages", default="vae,image,video", help="comma-separated; run as vae, image, video (default: all)"
    )
    parser.add_argument("--minutes", type=float, help="stop (checkpointed) after this long; run again to go on")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--export", action="store_true", help="only write image/, video/ and card.md from checkpoints")
    recipe = parser.add_argument_group("recipe (default: the folder's config.json, else the shipped recipe)")
    train_hints, stage_hints = get_type_hints(st.TrainConfig), get_type_hints(st.StageConfig)
    shipped = st.TrainConfig()
    for f in fields(st.TrainConfig):
        if f.name in st.STAGES:
            continue
        extra = ' ("shipped" or a train-shapes --out: fine-tune from those models)' if f.name == "init" else ""
        recipe.add_argument(
            _flag(f.name), type=_value_type(train_hints[f.name]),
            help=f"TrainConfig.{f.name}{extra}; shipped recipe: {getattr(shipped, f.name)}",
        )  # fmt: skip
    for stage in st.STAGES:
        for f in fields(st.StageConfig):
            default = getattr(getattr(shipped, stage), f.name)
            recipe.add_argument(
                _flag(f"{stage}_{f.name}"), type=_value_type(stage_hints[f.name]), dest=f"{stage}__{f.name}",
                metavar=f.name.upper(), help=f"StageConfig.{f.name}; shipped recipe: {default}",
            )  # fmt: skip


def recipe_from_args(args: argparse.Namespace, base: st.TrainConfig) -> st.TrainConfig:
    """`base` with the flags given on the command line; raises ValueError naming a bad field."""
    stages = {}
    for stage in st.STAGES:
        given = {f.name: getattr(args, f"{stage}__{f.name}") for f in fields(st.StageConfig)}
        stages[stage] = replace(getattr(base, stage), **{k: v for k, v in given.items() if v is not None})
    given = {f.name: getattr(args, f.name) for f in fields(st.TrainConfig) if f.name not in st.STAGES}
    return replace(base, **stages, **{k: v for k, v in given.items() if v is not None})


def run(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    config_path = out / "config.json"
    base = st.TrainConfig.from_dict(json.loads(config_path.read_text())) if config_path.is_file() else st.TrainConfig()
    try:
        cfg = recipe_from_args(args, base)
    except ValueError as error:
        raise SystemExit(f"train-shapes: {error}") from None
    try:
        stages = st.check_run([s.strip() for s in args.stages.split(",") if s.strip()], args.minutes)
    except ValueError as error:
        raise SystemExit(f"train-shapes: {error}") from None
    if cfg.init:
        from ivcore.shapes.start import init_folder

        try:
            init_folder(cfg.init)
        except FileNotFoundError as error:
            raise SystemExit(f"train-shapes: {error}") from None
    start = time.perf_counter()
    if args.export:
        out.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(asdict(cfg), indent=2))
        from ivcore.shapes.export import export

        written = export(out, cfg)
    else:
        from ivcore.shapes.train import train

        written = train(out, cfg, stages=stages, minutes=args.minutes)
    print(
        f"[ivcore] train-shapes: {', '.join(f'{k} -> {v}' for k, v in written.items()) or 'nothing exported'} "
        f"({time.perf_counter() - start:.0f}s); card: {out / 'card.md'}"
    )
