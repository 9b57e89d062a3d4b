"""P_img: SDXL img2img (SDXL base, SDXL-Turbo, any `StableDiffusionXL*Pipeline` folder), the "sdxl" image family.

Every number follows diffusers' `StableDiffusionXLImg2ImgPipeline` (the test oracle), through the methods
of one such pipeline built over the backend's own modules: `encode_prompt` (both CLIP encoders'
penultimate hidden states, concatenated, and text_encoder_2's pooled projection), `image_processor`,
`prepare_latents` (the VAE posterior sample, then the noise: one generator, in that order, with the VAE
upcast to float32 when its config says `force_upcast`), `prepare_extra_step_kwargs` and
`_get_add_time_ids` (the micro-conditioning: original size = target size = the image's, crop (0, 0),
aesthetic scores 6.0 / 2.5 where the model `requires_aesthetics_score`). A diffusers update that changes
one of these changes ours with it. What is ours: the loop of `__call__` (a few lines), its decode, and
two choices:

- The session's negative prompt "" (its default: "no negative prompt") is what the pipeline does without
  a negative prompt: zeros where the model's `force_zeros_for_empty_prompt` says so (SDXL base, Turbo).
- A strength above 0 runs at least one step (`img2img_timesteps`), as the SD1.5 family does; the
  pipeline runs none when `steps * strength < 1`. Strength 0 never reaches the backend (x~ = x).

No invisible watermark is added (the pipeline adds one only when `invisible-watermark` is installed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ivcore.backends.base import SDComponents
from ivcore.backends.image import img2img_timesteps
from ivcore.backends.image_pipeline import PipelineOver, PooledText, check_kind, save_mirror

# the session's settings for the family: `StableDiffusionXLImg2ImgPipeline.__call__`'s own defaults, and the
# few-step ones of the distilled models (SDXL-Turbo's model card: 2-4 steps, no guidance)
SDXL_DEFAULTS = dict(image_steps=50, image_guidance=5.0)
FEW_STEP_DEFAULTS = dict(image_steps=4, image_guidance=0.0)
AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE = 6.0, 2.5  # the pipeline's defaults (used by the refiner only)
PIPELINE_FLAGS = ("requires_aesthetics_score", "force_zeros_for_empty_prompt")  # model_index.json keys it reads


# one prompt: embeds (1, 77, D1 + D2), both encoders' penultimate hidden states; pooled (1, P), text_encoder_2's
# pooled projection (the UNet's `text_embeds`); empty: as a negative prompt, zeros under `force_zeros_for_empty_prompt`
SDXLText = PooledText


def is_few_step(scheduler) -> bool:
    """Distilled few-step SDXL models (Turbo, Lightning) ship their scheduler with "trailing" timestep spacing."""
    return getattr(scheduler.config, "timestep_spacing", None) == "trailing"


class SDXLImageBackend(PipelineOver, SDComponents):
    """Img2img (P_img of Eq. 1) on SDXL components, under diffusers' names.

    `text_encoder` / `tokenizer` (CLIP ViT-L; None in the refiner) and `text_encoder_2` / `tokenizer_2`
    (OpenCLIP bigG with projection) as the pipeline names them; `flags` are the pipeline's
    `requires_aesthetics_score` and `force_zeros_for_empty_prompt` from model_index.json.
    """

    # `pipeline()`: a StableDiffusionXLImg2ImgPipeline over the backend's current modules
    pipeline_class = "StableDiffusionXLImg2ImgPipeline"
    component_names = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")

    def __init__(
        self, unet, vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler, *,
        flags: dict[str, bool] | None = None, name: str = "",
    ):  # fmt: skip
        vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        size = int(unet.config.sample_size) * vae_factor
        super().__init__(unet, vae, text_encoder, tokenizer, scheduler, size=size, name=name)
        self.text_encoder_2, self.tokenizer_2 = text_encoder_2, tokenizer_2
        self.flags = dict(flags or {})
        # the pipeline resizes nothing that is a multiple of the VAE factor, and the UNet takes any latent size
        self.size_multiple = self.vae_scale_factor
        self.defaults = dict(FEW_STEP_DEFAULTS if is_few_step(scheduler) else SDXL_DEFAULTS)

    def pipeline_options(self) -> dict[str, Any]:
        return {**self.flags, "add_watermarker": False}

    @property
    def text_dtype(self) -> torch.dtype:
        """The dtype the pipeline gives prompt embeddings (text_encoder_2's), which the latents take too."""
        return (self.text_encoder_2 or self.unet).dtype

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> SDXLText:
        """Both encoders' embeddings and the pooled projection of one prompt (the pipeline's `encode_prompt`)."""
        pipe = self.pipeline()
        embeds, _, pooled, _ = pipe.encode_prompt(prompt, device=self.device, do_classifier_free_guidance=False)
        return SDXLText(embeds, pooled, prompt == "")

    def _negative(self, cond: SDXLText, uncond: SDXLText) -> tuple[torch.Tensor, torch.Tensor]:
        if uncond.empty and self.flags.get("force_zeros_for_empty_prompt", True):
            return torch.zeros_like(cond.embeds), torch.zeros_like(cond.pooled)
        return uncond.embeds, uncond.pooled

    def _time_ids(self, pipe, height: int, width: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """SDXL's micro-conditioning, as `__call__` fills it when no sizes are given: all the image's own."""
        size = (height, width)
        projection = (
            int(self.text_encoder_2.config.projection_dim) if self.text_encoder_2 is not None else None
        )  # fmt: skip
        return pipe._get_add_time_ids(
            size, (0, 0), size, AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE, size, (0, 0), size,
            dtype=dtype, text_encoder_projection_dim=projection,
        )  # fmt: skip

    @torch.no_grad()
    def img2img(
        self,
        image: Image.Image,
        cond: SDXLText,
        uncond: SDXLText,
        *,
        strength: float,
        steps: int,
        guidance: float,
        seed: int,
    ) -> Image.Image:
        """Run img2img; strength 0 returns the image unchanged (the user's own intermediate image)."""
        if strength <= 0:
            return image.copy()
        from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img import retrieve_timesteps

        pipe, device, dtype = self.pipeline(), self.device, cond.embeds.dtype
        scheduler = pipe.scheduler
        generator = torch.Generator(device="cpu").manual_seed(seed)
        pixels = pipe.image_processor.preprocess(image)
        retrieve_timesteps(scheduler, steps, device)
        timesteps = img2img_timesteps(scheduler, steps, strength)
        latents = pipe.prepare_latents(pixels, timesteps[:1], 1, 1, dtype, device, generator, True)
        extra = pipe.prepare_extra_step_kwargs(generator, 0.0)
        height, width = (side * self.vae_scale_factor for side in latents.shape[-2:])
        time_ids, negative_time_ids = self._time_ids(pipe, height, width, dtype)

        time_cond = None
        if self.unet.config.time_cond_proj_dim is not None:  # guidance-distilled UNets (LCM-SDXL) take w as input
            w = torch.tensor(guidance - 1).repeat(1)
            time_cond = pipe.get_guidance_scale_embedding(w, embedding_dim=self.unet.config.time_cond_proj_dim)
            time_cond = time_cond.to(device=device, dtype=latents.dtype)
        use_cfg = guidance > 1 and self.unet.config.time_cond_proj_dim is None
        embeds, pooled = cond.embeds, cond.pooled
        if use_cfg:
            negative, negative_pooled = self._negative(cond, uncond)
            embeds, pooled = torch.cat([negative, embeds]), torch.cat([negative_pooled, pooled])
            time_ids = torch.cat([negative_time_ids, time_ids])
        added = {"text_embeds": pooled.to(device), "time_ids": time_ids.to(device)}
        embeds = embeds.to(device)
        for t in timesteps:
            model_in = scheduler.scale_model_input(torch.cat([latents] * 2) if use_cfg else latents, t)
            eps = self.unet(
                model_in, t, encoder_hidden_states=embeds, timestep_cond=time_cond, added_cond_kwargs=added,
                return_dict=False,
            )[0]  # fmt: skip
            if use_cfg:
                eps_uncond, eps_text = eps.chunk(2)
                eps = eps_uncond + guidance * (eps_text - eps_uncond)
            latents = scheduler.step(eps, t, latents, **extra, return_dict=False)[0]
        return pipe.image_processor.postprocess(self._decode(latents), output_type="pil")[0]

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """The VAE decode of `__call__`: float32 for a float16 VAE that says `force_upcast`, the latents'
        normalization undone (`latents_mean` / `latents_std` where the VAE has them, else the scaling factor)."""
        vae = self.vae
        upcast = vae.dtype == torch.float16 and vae.config.force_upcast
        if upcast:
            vae.to(dtype=torch.float32)
        latents = latents.to(vae.dtype)
        config = vae.config
        if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
            mean = torch.tensor(config.latents_mean).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            std = torch.tensor(config.latents_std).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            latents = latents * std / config.scaling_factor + mean
        else:
            latents = latents / config.scaling_factor
        decoded = vae.decode(latents, return_dict=False)[0]
        if upcast:
            vae.to(dtype=torch.float16)
        return decoded


# ---------------------------------------------------------------------------------------- loading
def _listed(index: dict, name: str) -> bool:
    """Whether model_index.json names a component (the refiner lists `text_encoder: [null, null]`)."""
    entry = index.get(name)
    return not index or (isinstance(entry, (list, tuple)) and entry and entry[0] is not None)


def load_sdxl_backend(model: str, *, device, dtype: torch.dtype, **_: Any) -> SDXLImageBackend:
    """SDXL from a hub id or a local folder in the diffusers layout (safetensors only; the fp16 files in fp16)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from ivcore.backends.families import model_index
    from ivcore.backends.loading import load_component, load_scheduler

    index = model_index(model)
    classes = dict(
        unet=UNet2DConditionModel, vae=AutoencoderKL, text_encoder=CLIPTextModel,
        text_encoder_2=CLIPTextModelWithProjection,
    )  # fmt: skip
    parts: dict[str, Any] = {}
    for name, cls in classes.items():
        module = load_component(cls, model, name, dtype) if _listed(index, name) else None
        parts[name] = None if module is None else module.to(device).eval()
    for name in ("tokenizer", "tokenizer_2"):
        parts[name] = CLIPTokenizer.from_pretrained(model, subfolder=name) if _listed(index, name) else None
    flags = {k: bool(index[k]) for k in PIPELINE_FLAGS if k in index}
    return SDXLImageBackend(**parts, scheduler=load_scheduler(model), flags=flags, name=str(model))


# ---------------------------------------------------------------------------------------- tiny models
# SDXL base's UNet at a tiny width: the same block types (no attention at the top level), "text_time" added
# embedding (6 time ids of `addition_time_embed_dim` + text_encoder_2's projection), linear projections
TINY_UNET = dict(
    sample_size=16, block_out_channels=(16, 32, 32), layers_per_block=1, attention_head_dim=(2, 4, 4),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), transformer_layers_per_block=(1, 1, 2),
    cross_attention_dim=64, addition_embed_type="text_time", addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=6 * 8 + 32, use_linear_projection=True, norm_num_groups=8,
)  # fmt: skip
# SDXL's VAE: 8x downsampling, its scaling factor, and force_upcast (it overflows in float16)
TINY_VAE = dict(
    block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=1, norm_num_groups=8,
    sample_size=128, scaling_factor=0.13025, force_upcast=True,
)  # fmt: skip
# the schedulers the repositories ship: SDXL base Euler with "leading" spacing, SDXL-Turbo Euler ancestral "trailing"
SDXL_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    prediction_type="epsilon", interpolation_type="linear", use_karras_sigmas=False, steps_offset=1,
    timestep_spacing="leading",
)  # fmt: skip
MIRROR_KINDS = {"sdxl": "stabilityai/stable-diffusion-xl-base-1.0", "sdxl-turbo": "stabilityai/sdxl-turbo"}


def tiny_sdxl_pipeline(kind: str = "sdxl", seed: int = 0):
    """A random-init tiny `StableDiffusionXLPipeline` in one repository's layout (64 x 64 in well under a second)."""
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from ivcore.backends.tiny import TEXT_CONFIG, tiny_tokenizer

    check_kind(kind, MIRROR_KINDS)
    torch.manual_seed(seed)
    turbo = kind == "sdxl-turbo"
    unet = UNet2DConditionModel(**{**TINY_UNET, "sample_size": TINY_UNET["sample_size"] // (2 if turbo else 1)})
    tokenizer, tokenizer_2 = tiny_tokenizer(), tiny_tokenizer()
    tokenizer_2.pad_token = "!"  # as SDXL's tokenizer_2 (OpenCLIP pads with "!", CLIP with the end token)
    text = dict(TEXT_CONFIG, vocab_size=len(tokenizer))
    if turbo:  # from_config: the ancestral sampler has no `interpolation_type`, the hub's file carries it anyway
        scheduler = EulerAncestralDiscreteScheduler.from_config({**SDXL_SCHEDULER, "timestep_spacing": "trailing"})
    else:
        scheduler = EulerDiscreteScheduler(**SDXL_SCHEDULER)
    return StableDiffusionXLPipeline(
        vae=AutoencoderKL(**TINY_VAE).eval(), text_encoder=CLIPTextModel(CLIPTextConfig(**text)).eval(),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text, hidden_act="gelu")).eval(),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet.eval(), scheduler=scheduler, add_watermarker=False,
    )  # fmt: skip


def write_sdxl_mirror(folder: str | os.PathLike, kind: str = "sdxl", seed: int = 0, **_: Any) -> Path:
    """A tiny SDXL model in the hub layout of `kind` (model_index.json naming StableDiffusionXLPipeline, unet, vae,
    text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler), safetensors, for `from_pretrained(folder)`."""
    return save_mirror(tiny_sdxl_pipeline(kind, seed), folder)


__all__ = [
    "SDXL_DEFAULTS", "FEW_STEP_DEFAULTS", "SDXLImageBackend", "SDXLText", "load_sdxl_backend", "tiny_sdxl_pipeline",
    "write_sdxl_mirror",
]  # fmt: skip
