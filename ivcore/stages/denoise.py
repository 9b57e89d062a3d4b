"""The video denoising loop with the Eq. 4 blend.

Eq. 4 of the paper: `eps_hat_t = lam * eps_t + (1 - lam) * eps'_t`, where eps_t is the video
UNet's guided noise prediction conditioned on z0 = E(x~) and eps'_t the one conditioned on
z0' = E(x~') (or, in trajectory path mode, on one edited latent per frame). Both branches see
the same noisy latent, step and text, and go through the UNet in one batched call. eps_hat
replaces eps in a single `scheduler.step`, so multistep schedulers keep one consistent state.

When a step's lam is exactly 1 (or 0) the unused branch is skipped, so a plain run costs what
the stock pipeline costs and lam = 1 reproduces it exactly.

With a diffusers step cache on the video transformer (`Session.enable_cache`), every branch of every
schedule is named ("base0", "edit0", "base1", ...) and the backend runs each in cache contexts of its
own (`ivcore.backends.step_cache`); the caches are reset before and after the run, and rows are not
shared between schedules (each one's cache state must evolve as in its own generate).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ivcore.backends import step_cache
from ivcore.backends.schedulers import step_kwargs, x0_estimate

StepCallback = Callable[[int, int, torch.Tensor], None]
"""`callback(step, total, latents)`; a callback that also takes an ``x0`` keyword gets the step's
clean-latent estimate (see `x0_estimate`) for previews, so old callbacks keep working unchanged."""


class Cancelled(RuntimeError):
    """Raised by a generation stopped through `Session.cancel()`; the last good video stays."""


def wants_x0(callback: Callable | None) -> bool:
    """True when a step callback takes an ``x0`` keyword (or ``**kwargs``): only then is x0 passed."""
    if callback is None:
        return False
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "x0" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


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


def plain_step(scheduler, eps: torch.Tensor, t, latents: torch.Tensor, **kwargs):
    """One `scheduler.step`: what every family but those with a `scheduler_step` of their own takes."""
    return scheduler.step(eps, t, latents, **kwargs)


def _owners(latents: torch.Tensor, branches: list[tuple[bool, bool]]) -> list[int]:
    """For each item, the first item with the same latents and branches (its predictions are equal).

    Every schedule of a sweep starts from the same noise, so at the first step (and as long as
    per-step schedules agree) several items need the very same UNet rows: compute them once.
    """
    owner: list[int] = []
    for item in range(len(branches)):
        same = (o for o in set(owner) if branches[o] == branches[item] and torch.equal(latents[o], latents[item]))
        owner.append(next(same, item))
    return owner


@torch.no_grad()
def denoise(
    backend,
    scheduler,
    latents: torch.Tensor,
    text: torch.Tensor,
    uncond: torch.Tensor,
    base,
    edited,
    lams: Sequence[Sequence[float]] | Sequence[float],
    *,
    guidance: float,
    generator: torch.Generator | None = None,
    timesteps: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    cancel: threading.Event | None = None,
    progress: bool = True,
    eta: float = 0.0,
    after_step: Callable[[object, int, torch.Tensor], torch.Tensor] | None = None,
    batch_items: bool = False,
) -> torch.Tensor:
    """Run the sampler from `latents` (L, 4, F, h, w) with the Eq. 4 blend at every step.

    `base` and `edited` are the backend's conditions for x~ and x~' (for PIA, the condition
    channels from `PIAVideoBackend.condition`); `edited` None means nothing is edited (plain
    video). `lams` gives one weight per timestep for each of the L latents (a flat list when
    L = 1): a lambda sweep denoises several weights in one batched run. Every step makes one
    `backend.predict` call over all the (latent, branch) rows that are needed and one
    `scheduler.step` over the L blended predictions. `scheduler.set_timesteps` must have been
    called; `timesteps` defaults to all of them. `callback(step, total, latents)` runs after
    each step (with `x0=` the step's clean-latent estimate when the callback takes that keyword,
    for previews); `cancel`, when set, stops the loop between steps by raising `Cancelled`.
    `after_step(scheduler, step, latents)` may adjust the latents after each step (trajectory
    guidance). With several schedules, `batch_items` puts all of them in one UNet call per step
    (fast on a GPU); otherwise each schedule gets the very call `generate` would make, so a sweep
    reproduces single runs bitwise (and a CPU gains nothing from bigger batches).
    """
    timesteps = scheduler.timesteps if timesteps is None else timesteps
    schedules = [list(lams)] if lams and not isinstance(lams[0], (list, tuple)) else [list(x) for x in lams]
    if len(schedules) != latents.shape[0]:
        raise ValueError(f"lams: {len(schedules)} schedules for {latents.shape[0]} latents")
    if any(len(x) != len(timesteps) for x in schedules):
        raise ValueError(f"lams: need {len(timesteps)} weights per schedule, one per step")
    extra = step_kwargs(scheduler, generator, eta)
    total = len(timesteps)
    preview_x0 = wants_x0(callback)

    step = getattr(backend, "scheduler_step", None) or plain_step  # LTX's condition pipeline: per-token steps
    cached = step_cache.active(backend)  # rows not shared between schedules, branches named
    if cached:
        step_cache.begin(backend, total)  # no residuals of an earlier run
    try:
        for i, t in enumerate(tqdm(timesteps, desc="denoise", disable=not progress, leave=False)):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"generation cancelled before step {i + 1} of {total}")
            branches = [active_branches(float(schedule[i]), edited is not None) for schedule in schedules]
            owner = list(range(len(branches))) if cached else _owners(latents, branches)
            uniques = sorted(set(owner))
            per_branch: dict[int, dict[str, torch.Tensor]] = {}
            for group in [uniques] if batch_items else [[u] for u in uniques]:
                rows, conditions, names = [], [], []
                for item in group:
                    for name, used, condition in zip(("base", "edit"), branches[item], (base, edited), strict=True):
                        if used:
                            rows.append(item)
                            conditions.append(condition)
                            names.append((item, name))
                named = {"branches": [f"{name}{item}" for item, name in names]} if cached else {}
                eps_rows = backend.predict(scheduler, latents[rows], t, conditions, text, uncond, guidance, **named)
                for (item, name), eps in zip(names, eps_rows, strict=True):
                    per_branch.setdefault(item, {})[name] = eps

            eps_hat = []
            for item, schedule in enumerate(schedules):
                eps = per_branch[owner[item]]
                if "base" in eps and "edit" in eps:
                    eps_hat.append(blend(eps["base"], eps["edit"], float(schedule[i])))
                else:
                    eps_hat.append(eps.get("base", eps.get("edit")))
            eps_hat = torch.stack(eps_hat)
            sample = latents
            step_out = step(scheduler, eps_hat, t, latents, **extra, return_dict=False)
            latents = step_out[0]
            if after_step is not None:
                latents = after_step(scheduler, i, latents)
            if preview_x0:  # only read: the sampler's results do not depend on previews
                callback(i + 1, total, latents, x0=x0_estimate(scheduler, step_out, sample, eps_hat, t))
            elif callback is not None:
                callback(i + 1, total, latents)
    finally:
        if cached:
            step_cache.reset(backend)  # nor kept for a later one (and the memory they hold freed)
    finish = getattr(backend, "finish", None)  # first-frame families put the image's latent frame back
    if finish is not None:
        latents = finish(latents, base, edited, [float(schedule[-1]) for schedule in schedules])
    return latents
