"""Building backends: the tiny offline preset and real weights via `from_pretrained`.

Real weights load component by component from hub ids or local folders in the diffusers layout,
safetensors only. P_img is whichever image family the image model's model_index.json names
(`ivcore.backends.image_families`: SD1.5, SDXL, ...), P_video whichever video family the video
model's names (`ivcore.backends.families`: PIA, SVD, Wan, ...), each loaded by its family's own
module. Nothing here branches on a family.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from diffusers import UNetMotionModel

from ivcore.backends import families, image_families
from ivcore.backends.image import ImageBackend
from ivcore.backends.tiny import TINY_FRAMES, TINY_SIZE, tiny_components
from ivcore.backends.video import PIAVideoBackend

DEFAULT_IMAGE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_VIDEO_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULTS = dict(steps=25, image_steps=25, guidance=7.5, image_guidance=7.5)


def tiny_requested() -> bool:
    """IVCORE_TINY=1 makes `Session.from_pretrained` build the tiny preset (CI, quick tries)."""
    return os.environ.get("IVCORE_TINY", "").strip().lower() in ("1", "true", "yes", "on")


def tiny_backends(seed: int = 0) -> tuple[ImageBackend, PIAVideoBackend]:
    """The tiny preset: both pipelines share VAE and CLIP, as SD1.5 + PIA do."""
    parts = tiny_components(seed)
    shared = dict(vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"])
    image = ImageBackend(unet=parts["unet"], scheduler=parts["image_scheduler"], size=TINY_SIZE, name="tiny", **shared)
    video_unet = UNetMotionModel.from_unet2d(parts["unet"], parts["motion_adapter"]).eval()
    video = PIAVideoBackend(
        unet=video_unet, scheduler=parts["video_scheduler"], size=TINY_SIZE, num_frames=TINY_FRAMES,
        name="tiny", **shared,
    )  # fmt: skip
    return image, video


def load_image_backend(image_model: str, dtype: torch.dtype, device) -> Any:
    """P_img: the image family the model's model_index.json names (InstructionError naming `image_model` if none)."""
    family = image_families.family_of(image_model)
    return family.load(image_model, device=torch.device(device), dtype=dtype)


def load_backends(
    image_model: str | os.PathLike | None,
    video_model: str | os.PathLike | None,
    *,
    motion_adapter: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Any, Any, dict]:
    """Load P_img and P_video, each of the family its model_index.json names (`ivcore.backends.image_families`,
    `ivcore.backends.families`).

    Both families are looked up before anything loads: a model of an unknown class raises InstructionError
    naming `image_model` or `video_model` and loads nothing. PIA shares VAE, CLIP and (for one model) the
    UNet's weights with P_img, as SD1.5 + PIA do.
    """
    image_model = str(image_model or DEFAULT_IMAGE_MODEL)
    video_model = str(video_model or DEFAULT_VIDEO_MODEL)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    image_family = image_families.family_of(image_model)
    family = families.family_of(video_model)
    image = image_family.load(image_model, device=device, dtype=dtype)
    video = family.load(video_model, device=device, dtype=dtype, image_backend=image, motion_adapter=motion_adapter)
    # what else the family loaded from (PIA: its motion adapter), so that Session.load asks for it again
    spec = {"image_model": image_model, "video_model": video_model, **getattr(video, "sources", {})}
    return image, video, spec


__all__ = ["DEFAULTS", "load_backends", "load_image_backend", "tiny_backends", "tiny_requested", "TINY_SIZE"]
