"""The video denoising loop with the Eq. 4 blend.

Eq. 4 of the paper: `eps_hat_t = lam * eps_t + (1 - lam) * eps'_t`, where eps_t is the video
UNet's guided noise prediction conditioned on z0 = E(x~) and eps'_t the one conditioned on
z0' = E(x~') (or, in trajectory path mode, on one edited latent per frame). Both branches see
the same noisy latent, step and text, and go through the UNet in one batched call. eps_hat
replaces eps in a single `scheduler.step`, so multistep schedulers keep one consistent state.

When a step's lam is exactly 1 (or 0) the unused branch is skipped, so a plain run costs what
the stock pipeline costs and lam = 1 reproduces it exactly.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

StepCallback = Callable[[int, int, torch.Tensor], None]


class Cancelled(RuntimeError):
    """Raised by a generation stopped through `Session.cancel()`; the last good video stays."""


def step_kwargs(scheduler, generator: torch.Generator | None, eta: float = 0.0) -> dict:
    """The extra `scheduler.step` arguments a scheduler accepts (as diffusers' pipelines pass them)."""
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


def guided(eps: torch.Tensor, guidance: float, use_cfg: bool) -> torch.Tensor:
    """Classifier-free guidance on rows [uncond, text]; identity without CFG."""
    if not use_cfg:
        return eps
    eps_uncond, eps_text = eps.chunk(2)
    return eps_uncond + guidance * (eps_text - eps_uncond)


def blend(eps: torch.Tensor, eps_edited: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. 4: lam * eps + (1 - lam) * eps'."""
    return lam * eps + (1 - lam) * eps_edited


def active_branches(lam: float, has_edit: bool) -> tuple[bool, bool]:
    """Which branches a step needs: (base x~, edited x~'). lam 1 or no edit: only the base."""
    if not has_edit or lam == 1.0:
        return True, False
    if lam == 0.0:
        return False, True
    return True, True


@torch.no_grad()
def denoise(
    unet,
    scheduler,
    latents: torch.Tensor,
    text: torch.Tensor,
    uncond: torch.Tensor,
    base: torch.Tensor,
    edited: torch.Tensor | None,
    lams: Sequence[float],
    *,
    guidance: float,
    generator: torch.Generator | None = None,
    timesteps: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    cancel: threading.Event | None = None,
    progress: bool = True,
    eta: float = 0.0,
) -> torch.Tensor:
    """Run the sampler from `latents` (1, 4, F, h, w) with the Eq. 4 blend at every step.

    `base` and `edited` are the PIA condition channels (1, 5, F, h, w) of x~ and x~'
    (`PIAVideoBackend.condition`); `edited` None means there is no edit (plain video).

    `scheduler.set_timesteps` must have been called; `timesteps` defaults to all of them.
    `lams` has one weight per timestep. `callback(step, total, latents)` runs after each step;
    `cancel`, when set, stops the loop between steps by raising `Cancelled`.
    """
    timesteps = scheduler.timesteps if timesteps is None else timesteps
    if len(lams) != len(timesteps):
        raise ValueError(f"lams: {len(lams)} weights for {len(timesteps)} steps")
    num_frames = latents.shape[2]
    use_cfg = guidance > 1
    text_rows = torch.cat([uncond, text]) if use_cfg else text
    text_rows = text_rows.to(device=latents.device, dtype=unet.dtype)
    extra = step_kwargs(scheduler, generator, eta)
    total = len(timesteps)

    for i, t in enumerate(tqdm(timesteps, desc="denoise", disable=not progress, leave=False)):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"generation cancelled before step {i + 1} of {total}")
        lam = float(lams[i])
        use_base, use_edit = active_branches(lam, edited is not None)
        branches = [b for b, used in ((base, use_base), (edited, use_edit)) if used]
        rows_per_branch = 2 if use_cfg else 1

        model_in = scheduler.scale_model_input(torch.cat([latents] * rows_per_branch), t)
        inputs = [torch.cat([model_in, b.expand(rows_per_branch, -1, -1, -1, -1)], dim=1) for b in branches]
        embeds = text_rows.repeat(len(branches), 1, 1).repeat_interleave(num_frames, dim=0)
        eps_all = unet(torch.cat(inputs), t, encoder_hidden_states=embeds).sample
        eps_per_branch = [guided(e, guidance, use_cfg) for e in eps_all.chunk(len(branches))]

        if use_base and use_edit:
            eps_hat = blend(eps_per_branch[0], eps_per_branch[1], lam)
        else:
            eps_hat = eps_per_branch[0]
        latents = scheduler.step(eps_hat, t, latents, **extra, return_dict=False)[0]
        if callback is not None:
            callback(i + 1, total, latents)
    return latents
