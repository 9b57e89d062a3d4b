"""P_video: LTX-Video's `LTXConditionPipeline` folders (0.9.5 and later, the few-step "-distilled" releases).

Lightricks ships LTX-Video 0.9.5 and later, and the guidance- and timestep-distilled 0.9.6 / 0.9.7 / 0.9.8
"-distilled" checkpoints that make LTX interactive (8 steps, one model call a step), as `LTXConditionPipeline`
folders. The modules are those of 0.9.x image-to-video (`ivcore.backends.ltx`), so this backend is the
LTX backend with what the condition pipeline does differently, each number from the pipeline's own code:

- generator draws: the noise first, then the image's posterior sample (`prepare_latents`), and, when the
  VAE is timestep-conditioned, the decode noise last. The decode draw is the run's: the backend says
  `decode_draws` and the Session hands `decode` the generator in the state the pipeline has after its loop.
- the image is a `LTXVideoCondition` at frame 0, strength 1: latent frame 0 is the image's latent
  (`lerp(noise, E(x), 1)` is exact), marked clean by the per-token timestep `min(t, (1 - mask) * 1000)`.
  Eq. 4 is then what it is for LTX image-to-video: each branch's frame 0 is its own image's latent, the
  guided velocities are blended, one step; frame 0 ends as `lam * E(x~) + (1 - lam) * E(x~')` (`finish`).
- RoPE: explicit video coordinates (`_prepare_video_ids`, `_scale_video_ids`, frames over `frame_rate`),
  not the image-to-video pipeline's interpolation scale, whose first latent frame sits elsewhere in time.
- the step: `scheduler.step(-v, t, x, per_token_timesteps=...)` over the packed tokens, as the pipeline
  takes it (the loop's `scheduler_step` hook), so that a schedule the scheduler reshapes (a terminal shift)
  steps by the timesteps the model saw, as it does in the pipeline.
- the schedule: with `timesteps` given the pipeline skips the `mu` shift. Distilled folders run Lightricks'
  timesteps `DISTILLED_TIMESTEPS` at 8 steps and guidance 1 (no CFG: one row a branch); other step counts,
  and the non-distilled folders, run the pipeline's `linear_quadratic_schedule`.
- decode: `decode_timestep` 0.05 and `decode_noise_scale` 0.025, the values of Lightricks' examples for the
  timestep-conditioned VAE (settings of the backend, in every cache key).

`image_cond_noise_scale` (noise added to the image's tokens at every step, a generator draw per step) is
run at 0, as Lightricks' distilled examples run it; the pipeline's default is 0.15, so the tests pass 0.
A folder is taken as distilled when its name says "distilled" (the shipped scheduler and transformer
configs are those of the non-distilled model); `LTXConditionBackend(pipe, distilled=...)` says it outright.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import LTXConditionPipeline
from diffusers.pipelines.ltx.pipeline_ltx_condition import linear_quadratic_schedule
from diffusers.utils import logging as diffusers_logging
from diffusers.utils.torch_utils import randn_tensor

from ivcore.backends.base import BackendSetting
from ivcore.backends.ltx import LTXVideoBackend, load_ltx_backend
from ivcore.backends.ltx_tiny import LTX_SCHEDULER_CONFIG, LTXVersion, tiny_ltx_components

#: the timesteps Lightricks' examples run the distilled models with (their last, 0.03, nearly clean)
DISTILLED_TIMESTEPS = (1000.0, 993.0, 987.0, 981.0, 975.0, 909.0, 725.0, 0.03)
DECODE_TIMESTEP = 0.05  # Lightricks' decode settings for the timestep-conditioned VAE (0.9.1 and later)
DECODE_NOISE_SCALE = 0.025
MAX_SEQUENCE_LENGTH = 256  # what LTXConditionPipeline.__call__ passes to encode_prompt

#: mirror kind -> (version of the tiny VAE, distilled): the timestep-conditioned 0.9.1 decoder, as 0.9.5 and later
LTX_CONDITION_MIRROR_KINDS: dict[str, tuple[LTXVersion, bool]] = {
    "ltx-video-0.9.7-distilled": ("0.9.1", True),
    "ltx-video-0.9.7-dev": ("0.9.1", False),
}
#: the condition pipeline gets timesteps, not `mu`: its scheduler must not shift dynamically (the pipeline
#: raises otherwise). The terminal stretch is kept, so sigmas and timesteps differ, as the per-token step needs.
LTX_CONDITION_SCHEDULER_CONFIG: dict[str, Any] = {**LTX_SCHEDULER_CONFIG, "use_dynamic_shifting": False}


def is_distilled(name: str | os.PathLike) -> bool:
    """Whether a model id or folder names a distilled LTX-Video release ("Lightricks/LTX-Video-0.9.7-distilled")."""
    return "distilled" in Path(str(name).rstrip("/")).name.lower()


class LTXConditionBackend(LTXVideoBackend):
    """LTX-Video (0.9.5 and later, distilled or not) over an `LTXConditionPipeline`'s modules."""

    decode_timestep = BackendSetting()
    decode_noise_scale = BackendSetting()
    draws_image_first = False  # prepare_latents draws the noise, then encodes the condition
    decode_draws = True  # the timestep-conditioned decode mixes in noise from the run's generator
    max_sequence_length = MAX_SEQUENCE_LENGTH

    def __init__(self, pipe, *, name: str = "", distilled: bool | None = None, **overrides: Any):
        self.distilled = is_distilled(name) if distilled is None else bool(distilled)
        few = dict(steps=len(DISTILLED_TIMESTEPS), guidance=1.0) if self.distilled else {}
        super().__init__(pipe, name=name or "ltx-video-condition", **{**few, **overrides})
        self.decode_timestep = DECODE_TIMESTEP
        self.decode_noise_scale = DECODE_NOISE_SCALE

    # ------------------------------------------------------------------ schedule and step
    def timesteps_for(self, steps: int) -> list[float]:
        """The distilled timesteps at their own step count; otherwise the pipeline's linear-quadratic schedule."""
        if self.distilled and steps == len(DISTILLED_TIMESTEPS):
            return list(DISTILLED_TIMESTEPS)
        return (linear_quadratic_schedule(steps) * 1000).tolist()

    def oracle_kwargs(self, steps: int) -> dict[str, Any]:
        """`LTXConditionPipeline`'s arguments for this backend's video: schedule, decode and image-noise settings."""
        distilled = self.distilled and steps == len(DISTILLED_TIMESTEPS)  # else the pipeline's own default schedule
        return dict(
            frame_rate=self.frame_rate, timesteps=list(DISTILLED_TIMESTEPS) if distilled else None,
            image_cond_noise_scale=0.0,
            decode_timestep=float(self.decode_timestep), decode_noise_scale=float(self.decode_noise_scale),
        )  # fmt: skip

    def set_timesteps(self, steps: int, shape: Sequence[int]) -> None:
        """`scheduler.set_timesteps(timesteps=...)` as the pipeline's `retrieve_timesteps` calls it (quietly: the
        scheduler warns each time that it derives sigmas from timesteps, which is what the pipeline means)."""
        scheduler = self.scheduler
        if "timesteps" not in inspect.signature(scheduler.set_timesteps).parameters:
            scheduler.set_timesteps(steps, device=self.device)
            return
        log = diffusers_logging.get_logger(type(scheduler).__module__)
        level = log.level
        log.setLevel(diffusers_logging.ERROR)
        try:
            scheduler.set_timesteps(timesteps=self.timesteps_for(steps), device=self.device)
        finally:
            log.setLevel(level)

    def _image_mask(self, f: int, h: int, w: int, device) -> torch.Tensor:
        mask = torch.zeros(1, 1, f, h, w, dtype=torch.float32, device=device)
        mask[:, :, 0] = 1.0
        return self._pack(mask).squeeze(-1)  # (1, tokens): 1 on the image's tokens

    def token_timesteps(self, t: torch.Tensor, rows: int, mask: torch.Tensor) -> torch.Tensor:
        """The condition pipeline's `min(t, (1 - conditioning_mask) * 1000)`: 0 on the image's tokens."""
        return torch.min(t.expand(rows).unsqueeze(-1).float(), (1 - mask) * 1000.0)

    def scheduler_step(self, scheduler, velocity: torch.Tensor, t, latents: torch.Tensor, **kwargs: Any):
        """The pipeline's step: `-v` over packed tokens with per-token timesteps (the image's tokens: 0, held)."""
        if "per_token_timesteps" not in inspect.signature(scheduler.step).parameters:
            return scheduler.step(velocity, t, latents, **kwargs)
        n, _, f, h, w = latents.shape
        timestep = self.token_timesteps(t, n, self._image_mask(f, h, w, latents.device))
        out = scheduler.step(-self._pack(velocity), t, self._pack(latents), per_token_timesteps=timestep, **kwargs)
        stepped = self._unpack(out[0], f, h, w)
        return (stepped, *out[1:]) if isinstance(out, tuple) else type(out)(prev_sample=stepped)

    def positions(self, rows: int, f: int, h: int, w: int) -> dict[str, Any]:
        """Explicit RoPE coordinates, as the pipeline's `prepare_latents` builds them (time in seconds)."""
        pipe = self.pipe
        ids = pipe._prepare_video_ids(
            1, f, h, w, patch_size=self.patch[0], patch_size_t=self.patch_t, device=self.device
        )
        scale, scale_t = self.spatial_factor, self.temporal_factor
        coords = pipe._scale_video_ids(
            ids, scale_factor=scale, scale_factor_t=scale_t, frame_index=0, device=self.device
        )
        coords = coords.float()
        coords[:, 0] = coords[:, 0] * (1.0 / self.frame_rate)
        return dict(video_coords=coords.expand(rows, -1, -1))

    def _normalize(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized in the VAE's dtype, then float32, in the condition pipeline's order."""
        vae = self.vae
        return self.pipe._normalize_latents(latents, vae.latents_mean, vae.latents_std).float()

    # ------------------------------------------------------------------ decode
    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents (1, C, f, h, w) -> float frames (F, H, W, 3) in [0, 1], as the pipeline decodes them.

        A timestep-conditioned VAE decodes `(1 - s) * z + s * noise` at `decode_timestep`, the noise drawn from
        `generator` (the run's, from the Session; previews and plans without one get seed 0), and the decoder's
        injected noise from the global RNG seeded with the run's seed (`decoder_rng`).
        """
        vae = self.vae
        latents = self._denormalized(latents)
        timestep = None
        if vae.config.timestep_conditioning:
            draws = torch.Generator().manual_seed(0) if generator is None else generator
            noise = randn_tensor(latents.shape, generator=draws, device=latents.device, dtype=latents.dtype)
            timestep = torch.tensor([float(self.decode_timestep)], device=latents.device, dtype=latents.dtype)
            scale = torch.tensor([float(self.decode_noise_scale)], device=latents.device, dtype=latents.dtype)
            scale = scale[:, None, None, None, None]
            latents = (1 - scale) * latents + scale * noise
        return self._decoded(latents, timestep, generator)


# ---- hub-layout mirror and loading
def tiny_ltx_condition_components(seed: int = 0, version: LTXVersion = "0.9.1") -> dict[str, Any]:
    """Tiny LTX-Video modules for an `LTXConditionPipeline`: LTX's, with a scheduler that takes timesteps."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    components = tiny_ltx_components(seed, version)
    components["scheduler"] = FlowMatchEulerDiscreteScheduler(**LTX_CONDITION_SCHEDULER_CONFIG)
    return components


def tiny_ltx_condition_backend(seed: int = 0, kind: str = "ltx-video-0.9.7-distilled") -> LTXConditionBackend:
    """The tiny offline backend of a condition-pipeline mirror kind (96 x 64, 9 frames; distilled: 8 steps)."""
    if kind not in LTX_CONDITION_MIRROR_KINDS:
        raise ValueError(f"unknown LTX-Video mirror kind {kind!r}; known: {', '.join(LTX_CONDITION_MIRROR_KINDS)}")
    version, distilled = LTX_CONDITION_MIRROR_KINDS[kind]
    pipe = LTXConditionPipeline(**tiny_ltx_condition_components(seed, version))
    pipe.set_progress_bar_config(disable=True)
    return LTXConditionBackend(pipe, name=f"tiny-{kind}", distilled=distilled)


def write_ltx_condition_mirror(folder: str | os.PathLike, seed: int = 0, kind: str = "ltx-video-0.9.7-distilled"):
    """Write a tiny `LTXConditionPipeline` folder in the hub layout (the tiny backend's pipeline, saved); the kind's
    name says distilled or not, as a real folder's does, so name the folder after the kind (`ivcore.testing.mirror`
    does)."""
    folder = Path(folder)
    tiny_ltx_condition_backend(seed, kind).pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def load_ltx_condition_backend(model: str, *, device: torch.device, dtype: torch.dtype, **shared: Any):
    """An `LTXConditionPipeline` folder or hub id (safetensors only); bf16 on CUDA, as `load_ltx_backend` says."""
    return load_ltx_backend(
        model, device=device, dtype=dtype, pipeline_class=LTXConditionPipeline, backend_class=LTXConditionBackend
    )


__all__ = [
    "DECODE_NOISE_SCALE",
    "DECODE_TIMESTEP",
    "DISTILLED_TIMESTEPS",
    "LTXConditionBackend",
    "LTX_CONDITION_MIRROR_KINDS",
    "is_distilled",
    "load_ltx_condition_backend",
    "tiny_ltx_condition_backend",
    "tiny_ltx_condition_components",
    "write_ltx_condition_mirror",
]
