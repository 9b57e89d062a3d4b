"""diffusers' step caches (FirstBlockCache, MagCache, TaylorSeer) on the DiT video families, correct under Eq. 4.

A step cache keeps, per `cache_context`, what a transformer computed at the previous step (residuals of
its blocks, Taylor factors of its outputs) and reuses it when the next step looks alike. diffusers keys that
state by the context's name, and its pipelines wrap each call: Wan and HunyuanVideo 1.5 in "cond" and
"uncond", CogVideoX and LTX-Video in one "cond_uncond" around their batched call. Eq. 4 runs two branches on
the same noisy latents (x~ and x~'); were they called in one context, the edited branch would be compared with,
and reuse the residuals of, the base branch. So while a cache is on:

- every branch of the loop (and, in a sweep, every lambda) has contexts of its own, named after the branch:
  "base0-cond", "edit0-uncond", ... (`by_context`);
- the guidance rows of a branch are called as the family's pipeline calls them (`step_cache_rows` of the
  backend): one call and one context per row for Wan and HunyuanVideo ("separate"), one batched call of
  [uncond, cond] in one context for CogVideoX and LTX-Video ("together", their "cond_uncond"), so that lam = 1
  with a cache is the family's pipeline with the same cache;
- the state is reset before and after each denoising run (`reset`), so a generate never reuses the residuals
  of the one before, and the same settings give the same video.

Without a cache nothing changes: the families keep their one batched call (`by_context` returns None).
The cache changes the numbers, so `describe` enters the denoise stage's key and the takes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ivcore.errors import InstructionError

FIELD = "step_cache"
ALLOWED = "a diffusers FirstBlockCacheConfig, MagCacheConfig or TaylorSeerCacheConfig, or None (no cache)"
ROWS = ("separate", "together")  # how a family's pipeline calls its guidance rows (see the module docstring)


def supported_configs() -> tuple[type, ...]:
    from diffusers import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

    return (FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig)


def denoisers(backend) -> list[torch.nn.Module]:
    """The networks the sampler calls: `backend.denoiser`, and Wan 2.2 A14B's low-noise `transformer_2`."""
    models = [backend.denoiser]
    pipe = getattr(backend, "pipe", None)
    second = None if pipe is None else pipe.components.get("transformer_2")
    if second is not None:
        models.append(second)
    return models


# ---------------------------------------------------------------------------------------- checks
def _number(config, name: str, low: float, high: float = math.inf, integer: bool = False) -> None:
    value = getattr(config, name)
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high
    if not ok:
        what = "an integer" if integer else "a number"
        bound = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise InstructionError(f"{FIELD}.{name}", value, f"{what} {bound}")


def check_config(config: Any) -> Any:
    """The config itself when it is one diffusers' DiT step caches takes with valid fields; else InstructionError."""
    from diffusers import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

    if not isinstance(config, supported_configs()):
        raise InstructionError(FIELD, config, ALLOWED)
    if isinstance(config, FirstBlockCacheConfig):
        _number(config, "threshold", 0.0)
    elif isinstance(config, MagCacheConfig):
        _number(config, "threshold", 0.0)
        _number(config, "max_skip_steps", 1, integer=True)
        _number(config, "retention_ratio", 0.0, 1.0)
        _number(config, "num_inference_steps", 1, integer=True)
    elif isinstance(config, TaylorSeerCacheConfig):
        _number(config, "cache_interval", 1, integer=True)
        _number(config, "disable_cache_before_step", 0, integer=True)
        _number(config, "max_order", 0, integer=True)
        if config.disable_cache_after_step is not None:
            _number(config, "disable_cache_after_step", 0, integer=True)
        dtype = config.taylor_factors_dtype
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise InstructionError(f"{FIELD}.taylor_factors_dtype", dtype, "a torch.dtype or None")
    return config


def check_backend(backend) -> list[torch.nn.Module]:
    """The denoisers of a backend that runs step caches per branch; InstructionError for others (PIA, SVD)."""
    models = denoisers(backend)
    rows = getattr(backend, "step_cache_rows", None)
    if rows not in ROWS or not all(hasattr(m, "enable_cache") for m in models):
        raise InstructionError(
            FIELD, type(backend).__name__,
            "a DiT video family (Wan, CogVideoX, LTX-Video, HunyuanVideo 1.5); "
            f"{type(backend.denoiser).__name__} has no diffusers step caches",
        )  # fmt: skip
    return models


