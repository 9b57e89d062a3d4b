"""P_img: Z-Image img2img (Z-Image-Turbo and other `ZImagePipeline` / `ZImageImg2ImgPipeline` folders), "z-image".

Every number follows diffusers' `ZImageImg2ImgPipeline` (the test oracle), through the methods of one pipeline
built over the backend's modules (`ivcore.backends.image_pipeline`): `encode_prompt` (Qwen3's second-to-last
hidden states of the chat-templated prompt, its padding dropped), the image processor, `get_timesteps`,
`prepare_latents` (the VAE posterior sample, shifted and scaled, then the noise, mixed by the scheduler's
`scale_noise`), and the module's `calculate_shift` / `retrieve_timesteps` with Z-Image's sigmas. What is ours:
the loop of `__call__`, its decode, and the mapping of the session's settings:

- `content_strength` is the img2img strength: `get_timesteps` runs `steps - int(steps - steps * strength)` steps,
  at least one for any strength above 0.
- `image_guidance` is `guidance_scale`: above 0 the negative prompt ("" when the session has none, as the
  pipeline encodes a missing one) runs as a second branch, `pos + g * (pos - neg)` (the pipeline's defaults:
  no CFG normalization, no truncation). Z-Image-Turbo runs without it (guidance 0).

P_img runs at the session's size, any multiple of the VAE's 8 times the packing's 2 (16).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image

from ivcore.backends.image_pipeline import (
    TransformerImageBackend,
    check_kind,
    load_pipeline_parts,
    save_mirror,
    shifted_timesteps,
)

# Z-Image-Turbo's (the pipelines' examples and the model card): 8 steps without guidance. The pipelines'
# `__call__` defaults, 50 steps at guidance 5.0, are for the undistilled base model.
DEFAULTS = dict(image_steps=8, image_guidance=0.0)
MAX_SEQUENCE_LENGTH = 512  # Qwen3 tokens: `__call__`'s default
COMPONENTS = ("scheduler", "vae", "text_encoder", "tokenizer", "transformer")


class ZImageText(NamedTuple):
    """One prompt as `encode_prompt` gives it: its tokens' embeddings, padding dropped (L, D)."""

    embeds: torch.Tensor
    empty: bool


