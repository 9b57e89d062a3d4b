"""Building backends: the tiny offline preset and real weights via `from_pretrained`.

Real weights load component by component (UNet, VAE, CLIP, tokenizer, scheduler) from hub ids
or local folders in the diffusers layout, safetensors only. The video UNet is PIA's: an SD1.5
UNet turned into a UNetMotionModel with the PIA condition adapter (9-channel conv_in), or a
folder whose `unet` already is a UNetMotionModel.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from transformers import CLIPTextModel, CLIPTokenizer

from ivcore.backends.image import ImageBackend
from ivcore.backends.loading import load_component
from ivcore.backends.tiny import TINY_FRAMES, TINY_SIZE, VIDEO_SCHEDULER_CONFIG, tiny_components
from ivcore.backends.video import PIAVideoBackend

DEFAULT_IMAGE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_VIDEO_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_MOTION_ADAPTER = "openmmlab/PIA-condition-adapter"
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


def _load_scheduler(model: str, **overrides):
    """The model's own scheduler class and config (DDIM, LCM, Euler, ...), from its `scheduler` folder."""
    config = diffusers.DDIMScheduler.load_config(model, subfolder="scheduler")
    cls = getattr(diffusers, config.get("_class_name", "DDIMScheduler"), diffusers.DDIMScheduler)
    return cls.from_config({**config, **overrides})


def _pipeline_class(model: str) -> str:
    """The `_class_name` of a model's model_index.json ("" when it has none)."""
    local = Path(model) / "model_index.json"
    if local.is_file():
        return json.loads(local.read_text()).get("_class_name", "")
    if Path(model).is_dir():
        return ""
    try:
        return diffusers.DiffusionPipeline.load_config(model).get("_class_name", "")
    except (OSError, ValueError):
        return ""


def _unet_class_name(model: str) -> str:
    local = Path(model) / "unet" / "config.json"
    if local.is_file():
        return json.loads(local.read_text()).get("_class_name", "")
    return UNet2DConditionModel.load_config(model, subfolder="unet").get("_class_name", "")


def _common(model: str, dtype: torch.dtype, device) -> dict:
    vae = load_component(AutoencoderKL, model, "vae", dtype)
    text_encoder = load_component(CLIPTextModel, model, "text_encoder", dtype)
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    return dict(vae=vae.to(device).eval(), text_encoder=text_encoder.to(device).eval(), tokenizer=tokenizer)


def load_backends(
    image_model: str | os.PathLike | None,
    video_model: str | os.PathLike | None,
    *,
    motion_adapter: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[ImageBackend, PIAVideoBackend, dict]:
    """Load P_img and P_video; components shared when both come from the same model."""
    image_model = str(image_model or DEFAULT_IMAGE_MODEL)
    video_model = str(video_model or DEFAULT_VIDEO_MODEL)
    motion_adapter = str(motion_adapter or DEFAULT_MOTION_ADAPTER)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)

    image_parts = _common(image_model, dtype, device)
    svd = _pipeline_class(video_model) == "StableVideoDiffusionPipeline"
    image_unet = load_component(UNet2DConditionModel, image_model, "unet", dtype).to(device)
    vae_factor = 2 ** (len(image_parts["vae"].config.block_out_channels) - 1)
    image_size = int(image_unet.config.sample_size) * vae_factor
    image = ImageBackend(
        unet=image_unet.eval(), scheduler=_load_scheduler(image_model), size=image_size, name=image_model,
        **image_parts,
    )  # fmt: skip

    if svd:
        from ivcore.backends.svd import load_svd_backend

        # SVD's native size comes from its configs: 1024 x 576 for the real models (svd_native_size)
        video = load_svd_backend(video_model, device=device, dtype=dtype)
        return image, video, {"image_model": image_model, "video_model": video_model}

    video_parts = image_parts if video_model == image_model else _common(video_model, dtype, device)
    if _unet_class_name(video_model) == "UNetMotionModel":
        video_unet = load_component(UNetMotionModel, video_model, "unet", dtype)
    else:
        base_unet = (
            image_unet
            if video_model == image_model
            else load_component(UNet2DConditionModel, video_model, "unet", dtype)
        )
        adapter = load_component(MotionAdapter, motion_adapter, None, dtype)
        video_unet = UNetMotionModel.from_unet2d(base_unet, adapter)
    video_unet = video_unet.to(device=device, dtype=dtype).eval()
    scheduler = _load_scheduler(
        video_model,
        **{k: VIDEO_SCHEDULER_CONFIG[k] for k in ("beta_schedule", "clip_sample", "timestep_spacing", "steps_offset")},
    )
    if not isinstance(scheduler, diffusers.DDIMScheduler):
        scheduler = diffusers.DDIMScheduler.from_config(scheduler.config)
    video_size = int(video_unet.config.sample_size or 64) * vae_factor
    video = PIAVideoBackend(
        unet=video_unet, scheduler=scheduler, size=video_size,
        num_frames=16 if video_size >= 256 else TINY_FRAMES, name=video_model, **video_parts,
    )  # fmt: skip
    spec = {"image_model": image_model, "video_model": video_model, "motion_adapter": motion_adapter}
    return image, video, spec


__all__ = ["DEFAULTS", "load_backends", "tiny_backends", "tiny_requested", "TINY_SIZE"]
