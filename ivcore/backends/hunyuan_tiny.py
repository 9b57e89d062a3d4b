"""Tiny HunyuanVideo 1.5 I2V models and their hub-layout mirror (the backend is `ivcore.backends.hunyuan`).

HunyuanVideo 1.5 is a DiT video model (flow matching, 32-channel latents, 16x spatial and 4x temporal
VAE compression) conditioned on three token streams: Qwen2.5-VL hidden states of the prompt, byT5
states of any quoted glyph text in it, and SigLIP tokens of the first frame; the first frame's VAE
latent and a one-channel mask are concatenated to the noisy latents on the channel axis.

The tiny models below are real diffusers/transformers classes with small widths, written in the hub
folder layout, so tests load them through `HunyuanVideo15ImageToVideoPipeline.from_pretrained(folder)`
exactly as the real weights load, offline and in a few seconds on a 2-core CPU. They live apart from
the backend so that loading real weights never builds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo15,
    ClassifierFreeGuidance,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideo15ImageToVideoPipeline,
    HunyuanVideo15Transformer3DModel,
)
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLTextModel,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
    T5Config,
    T5EncoderModel,
)

from ivcore.backends.word_tokenizer import word_tokenizer

MIRROR_KIND = "hunyuanvideo-1.5-480p-i2v"

# The pipeline hard-codes these (HunyuanVideo15ImageToVideoPipeline.__init__): the Qwen prompt is padded
# to 1000 + 108 tokens and its first 108 (the system turn of the chat template) are cropped off; glyph
# text is padded to 256 byT5 tokens.
QWEN_CROP_START = 108
QWEN_MAX_LENGTH = 1000 + QWEN_CROP_START
BYT5_MAX_LENGTH = 256

TINY_VOCAB = 128  # word_tokenizer's vocabulary; both text encoders embed exactly this many ids
TINY_TARGET_SIZE = 64  # pixels; a square image becomes 64x64, a 4x4 latent (real 480p: 640)
TINY_FRAMES = 9  # 4k + 1 frames -> 3 latent frames
TINY_LATENT_CHANNELS = 4  # real: 32

# Real 480p_i2v (scripts/convert_hunyuan_video1_5_to_diffusers.py): 16 heads x 128, 54 layers, 2 refiner
# layers, text 3584 (Qwen2.5-VL-7B), byT5 1472, SigLIP 1152, rope (16, 56, 56), target_size 640.
TRANSFORMER_CONFIG = dict(
    in_channels=2 * TINY_LATENT_CHANNELS + 1,  # noisy latents + first-frame latents + mask
    out_channels=TINY_LATENT_CHANNELS,
    num_attention_heads=2,
    attention_head_dim=16,
    num_layers=2,
    num_refiner_layers=1,
    mlp_ratio=2.0,
    patch_size=1,
    patch_size_t=1,
    qk_norm="rms_norm",
    text_embed_dim=32,  # = QWEN_CONFIG hidden_size
    text_embed_2_dim=32,  # = BYT5_CONFIG d_model
    image_embed_dim=32,  # = SIGLIP_CONFIG hidden_size
    rope_theta=256.0,
    rope_axes_dim=(4, 6, 6),  # (t, h, w), sums to attention_head_dim
    target_size=TINY_TARGET_SIZE,
    task_type="i2v",
    use_meanflow=False,
)

# Real: latent 32, blocks (128, 256, 512, 1024, 1024), 2 layers per block, scaling 1.03682. Five blocks
# keep the real 16x spatial / 4x temporal compression; the channel counts satisfy the pixel-(un)shuffle
# group sizes of its down/upsamplers (multiples of 8, last block a multiple of 2 * latent_channels).
VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=TINY_LATENT_CHANNELS,
    block_out_channels=(8, 8, 16, 16, 16),
    layers_per_block=1,
    spatial_compression_ratio=16,
    temporal_compression_ratio=4,
    downsample_match_channel=True,
    upsample_match_channel=True,
    scaling_factor=1.03682,
)

# Real: Qwen2.5-VL-7B-Instruct's language model (hidden 3584, 28 layers, 28 heads, 4 kv heads,
# mrope_section [16, 24, 24], theta 1e6). The pipeline takes hidden_states[-3], so at least 2 layers.
QWEN_CONFIG = dict(
    vocab_size=TINY_VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 1, 1]},
    use_cache=False,
    bos_token_id=None,
    eos_token_id=1,
    pad_token_id=0,
)

# Real: byT5-small encoder with Glyph-SDXL-v2 weights (d_model 1472, 12 layers, 6 heads, gated-gelu).
BYT5_CONFIG = dict(
    vocab_size=TINY_VOCAB,
    d_model=32,
    d_kv=8,
    d_ff=64,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=32,
    feed_forward_proj="gated-gelu",
    is_encoder_decoder=False,
    use_cache=False,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
)

# Real: SigLIP so400m-patch14-384 (hidden 1152, 27 layers, 729 tokens of a 384x384 image).
SIGLIP_CONFIG = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,  # 16 image tokens
)
SIGLIP_PROCESSOR_CONFIG = dict(
    do_resize=True,
    size={"height": SIGLIP_CONFIG["image_size"], "width": SIGLIP_CONFIG["image_size"]},
    resample=3,  # bicubic, as the real one
    do_rescale=True,
    rescale_factor=1 / 255,
    do_normalize=True,
    image_mean=[0.5, 0.5, 0.5],
    image_std=[0.5, 0.5, 0.5],
)

# The real 480p_i2v repository's scheduler and guider (convert script: SCHEDULER_CONFIGS["480p_i2v"],
# GUIDANCE_CONFIGS["480p_i2v"]); everything else is FlowMatchEulerDiscreteScheduler's default. The
# pipeline passes its own sigmas, linspace(1, 0, steps + 1)[:-1], which the scheduler shifts by `shift`.
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, shift=5.0, use_dynamic_shifting=False)
GUIDER_CONFIG = dict(guidance_scale=6.0)  # CFG on: the pipeline runs the negative prompt too

# The pipeline renders its prompts with `apply_chat_template` and crops the first 108 tokens, the length
# of Qwen2.5's `<|im_start|>system ... <|im_end|>\n<|im_start|>user\n` prefix. The word tokenizer has no
# such tokens, so its template renders the system turn as exactly 108 `<unk>` tokens: the crop then lands
# on the user's prompt, as with the real tokenizer. `</s>` stands for the assistant header that follows.
QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ '<unk> ' * " + str(QWEN_CROP_START) + " }}"
    "{%- else -%}{{ message['content'] + ' ' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}</s>{%- endif -%}"
)


def qwen_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level stand-in for Qwen2.5's tokenizer, with the chat template the pipeline needs."""
    tokenizer = word_tokenizer(vocab_size=TINY_VOCAB, model_max_length=131072)  # Qwen2.5's model_max_length
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def tiny_hunyuan_components(seed: int = 0) -> dict[str, Any]:
    """The pipeline's ten components, random-init from `seed`, in `HunyuanVideo15ImageToVideoPipeline` order."""
    torch.manual_seed(seed)
    return dict(
        text_encoder=Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(**QWEN_CONFIG)).eval(),
        tokenizer=qwen_tokenizer(),
        transformer=HunyuanVideo15Transformer3DModel(**TRANSFORMER_CONFIG).eval(),
        vae=AutoencoderKLHunyuanVideo15(**VAE_CONFIG).eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG),
        text_encoder_2=T5EncoderModel(T5Config(**BYT5_CONFIG)).eval(),
        tokenizer_2=word_tokenizer(vocab_size=TINY_VOCAB, model_max_length=BYT5_MAX_LENGTH),
        guider=ClassifierFreeGuidance(**GUIDER_CONFIG),
        image_encoder=SiglipVisionModel(SiglipVisionConfig(**SIGLIP_CONFIG)).eval(),
        feature_extractor=SiglipImageProcessor(**SIGLIP_PROCESSOR_CONFIG),
    )


def write_hunyuan_mirror(folder: str | Path, seed: int = 0, kind: str = MIRROR_KIND) -> Path:
    """Write the tiny HunyuanVideo 1.5 I2V model in the hub layout (model_index.json + one folder a component).

    `kind` is accepted for `ivcore.backends.families.write_mirror`; there is one kind, the 480p I2V layout.
    """
    if kind != MIRROR_KIND:
        raise ValueError(f"unknown HunyuanVideo 1.5 mirror kind {kind!r}; known: {MIRROR_KIND!r}")
    folder = Path(folder)
    pipe = HunyuanVideo15ImageToVideoPipeline(**tiny_hunyuan_components(seed))
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


__all__ = ["MIRROR_KIND", "tiny_hunyuan_components", "write_hunyuan_mirror"]
