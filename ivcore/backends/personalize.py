"""Personalization: LoRA adapters on P_img and P_video (issue 7, item 2).

The paper personalizes both pipelines with DreamBooth or LoRA models. Here that goes through
diffusers' own loaders, so every community format diffusers reads (diffusers/peft keys, kohya
`lora_unet_*` keys, AnimateDiff motion LoRAs) works the same way:

- LoRA: `load_lora` reads a safetensors LoRA with `StableDiffusionLoraLoaderMixin.lora_state_dict`
  (which converts kohya keys), or, for an image family over one diffusers pipeline (SDXL, FLUX.1,
  FLUX.2 klein), with that pipeline's own `lora_state_dict`, and injects it with the denoiser's
  `load_lora_adapter` (peft). Adapters are
  never fused, so the base weights are never touched: `unload_lora` removes the peft layers and
  the UNet is bitwise the original again. Several adapters mix with `set_lora_scale`.
- Checkpoints (DreamBooth folders, single files) live in `ivcore.backends.checkpoints`;
  `load_image_checkpoint` and `load_video_checkpoint` are re-exported here, so one import
  gives every personalization function.

Pickle is never loaded: paths ending in .bin/.pt/.pth/.ckpt/.pkl, or any non-safetensors file,
raise `InstructionError` before a byte is read, and diffusers is always called with
`use_safetensors=True` so it cannot fall back to a pickle on its own.
Every change bumps `backend.weights_version`, which is part of the Session's cache keys, so a
video made with other weights is never served from the cache (rules shared with checkpoints
in `ivcore.backends.weights`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ivcore.backends.checkpoints import load_image_checkpoint, load_video_checkpoint
from ivcore.backends.weights import (
    HUB_ID,
    SAFE_ONLY,
    adapter_sources,
    adapter_weights,
    bump_weights_version,
    check_idle,
    check_safe_name,
    checkpoint_sources,
    file_sha256,
    path_string,
    refuse,
)
from ivcore.errors import InstructionError
from ivcore.instructions import check_choice, check_float

TARGETS = ("image", "video", "both")
LORA_FILE = "pytorch_lora_weights.safetensors"


# ---------------------------------------------------------------------- sources
def _pick_safetensors(folder: Path, weight_name: str | None, field: str) -> str:
    """The one .safetensors file of a folder (diffusers' default name wins when there are several)."""
    if weight_name is not None:
        if not (folder / weight_name).is_file():
            raise InstructionError("weight_name", weight_name, f"a .safetensors file inside {folder.name}")
        return weight_name
    found = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix == ".safetensors")
    if LORA_FILE in found:
        return LORA_FILE
    if len(found) == 1:
        return found[0]
    detail = (
        "no .safetensors file in the folder" if not found else f"several files ({', '.join(found)}): pass weight_name"
    )
    raise refuse(field, folder, f"{SAFE_ONLY}; {detail}")


def resolve_safetensors(
    path_or_id: Any, weight_name: str | None = None, field: str = "lora"
) -> tuple[str, str | None, bool]:
    """Where a safetensors LoRA lives: (folder or hub id, file name or None, is local).

    Checks names only, so that a pickle is refused before anything is read.
    """
    source = path_string(path_or_id, field)
    check_safe_name(source, field)
    if weight_name is not None:
        if not isinstance(weight_name, str) or not weight_name.endswith(".safetensors"):
            raise refuse("weight_name", weight_name, "a file name ending in .safetensors")
    path = Path(source)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise refuse(field, source)
        return str(path.parent), path.name, True
    if path.is_dir():
        return str(path), _pick_safetensors(path, weight_name, field), True
    if path.suffix == ".safetensors" or not HUB_ID.match(source):
        raise refuse(field, source, f"{SAFE_ONLY}; no such file or folder")
    return source, weight_name, False


# ---------------------------------------------------------------------- backends
def _targets(session, target: str) -> list[tuple[str, Any]]:
    """The (label, backend) pairs a target names, in a fixed order; refused while generating."""
    check_choice(target, "target", TARGETS)
    check_idle(session)
    pairs = [("image", session.image_backend), ("video", session.video_backend)]
    return [(label, b) for label, b in pairs if target in (label, "both")]


def lora_weights(session) -> dict[str, dict[str, float]]:
    """{"image": {name: weight}, "video": {name: weight}}: what is loaded where, for UIs and repr."""
    pairs = (("image", session.image_backend), ("video", session.video_backend))
    return {label: dict(adapter_weights(b.denoiser)) for label, b in pairs}


def _activate(unet: torch.nn.Module) -> None:
    """Make exactly the registered adapters active, each with its weight (peft `set_adapters`)."""
    weights = adapter_weights(unet)
    if weights:
        unet.set_adapters(list(weights), list(weights.values()))


def _remove(unet: torch.nn.Module, name: str) -> None:
    """Drop one adapter; with none left, remove the peft layers so the UNet is the original module tree."""
    weights = adapter_weights(unet)
    weights.pop(name, None)
    adapter_sources(unet).pop(name, None)
    if weights:
        unet.delete_adapters(name)
        _activate(unet)
    else:
        unet.unload_lora()


