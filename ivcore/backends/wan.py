"""P_video: Wan 2.1 / 2.2 image-to-video behind the same Session and Eq. 4 loop as PIA and SVD.

One module for the three Wan variants `WanImageToVideoPipeline` runs (told apart by its config):

- Wan 2.1 I2V (480P, 720P): the transformer input is `cat([noisy latents, condition], dim=1)`, where
  the condition is a 4-channel first-frame mask over the compressed time axis plus the normalized
  VAE latents (posterior mode) of [image, zeros, ...]; CLIP image tokens go in as
  `encoder_hidden_states_image`. Eq. 4 is then exactly what PIA does: one condition per branch.
- Wan 2.2 I2V-A14B: the same input, no CLIP tokens, and two experts: `transformer` above
  `boundary_ratio * num_train_timesteps`, `transformer_2` below, each with its own guidance
  (`guidance_2`, default the session's guidance, as the pipeline's `guidance_scale_2`).
- Wan 2.2 TI2V-5B (`expand_timesteps`): the image is the first latent frame. Each branch's model input
  has its own image's latent frame put in place of frame 0, with timestep 0 on those tokens; after
  the loop frame 0 becomes `lam * E(x~) + (1 - lam) * E(x~')` (`finish`): at lam 1 the pipeline's
  frame of x~, at lam 0 that of x~', in between the latent blend of the two (docs/backbones.md).

Every number follows `WanImageToVideoPipeline` (the test oracle), through its own methods:
`encode_prompt` (with the `max_sequence_length=512` its `__call__` passes, not the method's 226),
`encode_image`, `prepare_latents` and `video_processor`; the model predicts a velocity and the
guided velocities are blended; one `FlowMatchEulerDiscreteScheduler.step` per timestep.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image

from ivcore.backends import step_cache
from ivcore.backends.base import BackendSetting
from ivcore.backends.dit import DiTVideoBackend, is_test_model

MAX_SEQUENCE_LENGTH = 512  # what WanImageToVideoPipeline.__call__ passes to encode_prompt
# The negative prompt Wan's model cards and diffusers' examples use (the model was tuned with it).
WAN_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards"
)
# variant -> (native (width, height), frames, fps, steps, guidance): the model cards' settings
WAN_VARIANTS: dict[str, dict[str, Any]] = {
    "wan2.1-i2v-480p": dict(size=(832, 480), num_frames=81, fps=16, steps=50, guidance=5.0),
    "wan2.1-i2v-720p": dict(size=(1280, 720), num_frames=81, fps=16, steps=50, guidance=5.0),
    "wan2.2-i2v-a14b": dict(size=(1280, 720), num_frames=81, fps=16, steps=40, guidance=3.5),
    "wan2.2-ti2v-5b": dict(size=(1280, 704), num_frames=121, fps=24, steps=50, guidance=5.0),
    "tiny": dict(size=(64, 48), num_frames=9, fps=8, steps=4, guidance=5.0),
}


class WanEncoding(NamedTuple):
    """What `encode_images` returns for N images (a tuple, so the stage cache can size it)."""

    condition: torch.Tensor  # (1, 20 or 16, f, h, w): mask + latents of [image, zeros...], or the first latent frame
    image_embeds: torch.Tensor | None  # (1, tokens, D) CLIP tokens (Wan 2.1), None for Wan 2.2
    clip: torch.Tensor | None  # (1, 16, f, h, w) normalized latents of all N frames (trajectory path mode)


class WanCondition(NamedTuple):
    condition: torch.Tensor
    image_embeds: torch.Tensor | None


def variant_of(pipe, model: str = "") -> str:
    """Which Wan variant a pipeline is, from its config (and the repository name for 480P / 720P)."""
    if pipe.config.expand_timesteps:
        return "wan2.2-ti2v-5b"
    if pipe.transformer_2 is not None or pipe.config.boundary_ratio is not None:
        return "wan2.2-i2v-a14b"
    return "wan2.1-i2v-720p" if "720" in str(model) else "wan2.1-i2v-480p"


class WanVideoBackend(DiTVideoBackend):
    """Wan image-to-video (P_video of Eq. 1) over a `WanImageToVideoPipeline`'s modules.

    `guidance_2`: the low-noise expert's guidance (Wan 2.2 A14B; None: the session's guidance).
    `max_rows` splits the transformer calls (rows are independent videos), lowered on out-of-memory.
    """

    guidance_2 = BackendSetting()
    step_cache_rows = "separate"  # the pipeline calls cond and uncond one by one, in contexts of their own

    def __init__(self, pipe, *, variant: str | None = None, name: str = "", **overrides: Any):
        variant = variant or variant_of(pipe, name)
        # test models (a transformer narrower than 256) get the tiny settings: 64 x 48, 9 frames, 4 steps
        tiny = is_test_model(pipe.transformer)
        settings = {**WAN_VARIANTS["tiny" if tiny else variant], **overrides}
        defaults = dict(steps=settings["steps"], guidance=settings["guidance"], negative_prompt=WAN_NEGATIVE_PROMPT)
        if tiny:
            defaults["negative_prompt"] = ""
        super().__init__(
            pipe, native_size=settings["size"], num_frames=settings["num_frames"], fps=settings["fps"],
            defaults=defaults, name=name or variant,
        )  # fmt: skip
        self.variant = variant
        self.spatial_factor = int(pipe.vae_scale_factor_spatial)
        self.temporal_factor = int(pipe.vae_scale_factor_temporal)
        self.patch = tuple(int(p) for p in pipe.transformer.config.patch_size[1:])
        m = self.size_multiple  # the tiny 64 x 48 becomes 64 x 64 where the multiple is 32 (TI2V-5B)
        self.native_size = tuple(-(-side // m) * m for side in self.native_size)
        self.guidance_2 = None

    @property
    def first_frame(self) -> bool:
        """True for TI2V-5B: the image is the first latent frame, not extra channels."""
        return bool(self.pipe.config.expand_timesteps)

    @property
    def max_frames(self) -> int:
        return self.temporal_factor * (int(self.pipe.transformer.config.rope_max_seq_len) - 1) + 1

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """UMT5 embeddings (1, 512, D), padded with zeros past the text as the pipeline does."""
        embeds, _ = self.pipe.encode_prompt(
            prompt, do_classifier_free_guidance=False, max_sequence_length=MAX_SEQUENCE_LENGTH, device=self.device
        )
        return embeds.to(self.dtype)

    # ------------------------------------------------------------------ image condition
    def _prepare(self, image: Image.Image, num_frames: int) -> torch.Tensor:
        """The condition of one image, from the pipeline's own `prepare_latents` (no generator draw)."""
        width, height = image.size
        pixels = self.pipe.video_processor.preprocess(image, height=height, width=width)
        pixels = pixels.to(self.device, dtype=torch.float32)
        shape = self.latent_shape(num_frames, height, width)
        placeholder = torch.zeros(shape, dtype=torch.float32, device=self.device)  # noise is drawn by the session
        out = self.pipe.prepare_latents(
            pixels, 1, shape[1], height, width, num_frames, torch.float32, self.device, None, placeholder
        )
        return out[1]

    @torch.no_grad()
    def _encode_clip(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Normalized VAE latents (mode) of N frames as one clip, (1, 16, f, h, w): the trajectory target."""
        width, height = images[0].size
        frames = self.pipe.video_processor.preprocess(list(images), height=height, width=width)  # (N, 3, H, W)
        video = frames.permute(1, 0, 2, 3).unsqueeze(0).to(self.device, dtype=self.vae.dtype)
        latents = self.vae.encode(video).latent_dist.mode().float()
        config = self.vae.config
        mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1, 1).to(latents)
        inv_std = 1.0 / torch.tensor(config.latents_std).view(1, -1, 1, 1, 1).to(latents)
        return (latents - mean) * inv_std

    @torch.no_grad()
    def encode_images(
        self, images: Sequence[Image.Image], generator: torch.Generator, num_frames: int | None = None
    ) -> WanEncoding:
        """The condition of x~ (one image) or of trajectory path mode's animated x~' (one image per frame).

        Wan's VAE encode takes the posterior mode, so the generator is not drawn from. With N > 1
        images the branch is conditioned on the first (the model takes one image), and the whole clip
        is encoded by the 3D VAE as the target of the trajectory pull (`trajectory_target`).
        """
        images = list(images)
        num_frames = int(num_frames or self.num_frames)
        condition = self._prepare(images[0], num_frames)
        embeds = None
        if self.pipe.transformer.config.image_dim is not None:  # Wan 2.1: CLIP tokens of the image
            embeds = self.pipe.encode_image(images[0], self.device).to(self.dtype)
        clip = self._encode_clip(images) if len(images) > 1 else None
        return WanEncoding(condition, embeds, clip)

    def trajectory_target(self, encoded: WanEncoding) -> torch.Tensor:
        """Latents (1, 16, f, h, w) the trajectory guidance pulls the moving regions toward."""
        if encoded.clip is not None:
            return encoded.clip
        return self._first_latents(encoded.condition)

    def _first_latents(self, condition: torch.Tensor) -> torch.Tensor:
        return condition if self.first_frame else condition[:, -self.latent_channels :]

    def reference_latents(self, encoded: WanEncoding) -> torch.Tensor:
        """(1, 16, h, w): the image's latent frame, for Eq. 5's statistics alignment."""
        return self._first_latents(encoded.condition)[:, :, 0]

    def condition(self, encoded: WanEncoding, num_frames: int, motion_scale: int = 0) -> WanCondition:
        """One branch's condition (`motion_scale` is PIA's and is ignored)."""
        return WanCondition(encoded.condition, encoded.image_embeds)

    # ------------------------------------------------------------------ one step
    def _first_frame_mask(self, latents: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(1, 1, *latents.shape[2:], dtype=latents.dtype, device=latents.device)
        mask[:, :, 0] = 0
        return mask

    def uses_cfg(self, guidance: float) -> bool:
        """Whether some step runs the unconditional rows: guidance above 1, or the low-noise expert's `guidance_2`."""
        low = self.guidance_2 if getattr(self.pipe, "transformer_2", None) is not None else None
        return guidance > 1 or (low is not None and float(low) > 1)

    def _expert(self, t: torch.Tensor, guidance: float) -> tuple[Any, float]:
        """Wan 2.2 A14B: the high-noise expert at or above the boundary, the low-noise one (and guidance_2) below."""
        ratio = self.pipe.config.boundary_ratio
        if ratio is None or t >= ratio * self.scheduler.config.num_train_timesteps:
            return self.pipe.transformer, guidance
        return self.pipe.transformer_2, guidance if self.guidance_2 is None else float(self.guidance_2)

    @torch.no_grad()
    def predict(
        self,
        scheduler,
        latents: torch.Tensor,
        t: torch.Tensor,
        conditions: Sequence[WanCondition],
        text: torch.Tensor,
        uncond: torch.Tensor,
        guidance: float,
        branches: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Guided velocities for N (latent, condition) rows: rows [text x N, uncond x N] in one call.

        Each row gets its branch's image (channels, or the first latent frame for TI2V-5B); the
        unconditional rows keep the image and drop the text, as the pipeline does. While a step cache is
        on, each row is a call of its own in the cache context of its branch (`branches`, `step_cache`).
        """
        model, scale = self._expert(t, guidance)
        n = latents.shape[0]
        use_cfg = scale > 1
        condition = torch.cat([c.condition for c in conditions])
        if self.first_frame:
            mask = self._first_frame_mask(latents)
            model_in = (1 - mask) * condition + mask * latents
            per_token = (mask[0][0][:, :: self.patch[0], :: self.patch[1]] * t).flatten()
            timestep = per_token.unsqueeze(0).expand(n, -1)
        else:
            model_in = torch.cat([latents, condition], dim=1)
            timestep = t.expand(n)
        model_in = model_in.to(self.dtype)
        embeds = [c.image_embeds for c in conditions]
        image_embeds = None if embeds[0] is None else torch.cat(embeds)
        rows_in, texts = [model_in], [text.expand(n, -1, -1)]
        if use_cfg:
            rows_in.append(model_in)
            texts.append(uncond.expand(n, -1, -1))
        model_in, texts = torch.cat(rows_in), torch.cat(texts).to(self.dtype)
        timestep = torch.cat([timestep] * len(rows_in))
        image_embeds = None if image_embeds is None else torch.cat([image_embeds] * len(rows_in))

        def run(rows: slice | list[int]) -> torch.Tensor:
            return model(
                hidden_states=model_in[rows], timestep=timestep[rows], encoder_hidden_states=texts[rows],
                encoder_hidden_states_image=None if image_embeds is None else image_embeds[rows], return_dict=False,
            )[0]  # fmt: skip

        labels = ("cond", "uncond") if use_cfg else ("cond",)
        velocity = step_cache.by_context(self, model, run, labels, branches, n)
        if velocity is None:  # no step cache: all rows in one call
            velocity = self._split_rows(lambda a, b: run(slice(a, b)), model_in.shape[0], latents.shape[2])
        if not use_cfg:
            return velocity
        cond, plain = velocity.chunk(2)
        return plain + scale * (cond - plain)

    def finish(self, latents: torch.Tensor, base: WanCondition, edited: WanCondition | None, lams) -> torch.Tensor:
        """TI2V-5B: put the image's latent frame back at frame 0, blended by each item's last lambda."""
        if not self.first_frame:
            return latents
        edited_frame = None if edited is None else edited.condition[:, :, :1]
        return self.put_back_first_frame(latents, base.condition[:, :, :1], edited_frame, lams)

    # ------------------------------------------------------------------ decode
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (1, 16, f, h, w) -> float frames (F, H, W, 3) in [0, 1], as the pipeline decodes them."""
        vae = self.vae
        latents = latents.to(device=self.device, dtype=vae.dtype)
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(latents.device, latents.dtype)
        std = 1.0 / torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(latents.device, latents.dtype)
        video = vae.decode(latents / std + mean, return_dict=False)[0]  # (1, 3, F, H, W) in [-1, 1]
        return (video[0].float() / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0)


# ---------------------------------------------------------------------------------------- loading
def load_wan_backend(
    model: str, *, device: torch.device, dtype: torch.dtype, variant: str | None = None, **shared: Any
) -> WanVideoBackend:
    """Wan from a hub id or a local folder in the diffusers layout (safetensors only, never pickle).

    bf16 is what Wan was trained in: on CUDA a float16 request is loaded as bfloat16 (fp16 overflows
    in UMT5); on the CPU float32. Which variant (2.1 480P / 720P, 2.2 A14B, 2.2 TI2V-5B) it is comes
    from the folder's config (`variant_of`).
    """
    from diffusers import WanImageToVideoPipeline

    if dtype == torch.float16:
        dtype = torch.bfloat16
    pipe = WanImageToVideoPipeline.from_pretrained(str(model), dtype=dtype, use_safetensors=True)
    pipe.vae.to(torch.float32)  # the pipeline's examples keep Wan's VAE in float32
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return WanVideoBackend(pipe, variant=variant, name=str(model))


# ---------------------------------------------------------------------------------------- tiny models
TINY_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
    text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)  # fmt: skip
