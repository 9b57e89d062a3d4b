"""P_img: Qwen-Image-Edit (edit by instruction), the "qwen-image-edit" image family.

Every number follows diffusers' `QwenImageEditPipeline` (the test oracle), through the methods of one pipeline
built over the backend's modules (`ivcore.backends.image_pipeline`): `encode_prompt` (Qwen2.5-VL sees the
reference image and the instruction in the pipeline's chat template; its last hidden states past the template's
system turn), the image processor, `prepare_latents` (the reference's VAE latents, normalized by the VAE's
`latents_mean` / `latents_std`, as tokens appended to the noise), `_unpack_latents`, and the module's
`calculate_shift` / `retrieve_timesteps`. What is ours: the loop of `__call__`, its decode, and the mapping of
the session's settings:

- An edit family: the content text is the instruction and the image (x, or x + paint for x~') the reference.
  Every strength above 0 runs the same edit from pure noise: strength only switches it on (0: x~ = x exactly).
- `image_guidance` is the pipeline's `true_cfg_scale` (the model card's 4.0): above 1 it runs the negative prompt
  as a second branch, the combination rescaled to the conditional prediction's norm as `__call__` does. The
  session's negative prompt "" (none) is the model card's `negative_prompt=" "`, so true CFG is on by default.
  Qwen-Image-Edit's transformer has no guidance embedding; one that has it gets `image_guidance` there too.
- The text depends on the image (the VL encoder sees it): the text stage caches the prompt (`EditPrompt`), and
  the encoding runs with the reference inside P_img, which the image stage caches.
- The pipeline's resizing is off: the reference is not scaled to a 1024 x 1024 area (`calculate_dimensions`),
  so P_img runs at the session's size, any multiple of the VAE's 8 times the packing's 2 (16).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from transformers import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin  # noqa: F401 (diffusers finds the mirror's loader here)

from ivcore.backends.image_pipeline import (
    TransformerImageBackend,
    check_kind,
    load_pipeline_parts,
    save_mirror,
    shifted_timesteps,
)

# the model card's: 50 steps, true_cfg_scale 4.0 (with negative_prompt " ")
DEFAULTS = dict(image_steps=50, image_guidance=4.0)
EMPTY_NEGATIVE = " "  # the model card's negative prompt: the session's "" (none) runs as it
COMPONENTS = ("scheduler", "vae", "text_encoder", "tokenizer", "processor", "transformer")


class EditPrompt(NamedTuple):
    """A prompt as the text stage caches it for a family whose text encoder also sees the image: the text only,
    encoded with the reference image inside `img2img`."""

    prompt: str
    empty: bool  # "": as a negative prompt, the session's "no negative prompt"


class QwenImageEditBackend(TransformerImageBackend):
    """Qwen-Image-Edit on its components, under diffusers' names (`transformer`, `vae`, `text_encoder`:
    Qwen2.5-VL, `tokenizer`, `processor`: the VL processor with its image processor, `scheduler`)."""

    pipeline_class = "QwenImageEditPipeline"
    component_names = COMPONENTS
    edits = True  # strength only switches P_img on
    family_settings = DEFAULTS

    def __init__(self, transformer, vae, text_encoder, tokenizer, processor, scheduler, *, name=""):
        self.text_encoder, self.tokenizer, self.processor = text_encoder, tokenizer, processor
        super().__init__(transformer, vae, scheduler, name=name)

    @staticmethod
    def vae_factor(vae) -> int:
        """Qwen-Image's VAE (Wan 2.1's causal 3D VAE) halves the image once a temporal-downsampling entry."""
        return 2 ** len(vae.temperal_downsample)

    def encode_prompt(self, prompt: str) -> EditPrompt:
        """The prompt itself: Qwen2.5-VL encodes it together with the reference image in `img2img`."""
        return EditPrompt(prompt, prompt == "")

    def _predict(self, model_in, timestep, guidance, embeds, mask, img_shapes, context: str) -> torch.Tensor:
        with self.transformer.cache_context(context):
            return self.transformer(
                hidden_states=model_in, timestep=timestep / 1000, guidance=guidance, encoder_hidden_states_mask=mask,
                encoder_hidden_states=embeds, img_shapes=img_shapes, attention_kwargs={}, return_dict=False,
            )[0]  # fmt: skip

    @torch.no_grad()
    def img2img(
        self,
        image: Image.Image,
        cond: EditPrompt,
        uncond: EditPrompt,
        *,
        strength: float,
        steps: int,
        guidance: float,
        seed: int,
    ) -> Image.Image:
        """QwenImageEditPipeline(image=image, prompt=cond, negative_prompt=uncond or " ", true_cfg_scale=guidance)
        at the image's own size; strength 0 returns the image unchanged, any other strength runs the whole edit."""
        if strength <= 0:
            return image.copy()
        pipe, device = self.pipeline(), self.device
        width, height = image.size
        generator = torch.Generator(device="cpu").manual_seed(seed)
        reference = pipe.image_processor.resize(image, height, width)  # the session's size, not a 1024^2 area
        pixels = pipe.image_processor.preprocess(reference, height, width).unsqueeze(2)
        embeds, mask = pipe.encode_prompt(prompt=cond.prompt, image=reference, device=device)
        true_cfg = guidance > 1
        if true_cfg:
            negative = EMPTY_NEGATIVE if uncond.empty else uncond.prompt
            neg_embeds, neg_mask = pipe.encode_prompt(prompt=negative, image=reference, device=device)
        channels = self.transformer.config.in_channels // 4
        latents, image_latents = pipe.prepare_latents(
            pixels, 1, channels, height, width, embeds.dtype, device, generator
        )
        f = self.vae_scale_factor
        img_shapes = [[(1, height // f // 2, width // f // 2)] * 2]
        timesteps = shifted_timesteps(pipe, steps, latents.shape[1], device)
        embedded = None
        if self.transformer.config.guidance_embeds:
            embedded = torch.full([1], guidance, device=device, dtype=torch.float32).expand(latents.shape[0])
        pipe.scheduler.set_begin_index(0)
        for t in timesteps:
            model_in = torch.cat([latents, image_latents], dim=1)
            timestep = t.expand(latents.shape[0]).to(latents.dtype)
            pred = self._predict(model_in, timestep, embedded, embeds, mask, img_shapes, "cond")[:, : latents.size(1)]
            if true_cfg:
                neg = self._predict(model_in, timestep, embedded, neg_embeds, neg_mask, img_shapes, "uncond")
                neg = neg[:, : latents.size(1)]
                combined = neg + guidance * (pred - neg)
                pred = combined * (torch.norm(pred, dim=-1, keepdim=True) / torch.norm(combined, dim=-1, keepdim=True))
            latents = pipe.scheduler.step(pred, t, latents, return_dict=False)[0]
        return self._decode(pipe, latents, height, width)

    def _decode(self, pipe, latents: torch.Tensor, height: int, width: int) -> Image.Image:
        """`__call__`'s decode: unpack, undo the latents' normalization, decode the one frame, postprocess."""
        latents = pipe._unpack_latents(latents, height, width, self.vae_scale_factor).to(self.vae.dtype)
        config = self.vae.config
        mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        inv_std = 1.0 / torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1).to(
            latents.device, latents.dtype
        )
        decoded = self.vae.decode(latents / inv_std + mean, return_dict=False)[0][:, :, 0]
        return pipe.image_processor.postprocess(decoded, output_type="pil")[0]


# ---------------------------------------------------------------------------------------- loading
def load_qwen_edit_backend(model: str, *, device, dtype: torch.dtype, **_: Any) -> QwenImageEditBackend:
    """Qwen-Image-Edit (a `QwenImageEditPipeline` folder or hub id), safetensors only.

    Qwen-Image ships in bfloat16: a float16 request loads bfloat16; float32 stays float32 (the CPU)."""
    _, parts = load_pipeline_parts(QwenImageEditBackend.pipeline_class, model, device, dtype, COMPONENTS)
    return QwenImageEditBackend(**parts, name=str(model))


# ---------------------------------------------------------------------------------------- tiny models
class QwenVLImageProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without its video processor, for the tiny mirror: transformers builds video processors
    only with torchvision installed, and the edit pipeline sends images only. Same `__call__`: the image
    processor's patches and grid, `<|image_pad|>` repeated once a merged patch. (Real folders name
    transformers' `Qwen2VLProcessor`, which loads where torchvision is installed.)"""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)


VL_SPECIALS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
# Qwen-Image's transformer at a tiny width: 64 input channels (16 latent channels in 2 x 2 patches), the
# VL encoder's width, rotary axes summing to the head dim
TINY_TRANSFORMER = dict(
    patch_size=2, in_channels=64, out_channels=16, num_layers=1, attention_head_dim=16, num_attention_heads=2,
    joint_attention_dim=32, axes_dims_rope=(4, 6, 6),
)  # fmt: skip
# Qwen-Image's VAE (Wan 2.1's causal 3D VAE): 8x spatial downsampling, 16 latent channels, its latents_mean/std
TINY_VAE = dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True])
# Qwen2.5-VL: a 2-layer language model (mrope sections summing to half the head dim) and a 2-block vision tower
# (4-pixel patches merged 2 x 2, one window block and one full-attention block) projecting to its width
TINY_TEXT = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 1, 1]},
    max_position_embeddings=4096, eos_token_id=1, pad_token_id=0, bos_token_id=None,
)  # fmt: skip
TINY_VISION = dict(
    depth=2, hidden_size=16, intermediate_size=32, num_heads=2, patch_size=4, spatial_merge_size=2,
    temporal_patch_size=2, window_size=16, out_hidden_size=32, fullatt_block_indexes=[1],
)  # fmt: skip
# the processor's image side: at most 32 x 32 pixels (16 merged patches) reach the vision tower
TINY_IMAGE_PROCESSOR = dict(patch_size=4, merge_size=2, temporal_patch_size=2, min_pixels=8 * 8, max_pixels=32 * 32)
# the repository's scheduler: flow matching, exponential dynamic shifting, a terminal shift
SCHEDULER = dict(
    num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
    base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential",
)  # fmt: skip
MIRROR_KINDS = {"qwen-image-edit": "Qwen/Qwen-Image-Edit"}


