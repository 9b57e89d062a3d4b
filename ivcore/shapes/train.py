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

Everything is seeded: data come from `ivcore.shapes.world` with seeds derived from (seed, stage, step),
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
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MethodType

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_snr
from tqdm.auto import tqdm

from ivcore.backends.video import motion_mask_weights
from ivcore.shapes import models as sm
from ivcore.shapes import world
from ivcore.shapes.checkpoint import EMA, Checkpoint, derived_seed, trained_vae
from ivcore.shapes.data import ClipPool, encode, foreground_cells, picture_batch, pixels
from ivcore.shapes.grow import grow_video_checkpoint
from ivcore.shapes.recipe import STAGES, StageConfig, TrainConfig, check_run


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
            from ivcore.shapes.start import start_from_models

            start_from_models(root, cfg)
        accelerator.wait_for_everyone()
    runners = {"vae": train_vae, "image": train_image, "video": train_video}
    for stage in stages:
        runners[stage](root, cfg, accelerator, progress, stop)
        if Checkpoint(root, stage).state["step"] < getattr(cfg, stage).steps:
            break  # a later stage needs this one finished
    from ivcore.shapes.export import export

    return export(root, cfg) if accelerator.is_main_process else {}
