"""Growing a trained video checkpoint, deeper or wider, to the same function, so a run trains on.

The shipped video UNet went from 1 to 2 layers per block at step 18000; `video_width` doubles
every channel the same way. Both keep what the smaller model learned instead of starting over.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from ivcore.shapes import models as sm
from ivcore.shapes.checkpoint import Checkpoint, derived_seed, flat_state, load_flat_state
from ivcore.shapes.recipe import TrainConfig


def _layers_per_block(flat_keys) -> int:
    """How many resnets a checkpoint's video UNet has in its first down block."""
    prefix = "unet.down_blocks.0.resnets."
    return len({k[len(prefix) :].split(".")[0] for k in flat_keys if k.startswith(prefix)})


def _video_width(f) -> int:
    """How many times the preset's channels a checkpoint's video UNet has (from its header)."""
    return sm.width_of(f.get_slice("unet.conv_in.weight").get_shape()[0])


def grow_video_checkpoint(root: Path, cfg: TrainConfig) -> bool:
    """Grow a video checkpoint to `cfg.video_layers_per_block` and `cfg.video_width`.

    The grown UNet computes the same function (`models.deepen_video_unet`, then
    `widen_video_unet`), live and EMA weights alike; AdamW starts afresh (its moments belong to the
    old parameters). So raising either setting (and the steps) on a trained run trains on from
    where the smaller model stopped. Returns whether it grew.
    """
    ckpt = Checkpoint(root, "video")
    path = ckpt.folder / "weights.safetensors"
    if not path.is_file():
        return False
    with safe_open(str(path), "pt") as f:  # the header is enough to measure the model
        have = {"video_layers_per_block": _layers_per_block(f.keys()), "video_width": _video_width(f)}
    wanted = {key: getattr(cfg, key) for key in have}
    if have == wanted:
        return False
    for key, value in have.items():
        if value > wanted[key]:
            raise ValueError(
                f"{key}: {wanted[key]}; the checkpoint in {ckpt.folder} has {value} "
                f"(allowed: {value} or more; a model does not shrink)"
            )
    tokenizer = sm.shapes_tokenizer()

    def small() -> dict:
        unet = sm.new_video_unet(have["video_layers_per_block"], have["video_width"])
        return {"unet": unet, "text_encoder": sm.new_text_encoder(tokenizer)}

    def grown(modules: dict) -> dict:  # the free choices are seeded: the same for live and EMA weights
        layers, width = wanted["video_layers_per_block"], wanted["video_width"]
        torch.manual_seed(derived_seed(cfg.seed, 2, layers))
        unet = sm.deepen_video_unet(modules["unet"], layers)
        torch.manual_seed(derived_seed(cfg.seed, 2, layers, width))
        return {**modules, "unet": sm.widen_video_unet(unet, width)}

    live = small()
    ema = ckpt.load(live)
    if ema:
        ema_modules = small()
        load_flat_state(ema_modules, ema)
        ema = flat_state(grown(ema_modules))
    ckpt.save(grown(live), ema or None, None, ckpt.state)
    return True