def tiny_qwen_edit_pipeline(seed: int = 0):
    """A random-init tiny `QwenImageEditPipeline` in the hub layout (64 x 48 in about a second a step)."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor

    from ivcore.backends.word_tokenizer import word_tokenizer

    tokenizer = word_tokenizer(vocab_size=128, model_max_length=32768)
    tokenizer.add_special_tokens({"additional_special_tokens": list(VL_SPECIALS)})
    ids = dict(zip(VL_SPECIALS, tokenizer.convert_tokens_to_ids(list(VL_SPECIALS)), strict=True))
    processor = QwenVLImageProcessor(Qwen2VLImageProcessor(**TINY_IMAGE_PROCESSOR), tokenizer)
    torch.manual_seed(seed)
    config = Qwen2_5_VLConfig(
        text_config=dict(TINY_TEXT, vocab_size=len(tokenizer)), vision_config=TINY_VISION,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    return QwenImageEditPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), vae=AutoencoderKLQwenImage(**TINY_VAE).eval(),
        text_encoder=Qwen2_5_VLForConditionalGeneration(config).eval(), tokenizer=tokenizer, processor=processor,
        transformer=QwenImageTransformer2DModel(**TINY_TRANSFORMER).eval(),
    )  # fmt: skip


def write_qwen_edit_mirror(folder: str | os.PathLike, kind: str = "qwen-image-edit", seed: int = 0, **_: Any) -> Path:
    """A tiny Qwen-Image-Edit model in the hub layout (model_index.json naming QwenImageEditPipeline,
    transformer, vae, text_encoder, tokenizer, processor, scheduler), safetensors, for `from_pretrained(folder)`.
    The processor is `QwenVLImageProcessor` of this module (no torchvision needed)."""
    check_kind(kind, MIRROR_KINDS)
    return save_mirror(tiny_qwen_edit_pipeline(seed), folder)


__all__ = [
    "DEFAULTS", "EditPrompt", "QwenImageEditBackend", "QwenVLImageProcessor", "load_qwen_edit_backend",
    "tiny_qwen_edit_pipeline", "write_qwen_edit_mirror",
]  # fmt: skip
