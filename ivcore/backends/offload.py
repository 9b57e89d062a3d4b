"""The memory options a user turns on through the session: diffusers' and accelerate's own features, applied.

`MemoryOptions` is declared once and serves both sides: `Session.set_memory(...)` applies it to the
real modules (`apply`), and `ivcore.memory_dit` plans with it on meta copies. What each option does:

- `offload="model"`: one model on the device at a time, across P_img and P_video together (an
  accelerate `CpuOffload` hook on every module; the one that runs moves in, the others out), as
  `pipe.enable_model_cpu_offload()` does inside one pipeline. Two large models rarely fit one card.
- `offload="group"`: diffusers' group offloading at leaf level on every module (each layer is moved in
  when it runs; with a CUDA stream the next one is prefetched), what `pipe.enable_group_offload(...,
  offload_type="leaf_level", use_stream=True)` does. The leanest, and slower on slow host links.
- `fp8=True`: the transformers' weights stored in float8_e4m3fn and upcast layer by layer
  (`enable_layerwise_casting`; norms and embeddings stay, as diffusers' skip patterns say). It changes
  the numbers slightly and cannot be undone in place: reload the model to go back.
- `vae_tiling=True`: the VAEs encode and decode in overlapping tiles (`vae.enable_tiling()`); it
  changes the frames slightly (tile seams blended).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ivcore.errors import InstructionError

OFFLOAD_MODES = (None, "model", "group")
FP8 = torch.float8_e4m3fn


@dataclass(frozen=True)
class MemoryOptions:
    """What a generation keeps on the device; the defaults keep everything there (the fastest)."""

    offload: str | None = None
    fp8: bool = False
    vae_tiling: bool = False

    def __post_init__(self) -> None:
        if self.offload not in OFFLOAD_MODES:
            raise InstructionError("offload", self.offload, 'None, "model" (one model at a time) or "group" (layers)')
        for name in ("fp8", "vae_tiling"):
            if not isinstance(getattr(self, name), bool):
                raise InstructionError(name, getattr(self, name), "True or False")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, **changes: Any) -> MemoryOptions:
        """These options with `changes`; a name that is not an option raises InstructionError naming it."""
        from dataclasses import replace

        unknown = sorted(set(changes) - set(self.__dataclass_fields__))
        if unknown:
            raise InstructionError(unknown[0], changes[unknown[0]], f"one of {sorted(self.__dataclass_fields__)}")
        return replace(self, **changes)  # checked in __post_init__


def modules_of(backends: dict[str, Any]) -> dict[str, torch.nn.Module]:
    """{"<owner>.<component>": module} of every torch module the backends hold, each module once."""
    found: dict[str, torch.nn.Module] = {}
    seen: set[int] = set()
    for owner, backend in backends.items():
        pipe = getattr(backend, "pipe", None)
        names = pipe.components if pipe is not None else vars(backend)
        for name in list(names):
            module = getattr(backend, name, None)
            if isinstance(module, torch.nn.Module) and id(module) not in seen:
                seen.add(id(module))
                found[f"{owner}.{name}"] = module
    return found


def is_denoiser(name: str) -> bool:
    """The modules fp8 storage is for: the transformers (and UNets) the sampler calls every step."""
    component = name.split(".", 1)[-1]
    return component.startswith(("transformer", "unet"))


def main_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype most of a module's weights are in (its compute dtype; a few float32 norms aside)."""
    counts: dict[torch.dtype, int] = {}
    for param in module.parameters():
        counts[param.dtype] = counts.get(param.dtype, 0) + param.numel()
    return max(counts, key=counts.get)


def enable_fp8(module: torch.nn.Module) -> None:
    """fp8 storage, upcast per layer to the module's compute dtype (diffusers' skip patterns apply)."""
    if not any(p.dtype == FP8 for p in module.parameters()):
        module.enable_layerwise_casting(storage_dtype=FP8, compute_dtype=main_dtype(module))


def _remove_offload_hooks(module: torch.nn.Module) -> None:
    from accelerate.hooks import remove_hook_from_module
    from diffusers.hooks import HookRegistry

    remove_hook_from_module(module, recurse=True)
    registry = getattr(module, "_diffusers_hook", None)
    if registry is not None:
        for name in ("group_offloading", "lazy_prefetch_group_offloading", "layer_execution_tracker"):
            HookRegistry.check_if_exists_or_initialize(module).remove_hook(name, recurse=True)


def _one_on_device_hook(device: torch.device, group: list[torch.nn.Module]):
    """An accelerate hook that moves its module to `device` before it runs and every other module of `group` out."""
    from accelerate.hooks import CpuOffload

    class OneOnDevice(CpuOffload):
        def pre_forward(self, module, *args, **kwargs):
            for other in group:
                if other is not module and next(other.parameters()).device.type != "cpu":
                    other.to("cpu")
            return super().pre_forward(module, *args, **kwargs)

    return OneOnDevice(execution_device=device)


def apply(backends: dict[str, Any], old: MemoryOptions, new: MemoryOptions, device: torch.device) -> None:
    """Switch the real modules from `old` to `new` options (fp8 on, never off; the offloads both ways)."""
    from accelerate.hooks import add_hook_to_module

    if old.fp8 and not new.fp8:
        raise InstructionError("fp8", False, "True: fp8 storage cannot be undone in place; reload the model")
    modules = modules_of(backends)
    if new.fp8 and not old.fp8:
        for name, module in modules.items():
            if is_denoiser(name) and hasattr(module, "enable_layerwise_casting"):
                enable_fp8(module)
    for module in modules.values():
        if hasattr(module, "enable_tiling"):
            module.enable_tiling() if new.vae_tiling else module.disable_tiling()
    if new.offload == old.offload:
        return
    for module in modules.values():
        _remove_offload_hooks(module)
        module.to(device)
    for backend in backends.values():  # SD-style backends make their inputs on `device` (base.SDComponents)
        backend.onload_device = None if new.offload is None else torch.device(device)
    group = list(modules.values())
    if new.offload == "model":
        for module in group:
            module.to("cpu")
            add_hook_to_module(module, _one_on_device_hook(device, group), append=False)
    elif new.offload == "group":
        from diffusers.hooks import apply_group_offloading

        for module in group:
            apply_group_offloading(
                module, onload_device=device, offload_device=torch.device("cpu"), offload_type="leaf_level",
                use_stream=device.type == "cuda",
            )  # fmt: skip


def set_memory(session, **changes: Any) -> MemoryOptions:
    """`Session.set_memory`: check the new options, switch the modules, keep them on the session.

    Refused while a generation runs (SessionBusy). fp8 and tiling change the numbers, so they bump the
    backends' `weights_version`: the stages they touch rerun (and takes made before stay restorable only
    with the options they were made with). The offloads move modules, never numbers.
    """
    old = session.memory
    new = old.updated(**changes)  # InstructionError naming a bad field, before anything moves
    backends = {"image": session.image_backend, "video": session.video_backend}
    with session._exclusive():
        if old.offload is None:  # the accelerator the session runs on, where the offloads bring modules back
            session._memory_device = session.video_backend.device
        apply(backends, old, new, session._memory_device)
        session.memory = new
        if (old.fp8, old.vae_tiling) != (new.fp8, new.vae_tiling):
            for backend in backends.values():
                backend.weights_version += 1
    return new


__all__ = [
    "FP8", "OFFLOAD_MODES", "MemoryOptions", "apply", "enable_fp8", "is_denoiser", "main_dtype", "modules_of",
    "set_memory",
]  # fmt: skip
