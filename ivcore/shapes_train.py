"""Train the shapes-world models: `python -m ivcore train-shapes --out DIR`.

Three stages, in order, each resumable from its last checkpoint (also after a restart):

1. ``vae``: the tiny preset's AutoencoderKL on single world pictures (MSE + a small KL term);
   its `scaling_factor` is then set to 1 / std of the latents, as SD's is.
2. ``image``: P_img, the tiny 2D UNet with a trainable CLIP text encoder, on (picture, content
   caption) pairs; v-prediction; captions dropped 10% of the time for classifier-free guidance.
3. ``video``: P_video, PIA's layout (UNetMotionModel from the 2D UNet plus a motion adapter with
   a 9-channel conv_in) and its own trainable text encoder, on (clip, motion caption) pairs. The
   condition channels are PIA's: motion-mask weights of motion_scale 0 and the first frame's
   latents repeated; for "path" clips (and a quarter of "move" clips) one latent per frame of the
   cut-and-paste animation `ivcore.trajectory.animate` along the true path, so the model learns
   to turn such collages into clean frames (trajectory path mode). Its depth is
   `video_layers_per_block` and its width `video_width`; raising either on a trained run grows
   the model (to the same function) and trains on.

Everything is seeded: data come from `ivcore.world` with seeds derived from (seed, stage, step),
noise from a generator seeded the same way, so a run stopped at any step and resumed gives the
same weights as an uninterrupted one. Built on `accelerate`: `accelerate launch -m ivcore
train-shapes ...` spreads the batch over several GPUs. Beside the weights: `card.md` (data,
steps, wall time, losses, metrics), `losses.png` and `train_state/` (checkpoints).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MethodType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_snr
from tqdm.auto import tqdm

from ivcore import shapes_models as sm
from ivcore import world
from ivcore.backends.video import motion_mask_weights
from ivcore.errors import InstructionError
from ivcore.shapes_checkpoint import EMA, Checkpoint, derived_seed
from ivcore.shapes_data import ClipPool, encode, foreground_cells, picture_batch, pixels
from ivcore.shapes_grow import grow_video_checkpoint

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


def _data_seed(cfg: TrainConfig, accelerator) -> int:
    """The seed of this process's data: the recipe seed on one process, a distinct one per GPU otherwise."""
    return cfg.seed if accelerator.num_processes == 1 else derived_seed(cfg.seed, 1000 + accelerator.process_index)


def _lr_factor(cfg: StageConfig, step: int) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def _weighted_mse(
    pred: torch.Tensor, target: torch.Tensor, foreground: torch.Tensor, cfg: StageConfig, snr: torch.Tensor
) -> torch.Tensor:
    """MSE with cells under a shape weighted 1 + `foreground_weight` and each sample by its timestep's
    Min-SNR weight (`snr`: the samples' SNR); normalised by the weights, so the loss scale stays put."""
    if not cfg.foreground_weight and not cfg.snr_gamma:
        return F.mse_loss(pred, target)
    w = (1 + cfg.foreground_weight * foreground).expand_as(pred)
    if cfg.snr_gamma:
        per_sample = snr.clamp(max=cfg.snr_gamma) / (snr + 1)
        w = w * per_sample.view(-1, *[1] * (pred.dim() - 1)).to(w)
    return (w * (pred - target) ** 2).sum() / w.sum()


# ------------------------------------------------------------------------------------ the loop


def _tokens(tokenizer, captions: list[str]) -> torch.Tensor:
    """Token ids as `ivcore.backends.text.encode_prompt` makes them (padded to 77)."""
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids  # fmt: skip


def _drop(captions: list[str], rng: np.random.Generator, p: float) -> list[str]:
    """Replace captions by "" with probability p (classifier-free guidance learns the empty prompt)."""
    return ["" if rng.random() < p else c for c in captions]


