"""The shapes-world training recipe as data: what `train-shapes` runs, checked once.

`TrainConfig` and `StageConfig` are the recipe (written into config.json and the model card),
with the rules each numeric field follows declared once in `STAGE_RULES` / `TRAIN_RULES`: the
dataclasses, the command line and config.json all go through them. This module imports none of
the other training modules, so data, checkpoints, growing, export and the loop all import it
and none of them imports the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ivcore.errors import InstructionError
from ivcore.shapes import world

STAGES = ("vae", "image", "video")


def _int(low: int) -> tuple[str, Callable[[Any], bool]]:
    return f"an int >= {low}", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(allowed: str, ok: Callable[[float], bool]) -> tuple[str, Callable[[Any], bool]]:
    return allowed, lambda v: isinstance(v, int | float) and not isinstance(v, bool) and ok(v)


def _check(config, rules: dict[str, tuple[str, Callable[[Any], bool]]]) -> None:
    """Raise the project's InstructionError (a ValueError) for the first field whose value breaks its rule."""
    for name, (allowed, ok) in rules.items():
        value = getattr(config, name)
        if not ok(value):
            raise InstructionError(name, value, allowed)


_FRACTION = _number("a number from 0 to 1", lambda v: 0 <= v <= 1)
_NON_NEGATIVE = _number("a number >= 0", lambda v: v >= 0)
# what each numeric field allows, declared once (the CLI and config.json go through the same check)
STAGE_RULES = {
    "steps": _int(1), "batch": _int(1), "lr": _number("a number > 0", lambda v: v > 0), "warmup": _int(0),
    "final_lr_ratio": _FRACTION, "ema": _number("a number from 0 (no EMA) to below 1", lambda v: 0 <= v < 1),
    "checkpoint_every": _int(1), "foreground_weight": _NON_NEGATIVE, "snr_gamma": _NON_NEGATIVE,
}  # fmt: skip
TRAIN_RULES = {
    "seed": _int(0), "pool": _int(1), "pool_refresh": _int(1), "text_dropout": _FRACTION,
    "collage_for_moves": _FRACTION, "kl_weight": _NON_NEGATIVE,
    "video_timestep_power": _number("a number > 0", lambda v: v > 0), "video_layers_per_block": _int(1),
    "video_width": ("1, 2, 4, ... (a power of two)", lambda v: _int(1)[1](v) and not v & (v - 1)),
}  # fmt: skip


@dataclass
class StageConfig:
    steps: int
    batch: int
    lr: float
    warmup: int = 100
    final_lr_ratio: float = 0.1  # cosine from lr to lr * ratio over `steps`
    ema: float = 0.0  # EMA decay of the exported weights (0: no EMA)
    checkpoint_every: int = 250
    # diffusion stages: extra loss weight on latent cells a shape touches (0: plain MSE). Shapes are
    # ~15 % of the cells, so plain MSE spends most of its mass on flat background, while the errors
    # people see (a caption's shape drawn as another kind or colour) are on the shapes
    foreground_weight: float = 0.0
    # diffusion stages: Min-SNR-gamma loss weights (Hang et al. 2023; diffusers' `--snr_gamma`, 5 is
    # theirs), 0: off. Each timestep's loss counts min(SNR, gamma) / (SNR + 1) (v-prediction), so the
    # nearly clean steps stop dominating and the steps that settle colours and shapes count more
    snr_gamma: float = 0.0

    def __post_init__(self) -> None:
        _check(self, STAGE_RULES)


SHIPPED_VIDEO_KINDS = {"move": 0.45, "pan": 0.25, "still": 0.1, "path": 0.2}


