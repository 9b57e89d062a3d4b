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
    ) -> TrajectoryGuide:
        """`encoded` is (F or 1, 4, h, w); `masks` bool (F, H, W); active for round(strength * steps) steps."""
        num_frames, (h, w) = noise.shape[2], noise.shape[-2:]
        target = encoded.permute(1, 0, 2, 3).unsqueeze(0).expand(1, -1, num_frames, -1, -1)
        covered = torch.from_numpy(masks.astype(np.float32)).unsqueeze(1)  # (F, 1, H, W)
        mask = F.interpolate(covered, size=(h, w), mode="area").permute(1, 0, 2, 3).unsqueeze(0)
        steps = len(timesteps)
        active = min(steps, max(1, round(strength * steps))) if strength > 0 else 0
        lam = torch.tensor([list(s) for s in schedules], dtype=torch.float32)
        weights = (1 - lam) * (torch.arange(steps) < active).float()
        dtype, device = noise.dtype, noise.device
        return cls(target.to(device, dtype), mask.to(device, dtype), noise, weights.to(device, dtype), timesteps)

    def apply(self, scheduler, latents: torch.Tensor, index: int) -> torch.Tensor:
        """Blend latents (L, 4, F, h, w), which are at timesteps[index], toward the noised target."""
        if index >= self.weights.shape[1]:
            return latents
        weight = self.weights[:, index].view(-1, 1, 1, 1, 1)
        if not bool((weight > 0).any()):
            return latents
        t = self.timesteps[index : index + 1]
        noised = scheduler.add_noise(self.target, self.noise, t)
        return latents + weight * self.mask * (noised - latents)

    def after_step(self, scheduler, step: int, latents: torch.Tensor) -> torch.Tensor:
        """After step `step` the latents sit at the next timestep: guide them there."""
        return self.apply(scheduler, latents, step + 1)
