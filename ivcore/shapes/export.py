"""Export the shapes-world models from their checkpoints: diffusers folders, `card.md`, `losses.png`.

Split from `ivcore.shapes.train` (the training loop) so each module keeps one job; `train()` and
`python -m ivcore train-shapes --export` call `export`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ivcore.shapes import models as sm
from ivcore.shapes.checkpoint import Checkpoint, stage_weights, trained_vae
from ivcore.shapes.evaluate import metrics_table
from ivcore.shapes.grow import grow_video_checkpoint
from ivcore.shapes.recipe import STAGES, TrainConfig


def export(root: Path, cfg: TrainConfig) -> dict[str, Path]:
    """Write the trained (EMA) weights as diffusers folders: root/image (SD layout), root/video (PIA)."""
    root = Path(root)
    vae = trained_vae(root)
    tokenizer = sm.shapes_tokenizer()
    written = {}
    grow_video_checkpoint(root, cfg)  # a raised `video_layers_per_block` or `video_width` on a trained run
    for stage, make_unet, make_scheduler in (
        ("image", sm.new_image_unet, sm.image_scheduler),
        ("video", lambda: sm.new_video_unet(cfg.video_layers_per_block, cfg.video_width), sm.video_scheduler),
    ):
        if not (Checkpoint(root, stage).folder / "weights.safetensors").is_file():
            continue
        modules = {"unet": make_unet(), "text_encoder": sm.new_text_encoder(tokenizer)}
        stage_weights(root, stage, modules)
        written[stage] = sm.save_model_folder(
            root / stage, modules["unet"], vae, modules["text_encoder"], tokenizer, make_scheduler()
        )
    write_card(root, cfg)
    return written


def write_card(root: Path, cfg: TrainConfig, metrics: list[dict] | None = None) -> Path:
    """card.md (data, recipe, steps, wall time, losses, metrics) and losses.png beside the weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(root)
    states = {s: Checkpoint(root, s).state for s in STAGES}
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for ax, (name, state) in zip(axes, states.items(), strict=True):
        if state["losses"]:
            steps, losses = zip(*state["losses"], strict=True)
            ax.plot(steps, losses, lw=0.8)
            ax.set_yscale("log")
        ax.set_title(f"{name} loss")
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(root / "losses.png", dpi=80)
    plt.close(fig)
    metrics_path = root / "metrics.json"
    if metrics is None and metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
    start = f"fine-tuned from `{cfg.init}` (init; the VAE kept as it was)" if cfg.init else "trained from scratch"
    device = "CUDA GPU" if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    lines = [
        "# Shapes-world models (InteractiveVideo toolkit)",
        "",
        f"Tiny diffusion models {start} on `ivcore.shapes.world` (64 x 64 pictures, 8-frame clips of coloured",
        "shapes), for demos, teaching and tests without a GPU or a download. Recipe: `ivcore/shapes/train.py`.",
        "",
        f"Trained on: {device}. Seed {cfg.seed}.",
        "",
        "| stage | steps | batch | lr | EMA | wall time | loss (last 200 steps) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, state in states.items():
        c = getattr(cfg, name)
        tail = [v for s, v in state["losses"] if s > state["step"] - 200]
        loss = f"{np.mean(tail):.4f}" if tail else "-"
        lines.append(
            f"| {name} | {state['step']} / {c.steps} | {c.batch} | {c.lr:g} | {c.ema or '-'} | "
            f"{state['wall_s'] / 60:.1f} min | {loss} |"
        )
    lines += ["", "Data: `ivcore.shapes.world.random_clip` with training seeds (held-out seeds are >= 10^9).",
              f"Video stage: a pool of {cfg.pool} encoded clips, {cfg.pool_refresh} replaced per step; path clips and "
              f"{cfg.collage_for_moves:.0%} of move clips condition on the `animate` collage per frame.",
              "", "![losses](losses.png)", ""]  # fmt: skip
    if cfg.video_kinds:
        total = sum(cfg.video_kinds.values())
        mix = ", ".join(f"{kind} {weight / total:.0%}" for kind, weight in cfg.video_kinds.items())
        lines[-3:-3] = [f"Video clips by kind: {mix} (`video_kinds`)."]
    if metrics:  # rows written by `benchmarks/quality.py --json DIR/metrics.json`
        lines += ["## Metrics (benchmarks/quality.py, held-out seeds)", "", metrics_table(metrics)]
    notes = root / "notes.md"  # free text a trainer adds (schedule changes, hardware, ...)
    if notes.is_file():
        lines += ["", "## Notes", "", notes.read_text().strip()]
    lines += ["", "## Recipe", "", "```json", json.dumps(asdict(cfg), indent=2), "```", ""]
    path = root / "card.md"
    path.write_text("\n".join(lines))
    return path