def _default_adapter_name(source: str, weight_name: str | None, unets: list[torch.nn.Module]) -> str:
    """A readable, unique adapter name from the file name (peft names may not contain dots)."""
    stem = Path(weight_name).stem if weight_name else Path(source).name
    base = re.sub(r"\W", "_", stem).strip("_") or "lora"
    taken = {n for u in unets for n in adapter_weights(u)}
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _check_adapter_name(name: Any, unets: list[torch.nn.Module]) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"\w+", name):
        raise InstructionError("adapter_name", name, "a name of letters, digits and underscores")
    if any(name in adapter_weights(u) for u in unets):
        raise InstructionError("adapter_name", name, "a name not already loaded (unload_lora it first)")
    return name


# ---------------------------------------------------------------------- LoRA
def _read_lora(location: str, weight_name: str | None, local: bool) -> tuple[dict, dict | None, dict | None]:
    """State dict, network alphas and diffusers metadata, with kohya keys converted; safetensors only."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    state_dict, alphas, metadata = StableDiffusionLoraLoaderMixin.lora_state_dict(
        location, weight_name=weight_name, use_safetensors=True, return_lora_metadata=True,
        local_files_only=True if local else None,
    )  # fmt: skip
    return state_dict, alphas, metadata


def _family_pipeline(pairs: list[tuple[str, Any]]):
    """The family pipeline class whose own LoRA loader reads the file: one image backend written over a diffusers
    pipeline (SDXL, FLUX.1, FLUX.2 klein, ...: `PipelineOver`), whose `lora_state_dict` knows the key layouts its
    models are published in (kohya's FLUX names would be mangled by SD1.5's reader); None for the others."""
    from ivcore.backends.image_pipeline import PipelineOver

    if len(pairs) != 1 or not isinstance(pairs[0][1], PipelineOver):
        return None
    pipe_class = type(pairs[0][1].pipeline())
    return pipe_class if hasattr(pipe_class, "lora_state_dict") else None


def _read_with(pipe_class, location: str, weight_name: str | None, local: bool) -> tuple[dict, Any, dict | None]:
    """State dict, network alphas and metadata through `pipe_class.lora_state_dict` (its outputs differ by family:
    FLUX.1 gives alphas when asked, SDXL always, FLUX.2 and the DiT families never)."""
    import inspect

    kwargs = dict(weight_name=weight_name, use_safetensors=True, return_lora_metadata=True)
    kwargs["local_files_only"] = True if local else None
    if "return_alphas" in inspect.signature(pipe_class.lora_state_dict).parameters:
        kwargs["return_alphas"] = True
    out = pipe_class.lora_state_dict(location, **kwargs)
    out = out if isinstance(out, tuple) else (out, None)
    return out[0], (out[1] if len(out) == 3 else None), out[-1]


def _unet_prefix(state_dict: Mapping[str, Any], source: str) -> str | None:
    """The key prefix of the denoiser part: "unet" / "transformer" for pipeline-format files, None for bare files."""
    if any(k.startswith("transformer.") for k in state_dict):
        return "transformer"
    if any(k.startswith("unet.") for k in state_dict):
        if any(k.startswith(("text_encoder.", "text_encoder_2.")) for k in state_dict):
            warnings.warn("LoRA: text-encoder weights in the file are not loaded (UNet only)", stacklevel=3)
        return "unet"
    if all(k.startswith(("text_encoder.", "text_encoder_2.")) for k in state_dict):
        raise InstructionError("lora", source, "a LoRA with UNet weights (text-encoder-only LoRAs are not supported)")
    return None


def _pin_targets(metadata: dict | None, state_dict: Mapping[str, Any], prefix: str | None) -> dict | None:
    """Aim the file's peft config at exactly the layers the file has weights for.

    A saved config names layers by suffix ("to_q"), which on P_video also hits the motion
    modules' attention: peft would add LoRA layers there with no weights in the file (extra
    compute, and random ones if the config says `init_lora_weights=False`). Full names and
    zero-init make every injected layer one the file fills.
    """
    head = f"{prefix}." if prefix else ""
    if not metadata or head + "r" not in metadata:
        return metadata
    modules = {k[len(head) :].split(".lora_")[0] for k in state_dict if k.startswith(head) and ".lora_" in k}
    return {**metadata, head + "target_modules": sorted(modules), head + "init_lora_weights": True}


def load_lora(
    session,
    path_or_id: str | os.PathLike,
    *,
    target: str = "both",
    scale: float = 1.0,
    adapter_name: str | None = None,
    weight_name: str | None = None,
) -> str:
    """Load a safetensors LoRA onto P_img's and/or P_video's UNet and return its adapter name.

    `path_or_id` is a .safetensors file, a folder holding one (or several, with `weight_name`),
    or a hub id with optional `weight_name`. SD1.5 LoRAs fit both UNets (P_video's spatial
    layers carry SD1.5's names); motion LoRAs (AnimateDiff/AnimateLCM) fit only "video".
    Loading is all or nothing: if one UNet rejects the file, the other is rolled back.
    """
    source = path_string(path_or_id, "lora")
    location, file_name, local = resolve_safetensors(source, weight_name, "lora")
    pairs = _targets(session, target)
    for label, backend in pairs:
        if not hasattr(backend.denoiser, "load_lora_adapter"):
            kind = type(backend.denoiser).__name__
            raise InstructionError("target", target, f"a target whose UNet takes peft LoRAs ({label}: {kind} does not)")
    scale = check_float(scale, "scale", -10.0, 10.0)
    unets = list({id(b.denoiser): b.denoiser for _, b in pairs}.values())
    name = _check_adapter_name(adapter_name, unets) if adapter_name is not None else None
    name = name or _default_adapter_name(source, file_name, unets)

    family = _family_pipeline(pairs)
    if family is not None:  # an image family over a diffusers pipeline: that pipeline's own loader reads it
        state_dict, alphas, metadata = _read_with(family, location, file_name, local)
    else:
        state_dict, alphas, metadata = _read_lora(location, file_name, local)
    for _, backend in pairs if family is None else ():  # DiT families: the pipeline's loader converts layouts
        convert = getattr(getattr(backend, "pipe", None), "lora_state_dict", None)
        if convert is not None:
            state_dict = convert(dict(state_dict))
            state_dict = state_dict[0] if isinstance(state_dict, tuple) else state_dict
    file = str(Path(location) / file_name) if local else None
    record = {"source": source, "weight_name": weight_name, "file": file, "sha256": file and file_sha256(file)}
    prefix = _unet_prefix(state_dict, source)
    metadata = _pin_targets(metadata, state_dict, prefix)
    labels = {id(b.denoiser): label for label, b in reversed(pairs)}
    done: list[torch.nn.Module] = []
    try:
        for unet in unets:
            _inject(unet, state_dict, prefix, alphas, metadata, name, source, labels[id(unet)])
            adapter_weights(unet)[name] = scale
            adapter_sources(unet)[name] = dict(record)
            done.append(unet)
            _activate(unet)
    except Exception:
        for unet in done:
            _remove(unet, name)
        raise
    finally:
        bump_weights_version(b for _, b in pairs)
    return name


def _inject(unet, state_dict, prefix, alphas, metadata, name: str, source: str, label: str) -> None:
    """peft injection through diffusers; a file that fits no layer of this UNet becomes an InstructionError."""
    before = set(getattr(unet, "peft_config", {}) or {})
    try:
        unet.load_lora_adapter(
            dict(state_dict), prefix=prefix, network_alphas=alphas, adapter_name=name, metadata=metadata
        )
    except (ValueError, RuntimeError, KeyError) as error:
        if not adapter_weights(unet):
            unet.unload_lora()  # diffusers drops the adapter but may leave empty peft wrappers
        raise InstructionError("lora", source, f"a LoRA whose keys fit the {label} UNet ({error})") from error
    if name not in set(getattr(unet, "peft_config", {}) or {}) - before:
        raise InstructionError("lora", source, f"a LoRA with weights for the {label} UNet (none matched)")


def set_lora_scale(session, weights: Mapping[str, float] | float, *, target: str = "both") -> None:
    """Set adapter weights: {name: weight, ...} (others keep theirs), or one float for all adapters.

    Weight 0 switches an adapter off exactly (its layers add zeros); 1 is the trained strength.
    """
    pairs = _targets(session, target)
    loaded = {n for _, b in pairs for n in adapter_weights(b.denoiser)}
    if not isinstance(weights, Mapping):
        weights = dict.fromkeys(loaded, weights)
    checked = {}
    for name, value in weights.items():
        if name not in loaded:
            raise InstructionError("adapter_name", name, f"one of the loaded adapters {sorted(loaded)}")
        checked[name] = check_float(value, f"scale[{name}]", -10.0, 10.0)
    touched = []
    for _, backend in pairs:
        registry = adapter_weights(backend.denoiser)
        changed = {n: w for n, w in checked.items() if n in registry and registry[n] != w}
        if changed:
            registry.update(changed)
            _activate(backend.denoiser)
            touched.append(backend)
    bump_weights_version(touched)


def unload_lora(session, adapter_name: str | None = None, *, target: str = "both") -> None:
    """Remove one adapter (or all, with None); the last one out restores the original UNet exactly."""
    pairs = _targets(session, target)
    loaded = {n for _, b in pairs for n in adapter_weights(b.denoiser)}
    if adapter_name is not None and adapter_name not in loaded:
        raise InstructionError("adapter_name", adapter_name, f"one of the loaded adapters {sorted(loaded)} or None")
    touched = []
    for _, backend in pairs:
        unet = backend.denoiser
        names = [adapter_name] if adapter_name is not None else list(adapter_weights(unet))
        names = [n for n in names if n in adapter_weights(unet)]
        for name in names:
            _remove(unet, name)
        if names:
            touched.append(backend)
    bump_weights_version(touched)


__all__ = [
    "load_lora",
    "unload_lora",
    "set_lora_scale",
    "lora_weights",
    "adapter_sources",
    "checkpoint_sources",
    "file_sha256",
    "load_image_checkpoint",
    "load_video_checkpoint",
    "resolve_safetensors",
]
