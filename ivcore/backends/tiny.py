"""Tiny random-init models: the offline preset for tests, CI and first tries.

Nothing here downloads anything. The configs are real diffusers/transformers configs with
small widths, so the tiny models run the very code paths that SD1.5 and PIA weights run,
only fast enough for a 2-core CPU (a 64x64 clip of 8 frames in about a second).
`save_tiny_models(folder)` writes them in the diffusers folder layout so that tests can load
them back through `Session.from_pretrained(folder)`, the same path real weights take.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TINY_SIZE = 64
TINY_FRAMES = 8

UNET_CONFIG = dict(
    sample_size=TINY_SIZE // 4,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=4,
    norm_num_groups=8,
)

MOTION_ADAPTER_CONFIG = dict(
    block_out_channels=(32, 64),
    motion_layers_per_block=1,
    motion_num_attention_heads=2,
    motion_norm_num_groups=8,
    motion_max_seq_length=32,
    use_motion_mid_block=False,
    conv_in_channels=9,  # PIA: noisy latents (4) + mask (1) + image latents (4)
)

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(16, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=8,
    sample_size=TINY_SIZE,
)

TEXT_CONFIG = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    projection_dim=32,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=1,
)

# The scheduler configs SD1.5 (image) and AnimateDiff/PIA (video) ship with.
IMAGE_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)
VIDEO_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    timestep_spacing="linspace",
)


def byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE (CLIP's tokenizer) uses for bytes."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def tiny_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer whose vocabulary is single bytes (no merges): any text tokenizes."""
    alphabet = byte_level_alphabet()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in alphabet:
            vocab[ch + suffix] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_components(seed: int = 0) -> dict:
    """Random-init tiny SD1.5-style components plus a PIA-style motion adapter.

    Returns a dict with diffusers' names: unet (2D, the image model), motion_adapter, vae,
    text_encoder, tokenizer, image_scheduler, video_scheduler. Same seed, same weights.
    """
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    motion_adapter = MotionAdapter(**MOTION_ADAPTER_CONFIG)
    vae = AutoencoderKL(**VAE_CONFIG)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), **TEXT_CONFIG))
    for module in (unet, motion_adapter, vae, text_encoder):
        module.eval()
    return dict(
        unet=unet,
        motion_adapter=motion_adapter,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        image_scheduler=DDIMScheduler(**IMAGE_SCHEDULER_CONFIG),
        video_scheduler=DDIMScheduler(**VIDEO_SCHEDULER_CONFIG),
    )


def save_tiny_models(folder: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write the tiny models as real-weight folders: an SD1.5-layout model and a motion adapter.

    Returns {"image_model": path, "video_model": path, "motion_adapter": path}. The image and
    video models are the same SD1.5-layout folder, as with real SD1.5 + PIA.
    """
    folder = Path(folder)
    parts = tiny_components(seed)
    base = folder / "tiny-sd"
    parts["unet"].save_pretrained(base / "unet", safe_serialization=True)
    parts["vae"].save_pretrained(base / "vae", safe_serialization=True)
    parts["text_encoder"].save_pretrained(base / "text_encoder", safe_serialization=True)
    parts["tokenizer"].save_pretrained(base / "tokenizer")
    parts["image_scheduler"].save_pretrained(base / "scheduler")
    (base / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "scheduler": ["diffusers", "DDIMScheduler"],
            },
            indent=2,
        )
    )
    adapter = folder / "tiny-pia-adapter"
    parts["motion_adapter"].save_pretrained(adapter, safe_serialization=True)
    return {"image_model": base, "video_model": base, "motion_adapter": adapter}