# ---------------------------------------------------------------------------------------- on and off
def enable(backend, config: Any) -> None:
    """Turn `config` on for every denoiser of `backend` (one already on is replaced); None turns caches off.

    A transformer the cache cannot hook (diffusers knows the block layout of some classes only: FirstBlockCache
    and MagCache do not know HunyuanVideo 1.5's blocks) raises InstructionError and leaves no cache on.
    """
    if config is None:
        disable(backend)
        return
    check_config(config)
    models = check_backend(backend)
    disable(backend)
    done = []
    try:
        for model in models:
            before = _hook_count(model)
            # diffusers' enable_cache may mutate the config (MagCache interpolates its ratios): one copy a model
            model.enable_cache(dataclasses.replace(config) if len(models) > 1 else config)
            if _hook_count(model) == before:  # e.g. TaylorSeer's default patterns miss Wan's attn1 / attn2
                raise ValueError(
                    "it hooked no module; for TaylorSeer give cache_identifiers (module-name patterns) or "
                    "use_lite_mode=True"
                )
            done.append(model)
    except Exception as error:  # nothing half on: remove what was hooked
        for model in [*done, models[len(done)]]:
            _remove(model, config)
        raise InstructionError(
            FIELD, type(config).__name__,
            f"a cache diffusers can apply to {type(models[len(done)]).__name__} ({error})",
        ) from error  # fmt: skip


def _hook_count(model) -> int:
    """diffusers hooks registered on the model's modules (a cache adds its own to the blocks it acts on)."""
    return sum(len(m._diffusers_hook.hooks) for m in model.modules() if getattr(m, "_diffusers_hook", None))


def _remove(model, config) -> None:
    if getattr(model, "_cache_config", None) is None:
        model._cache_config = config  # a failed enable: let disable_cache remove whatever was registered
    model.disable_cache()


def disable(backend) -> None:
    """Turn every denoiser's step cache off (nothing to do when none is on)."""
    for model in denoisers(backend):
        if getattr(model, "is_cache_enabled", False):
            model.disable_cache()


def config_of(backend):
    """The step cache config on the backend's (first) denoiser, or None."""
    return getattr(backend.denoiser, "_cache_config", None)


def active(backend) -> bool:
    """True while a step cache is on for any denoiser of the backend."""
    return any(getattr(m, "is_cache_enabled", False) for m in denoisers(backend))


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.flatten().tolist()]
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def describe(backend) -> dict[str, Any] | None:
    """The step cache as plain data, {"class": ..., "config": {...}} (None: no cache): for keys and takes."""
    if not active(backend):
        return None
    config = next(m._cache_config for m in denoisers(backend) if getattr(m, "is_cache_enabled", False))
    fields = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    return {"class": type(config).__name__, "config": fields}


# ---------------------------------------------------------------------------------------- a run
def begin(backend, steps: int) -> None:
    """Before a denoising run: forget every context's state; a MagCache must be made for this step count."""
    from diffusers import MagCacheConfig

    config = config_of(backend)
    if isinstance(config, MagCacheConfig) and config.num_inference_steps != steps:
        raise InstructionError(
            "steps", steps, f"{config.num_inference_steps}: the MagCacheConfig's num_inference_steps "
            "(make the config with num_inference_steps=s.steps)",
        )  # fmt: skip
    reset(backend)


def reset(backend) -> None:
    """Forget what the caches hold (diffusers' `_reset_stateful_cache`, as its pipelines do after a run)."""
    for model in denoisers(backend):
        if getattr(model, "is_cache_enabled", False):
            model._reset_stateful_cache()


def by_context(
    backend,
    model,
    run: Callable[[slice | list[int]], torch.Tensor],
    labels: Sequence[str],
    branches: Sequence[str] | None,
    n: int,
) -> torch.Tensor | None:
    """The transformer rows of one step, each branch in cache contexts of its own; None when no cache is on.

    Rows are laid out as the families lay them out: `labels` (the guidance rows in the family's order, e.g.
    ("cond", "uncond")) times `n` branches, [labels[0] x n, labels[1] x n, ...]. `run(rows)` calls the model on
    those rows (a slice or a list of row indices). `branches` names the n branches ("base0", "edit0", ...; None:
    "branch0", ...). With `backend.step_cache_rows` "separate" every (branch, label) row is one call in the
    context f"{branch}-{label}"; with "together" the rows of a branch are one call in f"{branch}-{'+'.join(labels)}".
    """
    if not getattr(model, "is_cache_enabled", False):
        return None
    names = list(branches) if branches is not None else [f"branch{k}" for k in range(n)]
    if len(names) != n:
        raise ValueError(f"branches: {len(names)} names for {n} branches")
    out: list[torch.Tensor | None] = [None] * (len(labels) * n)
    for k, branch in enumerate(names):
        if backend.step_cache_rows == "together":
            rows = [g * n + k for g in range(len(labels))]
            with model.cache_context(f"{branch}-{'+'.join(labels)}"):
                contiguous = rows == list(range(rows[0], rows[-1] + 1))
                result = run(slice(rows[0], rows[-1] + 1) if contiguous else rows)
            for i, row in enumerate(rows):
                out[row] = result[i : i + 1]
        else:
            for g, label in enumerate(labels):
                row = g * n + k
                with model.cache_context(f"{branch}-{label}"):
                    out[row] = run(slice(row, row + 1))
    return torch.cat(out)


__all__ = [
    "active",
    "begin",
    "by_context",
    "check_backend",
    "check_config",
    "config_of",
    "denoisers",
    "describe",
    "disable",
    "enable",
    "reset",
    "supported_configs",
]
