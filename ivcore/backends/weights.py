"""What LoRA loading (`ivcore.backends.personalize`) and checkpoint loading (`ivcore.backends.checkpoints`) share.

Both loaders change the weights a Session generates with, so they obey the same rules and keep
the same records; this module holds them once, and lets `ivcore.backends.personalize` re-export the
checkpoint loaders without the two modules importing each other:

- Sources: safetensors only. A pickle name (.bin/.pt/.pth/.ckpt/.pkl) or any non-safetensors
  file is refused by its name, before a byte is read.
- Records: which adapters (with weight and source) sit on each UNet and which checkpoints went
  into each backend, kept beside those objects (a replaced UNet takes its adapters with it).
  `Session.save` writes them so `load` can apply the same weights again.
- Changes: refused while a generation runs, and every change bumps `backend.weights_version`,
  which is part of the Session's cache keys, so a result made with other weights is never served.
"""

from __future__ import annotations

import hashlib
import os
import re
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ivcore.errors import InstructionError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
SAFE_ONLY = (
    "a .safetensors file, a folder holding one, or a hub id (pickle formats .bin/.pt/.pth/.ckpt/.pkl are never loaded)"
)
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

# Adapter weights per UNet, kept beside the UNet object: a replaced UNet takes its adapters with it.
_WEIGHTS: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, float]] = weakref.WeakKeyDictionary()
# Where each adapter and checkpoint came from: what Session.save needs to load them again.
_SOURCES: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, dict]] = weakref.WeakKeyDictionary()
_CHECKPOINTS: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------- sources
def refuse(field: str, value: Any, allowed: str = SAFE_ONLY) -> InstructionError:
    """The error for a source that is not a loadable safetensors file, folder or hub id."""
    return InstructionError(field, str(value), allowed)


def path_string(value: Any, field: str) -> str:
    """A non-empty str or os.PathLike as a string; anything else is refused."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise refuse(field, value)
    return os.fspath(value)


def check_safe_name(name: str, field: str) -> None:
    """Refuse pickle names and non-safetensors files by their suffix only (nothing is opened)."""
    suffix = Path(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES or (suffix != ".safetensors" and Path(name).is_file()):
        raise refuse(field, name)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in blocks (LoRA and checkpoint files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------- records
def adapter_weights(unet: torch.nn.Module) -> dict[str, float]:
    """The LoRA adapters loaded on a UNet with their weights (a live dict: treat as read-only)."""
    return _WEIGHTS.setdefault(unet, {})


def adapter_sources(unet: torch.nn.Module) -> dict[str, dict]:
    """{adapter name: {"source", "weight_name", "file", "sha256"}} of a UNet (a live dict: read-only)."""
    return _SOURCES.setdefault(unet, {})


def checkpoint_sources(backend: Any) -> list[str]:
    """The checkpoints loaded into a backend, oldest first (a live list: treat as read-only)."""
    return _CHECKPOINTS.setdefault(backend, [])


# ---------------------------------------------------------------------- changes
def check_idle(session) -> None:
    """Weights must not change under a running generation: its result would be cached under the old key."""
    if getattr(session, "running", False):
        raise RuntimeError("a generation is running in this session; wait for it or cancel() it first")


def bump_weights_version(backends: Iterable[Any]) -> None:
    """Invalidate every cached result made with the old weights (weights_version is in the keys)."""
    for backend in {id(b): b for b in backends}.values():
        backend.weights_version += 1
