"""Building backends: the tiny offline preset and real weights via `from_pretrained`.

Real weights load component by component from hub ids or local folders in the diffusers layout,
safetensors only. P_img is an SD1.5-family img2img model; P_video is whichever family the video
model's model_index.json names (`ivcore.backends.families`: PIA, SVD, Wan, ...), loaded by that
family's own module. Nothing here branches on the family.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from diffusers import UNet2DConditionModel, UNetMotionModel

from ivcore.backends import families
from ivcore.backends.image import ImageBackend
from ivcore.backends.loading import load_component, load_scheduler, sd_parts
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


def load_image_backend(image_model: str, dtype: torch.dtype, device) -> ImageBackend:
    """P_img: an SD1.5-family img2img model."""
    parts = sd_parts(image_model, dtype, device)
    unet = load_component(UNet2DConditionModel, image_model, "unet", dtype).to(device)
    vae_factor = 2 ** (len(parts["vae"].config.block_out_channels) - 1)
    size = int(unet.config.sample_size) * vae_factor
    return ImageBackend(
        unet=unet.eval(), scheduler=load_scheduler(image_model), size=size, name=image_model, **parts
    )  # fmt: skip


def load_backends(
    image_model: str | os.PathLike | None,
    video_model: str | os.PathLike | None,
    *,
    motion_adapter: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[ImageBackend, Any, dict]:
    """Load P_img and P_video (the family the video model's model_index.json names, `ivcore.backends.families`).

    PIA shares VAE, CLIP and (for one model) the UNet's weights with P_img, as SD1.5 + PIA do.
    """
    image_model = str(image_model or DEFAULT_IMAGE_MODEL)
    video_model = str(video_model or DEFAULT_VIDEO_MODEL)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    family = families.family_of(video_model)
    image = load_image_backend(image_model, dtype, device)
    video = family.load(video_model, device=device, dtype=dtype, image_backend=image, motion_adapter=motion_adapter)
    # what else the family loaded from (PIA: its motion adapter), so that Session.load asks for it again
    spec = {"image_model": image_model, "video_model": video_model, **getattr(video, "sources", {})}
    return image, video, spec


__all__ = ["DEFAULTS", "load_backends", "load_image_backend", "tiny_backends", "tiny_requested", "TINY_SIZE"]
