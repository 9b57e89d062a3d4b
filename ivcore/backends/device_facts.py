"""Where a backend's modules run and in which dtype, asked of diffusers once and remembered.

diffusers answers both by walking modules: `DiffusionPipeline._execution_device` every module of every
component (it reads offload hooks), `ModelMixin.dtype` the submodules and parameters (it reads layerwise-casting
hooks). That is milliseconds a call, and a generate asks a dozen times; on the tiny models it was most of what
the Session's own loop cost beyond the family's pipeline. The answers are kept on the backend while the denoiser,
the device and dtype of its first weight and its accelerate / diffusers hooks are what they were: offloading,
`.to()` and fp8 storage change one of them, and the next call asks again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def _remembered(owner: Any, name: str, denoiser, compute: Callable[[], Any]) -> Any:
    """`compute()` remembered on `owner` under `name` while the denoiser, the device and dtype of its first weight
    and its accelerate / diffusers hooks stay what they were (offloading, `.to()`, fp8 storage change one of them)."""
    first = next(denoiser.parameters(), None)
    key = (
        id(denoiser), None if first is None else (first.device, first.dtype),
        getattr(denoiser, "_hf_hook", None) is not None, getattr(denoiser, "_diffusers_hook", None) is not None,
    )  # fmt: skip
    known = owner.__dict__.get(name)
    if known is None or known[0] != key:
        known = (key, compute())
        owner.__dict__[name] = known
    return known[1]


def execution_device(owner: Any, pipe, denoiser) -> torch.device:
    """Where a pipeline's modules run: diffusers' `_execution_device` (which reads offload hooks), remembered.

    `_execution_device` walks every module of every component: milliseconds a call, which a generate asking
    a dozen times paid in full on a tiny model. Offloading moves the weights or adds a hook, so it asks again.
    """
    return _remembered(owner, "_execution_device", denoiser, lambda: pipe._execution_device)


def compute_dtype(owner: Any, denoiser) -> torch.dtype:
    """The denoiser's dtype as diffusers reports it (the compute dtype under fp8 layerwise casting), remembered:
    `ModelMixin.dtype` walks the parameters, half a millisecond a call on a tiny model, a dozen calls a run."""
    return _remembered(owner, "_compute_dtype", denoiser, lambda: denoiser.dtype)


__all__ = ["compute_dtype", "execution_device"]
