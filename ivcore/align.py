"""Eq. 5 frame alignment in latent space, and a training-free statistics alternative.

The paper post-processes each generated frame v_i against the intermediate image x~:
`v'_i = Conv2D(SiLU(GroupNorm(v_i - x~)))`. Taken literally, a random or untrained head would
destroy the video, so `FrameAlign` applies it as a residual `v + head(v - x~)` whose
convolution starts at zero: the default is exactly the identity and a trained head only adds
a correction. No trained weights are published, so `align_stats` offers what users actually
see fixed: per-channel colour drift of the frames away from the edited image x~'.

Shapes: video latents are (B, C, F, h, w) (diffusers' video layout) or (F, C, h, w); the
reference latent is (B, C, h, w), (1, C, h, w) or (C, h, w) and is broadcast over frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ivcore.errors import InstructionError

_FORMAT = "ivcore.FrameAlign"


def _default_groups(channels: int) -> int:
    """The largest divisor of `channels` that is at most 32 (SD's GroupNorm width)."""
    return max(g for g in range(1, min(channels, 32) + 1) if channels % g == 0)


def _per_frame(
    latents: torch.Tensor, reference: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Flatten video latents to (N, C, h, w) frames with a matching reference per frame.

    Returns the frames, the reference expanded to them and a function that puts a result of
    the frames' shape back into the layout of `latents`.
    """
    if not isinstance(latents, torch.Tensor) or latents.ndim not in (4, 5):
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise InstructionError("latents", shape, "a (B, C, F, h, w) or (F, C, h, w) tensor")
    if not isinstance(reference, torch.Tensor) or reference.ndim not in (3, 4):
        shape = tuple(reference.shape) if isinstance(reference, torch.Tensor) else type(reference).__name__
        raise InstructionError("reference", shape, "a (B, C, h, w), (1, C, h, w) or (C, h, w) tensor")
    ref = reference if reference.ndim == 4 else reference.unsqueeze(0)
    if latents.ndim == 5:
        b, c, f, h, w = latents.shape
        frames = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        batches = (1, b)

        def restore(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4).contiguous()
    else:
        f, c, h, w = latents.shape
        b, frames, batches = 1, latents, (1,)

        def restore(x: torch.Tensor) -> torch.Tensor:
            return x

    if ref.shape[0] not in batches or tuple(ref.shape[1:]) != (c, h, w):
        raise InstructionError(
            "reference",
            tuple(reference.shape),
            f"the latent of x~ with {c} channels and size {h}x{w}, batch 1" + (f" or {b}" if b > 1 else ""),
        )
    ref = ref.to(device=frames.device, dtype=frames.dtype)
    ref = ref.unsqueeze(1).expand(b, f, c, h, w).reshape(b * f, c, h, w)
    return frames, ref, restore


class FrameAlign(nn.Module):
    """Eq. 5 as a zero-initialised residual head: `v + Conv2d(SiLU(GroupNorm(v - x~)))`.

    `head` holds GroupNorm, SiLU and Conv2d in the paper's order. The convolution's weight
    and bias start at exactly zero, so an untrained FrameAlign returns its input unchanged.
    Weights are stored as safetensors only (`save`, `from_file`), never pickle.
    """

    def __init__(self, channels: int = 4, groups: int | None = None, kernel_size: int = 3):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise InstructionError("channels", channels, "a positive integer")
        groups = _default_groups(channels) if groups is None else groups
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or channels % groups:
            raise InstructionError("groups", groups, f"a positive divisor of channels={channels}")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size % 2 != 1:
            raise InstructionError("kernel_size", kernel_size, "an odd positive integer")
        self.channels, self.groups, self.kernel_size = channels, groups, kernel_size
        self.head = nn.Sequential(
            nn.GroupNorm(groups, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2),
        )
        nn.init.zeros_(self.head[2].weight)
        nn.init.zeros_(self.head[2].bias)

    def forward(self, latents: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Align every frame of `latents` to `reference` (the latent of x~), same layout out."""
        frames, ref, restore = _per_frame(latents, reference)
        if frames.shape[1] != self.channels:
            raise InstructionError("latents", tuple(latents.shape), f"{self.channels} latent channels")
        param = self.head[2].weight
        # The head runs in its own dtype (fp32 weights on fp16 latents), the residual in the
        # latents' dtype, so an all-zero head adds exactly zero.
        delta = self.head((frames - ref).to(device=param.device, dtype=param.dtype))
        return restore(frames + delta.to(device=frames.device, dtype=frames.dtype))

    def save(self, path: str | Path) -> None:
        """Write the weights and the shape settings to a `.safetensors` file."""
        from safetensors.torch import save_file

        path = _safetensors_path(path)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        meta = {
            "format": _FORMAT,
            "channels": str(self.channels),
            "groups": str(self.groups),
            "kernel_size": str(self.kernel_size),
        }
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> FrameAlign:
        """Load a FrameAlign written by `save`; only `.safetensors` files are accepted."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = _safetensors_path(path)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != _FORMAT:
            raise InstructionError("path", str(path), f"a safetensors file written by {_FORMAT}.save")
        module = cls(int(meta["channels"]), int(meta["groups"]), int(meta["kernel_size"]))
        module.load_state_dict(load_file(str(path)), strict=True)
        return module.to(device)


def _safetensors_path(path: Any) -> Path:
    """Refuse anything but `.safetensors`: `.bin`/`.pt`/`.ckpt` are pickles and can run code."""
    if not isinstance(path, (str, Path)) or Path(path).suffix != ".safetensors":
        raise InstructionError("path", path, "a file ending in .safetensors (pickle formats are refused)")
    return Path(path)


def align_stats(latents: torch.Tensor, reference: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Move each frame's per-channel latent mean and std to those of `reference` (x~').

    Training-free: colour drift across a clip shows up as drifting per-channel latent
    statistics, and pinning them to the edited image's removes it while keeping each frame's
    spatial structure. `strength` in [0, 1] blends from the input (0) to fully aligned (1).
    Written as a correction added to the input, so a clip whose statistics already match
    comes back unchanged up to float rounding.
    """
    ok = isinstance(strength, (int, float)) and not isinstance(strength, bool)
    if not ok or not math.isfinite(strength) or not 0 <= strength <= 1:
        raise InstructionError("strength", strength, "a number in [0, 1]")
    frames, ref, restore = _per_frame(latents, reference)
    x, r = frames.double(), ref.double()
    mu_x, sd_x = x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True, unbiased=False)
    mu_r, sd_r = r.mean(dim=(2, 3), keepdim=True), r.std(dim=(2, 3), keepdim=True, unbiased=False)
    correction = (x - mu_x) * (sd_r / sd_x.clamp_min(1e-12) - 1) + (mu_r - mu_x)
    return restore((x + strength * correction).to(frames.dtype))


def apply_align(align: Any, latents: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Apply a Session's `align` setting: None (unchanged), "stats" or a FrameAlign."""
    if align is None:
        return latents
    if isinstance(align, str) and align == "stats":
        return align_stats(latents, reference)
    if isinstance(align, FrameAlign):
        with torch.no_grad():
            return align(latents, reference)
    raise InstructionError("align", align, 'None, "stats" or a FrameAlign')