class ZImageBackend(TransformerImageBackend):
    """Img2img (P_img of Eq. 1) on Z-Image components, under diffusers' names (`transformer`, `vae`,
    `text_encoder`: Qwen3, `tokenizer`, `scheduler`)."""

    pipeline_class = "ZImageImg2ImgPipeline"
    component_names = COMPONENTS
    edits = False
    family_settings = DEFAULTS

    def __init__(self, transformer, vae, text_encoder, tokenizer, scheduler, *, name=""):
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        super().__init__(transformer, vae, scheduler, name=name)

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> ZImageText:
        """Qwen3's embeddings of one prompt (the pipeline's `encode_prompt`, without the negative branch)."""
        embeds, _ = self.pipeline().encode_prompt(
            prompt, device=self.device, do_classifier_free_guidance=False, max_sequence_length=MAX_SEQUENCE_LENGTH
        )
        return ZImageText(embeds[0], prompt == "")

    @torch.no_grad()
    def img2img(
        self,
        image: Image.Image,
        cond: ZImageText,
        uncond: ZImageText,
        *,
        strength: float,
        steps: int,
        guidance: float,
        seed: int,
    ) -> Image.Image:
        """ZImageImg2ImgPipeline on `image` at its own size; strength 0 returns the image unchanged."""
        if strength <= 0:
            return image.copy()
        pipe, device = self.pipeline(), self.device
        width, height = image.size
        generator = torch.Generator(device="cpu").manual_seed(seed)
        pixels = pipe.image_processor.preprocess(image, height=height, width=width).to(dtype=torch.float32)
        f = self.vae_scale_factor
        from diffusers.pipelines.z_image.pipeline_z_image_img2img import get_default_z_image_sigmas

        tokens = (height // f // 2) * (width // f // 2)
        shifted_timesteps(pipe, steps, tokens, device, sigmas=get_default_z_image_sigmas(steps))
        timesteps, _ = pipe.get_timesteps(steps, strength, device)
        latents = pipe.prepare_latents(
            pixels, timesteps[:1], 1, self.transformer.in_channels, height, width, cond.embeds.dtype, device, generator
        )
        cfg = guidance > 0
        texts = [cond.embeds, uncond.embeds] if cfg else [cond.embeds]
        for t in timesteps:
            timestep = (1000 - t.expand(latents.shape[0])) / 1000
            model_in = latents.to(self.transformer.dtype).repeat(len(texts), 1, 1, 1).unsqueeze(2)
            out = self.transformer(list(model_in.unbind(dim=0)), timestep.repeat(len(texts)), texts)[0]
            if cfg:
                pos, neg = out[0].float(), out[1].float()
                pred = torch.stack([pos + guidance * (pos - neg)], dim=0)
            else:
                pred = torch.stack([o.float() for o in out], dim=0)
            pred = -pred.squeeze(2)
            latents = pipe.scheduler.step(pred.to(torch.float32), t, latents, return_dict=False)[0]
        latents = latents.to(self.vae.dtype) / self.vae.config.scaling_factor + self.vae.config.shift_factor
        decoded = self.vae.decode(latents, return_dict=False)[0]
        return pipe.image_processor.postprocess(decoded, output_type="pil")[0]


# ---------------------------------------------------------------------------------------- loading
def load_zimage_backend(model: str, *, device, dtype: torch.dtype, **_: Any) -> ZImageBackend:
    """Z-Image (a `ZImagePipeline` or `ZImageImg2ImgPipeline` folder or hub id) as img2img, safetensors only.

    Z-Image ships in bfloat16: a float16 request loads bfloat16; float32 stays float32 (the CPU)."""
    _, parts = load_pipeline_parts(ZImageBackend.pipeline_class, model, device, dtype, COMPONENTS)
    return ZImageBackend(**parts, name=str(model))


# ---------------------------------------------------------------------------------------- tiny models
# Z-Image's single-stream transformer at a tiny width: 16 latent channels in 2 x 2 patches, one refiner and one
# main layer, rotary axes summing to the head dim, the caption width of the text encoder
TINY_TRANSFORMER = dict(
    in_channels=16, dim=32, n_layers=1, n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=32,
    axes_dims=[4, 6, 6], axes_lens=[256, 64, 64],
)  # fmt: skip
# Qwen3 (Qwen3-4B in the repository): two layers, the pipeline takes the second-to-last hidden states
TINY_QWEN3 = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    head_dim=8, max_position_embeddings=1024, eos_token_id=1, pad_token_id=0, bos_token_id=None,
)  # fmt: skip
# Z-Image-Turbo's scheduler: flow matching with a fixed shift of 3
SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
# the chat template `_encode_prompt` applies (user turn, generation prompt; `enable_thinking` is accepted)
CHAT_TEMPLATE = (
    "{%- for message in messages -%}{{ message['content'] + ' ' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}</s>{%- endif -%}"
)
MIRROR_KINDS = {"z-image": "Tongyi-MAI/Z-Image-Turbo"}


def tiny_zimage_pipeline(seed: int = 0):
    """A random-init tiny `ZImagePipeline` in Z-Image-Turbo's layout (64 x 48 in a fraction of a second)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    from ivcore.backends.flux import TINY_VAE  # Z-Image uses FLUX.1's VAE
    from ivcore.backends.word_tokenizer import word_tokenizer

    tokenizer = word_tokenizer(vocab_size=128, model_max_length=MAX_SEQUENCE_LENGTH)
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), vae=AutoencoderKL(**TINY_VAE).eval(),
        text_encoder=Qwen3Model(Qwen3Config(**TINY_QWEN3, vocab_size=len(tokenizer))).eval(), tokenizer=tokenizer,
        transformer=ZImageTransformer2DModel(**TINY_TRANSFORMER).eval(),
    )  # fmt: skip


def write_zimage_mirror(folder: str | os.PathLike, kind: str = "z-image", seed: int = 0, **_: Any) -> Path:
    """A tiny Z-Image model in Z-Image-Turbo's hub layout (model_index.json naming ZImagePipeline, transformer,
    vae, text_encoder, tokenizer, scheduler), safetensors, for `from_pretrained(folder)`."""
    check_kind(kind, MIRROR_KINDS)
    return save_mirror(tiny_zimage_pipeline(seed), folder)


__all__ = [
    "DEFAULTS", "ZImageBackend", "ZImageText", "load_zimage_backend", "tiny_zimage_pipeline", "write_zimage_mirror",
]  # fmt: skip