@dataclass
class StopRule:
    """When one `train` call pauses a stage: after `steps` steps in this call, or once `time.monotonic()`
    passes `deadline`. Every process of a multi-GPU run takes the same decision (the main one's clock)."""

    steps: int | None = None
    deadline: float | None = None

    def reached(self, steps_done: int, accelerator) -> bool:
        if self.steps is not None and steps_done >= self.steps:
            return True
        if self.deadline is None:
            return False
        late = torch.tensor([float(time.monotonic() >= self.deadline)], device=accelerator.device)
        if accelerator.num_processes > 1:
            from accelerate.utils import broadcast

            late = broadcast(late)  # the main process's clock decides for all
        return bool(late.item())


def _train_stage(
    root: Path, name: str, cfg: StageConfig, modules: dict, loss_fn, accelerator, progress: bool, stop=None
) -> None:
    """The shared loop: AdamW, warm-up + cosine, grad-norm clip 1, EMA, checkpoints, resume.

    `stop` (a StopRule) ends this call early, checkpointed, as a kill would, minus the loss.
    """
    ckpt = Checkpoint(root, name)
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    saved_ema = ckpt.load(modules, optimizer)
    state = ckpt.state
    if state["step"] >= cfg.steps:  # finished; raise `steps` to train on (a warm restart of the cosine)
        return
    ema = EMA(modules, cfg.ema, saved_ema) if cfg.ema else None
    prepared = accelerator.prepare(*modules.values(), optimizer)
    *wrapped, optimizer = prepared if isinstance(prepared, tuple) else (prepared,)
    live = dict(zip(modules, wrapped, strict=True))
    for m in live.values():
        m.train()
    start, recent = int(state["step"]), []
    clock = time.perf_counter()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"train {name}", disable=not progress)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(cfg, step)
        loss = loss_fn(live, step)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema:
            ema.update(modules, step)
        recent.append(float(accelerator.gather(loss.detach()).mean()))
        if len(recent) == 10:
            state["losses"].append([step + 1, float(np.mean(recent))])
            bar.set_postfix(loss=f"{state['losses'][-1][1]:.4f}")
            recent = []
        done = step + 1 == cfg.steps
        pause = stop is not None and stop.reached(step + 1 - start, accelerator)
        if (step + 1) % cfg.checkpoint_every == 0 or done or pause:
            now = time.perf_counter()
            state.update(step=step + 1, wall_s=state["wall_s"] + now - clock, done=done)
            clock = now
            if accelerator.is_main_process:
                ckpt.save(modules, ema.shadow if ema else None, optimizer, state)
            accelerator.wait_for_everyone()
        if pause:
            break
    for m in modules.values():
        m.eval()


def _stage_weights(root: Path, name: str, modules: dict, use_ema: bool = True) -> dict:
    """Load a stage's trained (EMA when there is one) weights into `modules`; returns its state."""
    ckpt = Checkpoint(root, name)
    ema = ckpt.load(modules)
    if ema is None:
        raise FileNotFoundError(f"train-shapes: stage {name!r} has no checkpoint in {ckpt.folder}; run it first")
    if ema and use_ema:
        shadow = EMA(modules, 1.0, ema)
        shadow.copy_to(modules)
    for m in modules.values():
        m.eval()
    return ckpt.state


