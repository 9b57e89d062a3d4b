"""Few-step previews for P_video: AnimateLCM-style LCM sampling (issue 7, item 3).

AnimateLCM distils AnimateDiff into a consistency model: 4-8 steps of `LCMScheduler`, guidance
1 to 2, usually with its LoRA on the UNet. The Eq. 4 blend needs nothing new: the loop in
`ivcore.stages.denoise` blends the two guided predictions and makes one `scheduler.step`, and it
passes the session's seeded generator to `LCMScheduler.step` for the noise LCM re-injects
between steps, so lam = 1 and lam = 0 reproduce the plain videos exactly, as with DDIM.

`use_few_step` swaps the scheduler and the sampling settings in place and remembers the
previous ones; `use_default_sampler` puts them back. The scheduler's class and config are part
of the Session's denoise cache key, so videos of the two samplers never mix in the cache.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Any

from diffusers import DDIMScheduler, LCMScheduler

from ivcore.backends.checkpoints import require_motion_unet
from ivcore.backends.personalize import load_lora, unload_lora
from ivcore.backends.weights import check_idle
from ivcore.instructions import check_float, check_int

FEWSTEP_ADAPTER = "fewstep"


@dataclass
class _Saved:
    """What `use_default_sampler` restores: the scheduler object and the step settings."""

    scheduler: Any
    steps: int
    guidance: float
    adapter: str | None = None


_SAVED: weakref.WeakKeyDictionary[Any, _Saved] = weakref.WeakKeyDictionary()


def lcm_scheduler(scheduler) -> LCMScheduler:
    """An LCMScheduler on the same noise schedule (betas, timestep count, offset) as `scheduler`."""
    return LCMScheduler.from_config(scheduler.config)


def use_few_step(
    session,
    *,
    steps: int = 4,
    guidance: float = 1.0,
    lora: str | os.PathLike | None = None,
    lora_scale: float = 1.0,
    lora_weight_name: str | None = None,
) -> None:
    """Switch P_video to LCM sampling with `steps` steps and `guidance` (AnimateLCM: 4-8, 1-2).

    With `lora` (a safetensors file, folder or hub id: AnimateLCM's LoRA, for instance) it is
    loaded on the video UNet as adapter "fewstep" and removed again by `use_default_sampler`.
    Calling it again changes the settings and keeps the first saved defaults.
    """
    check_idle(session)
    require_motion_unet(session, "video_backend")  # LCM distillation is for epsilon-prediction SD/AnimateDiff UNets
    backend = session.video_backend
    saved = _SAVED.get(session)
    base = saved.scheduler if saved else backend.scheduler
    limit = int(base.config.get("num_train_timesteps", 1000)) // 20  # LCM's original_inference_steps (50)
    steps = check_int(steps, "steps", 1, limit)
    guidance = check_float(guidance, "guidance", 0.0)
    lora_scale = check_float(lora_scale, "lora_scale", -10.0, 10.0)
    scheduler = LCMScheduler.from_config(base.config, original_inference_steps=limit)
    if saved is None:
        saved = _Saved(backend.scheduler, session.steps, session.guidance)
    if lora is not None:
        if saved.adapter is not None:
            unload_lora(session, saved.adapter, target="video")
            saved.adapter = None
        saved.adapter = load_lora(session, lora, target="video", scale=lora_scale, adapter_name=FEWSTEP_ADAPTER,
                                  weight_name=lora_weight_name)  # fmt: skip
    _SAVED[session] = saved
    backend.scheduler = scheduler
    session.steps = steps
    session.guidance = guidance


def few_step_active(session) -> bool:
    """True between `use_few_step` and `use_default_sampler`."""
    return session in _SAVED


def use_default_sampler(session) -> None:
    """Undo `use_few_step`: the previous scheduler, steps and guidance, and no few-step LoRA.

    Without a saved state, an LCM scheduler set by hand becomes DDIM on the same schedule.
    """
    check_idle(session)
    saved = _SAVED.pop(session, None)
    backend = session.video_backend
    if saved is None:
        if isinstance(backend.scheduler, LCMScheduler):
            backend.scheduler = DDIMScheduler.from_config(backend.scheduler.config)
        return
    if saved.adapter is not None:
        unload_lora(session, saved.adapter, target="video")
    backend.scheduler = saved.scheduler
    session.steps = saved.steps
    session.guidance = saved.guidance


__all__ = ["use_few_step", "use_default_sampler", "few_step_active", "lcm_scheduler", "FEWSTEP_ADAPTER"]
