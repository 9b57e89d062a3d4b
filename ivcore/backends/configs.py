"""The public configs of the full-size models, written as data (no hub access needed).

These are the `config.json` files of the repositories `Session.from_pretrained` loads by
default, copied key by key (minus `_class_name` / `_diffusers_version` and transformers'
bookkeeping), so that code here can build the real architectures without downloading weights:
on the meta device to count parameters and plan memory (`ivcore.memory`), or random-init at a
reduced width for mirrors of the hub layout. Keep them in this one place so every user of the
real architectures agrees on them.

- SD1.5 (`stable-diffusion-v1-5/stable-diffusion-v1-5`): `unet/`, `vae/`, `text_encoder/`
  (CLIP ViT-L/14's text tower, `openai/clip-vit-large-patch14`), `scheduler/`.
- PIA (`openmmlab/PIA-condition-adapter`): a MotionAdapter with the AnimateDiff v1.5 motion
  modules (no motion mid block, 32 positions) and a 9-channel conv_in; `UNetMotionModel.from_unet2d`
  puts it on the SD1.5 UNet.
- SVD img2vid-xt (`stabilityai/stable-video-diffusion-img2vid-xt`): `unet/`, `vae/` (temporal
  decoder), `image_encoder/` (OpenCLIP ViT-H/14's vision tower with projection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

SD15_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
PIA_ADAPTER = "openmmlab/PIA-condition-adapter"

# stable-diffusion-v1-5/unet/config.json (UNet2DConditionModel)
SD15_UNET_CONFIG: dict[str, Any] = dict(
    act_fn="silu",
    attention_head_dim=8,
    block_out_channels=[320, 640, 1280, 1280],
    center_input_sample=False,
    cross_attention_dim=768,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    downsample_padding=1,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=4,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-05,
    norm_num_groups=32,
    out_channels=4,
    sample_size=64,
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
)

# stable-diffusion-v1-5/vae/config.json (AutoencoderKL; scaling_factor is the class default 0.18215)
SD15_VAE_CONFIG: dict[str, Any] = dict(
    act_fn="silu",
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    in_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    out_channels=3,
    sample_size=512,
    up_block_types=["UpDecoderBlock2D"] * 4,
)

# stable-diffusion-v1-5/text_encoder/config.json (CLIPTextModel: CLIP ViT-L/14's text tower)
CLIP_L14_TEXT_CONFIG: dict[str, Any] = dict(
    attention_dropout=0.0,
    bos_token_id=0,
    dropout=0.0,
    eos_token_id=2,
    hidden_act="quick_gelu",
    hidden_size=768,
    initializer_factor=1.0,
    initializer_range=0.02,
    intermediate_size=3072,
    layer_norm_eps=1e-05,
    max_position_embeddings=77,
    num_attention_heads=12,
    num_hidden_layers=12,
    pad_token_id=1,
    projection_dim=768,
    vocab_size=49408,
)

# stable-diffusion-v1-5/scheduler/scheduler_config.json (PNDMScheduler)
SD15_SCHEDULER_CLASS = "PNDMScheduler"
SD15_SCHEDULER_CONFIG: dict[str, Any] = dict(
    beta_end=0.012,
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    clip_sample=False,
    num_train_timesteps=1000,
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
    trained_betas=None,
)

# openmmlab/PIA-condition-adapter/config.json (MotionAdapter)
PIA_ADAPTER_CONFIG: dict[str, Any] = dict(
    block_out_channels=[320, 640, 1280, 1280],
    conv_in_channels=9,  # noisy latents (4) + motion mask (1) + image latents (4)
    motion_layers_per_block=2,
    motion_max_seq_length=32,
    motion_mid_block_layers_per_block=1,
    motion_norm_num_groups=32,
    motion_num_attention_heads=8,
    use_motion_mid_block=False,
)

# stabilityai/stable-video-diffusion-img2vid-xt: unet/, vae/, image_encoder/ config.json files
SVD_XT_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"
SVD_XT_UNET_CONFIG: dict[str, Any] = dict(  # UNetSpatioTemporalConditionModel
    addition_time_embed_dim=256,
    block_out_channels=[320, 640, 1280, 1280],
    cross_attention_dim=1024,
    down_block_types=["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    in_channels=8,
    layers_per_block=2,
    num_attention_heads=[5, 10, 20, 20],
    num_frames=25,
    out_channels=4,
    projection_class_embeddings_input_dim=768,
    sample_size=96,
    transformer_layers_per_block=1,
    up_block_types=["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
)
SVD_XT_VAE_CONFIG: dict[str, Any] = dict(  # AutoencoderKLTemporalDecoder
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    force_upcast=True,
    in_channels=3,
    latent_channels=4,
    layers_per_block=2,
    out_channels=3,
    sample_size=768,
    scaling_factor=0.18215,
)
SVD_XT_IMAGE_ENCODER_CONFIG: dict[str, Any] = dict(  # CLIPVisionModelWithProjection (OpenCLIP ViT-H/14)
    hidden_act="gelu",
    hidden_size=1280,
    image_size=224,
    intermediate_size=5120,
    layer_norm_eps=1e-05,
    num_attention_heads=16,
    num_channels=3,
    num_hidden_layers=32,
    patch_size=14,
    projection_dim=1024,
)

# Parameter counts of the full-size models (parameters only, no buffers), as built from the
# configs above with diffusers 0.42 / transformers 5.24. The first three are the published
# numbers (SD1.5 UNet 859.5 M, VAE 83.7 M, CLIP ViT-L/14 text 123.1 M); the motion UNet is
# the SD1.5 UNet with its 4-channel conv_in swapped for PIA's 9-channel one, plus the motion
# modules: 859,520,964 - 11,840 + 417,163,840 (the adapter, conv_in included).
PARAMETER_COUNTS: dict[str, int] = {
    "unet": 859_520_964,
    "vae": 83_653_863,
    "text_encoder": 123_060_480,
    "motion_adapter": 417_163_840,
    "motion_unet": 1_276_672_964,
}


def build_sd15_pia(device: str | torch.device = "meta", dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """The full-size SD1.5 + PIA modules, with empty weights on the meta device by default.

    Returns {"unet", "motion_adapter", "motion_unet", "vae", "text_encoder"}. On "meta" nothing
    is allocated (accelerate's `init_empty_weights`, buffers included, so that
    `UNetMotionModel.from_unet2d` can copy meta tensors), which takes well under a second;
    the modules then serve to count parameters and to trace memory (`ivcore.memory`). Any
    other device builds random-init weights (several GB in float32).
    """
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    def build() -> dict[str, Any]:
        unet = UNet2DConditionModel(**SD15_UNET_CONFIG)
        adapter = MotionAdapter(**PIA_ADAPTER_CONFIG)
        return dict(
            unet=unet,
            motion_adapter=adapter,
            motion_unet=UNetMotionModel.from_unet2d(unet, adapter),
            vae=AutoencoderKL(**SD15_VAE_CONFIG),
            text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L14_TEXT_CONFIG)),
        )

    return _built(build, device, dtype)


def build_svd_xt(device: str | torch.device = "meta", dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """The full-size SVD-XT modules {"unet", "vae", "image_encoder"}, empty on the meta device by default.

    As `build_sd15_pia`: for counting parameters and tracing memory (`ivcore.memory.svd_xt_plan`)
    without the 4 GB of weights.
    """
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    def build() -> dict[str, Any]:
        return dict(
            unet=UNetSpatioTemporalConditionModel(**SVD_XT_UNET_CONFIG),
            vae=AutoencoderKLTemporalDecoder(**SVD_XT_VAE_CONFIG),
            image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_XT_IMAGE_ENCODER_CONFIG)),
        )

    return _built(build, device, dtype)


__all__ = [
    "CLIP_L14_TEXT_CONFIG",
    "PARAMETER_COUNTS",
    "PIA_ADAPTER",
    "PIA_ADAPTER_CONFIG",
    "SD15_MODEL",
    "SD15_SCHEDULER_CLASS",
    "SD15_SCHEDULER_CONFIG",
    "SD15_UNET_CONFIG",
    "SD15_VAE_CONFIG",
    "SVD_XT_IMAGE_ENCODER_CONFIG",
    "SVD_XT_MODEL",
    "SVD_XT_UNET_CONFIG",
    "SVD_XT_VAE_CONFIG",
    "build_sd15_pia",
    "build_svd_xt",
]


def _built(build: Callable[[], dict[str, Any]], device: str | torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """`build()`'s modules on `device` in eval mode; on the meta device built empty (no weights allocated)."""
    if torch.device(device).type == "meta":
        from accelerate import init_empty_weights

        with init_empty_weights(include_buffers=True):
            modules = build()
    else:
        modules = build()
    return {name: module.to(device=device, dtype=dtype).eval() for name, module in modules.items()}
