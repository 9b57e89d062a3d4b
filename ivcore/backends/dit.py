"""What the diffusion-transformer video families (Wan, CogVideoX, LTX-Video, HunyuanVideo) share.

They differ in how the image enters the transformer, but every one of them has a 3D VAE that
compresses time (frames come in 4k+1 or 8k+1) and space, a transformer whose patches fix the
pixel multiple, float32 latents in (B, C, f, h, w), and a diffusers pipeline whose own methods
(`encode_prompt`, `prepare_latents`, ...) the family module calls, so that a diffusers update keeps
the numerics. This base class holds that much once; a family module adds `encode_images`,
`condition`, `predict` and `decode`, its loader, its tiny models and its hub-layout mirror.

`pipe` is the family's diffusers pipeline over the very modules the backend runs: the reference
the tests compare against, and where diffusers' memory features are switched on
(`pipe.enable_model_cpu_offload()`, `pipe.vae.enable_tiling()`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ivcore.backends.device_facts import compute_dtype, execution_device
from ivcore.backends.fallback import SplitLimits

TEST_MODEL_WIDTH = 256  # a transformer narrower than this (heads x head dim) is a test model: tiny settings


def is_test_model(transformer) -> bool:
    """Tiny test models (mirrors, `Session.tiny`) get the family's tiny settings, not its native size and frames."""
    config = transformer.config
    return config.num_attention_heads * config.attention_head_dim < TEST_MODEL_WIDTH


def rebuilt_pipeline(pipe, **replacements: Any):
    """A pipeline of `pipe`'s class over its components with `replacements`, and its own flags (Wan's
    `boundary_ratio`, `expand_timesteps`), so that what it derives from its modules is derived again."""
    components = {**pipe.components, **replacements}
    flags = {k: v for k, v in pipe.config.items() if not k.startswith("_") and k not in components}
    new = type(pipe)(**components, **flags)
    new.set_progress_bar_config(disable=True)
    return new


