"""The full-size image families P_img can be, as data: what `ivcore.memory_dit` plans a pair of models with.

As `ivcore.backends.dit_configs` does for the video families: the released architectures' shape-fixing
config keys, built on the meta device and put into the family's own backend in place of its tiny test
modules (tokenizers and schedulers come from the tiny pipeline). SD1.5 is `ivcore.backends.configs`.

- SDXL base 1.0 (`stabilityai/stable-diffusion-xl-base-1.0`): the UNet (320/640/1280 channels,
  1/2/10 transformer layers, text_time embeddings), SD's VAE at scaling 0.13025, CLIP ViT-L/14's
  text tower and OpenCLIP ViT-bigG/14's with its projection.
- FLUX.1 Kontext [dev] (`black-forest-labs/FLUX.1-Kontext-dev`): `FluxTransformer2DModel`'s class
  defaults (19 double and 38 single blocks of 3072) with the guidance embedding, the 16-channel VAE,
  CLIP ViT-L/14 and T5-XXL v1.1.
- FLUX.2 klein 4B (`black-forest-labs/FLUX.2-klein-4B`): `Flux2Transformer2DModel` with 5 double and 20
  single blocks of 3072 (24 heads of 128), no guidance embedding, its text width three Qwen3-4B layers
  stacked (3 x 2560); `AutoencoderKLFlux2`'s defaults; Qwen3-4B (36 layers of 2560, 8 KV heads) as the
  pipeline loads it (`Qwen3ForCausalLM`, tied embeddings). 3.89 B transformer parameters: the "4B".
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from ivcore.backends.configs import CLIP_L14_TEXT_CONFIG, SD15_VAE_CONFIG
from ivcore.backends.dit_configs import T5_XXL, _cast, _diffusers, _encoder, built

SDXL_UNET: dict[str, Any] = dict(
    act_fn="silu", addition_embed_type="text_time", addition_embed_type_num_heads=64, addition_time_embed_dim=256,
    attention_head_dim=[5, 10, 20], block_out_channels=[320, 640, 1280], cross_attention_dim=2048,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], in_channels=4,
    layers_per_block=2, out_channels=4, projection_class_embeddings_input_dim=2816, sample_size=128,
    transformer_layers_per_block=[1, 2, 10], up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    use_linear_projection=True,
)  # fmt: skip
SDXL_VAE: dict[str, Any] = {**SD15_VAE_CONFIG, "scaling_factor": 0.13025, "sample_size": 1024, "force_upcast": True}
OPENCLIP_BIGG_TEXT: dict[str, Any] = dict(
    hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20, projection_dim=1280,
    hidden_act="gelu", max_position_embeddings=77, vocab_size=49408,
)  # fmt: skip
FLUX_KONTEXT_TRANSFORMER: dict[str, Any] = dict(guidance_embeds=True)  # + the class defaults (FLUX.1 [dev])
KLEIN_4B_TRANSFORMER: dict[str, Any] = dict(
    num_layers=5, num_single_layers=20, num_attention_heads=24, joint_attention_dim=3 * 2560, guidance_embeds=False
)
QWEN3_4B: dict[str, Any] = dict(
    vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
    num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, tie_word_embeddings=True,
)  # fmt: skip
FLUX_VAE: dict[str, Any] = dict(
    block_out_channels=[128, 256, 512, 512], latent_channels=16, layers_per_block=2, scaling_factor=0.3611,
    shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False, sample_size=1024, force_upcast=True,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
)  # fmt: skip


def _qwen3(config: dict[str, Any]):
    import transformers

    return transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**config))


def _clip_projection(config: dict[str, Any]):
    import transformers

    return transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**config))


FULL_SIZE_IMAGE: dict[str, dict[str, Any]] = {
    "sdxl": dict(
        tiny=("ivcore.backends.sdxl:tiny_sdxl_pipeline", ("sdxl",)), backend="ivcore.backends.sdxl:SDXLImageBackend",
        parts={
            "unet": lambda: _diffusers("UNet2DConditionModel", SDXL_UNET),
            "vae": lambda: _diffusers("AutoencoderKL", SDXL_VAE),
            "text_encoder": lambda: _encoder("clip-text", CLIP_L14_TEXT_CONFIG),
            "text_encoder_2": lambda: _clip_projection(OPENCLIP_BIGG_TEXT),
        },
    ),
    "flux-kontext": dict(
        tiny=("ivcore.backends.flux:tiny_flux_pipeline", ("flux-kontext",)),
        backend="ivcore.backends.flux:FluxKontextBackend",
        parts={
            "transformer": lambda: _diffusers("FluxTransformer2DModel", FLUX_KONTEXT_TRANSFORMER),
            "vae": lambda: _diffusers("AutoencoderKL", FLUX_VAE),
            "text_encoder": lambda: _encoder("clip-text", CLIP_L14_TEXT_CONFIG),
            "text_encoder_2": lambda: _encoder("t5", T5_XXL),
        },
    ),
    "flux2-klein": dict(
        tiny=("ivcore.backends.flux2:tiny_klein_pipeline", ()), backend="ivcore.backends.flux2:Flux2KleinBackend",
        parts={
            "transformer": lambda: _diffusers("Flux2Transformer2DModel", KLEIN_4B_TRANSFORMER),
            "vae": lambda: _diffusers("AutoencoderKLFlux2", {}),
            "text_encoder": lambda: _qwen3(QWEN3_4B),
        },
    ),
}  # fmt: skip


def _sd15(dtype: torch.dtype, device: str | torch.device):
    """SD1.5 img2img from `ivcore.backends.configs` (its UNet, VAE and CLIP text tower), tokenizer and scheduler
    built in code."""
    import diffusers

    from ivcore.backends import configs
    from ivcore.backends.image import ImageBackend
    from ivcore.backends.tiny import tiny_tokenizer

    m = configs.build_sd15_pia(device, dtype)
    scheduler = getattr(diffusers, configs.SD15_SCHEDULER_CLASS).from_config(configs.SD15_SCHEDULER_CONFIG)
    return ImageBackend(m["unet"], m["vae"], m["text_encoder"], tiny_tokenizer(), scheduler, name="sd15")


def _resolve(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def full_size_image_backend(kind: str, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "meta"):
    """The image family's backend of `kind` ("sd15" or a `FULL_SIZE_IMAGE` kind) over its full-size modules on the
    meta device (no memory), or random-init on `device`."""
    if kind == "sd15":
        return _sd15(dtype, device)
    if kind not in FULL_SIZE_IMAGE:
        raise ValueError(f"image kind: {kind!r}; one of {sorted(FULL_SIZE_IMAGE)}")
    spec = FULL_SIZE_IMAGE[kind]
    target, args = spec["tiny"]
    tiny = _resolve(target)(*args)
    parts = {name: _cast(part, dtype) for name, part in built(spec["parts"], device, dtype).items()}
    components = {**tiny.components, **parts}
    backend_class = _resolve(spec["backend"])
    return backend_class(**{name: components[name] for name in backend_class.component_names}, name=kind)


__all__ = ["FULL_SIZE_IMAGE", "full_size_image_backend"]
