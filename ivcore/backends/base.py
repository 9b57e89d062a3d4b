"""What the Session needs from a video backend (PIA today; SVD and few-step variants plug in here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from PIL import Image

from ivcore.backends.device_facts import compute_dtype


class VideoBackend(Protocol):
    """An image-to-video model whose image condition can be swapped per branch (Eq. 4).

    `encode_images` returns the image condition's raw encoding (VAE latents, embeddings, ...),
    `condition` turns it into one branch's condition, and `predict` runs the guided model on N
    (latent, condition) rows at once. The denoising loop blends the per-branch predictions.
    Attributes follow diffusers' names: unet, vae, scheduler (text_encoder, tokenizer if any).
    """

    unet: Any
    vae: Any
    scheduler: Any
    native_size: tuple[int, int]  # (width, height) the model was trained at: a session's default size
    size: int  # the longer side of native_size (what square-era code reads)
    num_frames: int
    fps: int
    name: str
    weights_version: int

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def max_frames(self) -> int: ...

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]: ...

    def encode_prompt(self, prompt: str) -> torch.Tensor: ...

    def initial_noise(self, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor: ...

    def encode_images(self, images: Sequence[Image.Image], generator: torch.Generator) -> Any: ...

    def condition(self, encoded: Any, num_frames: int, motion_scale: int = 0) -> Any: ...

    def predict(
        self,
        scheduler,
        latents: torch.Tensor,
        t: torch.Tensor,
        conditions: Sequence[Any],
        text: torch.Tensor,
        uncond: torch.Tensor,
        guidance: float,
    ) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


class BackendSetting:
    """A backend's conditioning setting; changing it bumps `weights_version`, which every cache key holds.

    (SVD's fps and motion bucket, Wan 2.2's second guidance scale, ...): a cached result made with
    another value is never reused.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else getattr(obj, self.attr)

    def __set__(self, obj: Any, value: Any) -> None:
        changed = hasattr(obj, self.attr) and getattr(obj, self.attr) != value
        setattr(obj, self.attr, value)
        if changed:
            obj.weights_version += 1


def as_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """A backend's size as (width, height): an int is a square side, a pair is (width, height)."""
    if isinstance(size, (int, float)):
        return (int(size), int(size))
    width, height = size
    return (int(width), int(height))


class SDComponents:
    """The SD1.5-family parts both P_img and PIA's P_video hold, under diffusers' names.

    Keeping them as plain attributes lets users and tests reach the modules (build a reference
    pipeline over them, swap the scheduler, load LoRAs); `weights_version` is bumped whenever
    weights change in place, and is part of every cache key.

    `native_size` (width, height) is the one declaration of the size a model was trained at (SVD-XT
    1024 x 576, SD1.5 and PIA 512 x 512); a session's default `size` is its video backend's.
    `size`, an int, is what code written when every frame was square reads: the longer side.
    """

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, *, size: int | Sequence[int], name: str):
        self.unet = unet
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.native_size = as_pair(size)
        self.name = name
        self.weights_version = 0
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @property
    def size(self) -> int:
        """The longer side of `native_size` (the side of a square model); kept for square-era code."""
        return max(self.native_size)

    @size.setter
    def size(self, value: int | Sequence[int]) -> None:
        """An int sets a square native size, a pair (width, height) a rectangular one."""
        self.native_size = as_pair(value)

    @property
    def denoiser(self):
        """The network the sampler calls (the UNet here; a transformer in the DiT families)."""
        return self.unet

    @property
    def device(self) -> torch.device:
        """Where the modules run: the UNet's device, or under offloading (`Session.set_memory`) the device the
        hooks bring the modules to (they rest on the CPU between calls, and inputs must be made there)."""
        onload = self.__dict__.get("onload_device")
        return self.unet.device if onload is None else onload

    @property
    def dtype(self) -> torch.dtype:
        return compute_dtype(self, self.unet)

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """CLIP embeddings (1, 77, D) of one prompt."""
        from ivcore.backends.text import encode_prompt

        return encode_prompt(self.text_encoder, self.tokenizer, prompt, self.device)
