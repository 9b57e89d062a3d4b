"""Personalized checkpoints for P_img and P_video (issue 7, item 2): DreamBooth folders and single files.

A module of its own because it is a different job from LoRAs (`ivcore.backends.personalize`): a LoRA
adds removable layers on top of a UNet, while a checkpoint replaces weights for good, so the
code here is about architectures (which components a folder holds, the config a single file is
read with, how an SD UNet maps onto P_video's spatial layers), not about adapters.

- `load_image_checkpoint` replaces P_img's UNet (and VAE/text encoder/tokenizer of a DreamBooth
  folder); P_video keeps its own.
- `load_video_checkpoint` loads a personalized SD1.5 UNet into P_video's spatial layers while
  keeping its motion modules and PIA's extra input channels (`load_spatial_weights`).

Both follow the shared rules of `ivcore.backends.weights`: safetensors only (diffusers is always called
with `use_safetensors=True`, so it cannot fall back to a pickle on its own), refused while a
generation runs or while LoRAs are loaded, recorded for `Session.save`, and every change bumps
`backend.weights_version`. `ivcore.backends.personalize` re-exports the two loaders.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ivcore.backends.weights import (
    HUB_ID,
    SAFE_ONLY,
    adapter_weights,
    bump_weights_version,
    check_idle,
    check_safe_name,
    checkpoint_sources,
    path_string,
    refuse,
)
from ivcore.errors import InstructionError


def _require_no_lora(backend, label: str) -> None:
    """Checkpoints go under LoRAs, not over them: refuse rather than silently drop or mix adapters."""
    names = sorted(adapter_weights(backend.unet))
    if names:
        raise InstructionError(
            "checkpoint",
            f"{label} UNet with LoRAs {names}",
            f"a UNet without LoRAs: unload_lora(target={label!r}) first",
        )


def _checkpoint_kind(path_or_id: Any) -> tuple[str, str]:
    """("file", path) for a single .safetensors file, ("folder", path or hub id) for a diffusers model."""
    source = path_string(path_or_id, "checkpoint")
    check_safe_name(source, "checkpoint")
    path = Path(source)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise refuse("checkpoint", source)
        return "file", source
    if path.is_dir():
        if not (path / "unet").is_dir():
            raise refuse("checkpoint", source, "a diffusers model folder (with unet/) or a single .safetensors file")
        return "folder", source
    if path.suffix == ".safetensors":
        return "file", source  # a hub link to one file: diffusers resolves it
    if not HUB_ID.match(source):
        raise refuse("checkpoint", source, f"{SAFE_ONLY}; no such file or folder")
    return "folder", source


def _folder_components(source: str) -> list[str]:
    """Which of unet/vae/text_encoder/tokenizer a diffusers model folder (or hub id) has."""
    from diffusers import DiffusionPipeline

    path = Path(source)
    if path.is_dir():
        names = [c for c in ("unet", "vae", "text_encoder", "tokenizer") if (path / c).is_dir()]
        for c in names:
            files = list((path / c).iterdir())
            if c != "tokenizer" and not any(f.suffix == ".safetensors" for f in files):
                raise refuse("checkpoint", f"{source}/{c}", f"{SAFE_ONLY}; {c}/ has no .safetensors weights")
        return names
    index = DiffusionPipeline.load_config(source)
    return [c for c in ("unet", "vae", "text_encoder", "tokenizer") if c in index]


def _load_component(source: str, name: str, backend) -> Any:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if name == "tokenizer":
        return CLIPTokenizer.from_pretrained(source, subfolder="tokenizer")
    cls = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}[name]
    module = cls.from_pretrained(source, subfolder=name, torch_dtype=backend.dtype, use_safetensors=True)
    return module.to(backend.device).eval()


def _single_file_unet(source: str, config: dict, backend) -> torch.nn.Module:
    """A UNet2DConditionModel from one safetensors file (original SD or diffusers key layout).

    The architecture comes from `config` (the current UNet's), written to a temporary folder, so
    diffusers never looks a config up on the hub and a checkpoint of another architecture fails
    loudly instead of loading into the wrong shapes.
    """
    from diffusers import UNet2DConditionModel

    with tempfile.TemporaryDirectory() as folder:
        clean = {k: v for k, v in config.items() if not k.startswith("_")}
        clean["_class_name"] = "UNet2DConditionModel"
        (Path(folder) / "config.json").write_text(json.dumps(clean))
        try:
            unet = UNet2DConditionModel.from_single_file(source, config=folder, torch_dtype=backend.dtype)
        except (ValueError, RuntimeError, KeyError) as error:
            raise InstructionError(
                "checkpoint", source, f"a single-file checkpoint of the current UNet's architecture ({error})"
            ) from error
    return unet.to(backend.device).eval()


def load_image_checkpoint(session, path_or_id: str | os.PathLike) -> list[str]:
    """Personalize P_img with a full checkpoint; returns the replaced components' names.

    A diffusers folder or hub id (DreamBooth-style: unet/, and vae/, text_encoder/, tokenizer/
    when present) replaces those modules on the image backend only; P_video keeps its own (the
    tiny and SD1.5 presets share the VAE and CLIP between the backends: the new ones go to P_img
    alone). A single `.safetensors` file (A1111/civitai layout or diffusers keys) replaces the
    UNet, read with the current UNet's architecture.
    """
    kind, source = _checkpoint_kind(path_or_id)
    check_idle(session)
    backend = session.image_backend
    _require_no_lora(backend, "image")
    if kind == "file":
        replaced = {"unet": _single_file_unet(source, dict(backend.unet.config), backend)}
    else:
        names = _folder_components(source)
        if "unet" not in names:
            raise refuse("checkpoint", source, "a diffusers model folder with a unet/ subfolder")
        replaced = {name: _load_component(source, name, backend) for name in names}
    vae = replaced.get("vae")
    if vae is not None and 2 ** (len(vae.config.block_out_channels) - 1) != backend.vae_scale_factor:
        raise InstructionError("checkpoint", source, "a model whose VAE downsamples as the current one does")
    for name, module in replaced.items():
        setattr(backend, name, module)
    checkpoint_sources(backend).append(source)
    bump_weights_version([backend])
    return list(replaced)


def require_motion_unet(session, field: str) -> None:
    """PIA/AnimateDiff-style P_video only: an SD UNet plus motion modules (not SVD's UNet)."""
    kind = type(session.video_backend.unet).__name__
    if kind != "UNetMotionModel":
        raise InstructionError(field, kind, "a video backend on a UNetMotionModel (PIA/AnimateDiff style)")


def unet2d_config(motion_unet: torch.nn.Module) -> dict:
    """The SD UNet2DConditionModel config whose spatial layers a UNetMotionModel carries.

    The inverse of `UNetMotionModel.from_unet2d`'s config mapping: 2D block types, 4 input
    channels, and SD1.5's legacy meaning of `attention_head_dim` (the number of heads).
    """
    import inspect

    from diffusers import UNet2DConditionModel

    config = dict(motion_unet.config)
    params = set(inspect.signature(UNet2DConditionModel.__init__).parameters) - {"self"}
    out = {k: v for k, v in config.items() if k in params and not k.startswith("reverse_")}
    out["in_channels"] = 4
    out["down_block_types"] = [b.replace("Motion", "2D") for b in config["down_block_types"]]
    out["up_block_types"] = [b.replace("Motion", "2D") for b in config["up_block_types"]]
    out["mid_block_type"] = "UNetMidBlock2DCrossAttn"
    out["attention_head_dim"] = config.get("num_attention_heads") or 8
    out.pop("num_attention_heads", None)
    return out


def load_spatial_weights(motion_unet: torch.nn.Module, unet2d: torch.nn.Module, source: str = "") -> None:
    """Copy an SD UNet's weights into a UNetMotionModel's spatial layers, in place.

    Motion modules stay; for PIA's 9-channel conv_in, the first 4 input channels come from the
    SD UNet and the 5 condition channels stay PIA's (what `UNetMotionModel.from_unet2d` does).
    Every spatial weight must be covered and shaped alike, or nothing is changed.
    """
    target = motion_unet.state_dict()
    new = {}
    for key, value in unet2d.state_dict().items():
        if key == "conv_in.weight" and key in target and target[key].shape[1] > value.shape[1]:
            value = torch.cat([value.to(target[key].dtype), target[key][:, value.shape[1] :]], dim=1)
        if key not in target or target[key].shape != value.shape:
            raise InstructionError(
                "checkpoint", source, f"an SD UNet whose layers fit the video UNet (no match for {key})"
            )
        new[key] = value.to(dtype=target[key].dtype, device=target[key].device)
    missing = [k for k in target if k not in new and "motion_modules" not in k]
    if missing:
        raise InstructionError("checkpoint", source, f"an SD UNet with every spatial layer (missing {missing[0]})")
    motion_unet.load_state_dict(new, strict=False)


def load_video_checkpoint(session, path_or_id: str | os.PathLike) -> list[str]:
    """Personalize P_video's spatial layers with an SD1.5-family checkpoint (folder, hub id or file).

    The motion modules (and PIA's condition channels) are kept, so any DreamBooth/civitai SD1.5
    model can be animated with the motion adapter already loaded. Only the UNet is used.
    """
    kind, source = _checkpoint_kind(path_or_id)
    check_idle(session)
    require_motion_unet(session, "video_backend")
    backend = session.video_backend
    _require_no_lora(backend, "video")
    if kind == "file":
        unet2d = _single_file_unet(source, unet2d_config(backend.unet), backend)
    else:
        if "unet" not in _folder_components(source):
            raise refuse("checkpoint", source, "a diffusers model folder with a unet/ subfolder")
        unet2d = _load_component(source, "unet", backend)
    load_spatial_weights(backend.unet, unet2d, source)
    checkpoint_sources(backend).append(source)
    bump_weights_version([backend])
    return ["unet"]


__all__ = [
    "load_image_checkpoint",
    "load_video_checkpoint",
    "require_motion_unet",
    "unet2d_config",
    "load_spatial_weights",
]