def _vae_training_forward(vae, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode, sample and decode in one forward: the reconstruction and the KL term.

    On several processes DDP averages gradients only for what ran through its wrapper's forward,
    so the whole step must be one forward (calling encode and decode on the unwrapped VAE let each
    process train its own VAE).
    """
    posterior = vae.encode(x).latent_dist
    z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(x.device)
    return vae.decode(z).sample, posterior.kl()


def train_vae(root: Path, cfg: TrainConfig, accelerator, progress: bool = True, stop: StopRule | None = None):
    torch.manual_seed(derived_seed(cfg.seed, 0))
    vae = sm.new_vae()
    modules = {"vae": vae}
    data_seed = _data_seed(cfg, accelerator)

    def loss_fn(live, step):
        pictures, _, _ = picture_batch(data_seed, 0, step, cfg.vae.batch)
        x = pixels(pictures).to(accelerator.device)
        generator = torch.Generator().manual_seed(derived_seed(data_seed, 0, step, 1))
        recon, kl = live["vae"](x, generator)
        return F.mse_loss(recon, x) + cfg.kl_weight * kl.mean()

    vae.forward = MethodType(_vae_training_forward, vae)  # the whole step through DDP's forward
    try:
        _train_stage(root, "vae", cfg.vae, modules, loss_fn, accelerator, progress, stop)
    finally:
        del vae.forward
    state = Checkpoint(root, "vae").state
    if "scaling_factor" not in state and state.get("done"):
        pictures, _, _ = picture_batch(cfg.seed, 0, 10**6, 256)
        with torch.no_grad():
            latents = vae.encode(pixels(pictures)).latent_dist.mean
        state["scaling_factor"] = float(1.0 / latents.std())
        if accelerator.is_main_process:
            Checkpoint(root, "vae").save(modules, None, None, state)
        accelerator.wait_for_everyone()


def trained_vae(root: Path):
    """The trained VAE with its scaling factor and a deterministic posterior (see `deterministic_posterior`)."""
    vae = sm.new_vae()
    state = _stage_weights(root, "vae", {"vae": vae})
    if "scaling_factor" in state:
        vae.register_to_config(scaling_factor=state["scaling_factor"])
    return deterministic_posterior(vae)


@torch.no_grad()
def deterministic_posterior(vae):
    """Fix the encoder's log-variance at -30 (std 3e-7): `latent_dist.sample()` becomes the mean.

    With a KL weight of 1e-6 the latent channels the decoder does not need drift to the prior,
    N(0, 1): sampled latents then carry noise no diffusion model can predict (a v-loss stuck near
    1.3 measured it). The decoder was trained on noisy samples, so it decodes the means at least
    as well (31.7 dB held-out), and the pipelines' `latent_dist.sample(generator)` keeps working.
    """
    channels = vae.config.latent_channels
    vae.quant_conv.weight[channels:] = 0
    vae.quant_conv.bias[channels:] = -30.0
    return vae


def _diffusion_stage(root: Path, cfg: TrainConfig, accelerator, stage: int, new_unet, new_scheduler):
    """What both diffusion stages start from: the trained VAE, the tokenizer, a fresh UNet and text
    encoder (seeded by the stage), the noise scheduler and this process's data seed."""
    vae = trained_vae(root).to(accelerator.device)
    tokenizer = sm.shapes_tokenizer()
    torch.manual_seed(derived_seed(cfg.seed, stage))
    modules = {"unet": new_unet(), "text_encoder": sm.new_text_encoder(tokenizer)}
    return vae, tokenizer, modules, new_scheduler(), _data_seed(cfg, accelerator)


def train_image(root: Path, cfg: TrainConfig, accelerator, progress: bool = True, stop: StopRule | None = None):
    vae, tokenizer, modules, scheduler, data_seed = _diffusion_stage(
        root, cfg, accelerator, 1, sm.new_image_unet, sm.image_scheduler
    )

    def loss_fn(live, step):
        rng = np.random.default_rng(derived_seed(data_seed, 1, step, 1))
        pictures, captions, backgrounds = picture_batch(data_seed, 1, step, cfg.image.batch)
        mean, std = encode(vae, pictures)
        generator = torch.Generator().manual_seed(derived_seed(data_seed, 1, step, 2))
        z = mean + std * torch.randn(mean.shape, generator=generator).to(mean.device)
        noise = torch.randn(z.shape, generator=generator).to(z.device)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z),), generator=generator).to(z.device)
        ids = _tokens(tokenizer, _drop(captions, rng, cfg.text_dropout)).to(z.device)
        embeds = live["text_encoder"](ids)[0]
        pred = live["unet"](scheduler.add_noise(z, noise, t), t, encoder_hidden_states=embeds).sample
        foreground = foreground_cells(pictures, backgrounds, z.shape[-1]).to(z.device)
        target = scheduler.get_velocity(z, noise, t)
        return _weighted_mse(pred, target, foreground, cfg.image, compute_snr(scheduler, t))

    _train_stage(root, "image", cfg.image, modules, loss_fn, accelerator, progress, stop)


