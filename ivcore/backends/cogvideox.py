"""CogVideoX image-to-video (CogVideoX-5b-I2V, CogVideoX1.5-5B-I2V) behind ivcore.

CogVideoX is a text-conditioned video DiT over a causal 3D VAE (8x space, 4x time: 4k + 1 frames).
The I2V models concatenate the image's latent (frame 0, zeros after) to the noisy latents on the
channel axis, so the transformer's `in_channels` is twice the VAE's latent channels.

This module holds, for now, random-init tiny CogVideoX models in the hub folder layout, so that
tests load them with `CogVideoXImageToVideoPipeline.from_pretrained(folder)` exactly as the real
weights load, offline and on a CPU in seconds. The backend class that drives them comes next.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXImageToVideoPipeline,
    CogVideoXTransformer3DModel,
)
from transformers import T5Config, T5EncoderModel

from ivcore.backends.word_tokenizer import word_tokenizer

# ---- tiny models and hub-layout mirror
CogVideoXVersion = Literal["1.0", "1.5"]
#: mirror kind -> version: THUDM/CogVideoX-5b-I2V and THUDM/CogVideoX1.5-5B-I2V
COGVIDEOX_MIRROR_KINDS: dict[str, CogVideoXVersion] = {"cogvideox-5b-i2v": "1.0", "cogvideox1.5-5b-i2v": "1.5"}

#: The scheduler of THUDM/CogVideoX-5b-I2V and THUDM/CogVideoX1.5-5B-I2V (scheduler/scheduler_config.json),
#: as diffusers' scripts/convert_cogvideox_to_diffusers.py writes it: v-prediction on a zero-terminal-SNR
#: scaled-linear schedule, trailing timesteps; snr_shift_scale is 1.0 for the 5B models (3.0 for CogVideoX-2b).
COGVIDEOX_SCHEDULER_CONFIG: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    clip_sample_range=1.0,
    sample_max_value=1.0,
    set_alpha_to_one=True,
    steps_offset=0,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    snr_shift_scale=1.0,
    timestep_spacing="trailing",
)

TINY_COGVIDEOX_WIDTH = 64
TINY_COGVIDEOX_HEIGHT = 48
#: (9 - 1) / 4 + 1 = 3 latent frames. 8k + 1 frames come back as asked; 4k + 1 with an even latent count decode to
#: 3 frames more (the VAE decodes latent frames in pairs: 13 frames -> 4 latents -> 16 frames), in 1.0 and 1.5 alike.
TINY_COGVIDEOX_FRAMES = 9
TINY_COGVIDEOX_LATENT_CHANNELS = 4  # 16 in the real VAE
TINY_COGVIDEOX_VAE_FACTOR = 8  # 2 ** (4 blocks - 1), as in the real VAE
TINY_COGVIDEOX_TEXT_LENGTH = 226  # the real max_text_seq_length; the pipeline pads prompts to it

#: CogVideoX-5b-I2V's architecture at a tiny width. Its learned positional embedding (the I2V model's
#: use_learned_positional_embeddings) fixes the resolution to sample_height x sample_width latents, so the
#: tiny 1.0 model, like the real one (720 x 480 only), runs at TINY_COGVIDEOX_WIDTH x TINY_COGVIDEOX_HEIGHT.
#: attention_head_dim 16: 3D RoPE splits a head into t / h / w parts of 1/4, 3/8 and 3/8, each even.
TINY_COGVIDEOX: dict[str, dict[str, Any]] = dict(
    transformer=dict(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=2 * TINY_COGVIDEOX_LATENT_CHANNELS,  # noisy latents + image latents, concatenated
        out_channels=TINY_COGVIDEOX_LATENT_CHANNELS,
        time_embed_dim=16,
        text_embed_dim=32,  # the tiny T5's d_model
        num_layers=2,
        sample_width=TINY_COGVIDEOX_WIDTH // TINY_COGVIDEOX_VAE_FACTOR,
        sample_height=TINY_COGVIDEOX_HEIGHT // TINY_COGVIDEOX_VAE_FACTOR,
        sample_frames=TINY_COGVIDEOX_FRAMES,
        patch_size=2,
        patch_size_t=None,
        temporal_compression_ratio=4,
        max_text_seq_length=TINY_COGVIDEOX_TEXT_LENGTH,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
        patch_bias=True,
        ofs_embed_dim=None,
    ),
    vae=dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(16, 16, 16, 16),
        latent_channels=TINY_COGVIDEOX_LATENT_CHANNELS,
        layers_per_block=1,
        norm_num_groups=4,
        temporal_compression_ratio=4,
        sample_height=TINY_COGVIDEOX_HEIGHT,
        sample_width=TINY_COGVIDEOX_WIDTH,
        scaling_factor=0.7,  # the 5B models' (CogVideoX-2b: 1.15258426)
        invert_scale_latents=False,
    ),
    # t5-v1_1-xxl's kind of T5 (gated GELU, untied head) at a tiny width, over the word tokenizer's vocabulary
    text_encoder=dict(
        vocab_size=128,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    ),
    scheduler=COGVIDEOX_SCHEDULER_CONFIG,
)

#: What CogVideoX1.5-5B-I2V changes (diffusers' conversion script, version "1.5"): latent frames patched in
#: pairs (patch_size_t 2; the pipeline pads the latent frames to even), an ofs embedding (ofs_embed_dim ==
#: time_embed_dim, added to it), RoPE only (no learned positions, so any size up to sample_height x
#: sample_width latents: the tiny one up to 128 x 96) and a VAE whose image latents are divided by the
#: scaling factor (invert_scale_latents). Same scheduler.
TINY_COGVIDEOX_15: dict[str, dict[str, Any]] = dict(
    transformer=dict(
        patch_size_t=2,
        ofs_embed_dim=16,
        use_learned_positional_embeddings=False,
        patch_bias=False,
        sample_width=2 * TINY_COGVIDEOX_WIDTH // TINY_COGVIDEOX_VAE_FACTOR,
        sample_height=2 * TINY_COGVIDEOX_HEIGHT // TINY_COGVIDEOX_VAE_FACTOR,
    ),
    vae=dict(invert_scale_latents=True),
)


def tiny_cogvideox_configs(version: CogVideoXVersion = "1.0") -> dict[str, dict[str, Any]]:
    """The tiny configs of one CogVideoX version (fresh copies, so callers may change them)."""
    if version not in ("1.0", "1.5"):
        raise ValueError(f"CogVideoX version must be '1.0' or '1.5', not {version!r}")
    configs = copy.deepcopy(TINY_COGVIDEOX)
    if version == "1.5":
        for name, changes in TINY_COGVIDEOX_15.items():
            configs[name].update(changes)
    return configs


def tiny_cogvideox_components(seed: int = 0, version: CogVideoXVersion = "1.0") -> dict[str, Any]:
    """Random-init tiny CogVideoX I2V components; each model is seeded on its own, so same seed, same weights."""
    configs = tiny_cogvideox_configs(version)
    torch.manual_seed(seed)
    transformer = CogVideoXTransformer3DModel(**configs["transformer"]).eval()
    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(**configs["vae"]).eval()
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(T5Config(**configs["text_encoder"])).eval()
    tokenizer = word_tokenizer(
        vocab_size=configs["text_encoder"]["vocab_size"], model_max_length=TINY_COGVIDEOX_TEXT_LENGTH
    )
    scheduler = CogVideoXDDIMScheduler(**configs["scheduler"])
    return dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler)


def write_cogvideox_mirror(
    folder: str | os.PathLike, seed: int = 0, version: CogVideoXVersion = "1.0", kind: str | None = None
) -> Path:
    """Write a tiny CogVideoX I2V in the hub layout (model_index.json, one folder per component, safetensors).

    `CogVideoXImageToVideoPipeline.from_pretrained(folder)` then loads it the way it loads THUDM's repos.
    `kind` (a key of COGVIDEOX_MIRROR_KINDS, for `ivcore.backends.families.write_mirror`) picks the version.
    """
    if kind is not None:
        if kind not in COGVIDEOX_MIRROR_KINDS:
            raise ValueError(f"unknown CogVideoX mirror kind {kind!r}; known: {', '.join(COGVIDEOX_MIRROR_KINDS)}")
        version = COGVIDEOX_MIRROR_KINDS[kind]
    folder = Path(folder)
    pipe = CogVideoXImageToVideoPipeline(**tiny_cogvideox_components(seed, version))
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


__all__ = [
    "COGVIDEOX_MIRROR_KINDS",
    "COGVIDEOX_SCHEDULER_CONFIG",
    "TINY_COGVIDEOX",
    "TINY_COGVIDEOX_15",
    "TINY_COGVIDEOX_FRAMES",
    "TINY_COGVIDEOX_HEIGHT",
    "TINY_COGVIDEOX_WIDTH",
    "tiny_cogvideox_components",
    "tiny_cogvideox_configs",
    "write_cogvideox_mirror",
]