@dataclass
class TrainConfig:
    """The whole recipe as data (written into the model card)."""

    seed: int = 0
    # the shipped models' recipe as one run (ivcore/shapes/card.md tells how the shipped run went)
    vae: StageConfig = field(default_factory=lambda: StageConfig(steps=2000, batch=32, lr=1e-3, ema=0.0))
    image: StageConfig = field(
        default_factory=lambda: StageConfig(steps=30000, batch=32, lr=1e-3, ema=0.999, foreground_weight=4.0)
    )
    video: StageConfig = field(default_factory=lambda: StageConfig(steps=25000, batch=4, lr=1e-3, ema=0.999))
    pool: int = 800  # clips kept encoded for the video stage
    # clips replaced in the pool each step: each clip is drawn about video.batch / pool_refresh times
    # (4 in the shipped recipe); raise it with the batch on a GPU so clips are not seen far more often
    pool_refresh: int = 1
    text_dropout: float = 0.1
    collage_for_moves: float = 0.1
    kl_weight: float = 1e-6
    # video timesteps t = T * (1 - (1 - u)^p), u uniform: p = 2 puts 71 % of them in the noisier half,
    # where the layout (what moves where) is decided; copying detail is learned at any t
    video_timestep_power: float = 2.0
    # probabilities of the video clips' kinds (None: `world.random_clip`'s own 0.5 / 0.15 / 0.15 / 0.2);
    # the shipped mix: fewer stills (right from early on); a trial with 40 % pans was no better at pans
    video_kinds: dict[str, float] | None = field(default_factory=lambda: dict(SHIPPED_VIDEO_KINDS))
    # the video UNet's depth: 1 is the tiny preset's, 2 SD1.5's and PIA's. Raising it on a trained run
    # grows the checkpoint (same function, new layers start as identities) and trains on: the shipped
    # model had 1 for 18000 steps (camera pans 67 %), then 2 to step 25000 (pans 88 % of clips 0-23; see card.md)
    video_layers_per_block: int = 2
    # the video UNet's width, in multiples of the preset's channels (32, 64): a power of two. Raising
    # it on a trained run doubles every channel (`widen_video_unet`: the same function) and trains on
    video_width: int = 1
    # where the weights start: None (from scratch, seeded), "shipped" (the package's trained models) or
    # a folder of exported models (a train-shapes --out): a fine-tune. The VAE is kept as it is (the
    # UNets' latents depend on it); the image and video stages train `steps` more from those weights
    init: str | None = None

    def __post_init__(self) -> None:
        if self.video_kinds is not None:
            unknown = sorted(set(self.video_kinds) - set(world.MOTIONS))
            weights = list(self.video_kinds.values())
            if unknown or any(not w >= 0 for w in weights) or not sum(weights) > 0:
                raise InstructionError("video_kinds", self.video_kinds, f"weights >= 0 (not all 0) for {world.MOTIONS}")
        _check(self, TRAIN_RULES)
        if self.pool_refresh > self.pool:
            raise InstructionError("pool_refresh", self.pool_refresh, f"1 to pool ({self.pool})")
        if self.init is not None and not (isinstance(self.init, str) and self.init):
            raise InstructionError("init", self.init, 'None, "shipped" or a folder with image/ and video/')

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A recipe from its config.json; a file written before `video_kinds` existed meant None, one
        before `video_layers_per_block` the tiny preset's 1."""
        d = {"video_kinds": None, "video_layers_per_block": 1, **d}
        for stage in STAGES:
            if stage in d:
                d[stage] = StageConfig(**d[stage])
        return cls(**d)


def check_run(stages: str | Sequence[str], minutes: float | None) -> list[str]:
    """The stages to run, in order, once `stages` and `minutes` are known good; else InstructionError.

    One check for `train` and for `train-shapes`, which calls it before it writes anything."""
    stages = [stages] if isinstance(stages, str) else list(stages)
    if not stages or any(s not in STAGES for s in stages):
        raise InstructionError("stages", stages, f"one or more of {', '.join(STAGES)}")
    allowed, ok = _NON_NEGATIVE
    if minutes is not None and not ok(minutes):
        raise InstructionError("minutes", minutes, f"{allowed} (None: no time limit)")
    return [s for s in STAGES if s in stages]