TINY_VAE = dict(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
TINY_TI2V_VAE = dict(
    base_dim=8, decoder_base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
    temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12, patch_size=2,
    scale_factor_spatial=16, scale_factor_temporal=4,
)  # fmt: skip
TINY_UMT5 = dict(
    vocab_size=128, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
)  # fmt: skip
TINY_CLIP_VISION = dict(
    hidden_size=16, projection_dim=16, num_hidden_layers=2, num_attention_heads=2, image_size=32,
    intermediate_size=16, patch_size=4,
)  # fmt: skip
# the hub repositories' scheduler settings: UniPC in the repos, flow matching with a shift; we run
# FlowMatchEulerDiscrete with the repo's shift (3.0 for 480P, 5.0 for 720P and 2.2, as the model cards say)
TINY_SHIFT = 3.0
MIRROR_KINDS = ("wan2.1-i2v", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b")


def tiny_wan_pipeline(kind: str = "wan2.1-i2v", seed: int = 0):
    """Random-init tiny Wan pipeline of one variant's layout (64 x 48, 9 frames in about a second on a CPU)."""
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    from ivcore.backends.word_tokenizer import word_tokenizer

    if kind not in MIRROR_KINDS:
        raise ValueError(f"kind: {kind!r}; one of {MIRROR_KINDS}")
    torch.manual_seed(seed)
    ti2v = kind == "wan2.2-ti2v-5b"
    transformer_config = dict(TINY_TRANSFORMER)
    if kind == "wan2.1-i2v":
        transformer_config["image_dim"] = TINY_CLIP_VISION["hidden_size"]
    if ti2v:
        transformer_config.update(in_channels=16, out_channels=16)
    transformer = WanTransformer3DModel(**transformer_config).eval()
    transformer_2 = WanTransformer3DModel(**transformer_config).eval() if kind == "wan2.2-i2v-a14b" else None
    vae = AutoencoderKLWan(**(TINY_TI2V_VAE if ti2v else TINY_VAE)).eval()
    text_encoder = UMT5EncoderModel(UMT5Config(**TINY_UMT5)).eval()
    image_encoder = processor = None
    if kind == "wan2.1-i2v":
        image_encoder = CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP_VISION)).eval()
        processor = CLIPImageProcessor(crop_size=32, size=32)
    return WanImageToVideoPipeline(
        tokenizer=word_tokenizer(model_max_length=MAX_SEQUENCE_LENGTH), text_encoder=text_encoder,
        image_encoder=image_encoder, image_processor=processor, transformer=transformer, transformer_2=transformer_2,
        vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=TINY_SHIFT),
        boundary_ratio=0.875 if kind == "wan2.2-i2v-a14b" else None, expand_timesteps=ti2v,
    )  # fmt: skip


def tiny_wan_backend(kind: str = "wan2.1-i2v", seed: int = 0) -> WanVideoBackend:
    """The tiny offline Wan backend of one variant's layout (native 64 x 48, 9 frames)."""
    pipe = tiny_wan_pipeline(kind, seed)
    pipe.set_progress_bar_config(disable=True)
    return WanVideoBackend(pipe, name=f"tiny-{kind}")


def write_wan_mirror(folder: str | os.PathLike, kind: str = "wan2.1-i2v", seed: int = 0, **_: Any) -> Path:
    """A tiny Wan model in the hub layout of `kind` (model_index.json, transformer[_2], vae, text_encoder,
    tokenizer, scheduler, image_encoder and image_processor for 2.1), safetensors, for `from_pretrained(folder)`."""
    folder = Path(folder)
    tiny_wan_pipeline(kind, seed).save_pretrained(folder, safe_serialization=True)
    return folder


__all__ = [
    "WAN_NEGATIVE_PROMPT",
    "WAN_VARIANTS",
    "WanVideoBackend",
    "load_wan_backend",
    "tiny_wan_backend",
    "tiny_wan_pipeline",
    "variant_of",
    "write_wan_mirror",
]
