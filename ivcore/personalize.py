"""Personalization: LoRA adapters and full checkpoints on P_img and P_video (issue 7, item 2).

The paper personalizes both pipelines with DreamBooth or LoRA models. Here that goes through
diffusers' own loaders, so every community format diffusers reads (diffusers/peft keys, kohya
`lora_unet_*` keys, AnimateDiff motion LoRAs) works the same way:

- LoRA: `load_lora` reads a safetensors LoRA with `StableDiffusionLoraLoaderMixin.lora_state_dict`
  (which converts kohya keys) and injects it with `unet.load_lora_adapter` (peft). Adapters are
  never fused, so the base weights are never touched: `unload_lora` removes the peft layers and
  the UNet is bitwise the original again. Several adapters mix with `set_lora_scale`.
- Checkpoints: `load_image_checkpoint` replaces P_img's UNet (and VAE/text encoder of a
  DreamBooth folder); `load_video_checkpoint` loads a personalized SD1.5 UNet into P_video's
  spatial layers while keeping its motion modules and PIA's extra input channels.

Pickle is never loaded: paths ending in .bin/.pt/.pth/.ckpt/.pkl, or any non-safetensors file,
raise `InstructionError` before a byte is read, and diffusers is always called with
`use_safetensors=True` so it cannot fall back to a pickle on its own.
Every change bumps `backend.weights_version`, which is part of the Session's cache keys, so a
video made with other weights is never served from the cache.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ivcore.errors import InstructionError
from ivcore.instructions import check_choice, check_float

TARGETS = ("image", "video", "both")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
LORA_FILE = "pytorch_lora_weights.safetensors"
SAFE_ONLY = (
    "a .safetensors file, a folder holding one, or a hub id (pickle formats .bin/.pt/.pth/.ckpt/.pkl are never loaded)"
)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

# Adapter weights per UNet, kept beside the UNet object: a replaced UNet takes its adapters with it.
_WEIGHTS: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, float]] = weakref.WeakKeyDictionary()
# Where each adapter and checkpoint came from: what Session.save needs to load them again.
_SOURCES: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, dict]] = weakref.WeakKeyDictionary()
_CHECKPOINTS: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------- sources
def _refuse(field: str, value: Any, allowed: str = SAFE_ONLY) -> InstructionError:
    return InstructionError(field, str(value), allowed)


def _as_path_string(value: Any, field: str) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise _refuse(field, value)
    return os.fspath(value)


def check_safe_name(name: str, field: str) -> None:
    """Refuse pickle names and non-safetensors files by their suffix only (nothing is opened)."""
    suffix = Path(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES or (suffix != ".safetensors" and Path(name).is_file()):
        raise _refuse(field, name)


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
    raise _refuse(field, folder, f"{SAFE_ONLY}; {detail}")


def resolve_safetensors(
    path_or_id: Any, weight_name: str | None = None, field: str = "lora"
) -> tuple[str, str | None, bool]:
    """Where a safetensors LoRA lives: (folder or hub id, file name or None, is local).

    Checks names only, so that a pickle is refused before anything is read.
    """
    source = _as_path_string(path_or_id, field)
    check_safe_name(source, field)
    if weight_name is not None:
        if not isinstance(weight_name, str) or not weight_name.endswith(".safetensors"):
            raise _refuse("weight_name", weight_name, "a file name ending in .safetensors")
    path = Path(source)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise _refuse(field, source)
        return str(path.parent), path.name, True
    if path.is_dir():
        return str(path), _pick_safetensors(path, weight_name, field), True
    if path.suffix == ".safetensors" or not _HUB_ID.match(source):
        raise _refuse(field, source, f"{SAFE_ONLY}; no such file or folder")
    return source, weight_name, False


# ---------------------------------------------------------------------- backends
def check_idle(session) -> None:
    """Weights must not change under a running generation: its result would be cached under the old key."""
    if getattr(session, "running", False):
        raise RuntimeError("a generation is running in this session; wait for it or cancel() it first")


def _targets(session, target: str) -> list[tuple[str, Any]]:
    """The (label, backend) pairs a target names, in a fixed order; refused while generating."""
    check_choice(target, "target", TARGETS)
    check_idle(session)
    pairs = [("image", session.image_backend), ("video", session.video_backend)]
    return [(label, b) for label, b in pairs if target in (label, "both")]


def _bump(backends: Iterable[Any]) -> None:
    """Invalidate every cached result made with the old weights (weights_version is in the keys)."""
    for backend in {id(b): b for b in backends}.values():
        backend.weights_version += 1


def adapter_weights(unet: torch.nn.Module) -> dict[str, float]:
    """The LoRA adapters loaded on a UNet with their weights (a live dict: treat as read-only)."""
    return _WEIGHTS.setdefault(unet, {})


def adapter_sources(unet: torch.nn.Module) -> dict[str, dict]:
    """{adapter name: {"source", "weight_name", "file", "sha256"}} of a UNet (a live dict: read-only)."""
    return _SOURCES.setdefault(unet, {})


def checkpoint_sources(backend: Any) -> list[str]:
    """The checkpoints loaded into a backend, oldest first (a live list: treat as read-only)."""
    return _CHECKPOINTS.setdefault(backend, [])


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in blocks (LoRA and checkpoint files are large)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def lora_weights(session) -> dict[str, dict[str, float]]:
    """{"image": {name: weight}, "video": {name: weight}}: what is loaded where, for UIs and repr."""
    pairs = (("image", session.image_backend), ("video", session.video_backend))
    return {label: dict(adapter_weights(b.unet)) for label, b in pairs}


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


def _unet_prefix(state_dict: Mapping[str, Any], source: str) -> str | None:
    """The key prefix of the UNet part: "unet" for pipeline-format files, None for bare UNet files."""
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
    source = _as_path_string(path_or_id, "lora")
    location, file_name, local = resolve_safetensors(source, weight_name, "lora")
    pairs = _targets(session, target)
    for label, backend in pairs:
        if not hasattr(backend.unet, "load_lora_adapter"):
            kind = type(backend.unet).__name__
            raise InstructionError("target", target, f"a target whose UNet takes peft LoRAs ({label}: {kind} does not)")
    scale = check_float(scale, "scale", -10.0, 10.0)
    unets = list({id(b.unet): b.unet for _, b in pairs}.values())
    name = _check_adapter_name(adapter_name, unets) if adapter_name is not None else None
    name = name or _default_adapter_name(source, file_name, unets)

    state_dict, alphas, metadata = _read_lora(location, file_name, local)
    file = str(Path(location) / file_name) if local else None
    record = {"source": source, "weight_name": weight_name, "file": file, "sha256": file and file_sha256(file)}
    prefix = _unet_prefix(state_dict, source)
    metadata = _pin_targets(metadata, state_dict, prefix)
    labels = {id(b.unet): label for label, b in reversed(pairs)}
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
        _bump(b for _, b in pairs)
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
    loaded = {n for _, b in pairs for n in adapter_weights(b.unet)}
    if not isinstance(weights, Mapping):
        weights = dict.fromkeys(loaded, weights)
    checked = {}
    for name, value in weights.items():
        if name not in loaded:
            raise InstructionError("adapter_name", name, f"one of the loaded adapters {sorted(loaded)}")
        checked[name] = check_float(value, f"scale[{name}]", -10.0, 10.0)
    touched = []
    for _, backend in pairs:
        registry = adapter_weights(backend.unet)
        changed = {n: w for n, w in checked.items() if n in registry and registry[n] != w}
        if changed:
            registry.update(changed)
            _activate(backend.unet)
            touched.append(backend)
    _bump(touched)


def unload_lora(session, adapter_name: str | None = None, *, target: str = "both") -> None:
    """Remove one adapter (or all, with None); the last one out restores the original UNet exactly."""
    pairs = _targets(session, target)
    loaded = {n for _, b in pairs for n in adapter_weights(b.unet)}
    if adapter_name is not None and adapter_name not in loaded:
        raise InstructionError("adapter_name", adapter_name, f"one of the loaded adapters {sorted(loaded)} or None")
    touched = []
    for _, backend in pairs:
        unet = backend.unet
        names = [adapter_name] if adapter_name is not None else list(adapter_weights(unet))
        names = [n for n in names if n in adapter_weights(unet)]
        for name in names:
            _remove(unet, name)
        if names:
            touched.append(backend)
    _bump(touched)


# ---------------------------------------------------------------------- checkpoints
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
    source = _as_path_string(path_or_id, "checkpoint")
    check_safe_name(source, "checkpoint")
    path = Path(source)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise _refuse("checkpoint", source)
        return "file", source
    if path.is_dir():
        if not (path / "unet").is_dir():
            raise _refuse("checkpoint", source, "a diffusers model folder (with unet/) or a single .safetensors file")
        return "folder", source
    if path.suffix == ".safetensors":
        return "file", source  # a hub link to one file: diffusers resolves it
    if not _HUB_ID.match(source):
        raise _refuse("checkpoint", source, f"{SAFE_ONLY}; no such file or folder")
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
                raise _refuse("checkpoint", f"{source}/{c}", f"{SAFE_ONLY}; {c}/ has no .safetensors weights")
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
            raise _refuse("checkpoint", source, "a diffusers model folder with a unet/ subfolder")
        replaced = {name: _load_component(source, name, backend) for name in names}
    vae = replaced.get("vae")
    if vae is not None and 2 ** (len(vae.config.block_out_channels) - 1) != backend.vae_scale_factor:
        raise InstructionError("checkpoint", source, "a model whose VAE downsamples as the current one does")
    for name, module in replaced.items():
        setattr(backend, name, module)
    checkpoint_sources(backend).append(source)
    _bump([backend])
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
            raise _refuse("checkpoint", source, "a diffusers model folder with a unet/ subfolder")
        unet2d = _load_component(source, "unet", backend)
    load_spatial_weights(backend.unet, unet2d, source)
    checkpoint_sources(backend).append(source)
    _bump([backend])
    return ["unet"]


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