class DiTVideoBackend(SplitLimits):
    """A `VideoBackend` over a diffusers image-to-video pipeline whose denoiser is a transformer.

    Subclasses set `pipe`, `temporal_factor`, `spatial_factor` and `patch` (height, width of a
    patch in latent pixels) in their constructor, and call `super().__init__`.
    """

    temporal_factor = 4  # frames per latent frame after the first (4 for Wan, CogVideoX, Hunyuan; 8 for LTX)
    spatial_factor = 8  # pixels per latent pixel
    patch = (2, 2)  # latent pixels per transformer patch (height, width)
    denoiser_name = "transformer"  # in the out-of-memory warning

    def __init__(
        self,
        pipe,
        *,
        native_size: tuple[int, int],
        num_frames: int,
        fps: int,
        defaults: dict[str, Any],
        name: str,
    ):
        self.pipe = pipe
        self.native_size = (int(native_size[0]), int(native_size[1]))
        self.num_frames = int(num_frames)
        self.fps = fps
        self.defaults = dict(defaults)
        self.name = name
        self.weights_version = 0

    # ------------------------------------------------------------------ the modules, by diffusers' names
    def __getattr__(self, name: str) -> Any:
        """The pipeline's components (`transformer`, `vae`, `text_encoder`, `tokenizer`, `scheduler`, ...).

        Read from `pipe.config`, where `register_modules` files each module as (library, class) and other settings
        (Wan's `boundary_ratio`) as plain values; `pipe.components` inspects `__init__` on every call (0.2 ms).
        """
        pipe = self.__dict__.get("pipe")
        entry = None if pipe is None or name.startswith("_") else pipe.config.get(name)
        if isinstance(entry, (list, tuple)) and len(entry) == 2:
            return getattr(pipe, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def scheduler(self):
        return self.pipe.scheduler

    @scheduler.setter
    def scheduler(self, value) -> None:
        self.pipe.scheduler = value

    @property
    def denoiser(self):
        """The network the sampler calls: the (first) transformer."""
        return self.pipe.transformer

    @property
    def size(self) -> int:
        return max(self.native_size)

    @property
    def device(self) -> torch.device:
        return execution_device(self, self.pipe, self.denoiser)

    @property
    def dtype(self) -> torch.dtype:
        return compute_dtype(self, self.denoiser)

    # ------------------------------------------------------------------ shapes and rules
    @property
    def size_multiple(self) -> int:
        """Pixel multiple of width and height: the VAE's spatial factor times the transformer's patch."""
        return self.spatial_factor * max(self.patch)

    @property
    def frame_rule(self) -> tuple[int, int]:
        """(k, 1): frame counts of the form k * n + 1 (the causal VAE keeps frame 0, then groups of k)."""
        return (self.temporal_factor, 1)

    @property
    def max_frames(self) -> int:
        return self.temporal_factor * 64 + 1

    def latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.temporal_factor + 1

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        f = self.spatial_factor
        return (1, self.latent_channels, self.latent_frames(num_frames), height // f, width // f)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim if hasattr(self.vae.config, "z_dim") else self.vae.config.latent_channels)

    def initial_noise(self, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        """The first generator draw, float32 in the pipeline's (B, C, f, h, w) order, as its prepare_latents draws."""
        return randn_tensor(tuple(shape), generator=generator, device=self.device, dtype=torch.float32)

    def latent_rgb(self) -> np.ndarray:
        """A (C + 1) x 3 linear map from this family's latents to RGB in [0, 1] (last row: the bias), for previews.

        Fitted once from the family's own VAE: pictures of random colour blocks are encoded (as the
        trajectory target is: normalized latents) and a ridge least-squares fit maps each latent pixel to
        the mean colour of the pixels it covers. A few small encodes, even on real VAEs; no table to copy.
        """
        if getattr(self, "_latent_rgb", None) is None:
            side, block = self.size_multiple * 4, self.spatial_factor
            rng = np.random.RandomState(0)
            inputs, colours = [], []
            for _ in range(3):
                cells = rng.randint(0, 256, (side // block, side // block, 3)).astype(np.uint8)
                picture = cells.repeat(block, axis=0).repeat(block, axis=1)
                encoded = self.encode_images([Image.fromarray(picture)], torch.Generator().manual_seed(0), num_frames=1)
                latents = self.trajectory_target(encoded)[0, :, 0].float().cpu().numpy()  # (C, h, w)
                inputs.append(latents.reshape(latents.shape[0], -1).T)
                colours.append(cells.reshape(-1, 3).astype(np.float32) / 255.0)
            x = np.concatenate(inputs)
            x = np.concatenate([x, np.ones((x.shape[0], 1), np.float32)], axis=1)
            y = np.concatenate(colours)
            ridge = 1e-3 * np.eye(x.shape[1], dtype=np.float32)
            self._latent_rgb = np.linalg.solve(x.T @ x + ridge, x.T @ y).astype(np.float32)
        return self._latent_rgb

    @staticmethod
    def put_back_first_frame(latents: torch.Tensor, frame: torch.Tensor, edited: torch.Tensor | None, lams):
        """First-frame families (Wan TI2V-5B, LTX): latent frame 0 of each item becomes `lam * frame + (1 - lam) *
        edited` with the item's last lambda (`frame` alone when nothing is edited): E(x~) at lam 1, E(x~') at 0."""
        out = latents.clone()
        for item, lam in enumerate(lams):
            mixed = frame if edited is None else lam * frame + (1 - lam) * edited
            out[item : item + 1, :, :1] = mixed.to(out.dtype)
        return out

    def pipeline(self):
        """The family's diffusers pipeline over these very modules (the reference)."""
        return self.pipe


__all__ = ["DiTVideoBackend", "is_test_model", "rebuilt_pipeline"]
