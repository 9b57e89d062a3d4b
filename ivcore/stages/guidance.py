"""Trajectory guidance in latent space: pull moving regions toward the animated frames early on.

Conditioning the edited branch on the animated frames (trajectory path mode) tells the video
UNet where content should be; in the first steps, while the layout forms, we also blend the
noisy latents inside each frame's moving region toward the animated frame's latent noised to
the same level. Outside the masks nothing changes, so the background does not drift, and the
pull is weighted by (1 - lam) so that lam = 1 stays exactly the plain video of x~.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ivcore.backends.schedulers import noised


def temporal_pool(masks: np.ndarray, latent_frames: int) -> np.ndarray:
    """(F, H, W) per-frame masks -> (f, H, W), the union over the frames each latent frame holds.

    Causal 3D VAEs (Wan, CogVideoX, Hunyuan: 4x, LTX: 8x) keep frame 0 as latent frame 0 and put
    each next group of (F - 1) / (f - 1) frames into one latent frame. F == f returns the masks.
    """
    frames = masks.shape[0]
    if frames == latent_frames:
        return masks
    if latent_frames < 1 or latent_frames == 1 or (frames - 1) % (latent_frames - 1):
        return np.repeat(masks.any(axis=0, keepdims=True), latent_frames, axis=0)
    factor = (frames - 1) // (latent_frames - 1)
    groups = [masks[:1]] + [masks[1 + k * factor : 1 + (k + 1) * factor] for k in range(latent_frames - 1)]
    return np.stack([g.any(axis=0) for g in groups])


@dataclass
class TrajectoryGuide:
    target: torch.Tensor  # (1, 4, F, h, w) latents of the animated frames
    mask: torch.Tensor  # (1, 1, F, h, w) fraction of each latent pixel covered by moving content
    noise: torch.Tensor  # (1, 4, F, h, w) the run's initial noise (unit variance)
    weights: torch.Tensor  # (L, steps): pull applied before step i, for each of L schedules
    timesteps: torch.Tensor

    @classmethod
    def build(
        cls,
        encoded: torch.Tensor,
        masks: np.ndarray,
        noise: torch.Tensor,
        schedules: Sequence[Sequence[float]],
        strength: float,
        timesteps: torch.Tensor,
        first: int = 0,
    ) -> TrajectoryGuide:
        """`encoded` is (F or 1, C, h, w) per-frame latents, or (1, C, f, h, w) latents of the whole animated clip
        from a 3D VAE that compresses time (f latent frames); `masks` bool (F, H, W), pooled to f latent
        frames when time is compressed; active for round(strength * steps) steps from step `first` (1 when
        the first level is pure noise, flow matching or zero-terminal-SNR DDIM: a pull there changes nothing)."""
        num_frames, (h, w) = noise.shape[2], noise.shape[-2:]
        if encoded.dim() == 5:
            target = encoded
        else:
            target = encoded.permute(1, 0, 2, 3).unsqueeze(0).expand(1, -1, num_frames, -1, -1)
        covered = torch.from_numpy(temporal_pool(masks, num_frames).astype(np.float32)).unsqueeze(1)  # (f, 1, H, W)
        mask = F.interpolate(covered, size=(h, w), mode="area").permute(1, 0, 2, 3).unsqueeze(0)
        steps = len(timesteps)
        active = min(steps, max(1, round(strength * steps))) if strength > 0 else 0
        lam = torch.tensor([list(s) for s in schedules], dtype=torch.float32)
        index = torch.arange(steps)
        weights = (1 - lam) * ((index >= first) & (index < first + active)).float()
        dtype, device = noise.dtype, noise.device
        return cls(target.to(device, dtype), mask.to(device, dtype), noise, weights.to(device, dtype), timesteps)

    def apply(self, scheduler, latents: torch.Tensor, index: int) -> torch.Tensor:
        """Blend latents (L, 4, F, h, w), which are at timesteps[index], toward the noised target."""
        if index >= self.weights.shape[1]:
            return latents
        weight = self.weights[:, index].view(-1, 1, 1, 1, 1)
        if not bool((weight > 0).any()):
            return latents
        target = noised(scheduler, self.target, self.noise, index)
        return latents + weight * self.mask * (target - latents)

    def after_step(self, scheduler, step: int, latents: torch.Tensor) -> torch.Tensor:
        """After step `step` the latents sit at the next timestep: guide them there."""
        return self.apply(scheduler, latents, step + 1)