def train_video(root: Path, cfg: TrainConfig, accelerator, progress: bool = True, stop: StopRule | None = None):
    vae, tokenizer, modules, scheduler, data_seed = _diffusion_stage(
        root,
        cfg,
        accelerator,
        2,
        lambda: sm.new_video_unet(cfg.video_layers_per_block, cfg.video_width),
        sm.video_scheduler,
    )
    if accelerator.is_main_process:
        grow_video_checkpoint(root, cfg)
    accelerator.wait_for_everyone()
    if Checkpoint(root, "video").state["step"] >= cfg.video.steps:
        return
    pool = ClipPool(vae, cfg, Checkpoint(root, "video").state["step"], progress, data_seed)
    frames = world.FRAMES
    mask = torch.tensor(motion_mask_weights(frames, 0)).view(1, 1, frames, 1, 1)

    def loss_fn(live, step):
        pool.refresh(step)
        rng = np.random.default_rng(derived_seed(data_seed, 2, step, 1))
        picks = [pool.slots[j] for j in rng.integers(0, pool.size, cfg.video.batch)]
        generator = torch.Generator().manual_seed(derived_seed(data_seed, 2, step, 2))

        def sample(mean, std):
            return mean + std * torch.randn(mean.shape, generator=generator).to(mean.device)

        z = torch.stack([sample(p["mean"], p["std"]) for p in picks]).permute(0, 2, 1, 3, 4)  # (B, 4, F, h, w)
        cond = torch.stack([sample(p["cond_mean"], p["cond_std"]).expand(frames, -1, -1, -1) for p in picks])
        cond = cond.permute(0, 2, 1, 3, 4)
        noise = torch.randn(z.shape, generator=generator).to(z.device)
        u = torch.rand(len(z), generator=generator)
        steps = scheduler.config.num_train_timesteps
        t = (steps * (1 - (1 - u) ** cfg.video_timestep_power)).long().clamp(0, steps - 1).to(z.device)
        noisy = scheduler.add_noise(z, noise, t)
        model_in = torch.cat([noisy, mask.to(z.device).expand(len(z), 1, frames, *z.shape[-2:]), cond], dim=1)
        ids = _tokens(tokenizer, _drop([p["motion"] for p in picks], rng, cfg.text_dropout)).to(z.device)
        embeds = live["text_encoder"](ids)[0].repeat_interleave(frames, dim=0)
        pred = live["unet"](model_in, t, encoder_hidden_states=embeds).sample
        foreground = torch.stack([p["foreground"] for p in picks]).permute(0, 2, 1, 3, 4).to(z.device)
        target = scheduler.get_velocity(z, noise, t)
        return _weighted_mse(pred, target, foreground, cfg.video, compute_snr(scheduler, t))

    _train_stage(root, "video", cfg.video, modules, loss_fn, accelerator, progress, stop)


# ------------------------------------------------------------------------------------ the command


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


def train(
    root: str | os.PathLike,
    cfg: TrainConfig | None = None,
    stages=STAGES,
    progress: bool = True,
    stop_after: int | None = None,
    minutes: float | None = None,
) -> dict:
    """Run (or resume) the stages in order, then export the weights and the card.

    `stop_after` (steps) pauses each stage after that many steps in this call, `minutes` the whole
    call once that much time has passed (checkpointed); run again to go on.
    """
    stages = check_run(stages, minutes)
    stop = StopRule(stop_after, None if minutes is None else time.monotonic() + 60 * minutes)
    from accelerate import Accelerator

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "config.json"
    if cfg is None:
        cfg = TrainConfig.from_dict(json.loads(config_path.read_text())) if config_path.is_file() else TrainConfig()
    config_path.write_text(json.dumps(asdict(cfg), indent=2))
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if cfg.init:  # a fine-tune: first checkpoints from trained models (a no-op once the run has its own)
        if accelerator.is_main_process:
            from ivcore.shapes_init import start_from_models

            start_from_models(root, cfg)
        accelerator.wait_for_everyone()
    runners = {"vae": train_vae, "image": train_image, "video": train_video}
    for stage in stages:
        runners[stage](root, cfg, accelerator, progress, stop)
        if Checkpoint(root, stage).state["step"] < getattr(cfg, stage).steps:
            break  # a later stage needs this one finished
    from ivcore.shapes_export import export

    return export(root, cfg) if accelerator.is_main_process else {}
