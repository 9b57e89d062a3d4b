"""The full-size architectures of the DiT video families, written as data (no hub access needed).

What `ivcore.memory_dit` plans on: each family's transformer(s), 3D VAE, text and image encoders at
their released sizes, built on the meta device (no memory, no weights) and put into the family's own
diffusers pipeline in place of the tiny test models, so that the family backend's own `encode_prompt`,
`encode_images`, `predict` and `decode` run on them exactly as they run on real weights.

The values are the released models' `config.json` keys that fix the architecture (widths, depths,
heads, channels, patches, compression). Keys that change only numbers, not shapes (the Wan VAEs'
per-channel latent statistics, scaling factors), keep diffusers' defaults: they move no byte. Where a
class's defaults are the released model (diffusers writes its defaults from them), the config says so
with `{}`.

- Wan 2.1 I2V 14B (`Wan-AI/Wan2.1-I2V-14B-480P-Diffusers`, `-720P-`): 40 layers of 5120 (40 heads of
  128), FFN 13824, 36 input channels, CLIP image tokens (`image_dim` 1280, `added_kv_proj_dim` 5120);
  UMT5-XXL; OpenCLIP ViT-H/14's vision tower; the 2.1 VAE (diffusers' `AutoencoderKLWan` defaults).
- Wan 2.2 I2V-A14B: two such transformers (no image tokens), the 2.1 VAE, UMT5-XXL.
- Wan 2.2 TI2V-5B: 30 layers of 3072 (24 heads of 128), FFN 14336, 48 channels; the 2.2 VAE
  (48 latent channels, 16x spatial with a 2x2 patchify, residual blocks, decoder width 256).
- CogVideoX-5B I2V (`THUDM/CogVideoX-5b-I2V`): 42 layers of 3072 (48 heads of 64), 32 input channels,
  rotary and learned positional embeddings; T5-XXL v1.1; the CogVideoX VAE (class defaults).
- LTX-Video 0.9.x (`Lightricks/LTX-Video`): the class defaults of transformer (28 layers of 2048) and
  VAE (0.9.0's), T5-XXL v1.1.
- LTX-Video 0.9.7 13B (`Lightricks/LTX-Video-0.9.7-distilled`, `-dev`; an `LTXConditionPipeline`): 48 layers of
  4096 (32 heads of 128), the 0.9.5 VAE (five encoder widths up to 2048, a timestep-conditioned decoder of
  256-1024 without noise injection), T5-XXL v1.1, as diffusers' scripts/convert_ltx_to_diffusers.py writes them.
- HunyuanVideo 1.5 480p I2V: the transformer's and VAE's class defaults (54 layers of 2048, i2v);
  Qwen2.5-VL-7B's language model; byT5-small (Glyph-SDXL-v2); SigLIP so400m/14 at 384.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# ------------------------------------------------------------------------------- text and image encoders
UMT5_XXL: dict[str, Any] = dict(
    vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6, tie_word_embeddings=False,
)  # fmt: skip
T5_XXL: dict[str, Any] = dict(  # google/t5-v1_1-xxl (CogVideoX, LTX-Video)
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6, tie_word_embeddings=False,
)  # fmt: skip
BYT5_SMALL: dict[str, Any] = dict(
    vocab_size=1510, d_model=1472, d_kv=64, d_ff=3584, num_layers=12, num_heads=6,
    feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, tie_word_embeddings=False,
)  # fmt: skip
CLIP_VIT_H_VISION: dict[str, Any] = dict(
    hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
    patch_size=14, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5,
)  # fmt: skip
QWEN25_VL_7B_TEXT: dict[str, Any] = dict(
    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
    num_key_value_heads=4, max_position_embeddings=128000, rms_norm_eps=1e-6, rope_theta=1000000.0,
    rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
)  # fmt: skip
SIGLIP_SO400M_384: dict[str, Any] = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, image_size=384,
    patch_size=14,
)  # fmt: skip

# ------------------------------------------------------------------------------- transformers and VAEs
WAN21_I2V_14B: dict[str, Any] = dict(in_channels=36, image_dim=1280, added_kv_proj_dim=5120)  # + class defaults
WAN22_A14B: dict[str, Any] = dict(in_channels=36)
WAN22_TI2V_5B: dict[str, Any] = dict(
    num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48, ffn_dim=14336, num_layers=30
)
WAN21_VAE: dict[str, Any] = {}
WAN22_VAE: dict[str, Any] = dict(
    base_dim=160, decoder_base_dim=256, z_dim=48, is_residual=True, in_channels=12, out_channels=12, patch_size=2,
    scale_factor_spatial=16, scale_factor_temporal=4, latents_mean=[0.0] * 48, latents_std=[1.0] * 48,
)  # fmt: skip
COGVIDEOX_5B_I2V: dict[str, Any] = dict(
    num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, num_layers=42,
    use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
)  # fmt: skip
COGVIDEOX_VAE: dict[str, Any] = dict(scaling_factor=0.7)
LTX_TRANSFORMER: dict[str, Any] = {}
LTX_VAE: dict[str, Any] = {}
LTX_097_TRANSFORMER: dict[str, Any] = dict(
    num_attention_heads=32, attention_head_dim=128, cross_attention_dim=4096, num_layers=48
)
LTX_095_VAE: dict[str, Any] = dict(
    block_out_channels=(128, 256, 512, 1024, 2048), down_block_types=("LTXVideo095DownBlock3D",) * 4,
    decoder_block_out_channels=(256, 512, 1024), layers_per_block=(4, 6, 6, 2, 2),
    decoder_layers_per_block=(5, 5, 5, 5), spatio_temporal_scaling=(True, True, True, True),
    decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False, False, False, False),
    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"), upsample_residual=(True, True, True),
    upsample_factor=(2, 2, 2), timestep_conditioning=True, spatial_compression_ratio=32, temporal_compression_ratio=8,
)  # fmt: skip
HUNYUAN15_480P_I2V: dict[str, Any] = {}
HUNYUAN15_VAE: dict[str, Any] = {}


def _encoder(kind: str, config: dict[str, Any]):
    """A transformers encoder from its config dict (imported here: only the families that plan need them)."""
    import transformers

    model_class, config_class = {
        "umt5": ("UMT5EncoderModel", "UMT5Config"),
        "t5": ("T5EncoderModel", "T5Config"),
        "clip-text": ("CLIPTextModel", "CLIPTextConfig"),
        "clip-vision": ("CLIPVisionModel", "CLIPVisionConfig"),
        "qwen2.5-vl-text": ("Qwen2_5_VLTextModel", "Qwen2_5_VLTextConfig"),
        "siglip-vision": ("SiglipVisionModel", "SiglipVisionConfig"),
    }[kind]
    return getattr(transformers, model_class)(getattr(transformers, config_class)(**config))


def _diffusers(class_name: str, config: dict[str, Any]):
    import diffusers

    return getattr(diffusers, class_name)(**config)


# plan kind -> the family's tiny backend ("module:function", its args), backend keywords, {component: builder}
def _wan(tiny_kind: str, variant: str, transformer: dict, vae: dict, image: bool, experts: int) -> dict[str, Any]:
    parts: dict[str, Callable[[], Any]] = {
        "transformer": lambda: _diffusers("WanTransformer3DModel", transformer),
        "vae": lambda: _diffusers("AutoencoderKLWan", vae),
        "text_encoder": lambda: _encoder("umt5", UMT5_XXL),
    }
    if experts == 2:
        parts["transformer_2"] = lambda: _diffusers("WanTransformer3DModel", transformer)
    if image:
        parts["image_encoder"] = lambda: _encoder("clip-vision", CLIP_VIT_H_VISION)
    return dict(tiny=("ivcore.backends.wan:tiny_wan_backend", (tiny_kind,)), backend=dict(variant=variant), parts=parts)


FULL_SIZE: dict[str, dict[str, Any]] = {
    "wan2.1-i2v-14b-480p": _wan("wan2.1-i2v", "wan2.1-i2v-480p", WAN21_I2V_14B, WAN21_VAE, True, 1),
    "wan2.1-i2v-14b-720p": _wan("wan2.1-i2v", "wan2.1-i2v-720p", WAN21_I2V_14B, WAN21_VAE, True, 1),
    "wan2.2-i2v-a14b": _wan("wan2.2-i2v-a14b", "wan2.2-i2v-a14b", WAN22_A14B, WAN21_VAE, False, 2),
    "wan2.2-ti2v-5b": _wan("wan2.2-ti2v-5b", "wan2.2-ti2v-5b", WAN22_TI2V_5B, WAN22_VAE, False, 1),
    "cogvideox-5b-i2v": dict(
        tiny=("ivcore.backends.cogvideox:tiny_cogvideox_backend", (0, "1.0")), backend={},
        parts={
            "transformer": lambda: _diffusers("CogVideoXTransformer3DModel", COGVIDEOX_5B_I2V),
            "vae": lambda: _diffusers("AutoencoderKLCogVideoX", COGVIDEOX_VAE),
            "text_encoder": lambda: _encoder("t5", T5_XXL),
        },
    ),
    "ltx-video-0.9": dict(
        tiny=("ivcore.backends.ltx_tiny:tiny_ltx_backend", (0, "0.9.0")), backend={},
        parts={
            "transformer": lambda: _diffusers("LTXVideoTransformer3DModel", LTX_TRANSFORMER),
            "vae": lambda: _diffusers("AutoencoderKLLTXVideo", LTX_VAE),
            "text_encoder": lambda: _encoder("t5", T5_XXL),
        },
    ),
    "ltx-video-0.9.7-distilled": dict(
        tiny=("ivcore.backends.ltx_condition:tiny_ltx_condition_backend", (0, "ltx-video-0.9.7-distilled")),
        backend={},
        parts={
            "transformer": lambda: _diffusers("LTXVideoTransformer3DModel", LTX_097_TRANSFORMER),
            "vae": lambda: _diffusers("AutoencoderKLLTXVideo", LTX_095_VAE),
            "text_encoder": lambda: _encoder("t5", T5_XXL),
        },
    ),
    "hunyuanvideo-1.5-480p-i2v": dict(
        tiny=("ivcore.backends.hunyuan:tiny_hunyuan_backend", ()), backend={},
        parts={
            "transformer": lambda: _diffusers("HunyuanVideo15Transformer3DModel", HUNYUAN15_480P_I2V),
            "vae": lambda: _diffusers("AutoencoderKLHunyuanVideo15", HUNYUAN15_VAE),
            "text_encoder": lambda: _encoder("qwen2.5-vl-text", QWEN25_VL_7B_TEXT),
            "text_encoder_2": lambda: _encoder("t5", BYT5_SMALL),
            "image_encoder": lambda: _encoder("siglip-vision", SIGLIP_SO400M_384),
        },
    ),
}  # fmt: skip
# the loaders' dtypes: Wan keeps its VAE in float32 (load_wan_backend), the others run all in bf16
FLOAT32_VAE = ("wan2.1-i2v-14b-480p", "wan2.1-i2v-14b-720p", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b")


def _cast(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """`module` in `dtype` on the meta device, but for the parts its class keeps in float32, as `from_pretrained`
    keeps them (`_keep_in_fp32_modules`: Wan's norms, time embedder and modulation tables)."""
    keep = tuple(getattr(module, "_keep_in_fp32_modules", None) or ())
    if not type(module).__module__.startswith("diffusers"):  # transformers: `_strict` always, the rest for fp16
        strict = tuple(getattr(module, "_keep_in_fp32_modules_strict", None) or ())
        keep = strict + (keep if dtype == torch.float16 else ())
    for name, param in module.named_parameters():
        wanted = torch.float32 if any(k in name for k in keep) else dtype  # as diffusers matches them
        param.data = param.data.to(wanted)
    for buffer in module.buffers():
        if buffer.is_floating_point():
            buffer.data = buffer.data.to(dtype)
    return module.eval()


def built(parts: dict[str, Callable[[], Any]], device: str | torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The modules of `parts`: empty on the meta device, or random-init on a real one (GPU benchmarks without
    weights), built in `dtype` there so that a 14B model never exists in float32."""
    if torch.device(device).type == "meta":
        from accelerate import init_empty_weights

        with init_empty_weights(include_buffers=True):
            return {name: build() for name, build in parts.items()}
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return {name: build() for name, build in parts.items()}
    finally:
        torch.set_default_dtype(default)


def full_size_backend(kind: str, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "meta"):
    """The family backend of `kind` over its full-size modules on the meta device (seconds, no memory),
    or random-init on `device` (`benchmarks/family_latency.py`: real timings without weights).

    The family's tiny pipeline gives what holds no weights (tokenizers built in code, image processors,
    scheduler, guider, the pipeline's flags); every module is replaced by the full-size one, and the
    pipeline is rebuilt so that what it derives from its modules (compression ratios, target size) is
    the real model's.
    """
    import importlib

    if kind not in FULL_SIZE:
        raise ValueError(f"kind: {kind!r}; one of {sorted(FULL_SIZE)}")
    spec = FULL_SIZE[kind]
    target, args = spec["tiny"]
    module, function = target.split(":")
    family = importlib.import_module(module)
    tiny = getattr(family, function)(*args)  # a backend of the family's class over its tiny pipeline
    parts = built(spec["parts"], device, dtype)
    for name, part in parts.items():
        keep_float32 = name == "vae" and kind in FLOAT32_VAE
        parts[name] = _cast(part, torch.float32 if keep_float32 else dtype)
    from ivcore.backends.dit import rebuilt_pipeline

    components = dict(parts)
    if "image_encoder" in parts and "image_processor" in tiny.pipe.components:  # Wan 2.1: CLIP at its own 224 x 224
        from transformers import CLIPImageProcessor

        components["image_processor"] = CLIPImageProcessor()
    if "image_encoder" in parts and "feature_extractor" in tiny.pipe.components:  # Hunyuan: SigLIP at 384 x 384
        from transformers import SiglipImageProcessor

        side = SIGLIP_SO400M_384["image_size"]
        components["feature_extractor"] = SiglipImageProcessor(size={"height": side, "width": side})
    return type(tiny)(rebuilt_pipeline(tiny.pipe, **components), name=kind, **spec["backend"])


__all__ = ["FULL_SIZE", "full_size_backend"]
