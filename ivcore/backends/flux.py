"""P_img: FLUX.1 img2img (dev, schnell) and FLUX.1 Kontext (edit by instruction), the "flux" image families.

Every number follows diffusers' own pipelines (the test oracles), through the methods of one pipeline built
over the backend's modules (`ivcore.backends.image_pipeline`): `encode_prompt` (CLIP's pooled output and T5's
hidden states, 512 tokens as `__call__` asks), the image processor, `prepare_latents` (the VAE latents,
shifted and scaled, then the noise, packed into 2 x 2 patches), `get_timesteps`, `_unpack_latents`, and the
module's `retrieve_timesteps` with the resolution-dependent `mu` from `calculate_shift` (the scheduler's
dynamic shifting; schnell's scheduler has none). What is ours: the loop of `__call__`, its decode, and the
mapping of the session's settings:

- `image_guidance` is the distilled guidance the transformer embeds (dev, Kontext: `guidance_embeds`);
  schnell's transformer has no such input and ignores it. There is no two-branch CFG from it.
- True CFG (`true_cfg_scale`, a backend setting as diffusers names it; 1 = off) runs the negative prompt as a
  second branch when it is above 1 and the session's negative prompt is not "" (the session's "none").
- FLUX.1 img2img (`FluxImg2ImgPipeline`, also for `FluxPipeline` folders): `content_strength` is the
  img2img strength; the pipeline's `get_timesteps` runs `steps - int(steps - steps * strength)` steps, at
  least one for any strength above 0.
- FLUX.1 Kontext (`FluxKontextPipeline`), an edit family: the content text is the instruction and the image
  (x, or x + paint for x~') is the reference, its VAE latents appended to the noise as tokens of their own
  (position ids with a 1 in front). Every strength above 0 runs the same edit from pure noise: strength only
  switches it on (0: x~ = x exactly). The pipeline's resizing is off: no `_auto_resize` to its preferred
  resolutions, no scaling to `max_area`, so P_img runs at the session's size.

Both run at any size that is a multiple of the VAE's factor times the packing's 2 (16 on FLUX.1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ivcore.backends.base import BackendSetting
from ivcore.backends.image_pipeline import (
    PooledText,
    TransformerImageBackend,
    check_kind,
    load_pipeline_parts,
    save_mirror,
    shifted_timesteps,
)

# the session's settings for each family: the model cards' (dev 28 steps at guidance 3.5, schnell 4 steps
# without guidance) and `FluxKontextPipeline`'s example (28 steps, guidance 2.5)
DEV_DEFAULTS = dict(image_steps=28, image_guidance=3.5)
SCHNELL_DEFAULTS = dict(image_steps=4, image_guidance=0.0)
KONTEXT_DEFAULTS = dict(image_steps=28, image_guidance=2.5)
MAX_SEQUENCE_LENGTH = 512  # T5 tokens: `__call__`'s default
COMPONENTS = ("scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer")


class FluxImageBackend(TransformerImageBackend):
    """Img2img (P_img of Eq. 1) on FLUX.1 components, under diffusers' names (`transformer`, `vae`,
    `text_encoder` / `tokenizer`: CLIP, `text_encoder_2` / `tokenizer_2`: T5, `scheduler`)."""

    pipeline_class = "FluxImg2ImgPipeline"
    component_names = COMPONENTS
    edits = False  # an edit family: strength only switches P_img on (`FluxKontextBackend`)
    true_cfg_scale = BackendSetting()  # the pipeline's true CFG with the negative prompt; 1 = off

    def __init__(self, transformer, vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler, *, name=""):
        self.text_encoder, self.text_encoder_2 = text_encoder, text_encoder_2
        self.tokenizer, self.tokenizer_2 = tokenizer, tokenizer_2
        self.true_cfg_scale = 1.0
        super().__init__(transformer, vae, scheduler, name=name)

    def family_defaults(self) -> dict[str, Any]:
        """dev's steps and guidance, or schnell's for a transformer without a guidance embedding."""
        return DEV_DEFAULTS if self.transformer.config.guidance_embeds else SCHNELL_DEFAULTS

    # ------------------------------------------------------------------ the pipeline's steps
    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> PooledText:
        """T5's embeddings and CLIP's pooled output of one prompt (the pipeline's `encode_prompt`)."""
        embeds, pooled, _ = self.pipeline().encode_prompt(
            prompt, device=self.device, max_sequence_length=MAX_SEQUENCE_LENGTH
        )
        return PooledText(embeds, pooled, prompt == "")

    def _text_ids(self, text: PooledText, device) -> torch.Tensor:
        dtype = self.text_encoder.dtype if self.text_encoder is not None else self.transformer.dtype
        return torch.zeros(text.embeds.shape[1], 3).to(device=device, dtype=dtype)

    def _denoise(
        self, pipe, latents: torch.Tensor, timesteps: torch.Tensor, ids: torch.Tensor, cond: PooledText,
        uncond: PooledText, guidance: float, reference: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """The loop of `__call__`: `reference` (Kontext's image tokens) is appended to the noise tokens and
        its part of the prediction dropped; true CFG where it is on."""
        device, rows = latents.device, latents.shape[0]
        embedded = None
        if self.transformer.config.guidance_embeds:
            embedded = torch.full([1], guidance, device=device, dtype=torch.float32).expand(rows)
        true_cfg = self.true_cfg_scale > 1 and not uncond.empty
        branches = [(text, self._text_ids(text, device)) for text in ([cond, uncond] if true_cfg else [cond])]
        for t in timesteps:
            model_in = latents if reference is None else torch.cat([latents, reference], dim=1)
            timestep = t.expand(rows).to(latents.dtype)
            preds = [
                self.transformer(
                    hidden_states=model_in, timestep=timestep / 1000, guidance=embedded,
                    pooled_projections=text.pooled, encoder_hidden_states=text.embeds, txt_ids=txt_ids, img_ids=ids,
                    joint_attention_kwargs={}, return_dict=False,
                )[0][:, : latents.size(1)]
                for text, txt_ids in branches
            ]  # fmt: skip
            pred = preds[0]
            if true_cfg:
                pred = preds[1] + self.true_cfg_scale * (preds[0] - preds[1])
            latents = pipe.scheduler.step(pred, t, latents, return_dict=False)[0]
        return latents

    def _decode(self, pipe, latents: torch.Tensor, height: int, width: int) -> Image.Image:
        """`__call__`'s decode: unpack, undo the VAE's scaling and shift, decode, postprocess."""
        latents = pipe._unpack_latents(latents, height, width, self.vae_scale_factor)
        latents = (latents / self.vae.config.scaling_factor) + self.vae.config.shift_factor
        decoded = self.vae.decode(latents, return_dict=False)[0]
        return pipe.image_processor.postprocess(decoded, output_type="pil")[0]

    @torch.no_grad()
    def img2img(
        self,
        image: Image.Image,
        cond: PooledText,
        uncond: PooledText,
        *,
        strength: float,
        steps: int,
        guidance: float,
        seed: int,
    ) -> Image.Image:
        """FluxImg2ImgPipeline on `image` at its own size; strength 0 returns the image unchanged."""
        if strength <= 0:
            return image.copy()
        pipe, device, dtype = self.pipeline(), self.device, cond.embeds.dtype
        width, height = image.size
        generator = torch.Generator(device="cpu").manual_seed(seed)
        pixels = pipe.image_processor.preprocess(image, height=height, width=width).to(dtype=torch.float32)
        f = self.vae_scale_factor
        shifted_timesteps(pipe, steps, (height // f // 2) * (width // f // 2), device)
        timesteps, _ = pipe.get_timesteps(steps, strength, device)
        channels = self.transformer.config.in_channels // 4
        latents, ids = pipe.prepare_latents(pixels, timesteps[:1], 1, channels, height, width, dtype, device, generator)
        latents = self._denoise(pipe, latents, timesteps, ids, cond, uncond, guidance)
        return self._decode(pipe, latents, height, width)


class FluxKontextBackend(FluxImageBackend):
    """FLUX.1 Kontext: edits the image by the content text (the image's latents are reference tokens)."""

    pipeline_class = "FluxKontextPipeline"
    edits = True

    def family_defaults(self) -> dict[str, Any]:
        return KONTEXT_DEFAULTS

    @torch.no_grad()
    def img2img(
        self,
        image: Image.Image,
        cond: PooledText,
        uncond: PooledText,
        *,
        strength: float,
        steps: int,
        guidance: float,
        seed: int,
    ) -> Image.Image:
        """FluxKontextPipeline(image=image, prompt=...) at the image's own size; strength 0 returns the image
        unchanged, any other strength runs the whole edit."""
        if strength <= 0:
            return image.copy()
        pipe, device, dtype = self.pipeline(), self.device, cond.embeds.dtype
        width, height = image.size
        generator = torch.Generator(device="cpu").manual_seed(seed)
        processor, multiple = pipe.image_processor, self.vae_scale_factor * 2
        ref_height, ref_width = processor.get_default_height_width(image)  # `_auto_resize=False`
        ref_height, ref_width = ref_height // multiple * multiple, ref_width // multiple * multiple
        reference = processor.preprocess(processor.resize(image, ref_height, ref_width), ref_height, ref_width)
        channels = self.transformer.config.in_channels // 4
        latents, reference, ids, ref_ids = pipe.prepare_latents(
            reference, 1, channels, height, width, dtype, device, generator
        )
        ids = torch.cat([ids, ref_ids], dim=0)
        shifted_timesteps(pipe, steps, latents.shape[1], device)
        pipe.scheduler.set_begin_index(0)
        latents = self._denoise(pipe, latents, pipe.scheduler.timesteps, ids, cond, uncond, guidance, reference)
        return self._decode(pipe, latents, height, width)


# ---------------------------------------------------------------------------------------- loading
def _load(backend_class: type, model: str, device, dtype: torch.dtype) -> FluxImageBackend:
    """Through the family's pipeline class (any FLUX.1 folder's components fit it), safetensors only.

    FLUX.1 is trained and shipped in bfloat16: a float16 request loads bfloat16 (float16 overflows in its
    activations); float32 stays float32 (the CPU)."""
    _, parts = load_pipeline_parts(backend_class.pipeline_class, model, device, dtype, COMPONENTS)
    return backend_class(**parts, name=str(model))


def load_flux_backend(model: str, *, device, dtype: torch.dtype, **_: Any) -> FluxImageBackend:
    """FLUX.1 dev / schnell (a `FluxPipeline` or `FluxImg2ImgPipeline` folder or hub id) as img2img."""
    return _load(FluxImageBackend, model, device, dtype)


def load_kontext_backend(model: str, *, device, dtype: torch.dtype, **_: Any) -> FluxKontextBackend:
    """FLUX.1 Kontext (a `FluxKontextPipeline` folder or hub id)."""
    return _load(FluxKontextBackend, model, device, dtype)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------- tiny models
# FLUX.1's transformer at a tiny width: one double-stream and one single-stream block, rotary axes summing to
# the head dim, 64 input channels (16 latent channels in 2 x 2 patches), CLIP's pooled and T5's widths
TINY_TRANSFORMER = dict(
    patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
    joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 6, 6),
)  # fmt: skip
# FLUX.1's VAE: 8x downsampling, 16 latent channels, its scaling and shift factors, no quant convs
TINY_VAE = dict(
    block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=16, layers_per_block=1, norm_num_groups=8,
    sample_size=128, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
)  # fmt: skip
# the repositories' schedulers: flow matching with resolution-dependent shifting (dev, Kontext), schnell's without
FLUX_SCHEDULER = dict(
    num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
    base_image_seq_len=256, max_image_seq_len=4096,
)  # fmt: skip
MIRROR_KINDS = {
    "flux-dev": "black-forest-labs/FLUX.1-dev",
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
    "flux-kontext": "black-forest-labs/FLUX.1-Kontext-dev",
}


def tiny_flux_pipeline(kind: str = "flux-dev", seed: int = 0):
    """A random-init tiny FLUX.1 pipeline in one repository's layout (`FluxPipeline` for dev and schnell,
    `FluxKontextPipeline` for Kontext; 64 x 48 in a tenth of a second)."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from ivcore.backends.tiny import TEXT_CONFIG, tiny_tokenizer
    from ivcore.backends.word_tokenizer import TINY_T5_ENCODER, word_tokenizer

    check_kind(kind, MIRROR_KINDS)
    torch.manual_seed(seed)
    schnell = kind == "flux-schnell"
    transformer = FluxTransformer2DModel(**TINY_TRANSFORMER, guidance_embeds=not schnell).eval()
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(**dict(TEXT_CONFIG, vocab_size=len(tokenizer)))).eval()
    text_encoder_2 = T5EncoderModel(T5Config(**TINY_T5_ENCODER)).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        **{**FLUX_SCHEDULER, **(dict(shift=1.0, use_dynamic_shifting=False) if schnell else {})}
    )
    cls = FluxKontextPipeline if kind == "flux-kontext" else FluxPipeline
    return cls(
        scheduler=scheduler, vae=AutoencoderKL(**TINY_VAE).eval(), text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=word_tokenizer(model_max_length=MAX_SEQUENCE_LENGTH),
        transformer=transformer,
    )  # fmt: skip


def write_flux_mirror(folder: str | os.PathLike, kind: str = "flux-dev", seed: int = 0, **_: Any) -> Path:
    """A tiny FLUX.1 model in the hub layout of `kind` (model_index.json naming FluxPipeline or
    FluxKontextPipeline, transformer, vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler),
    safetensors, for `from_pretrained(folder)`."""
    return save_mirror(tiny_flux_pipeline(kind, seed), folder)


__all__ = [
    "DEV_DEFAULTS", "KONTEXT_DEFAULTS", "SCHNELL_DEFAULTS", "FluxImageBackend", "FluxKontextBackend",
    "load_flux_backend", "load_kontext_backend", "tiny_flux_pipeline", "write_flux_mirror",
]  # fmt: skip
