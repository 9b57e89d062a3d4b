"""Tiny random-init LTX-Video models (0.9.0 and 0.9.1) and their hub-layout mirror, for tests and CPU demos.

`write_ltx_mirror` writes them as `LTXImageToVideoPipeline.save_pretrained` does, so tests load them through
`from_pretrained(folder)`, the path real weights take (`ivcore.testing.mirror` kinds "ltx-video-0.9.0-i2v",
"ltx-video-0.9.1-i2v"). The backend itself is `ivcore.backends.ltx`.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    FlowMatchEulerDiscreteScheduler,
    LTXImageToVideoPipeline,
    LTXVideoTransformer3DModel,
)
from transformers import T5Config, T5EncoderModel

from ivcore.backends.ltx import LTXVideoBackend
from ivcore.backends.word_tokenizer import TINY_T5_ENCODER, word_tokenizer

LTXVersion = Literal["0.9.0", "0.9.1"]
#: mirror kind -> version: Lightricks/LTX-Video's diffusers folders (0.9.0) and the 0.9.1 VAE
LTX_MIRROR_KINDS: dict[str, LTXVersion] = {"ltx-video-0.9.0-i2v": "0.9.0", "ltx-video-0.9.1-i2v": "0.9.1"}

#: Lightricks/LTX-Video's scheduler/scheduler_config.json (the same values diffusers'
#: scripts/convert_ltx_to_diffusers.py writes): flow matching with a resolution-dependent shift, mu
#: interpolated by the pipeline between base_shift at base_image_seq_len and max_shift at
#: max_image_seq_len latent tokens, the schedule stretched so that its last sigma is shift_terminal.
LTX_SCHEDULER_CONFIG: dict[str, Any] = dict(
    num_train_timesteps=1000,
    shift=1.0,
    use_dynamic_shifting=True,
    base_shift=0.95,
    max_shift=2.05,
    base_image_seq_len=1024,
    max_image_seq_len=4096,
    shift_terminal=0.1,
    invert_sigmas=False,
    use_karras_sigmas=False,
    use_exponential_sigmas=False,
    use_beta_sigmas=False,
)

TINY_LTX_WIDTH = 96
TINY_LTX_HEIGHT = 64  # 3 x 2 latent pixels (x 2 latent frames = 8 tokens)
TINY_LTX_FRAMES = 9  # (9 - 1) / 8 + 1 = 2 latent frames
TINY_LTX_LATENT_CHANNELS = 8  # 128 in the real VAE
TINY_LTX_TEXT_LENGTH = 128  # LTX's T5 tokenizer model_max_length and the pipeline's max_sequence_length

#: LTX-Video 0.9.0's architecture at a tiny width. The VAE keeps the real compression: patch_size 4 times
#: three spatio-temporal 2x blocks = 32x space, 8x time, so sizes are multiples of 32 and frames 8k + 1.
TINY_LTX: dict[str, dict[str, Any]] = dict(
    transformer=dict(
        in_channels=TINY_LTX_LATENT_CHANNELS,
        out_channels=TINY_LTX_LATENT_CHANNELS,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=16,
        cross_attention_dim=32,  # = heads x head dim: the captions are projected to the inner width
        num_layers=2,
        caption_channels=32,  # the tiny T5's d_model
        qk_norm="rms_norm_across_heads",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        activation_fn="gelu-approximate",
        attention_bias=True,
        attention_out_bias=True,
    ),
    vae=dict(
        in_channels=3,
        out_channels=3,
        latent_channels=TINY_LTX_LATENT_CHANNELS,
        block_out_channels=(8, 16, 16, 16),
        decoder_block_out_channels=(8, 16, 16, 16),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=4,
        patch_size_t=1,
        resnet_norm_eps=1e-6,
        scaling_factor=1.0,
        encoder_causal=True,
        decoder_causal=False,
    ),
    text_encoder=TINY_T5_ENCODER,
    scheduler=LTX_SCHEDULER_CONFIG,
)

#: What LTX-Video 0.9.1 changes (diffusers' conversion script, version "0.9.1"): only the VAE decoder,
#: three residual 2x upsamplers, noise injection and timestep conditioning. The last makes the pipeline's
#: `decode_timestep` / `decode_noise_scale` matter; the injected noise is drawn without the pipeline's
#: generator (global RNG), so seed torch globally for repeatable 0.9.1 decodes.
TINY_LTX_091: dict[str, dict[str, Any]] = dict(
    vae=dict(
        decoder_block_out_channels=(8, 16, 32),  # doubling, as 0.9.1's (256, 512, 1024): each 2x upsampler halves
        decoder_layers_per_block=(1, 1, 1, 1),
        decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, True, True, True),
        upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2),
        timestep_conditioning=True,
    ),
)


def tiny_ltx_configs(version: LTXVersion = "0.9.0") -> dict[str, dict[str, Any]]:
    """The tiny configs of one LTX-Video version (fresh copies, so callers may change them)."""
    if version not in ("0.9.0", "0.9.1"):
        raise ValueError(f"LTX-Video version must be '0.9.0' or '0.9.1', not {version!r}")
    configs = copy.deepcopy(TINY_LTX)
    if version == "0.9.1":
        for name, changes in TINY_LTX_091.items():
            configs[name].update(changes)
    return configs


def tiny_ltx_components(seed: int = 0, version: LTXVersion = "0.9.0") -> dict[str, Any]:
    """Random-init tiny LTX-Video components; each model is seeded on its own, so same seed, same weights.

    The VAE's per-channel latent statistics get random values (the real ones are not 0 and 1), so that a
    loop which forgets `_normalize_latents` / `_denormalize_latents` shows it; so do 0.9.1's noise-injection
    scales (zeros at init, which would hide that the decoder draws noise from the global RNG).
    """
    configs = tiny_ltx_configs(version)
    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(**configs["transformer"]).eval()
    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(**configs["vae"]).eval()
    channels = configs["vae"]["latent_channels"]
    with torch.no_grad():
        vae.latents_mean.copy_(0.1 * torch.randn(channels))
        vae.latents_std.copy_(0.5 + torch.rand(channels))
        for name, param in vae.named_parameters():
            if name.endswith(("per_channel_scale1", "per_channel_scale2")):  # 0.9.1's noise injection, 0 at init
                param.copy_(0.1 * torch.randn(param.shape))
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(T5Config(**configs["text_encoder"])).eval()
    tokenizer = word_tokenizer(vocab_size=configs["text_encoder"]["vocab_size"], model_max_length=TINY_LTX_TEXT_LENGTH)
    scheduler = FlowMatchEulerDiscreteScheduler(**configs["scheduler"])
    return dict(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer)


def write_ltx_mirror(
    folder: str | os.PathLike, seed: int = 0, version: LTXVersion = "0.9.0", kind: str | None = None
) -> Path:
    """Write a tiny LTX-Video I2V in the hub layout (model_index.json, one folder per component, safetensors).

    `LTXImageToVideoPipeline.from_pretrained(folder)` then loads it the way it loads Lightricks/LTX-Video.
    `kind` (a key of LTX_MIRROR_KINDS, for `ivcore.backends.families.write_mirror`) picks the version.
    """
    if kind is not None:
        if kind not in LTX_MIRROR_KINDS:
            raise ValueError(f"unknown LTX-Video mirror kind {kind!r}; known: {', '.join(LTX_MIRROR_KINDS)}")
        version = LTX_MIRROR_KINDS[kind]
    folder = Path(folder)
    pipe = LTXImageToVideoPipeline(**tiny_ltx_components(seed, version))
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_ltx_backend(seed: int = 0, version: LTXVersion = "0.9.0") -> LTXVideoBackend:
    """The tiny offline LTX-Video backend (native 96 x 64, 9 frames, 4 steps)."""
    pipe = LTXImageToVideoPipeline(**tiny_ltx_components(seed, version))
    pipe.set_progress_bar_config(disable=True)
    return LTXVideoBackend(pipe, name=f"tiny-ltx-video-{version}")


__all__ = [
    "LTX_MIRROR_KINDS",
    "LTX_SCHEDULER_CONFIG",
    "LTXVersion",
    "TINY_LTX",
    "TINY_LTX_091",
    "TINY_LTX_FRAMES",
    "TINY_LTX_HEIGHT",
    "TINY_LTX_WIDTH",
    "tiny_ltx_backend",
    "tiny_ltx_components",
    "tiny_ltx_configs",
    "write_ltx_mirror",
]
