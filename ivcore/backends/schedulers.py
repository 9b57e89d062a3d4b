"""What the denoising loops (P_img's and P_video's) need to know about diffusers' schedulers.

It lives below both the backends and the stages, so neither reaches into the other: the extra
`step()` arguments a scheduler takes, the clean-latent estimate of a step (for previews), and a
target noised to a step's level (for trajectory guidance). Two families of schedulers are covered:
DDPM-parameterized ones (DDIM, Euler, DPM++, LCM, ...: `add_noise`) and flow matching
(FlowMatchEulerDiscrete of the DiT video families: x_sigma = sigma * noise + (1 - sigma) * x0, the
model predicts the velocity noise - x0).
"""

from __future__ import annotations

import inspect

import torch


def is_flow_matching(scheduler) -> bool:
    """True for flow-matching schedulers (sigmas from 1 to 0, a velocity-predicting model)."""
    return hasattr(scheduler, "scale_noise") and not hasattr(scheduler, "add_noise")


def step_kwargs(scheduler, generator: torch.Generator | None, eta: float = 0.0) -> dict:
    """The extra `scheduler.step` arguments a scheduler accepts (as diffusers' pipelines pass them)."""
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


def x0_estimate(scheduler, step_out: tuple, sample: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor | None:
    """The scheduler's estimate of the clean latents at this step, read without changing any state.

    `step_out` is what `scheduler.step(..., return_dict=False)` returned: DDIM, DDPM, Euler, Heun
    and LCM put their x0 estimate second (`pred_original_sample` / `denoised`). DPM++ and UniPC
    keep theirs as the last converted model output. Flow matching: the sample minus sigma times the
    predicted velocity. Otherwise it is computed from the blended
    prediction `eps` and the step's input `sample` for DDPM-parameterized schedulers (epsilon,
    v or sample prediction); None when the scheduler gives no way to know.
    """
    if len(step_out) > 1 and isinstance(step_out[1], torch.Tensor):
        return step_out[1]
    if is_flow_matching(scheduler):  # x_sigma = x0 + sigma * v: the step just taken was at step_index - 1
        index = getattr(scheduler, "step_index", None)
        if index is None:
            return None
        sigma = scheduler.sigmas[index - 1].to(device=sample.device, dtype=torch.float32)
        return (sample.float() - sigma * eps.float()).to(sample.dtype)
    config = getattr(scheduler, "config", {})
    outputs = getattr(scheduler, "model_outputs", None)
    x0_outputs = config.get("algorithm_type") in ("dpmsolver++", "sde-dpmsolver++") or config.get("predict_x0")
    if x0_outputs and outputs and isinstance(outputs[-1], torch.Tensor):
        return outputs[-1]
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None or float(getattr(scheduler, "init_noise_sigma", 1.0)) != 1.0:
        return None
    a = alphas[int(t)].to(device=sample.device, dtype=torch.float32)
    x, e = sample.float(), eps.float()
    kind = config.get("prediction_type", "epsilon")
    if kind == "epsilon":
        x0 = (x - (1 - a).sqrt() * e) / a.sqrt()
    elif kind == "v_prediction":
        x0 = a.sqrt() * x - (1 - a).sqrt() * e
    elif kind == "sample":
        x0 = e
    else:
        return None
    return x0.to(sample.dtype)


def starts_from_pure_noise(scheduler) -> bool:
    """Whether the first sampling level is pure noise (flow matching at sigma 1, zero-terminal-SNR DDIM of
    CogVideoX): a target noised to that level is the noise itself, so a pull there changes nothing."""
    if is_flow_matching(scheduler):
        return float(scheduler.sigmas[0]) >= 1.0
    alphas = getattr(scheduler, "alphas_cumprod", None)
    timesteps = getattr(scheduler, "timesteps", None)
    if alphas is None or timesteps is None or len(timesteps) == 0:
        return False
    return float(alphas[int(timesteps[0])]) < 1e-6


def noised(scheduler, target: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
    """`target` (clean latents) noised with `noise` to the level of the step `index` of the run.

    Flow matching: sigma_i * noise + (1 - sigma_i) * target, read from `scheduler.sigmas` (so the
    scheduler's step counter is never touched); others: `scheduler.add_noise` at timesteps[index].
    """
    if is_flow_matching(scheduler):
        sigma = scheduler.sigmas[index].to(device=target.device, dtype=target.dtype)
        return sigma * noise + (1 - sigma) * target
    t = scheduler.timesteps[index : index + 1]
    return scheduler.add_noise(target, noise, t)


__all__ = ["is_flow_matching", "noised", "starts_from_pure_noise", "step_kwargs", "x0_estimate"]
