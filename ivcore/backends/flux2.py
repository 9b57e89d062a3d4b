"""P_img: FLUX.2 klein (`Flux2KleinPipeline`), an edit family: small, step-distilled, edits with a reference image.

Every number follows diffusers' own pipeline (the test oracle), through the methods of one pipeline built over
the backend's modules (`ivcore.backends.image_pipeline`): `encode_prompt` (the Qwen3 text encoder's prompt in
its chat template, 512 tokens, the hidden states of layers 9, 18 and 27 stacked on the feature axis, and the
text position ids), the image processor (`Flux2ImageProcessor`, the reference cropped to a multiple of 16 and
brought under 1024 x 1024 pixels as `__call__` does), `prepare_latents` (the noise, packed into tokens with
their position ids), `prepare_image_latents` (the reference's VAE latents, the mode, patchified and normalized
with the VAE's batch-norm statistics, position ids at time 10), `_unpack_latents_with_ids`,
`_unpatchify_latents`, and the module's `retrieve_timesteps` with `compute_empirical_mu`. What is ours: the
loop of `__call__`, its decode, and the mapping of the session's settings:

- The content text is the instruction and the image (x, or x + paint for x~') is the reference; every step runs
  from pure noise. `content_strength` 0 is x~ = x exactly; any strength above 0 runs the same whole edit (the
  image cache keeps one entry for all of them).
- `image_guidance` is the pipeline's `guidance_scale`. The distilled models (`is_distilled` in model_index.json:
  FLUX.2 klein 4B, 9B) ignore it (one branch; defaults 4 steps, guidance 1.0); the base models run CFG above 1
  against the negative prompt (the pipeline's is always "", which is also the session's "none"; another
  session negative prompt goes in as `negative_prompt_embeds`), defaults 50 steps, guidance 4.0.
- The transformer has no guidance embedding: no distilled guidance, no true CFG setting.

It runs at any size that is a multiple of the VAE's factor times the packing's 2 (16), at least 64 pixels a side
(the image processor refuses a smaller reference).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from ivcore.backends.image_pipeline import TransformerImageBackend, check_kind, load_pipeline_parts, save_mirror

# the pipeline's documented settings: the distilled klein models at 4 steps (guidance ignored: 1.0), the base
# ("klein-base") models at `__call__`'s 50 steps and guidance 4.0
DISTILLED_DEFAULTS = dict(image_steps=4, image_guidance=1.0)
BASE_DEFAULTS = dict(image_steps=50, image_guidance=4.0)
MAX_SEQUENCE_LENGTH = 512  # Qwen3 tokens: `__call__`'s default
MAX_REFERENCE_AREA = 1024 * 1024  # `__call__` shrinks a larger reference image to this many pixels
COMPONENTS = ("scheduler", "vae", "text_encoder", "tokenizer", "transformer")


class KleinText(NamedTuple):
    """One prompt as `Flux2KleinPipeline.encode_prompt` gives it (the session's text stage caches it)."""

    embeds: torch.Tensor  # (1, 512, 3 D): the Qwen3 hidden states of three layers, stacked per token
    ids: torch.Tensor  # (1, 512, 4): the text position ids
    empty: bool  # the prompt was "": as a negative prompt, the session's "no negative prompt"


class Flux2KleinBackend(TransformerImageBackend):
    """FLUX.2 klein as P_img, under diffusers' names (`transformer`, `vae`: AutoencoderKLFlux2, `text_encoder`:
    Qwen3, `tokenizer`, `scheduler`); `is_distilled` as model_index.json says."""

    pipeline_class = "Flux2KleinPipeline"
    component_names = COMPONENTS
    edits = True  # strength only switches P_img on
    min_side = 64  # `Flux2ImageProcessor.check_image_input` refuses a smaller reference image

    def __init__(self, transformer, vae, text_encoder, tokenizer, scheduler, *, is_distilled=False, name=""):
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.is_distilled = bool(is_distilled)
        super().__init__(transformer, vae, scheduler, name=name)

    def family_defaults(self) -> dict[str, Any]:
        """The distilled models' few steps, or the base models' 50 with CFG."""
        return DISTILLED_DEFAULTS if self.is_distilled else BASE_DEFAULTS

    def pipeline_options(self) -> dict[str, Any]:
        return {"is_distilled": self.is_distilled}

    # ------------------------------------------------------------------ the pipeline's steps
    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> KleinText:
        """The Qwen3 embeddings and text ids of one prompt (the pipeline's `encode_prompt`)."""
        embeds, ids = self.pipeline().encode_prompt(prompt, device=self.device, max_sequence_length=MAX_SEQUENCE_LENGTH)
        return KleinText(embeds, ids, prompt == "")

    def _reference(self, pipe, image: Image.Image) -> torch.Tensor:
        """`__call__`'s step 4 for one image: under 1024 x 1024 pixels, cropped to a multiple of 16."""
        processor = pipe.image_processor
        width, height = image.size
        if width * height > MAX_REFERENCE_AREA:
            image = processor._resize_to_target_area(image, MAX_REFERENCE_AREA)
            width, height = image.size
        multiple = self.vae_scale_factor * 2
        width, height = width // multiple * multiple, height // multiple * multiple
        return processor.preprocess(image, height=height, width=width, resize_mode="crop")

    def _denoise(self, pipe, latents, ids, reference, ref_ids, cond: KleinText, uncond: KleinText, guidance: float):
        """The loop of `__call__`: the reference tokens appended to the noise tokens and their part of the
        prediction dropped; CFG against `uncond` on the base models above guidance 1."""
        cfg = guidance > 1 and not self.is_distilled
        model_ids = torch.cat([ids, ref_ids], dim=1)
        for t in pipe.scheduler.timesteps:
            timestep = t.expand(latents.shape[0]).to(latents.dtype)
            model_in = torch.cat([latents, reference], dim=1).to(self.transformer.dtype)
            preds = [
                self.transformer(
                    hidden_states=model_in, timestep=timestep / 1000, guidance=None, encoder_hidden_states=text.embeds,
                    txt_ids=text.ids, img_ids=model_ids, joint_attention_kwargs=None, return_dict=False,
                )[0][:, : latents.size(1) :]
                for text in ([cond, uncond] if cfg else [cond])
            ]  # fmt: skip
            pred = preds[0] if not cfg else preds[1] + guidance * (preds[0] - preds[1])
            latents = pipe.scheduler.step(pred, t, latents, return_dict=False)[0]
        return latents

    def _decode(self, pipe, latents: torch.Tensor, ids: torch.Tensor, height: int, width: int) -> Image.Image:
        """`__call__`'s decode: scatter the tokens back, undo the batch-norm normalization, unpatchify, decode."""
        multiple = self.vae_scale_factor * 2
        latents = pipe._unpack_latents_with_ids(latents, ids, height // multiple, width // multiple)
        bn = self.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + self.vae.config.batch_norm_eps).to(
            latents.device, latents.dtype
        )
        latents = pipe._unpatchify_latents(latents * std + mean)
        decoded = self.vae.decode(latents, return_dict=False)[0]
        return pipe.image_processor.postprocess(decoded, output_type="pil")[0]

    @torch.no_grad()
    def img2img(
        self,
        image: Image.Image,
        cond: KleinText,
        uncond: KleinText,
        *,
        strength: float,
        steps: int,
        guidance: float,
        seed: int,
    ) -> Image.Image:
        """Flux2KleinPipeline(image=image, prompt=...) at the image's own size; strength 0 returns the image
        unchanged, any other strength runs the whole edit."""
        from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu, retrieve_timesteps

        if strength <= 0:
            return image.copy()
        pipe, device = self.pipeline(), self.device
        width, height = image.size
        generator = torch.Generator(device="cpu").manual_seed(seed)
        reference = self._reference(pipe, image)
        channels = self.transformer.config.in_channels // 4
        latents, ids = pipe.prepare_latents(1, channels, height, width, cond.embeds.dtype, device, generator)
        reference, ref_ids = pipe.prepare_image_latents([reference], 1, generator, device, self.vae.dtype)
        sigmas = np.linspace(1.0, 1 / steps, steps)
        if getattr(pipe.scheduler.config, "use_flow_sigmas", False):
            sigmas = None
        mu = compute_empirical_mu(image_seq_len=latents.shape[1], num_steps=steps)
        retrieve_timesteps(pipe.scheduler, steps, device, sigmas=sigmas, mu=mu)
        pipe.scheduler.set_begin_index(0)
        latents = self._denoise(pipe, latents, ids, reference, ref_ids, cond, uncond, guidance)
        return self._decode(pipe, latents, ids, height, width)


# ---------------------------------------------------------------------------------------- loading
def load_klein_backend(model: str, *, device, dtype: torch.dtype, **_: Any) -> Flux2KleinBackend:
    """FLUX.2 klein (a `Flux2KleinPipeline` folder or hub id), safetensors only.

    FLUX.2 ships in bfloat16: a float16 request loads bfloat16; float32 stays float32 (the CPU)."""
    pipe, parts = load_pipeline_parts(Flux2KleinBackend.pipeline_class, model, device, dtype, COMPONENTS)
    return Flux2KleinBackend(**parts, is_distilled=pipe.config.is_distilled, name=str(model))


# ---------------------------------------------------------------------------------------- tiny models
# Qwen3 (klein 4B: Qwen3-4B) at a tiny width; 27 layers, since the pipeline reads hidden states 9, 18 and 27
TINY_VOCAB = 128
TINY_QWEN3 = dict(
    vocab_size=TINY_VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=27, num_attention_heads=2,
    num_key_value_heads=1, head_dim=8, max_position_embeddings=1024, use_cache=False, tie_word_embeddings=True,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, pad_token_id=0, eos_token_id=1,
)  # fmt: skip
# FLUX.2's transformer: one double- and one single-stream block, four rotary axes summing to the head dim, no
# guidance embedding (klein), the text width three Qwen3 layers stacked
TINY_TRANSFORMER = dict(
    patch_size=1, in_channels=32, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
    joint_attention_dim=3 * TINY_QWEN3["hidden_size"], timestep_guidance_channels=32, axes_dims_rope=(4, 4, 4, 4),
    guidance_embeds=False,
)  # fmt: skip
# AutoencoderKLFlux2: 8x downsampling, latents patchified 2 x 2 and normalized by a batch norm over the patches
TINY_VAE = dict(
    block_out_channels=(8, 8, 16, 16), layers_per_block=1, latent_channels=8, norm_num_groups=8, sample_size=128,
)  # fmt: skip
# the repository's scheduler: flow matching with the pipeline's `mu` (dynamic shifting)
KLEIN_SCHEDULER = dict(
    num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
    base_image_seq_len=256, max_image_seq_len=4096, time_shift_type="exponential",
)  # fmt: skip
# Qwen3's template renders the user turn and the assistant header; the word-level stand-in renders the text and
# `</s>` for the header (the pipeline passes `enable_thinking=False`, which the template may ignore)
CHAT_TEMPLATE = (
    "{%- for message in messages -%}{{ message['content'] + ' ' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}</s>{%- endif -%}"
)
MIRROR_KINDS = {"flux2-klein": "black-forest-labs/FLUX.2-klein-4B"}


def qwen3_tokenizer():
    """The word-level stand-in for Qwen3's tokenizer, with a chat template."""
    from ivcore.backends.word_tokenizer import word_tokenizer

    tokenizer = word_tokenizer(vocab_size=TINY_VOCAB, model_max_length=131072)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_klein_pipeline(seed: int = 0, is_distilled: bool = True):
    """A random-init tiny FLUX.2 klein pipeline in the repository's layout (64 x 48 in a fraction of a second).

    The VAE's batch-norm statistics are drawn too (random init has mean 0, variance 1: a normalization that
    does nothing would hide a missing one)."""
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    vae = AutoencoderKLFlux2(**TINY_VAE).eval()
    vae.bn.running_mean.copy_(torch.randn_like(vae.bn.running_mean) * 0.1)
    vae.bn.running_var.copy_(torch.rand_like(vae.bn.running_var) + 0.5)
    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**KLEIN_SCHEDULER), vae=vae,
        text_encoder=Qwen3ForCausalLM(Qwen3Config(**TINY_QWEN3)).eval(), tokenizer=qwen3_tokenizer(),
        transformer=Flux2Transformer2DModel(**TINY_TRANSFORMER).eval(), is_distilled=is_distilled,
    )  # fmt: skip


def write_klein_mirror(folder: str | os.PathLike, kind: str = "flux2-klein", seed: int = 0, **_: Any) -> Path:
    """A tiny FLUX.2 klein model in the hub layout (model_index.json naming Flux2KleinPipeline with
    `is_distilled`, transformer, vae, text_encoder, tokenizer, scheduler), safetensors, for
    `from_pretrained(folder)`."""
    check_kind(kind, MIRROR_KINDS)
    return save_mirror(tiny_klein_pipeline(seed), folder)


__all__ = [
    "BASE_DEFAULTS", "DISTILLED_DEFAULTS", "Flux2KleinBackend", "KleinText", "load_klein_backend",
    "tiny_klein_pipeline", "write_klein_mirror",
]  # fmt: skip
