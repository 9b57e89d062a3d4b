"""Training data of the shapes world: seeded picture batches and the video stage's clip pool.

Split from `ivcore.shapes.train` (the loop and the losses) so each module keeps one job. What a
batch or a pool slot holds at a step follows from (seed, stage, step) alone, which is what lets a
stopped run resume to the very weights an uninterrupted one reaches.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ivcore.shapes import world
from ivcore.shapes.checkpoint import derived_seed
from ivcore.shapes.recipe import TrainConfig
from ivcore.trajectory import animate


def pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1], the VAE's input range."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1


def encode(vae, pictures: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of pictures, times the scaling factor (what the UNets see)."""
    with torch.no_grad():
        dist = vae.encode(pixels(pictures).to(vae.device)).latent_dist
    sf = vae.config.scaling_factor
    return dist.mean * sf, dist.std * sf


def foreground_cells(pictures: np.ndarray, backgrounds: np.ndarray, latent_size: int) -> torch.Tensor:
    """(N, 1, h, w): 1 where a latent cell covers a pixel that differs from the bare background."""
    differs = torch.from_numpy(np.any(pictures != backgrounds, axis=-1)).float()[:, None]
    return F.adaptive_max_pool2d(differs, latent_size)


def picture_batch(seed: int, stage: int, step: int, n: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """n world pictures (uint8), their content captions and their bare backgrounds for one step."""
    rng = np.random.default_rng(derived_seed(seed, stage, step))
    pictures, captions, backgrounds = [], [], []
    for _ in range(n):
        scene = world.random_scene(rng)
        camera = (float(rng.integers(-30, 30)), 0.0) if scene.background == "sky" else (0.0, 0.0)
        pictures.append(world.render(scene, camera))
        backgrounds.append(world.render(world.Scene(scene.background, ()), camera))
        captions.append(scene.caption(with_background=bool(rng.random() < 0.7)))
    return np.stack(pictures), captions, np.stack(backgrounds)


class ClipPool:
    """Encoded training clips for the video stage; `cfg.pool_refresh` slots get fresh clips each step.

    Refresh number k (k = step * pool_refresh + i) puts clip `size + k` into slot `k % size`, so what
    a slot holds at any step follows from (seed, step) alone and a resumed run rebuilds the very
    pool an uninterrupted run would have. Each clip is drawn about batch / pool_refresh times in
    its life: 4 in the shipped recipe (batch 4, 1 a step); a large GPU batch wants a larger refresh.
    """

    def __init__(self, vae, cfg: TrainConfig, step: int, progress: bool = True, data_seed: int | None = None):
        self.vae, self.cfg, self.size, self.refresh_per_step = vae, cfg, cfg.pool, cfg.pool_refresh
        self.data_seed = cfg.seed if data_seed is None else data_seed
        self.slots: list[dict | None] = [None] * self.size
        for j in tqdm(range(self.size), desc="encode clip pool", disable=not progress, leave=False):
            last = self._last_refresh(j, step)
            self.slots[j] = self._make(self.size + last if last is not None else j)

    def _last_refresh(self, slot: int, step: int) -> int | None:
        """The last refresh number before `step` that filled `slot` (None: it still holds its first clip)."""
        done = step * self.refresh_per_step
        if done <= slot:
            return None
        return slot + ((done - 1 - slot) // self.size) * self.size

    def refresh(self, step: int) -> None:
        for k in range(step * self.refresh_per_step, (step + 1) * self.refresh_per_step):
            self.slots[k % self.size] = self._make(self.size + k)

    def _kind(self, seed: int) -> str | None:
        """The clip's kind drawn with the recipe's `video_kinds` (None: let the world draw it)."""
        kinds = self.cfg.video_kinds
        if not kinds:
            return None
        p = np.array(list(kinds.values()), dtype=float)
        return str(np.random.default_rng(derived_seed(seed, 3)).choice(list(kinds), p=p / p.sum()))

    def _make(self, number: int) -> dict:
        seed = derived_seed(self.data_seed, 2, number) % world.TRAIN_SEEDS.stop
        clip = world.random_clip(seed, kind=self._kind(seed))
        rng = np.random.default_rng(seed)
        collage = clip.kind == "path" or (clip.kind == "move" and rng.random() < self.cfg.collage_for_moves)
        pictures = clip.frames
        if collage:
            pictures = np.concatenate([pictures, animate(clip.frames[0], [clip.trajectory], len(clip.frames))])
        mean, std = encode(self.vae, pictures)
        f = len(clip.frames)
        backgrounds = np.stack([world.render(world.Scene(clip.scene.background, ()), camera) for camera in clip.camera])
        return {
            "mean": mean[:f], "std": std[:f], "cond_mean": mean[f:] if collage else mean[:1],
            "cond_std": std[f:] if collage else std[:1], "motion": clip.motion,
            "foreground": foreground_cells(clip.frames, backgrounds, mean.shape[-1]),
        }  # fmt: skip
