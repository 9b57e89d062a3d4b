"""P_video: HunyuanVideo 1.5 image-to-video behind the same Session and Eq. 4 loop as PIA, SVD and Wan.

HunyuanVideo 1.5 I2V conditions the way Wan 2.1 does, so Eq. 4 is again one condition per branch:
the transformer input is `cat([noisy latents, image latents, mask], dim=1)`, where the image latents
are the VAE posterior mode of the first frame (times `scaling_factor`) in latent frame 0 and zeros
after, and the one-channel mask is 1 on frame 0; SigLIP tokens of the same image go in as
`image_embeds` to both the conditional and the unconditional call. Each branch brings its own image
(x~ or x~'); the text (Qwen2.5-VL states plus byT5 glyph states, each with its mask) is shared.

Every number follows `HunyuanVideo15ImageToVideoPipeline` (the test oracle), through its own methods
(`encode_prompt`, `encode_image`, `prepare_cond_latents_and_mask`, `video_processor`):

- the only generator draw is the noise (the VAE encode takes the mode), so the Session's order
  (noise first, then x~ and x~' from the same state) gives the pipeline's noise;
- the pipeline's schedule is its own sigmas, `linspace(1, 0, steps + 1)[:-1]`, not the scheduler's
  `set_timesteps(steps)` default: the Session calls the backend's `set_timesteps(steps, shape)`,
  which passes them;
- the pipeline has no guidance argument: CFG comes from `pipe.guider` (`ClassifierFreeGuidance`,
  `uncond + scale * (cond - uncond)`, no CFG call at scale 1); `predict` applies the same formula
  with the session's guidance in place of the guider's scale, and the guider's other settings
  (`guidance_rescale`, `use_original_formulation`). To reproduce a session with `pipe(...)`, set
  `pipe.guider = pipe.guider.new(guidance_scale=session.guidance)`;
- the pipeline picks its height and width from the image (`calculate_default_height_width` with the
  transformer's `target_size`) and center-crops; the Session hands x~ at the session's size, so the
  native size is the target-size shape (real 480p, 16:9: 848 x 480; tiny: 64 x 64), where both agree.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from ivcore.backends import step_cache
from ivcore.backends.dit import DiTVideoBackend, is_test_model
from ivcore.backends.hunyuan_tiny import MIRROR_KIND, tiny_hunyuan_components, write_hunyuan_mirror

# The model card's and the pipeline's defaults (480p I2V); the tiny models run 9 frames in 4 steps. The
# guidance default is the repository's own guider scale (guider/config.json: 6.0 for 480p I2V).
HUNYUAN_SETTINGS: dict[str, dict[str, Any]] = {
    "480p": dict(num_frames=121, fps=24, steps=50),
    "tiny": dict(num_frames=9, fps=8, steps=4),
}
ASPECT = (16, 9)  # the native size is the target-size shape the pipeline picks for a 16:9 image


class HunyuanText(NamedTuple):
    """What `encode_prompt` returns (a tuple, so the stage cache can size it): the pipeline's four tensors."""

    embeds: torch.Tensor  # (1, 1000, D) Qwen2.5-VL states after the system turn is cropped
    mask: torch.Tensor  # (1, 1000)
    embeds_2: torch.Tensor  # (1, 256, D2) byT5 states of the quoted glyph text (zeros when there is none)
    mask_2: torch.Tensor  # (1, 256)


class HunyuanEncoding(NamedTuple):
    """What `encode_images` returns for N images."""

    condition: torch.Tensor  # (1, C + 1, f, h, w): the first frame's latents (zeros after) and the frame-0 mask
    image_embeds: torch.Tensor  # (1, tokens, D) SigLIP tokens of the first image
    clip: torch.Tensor | None  # (1, C, f, h, w) latents of all N frames as one clip (trajectory path mode)


class HunyuanCondition(NamedTuple):
    condition: torch.Tensor
    image_embeds: torch.Tensor


def native_size_of(pipe) -> tuple[int, int]:
    """(width, height) the pipeline picks for a 16:9 image (a square one for the tiny models' target 64)."""
    target = int(pipe.target_size)
    aspect = (1, 1) if target < 256 else ASPECT
    height, width = pipe.video_processor.calculate_default_height_width(aspect[1] * 64, aspect[0] * 64, target)
    return int(width), int(height)


class HunyuanVideoBackend(DiTVideoBackend):
    """HunyuanVideo 1.5 image-to-video (P_video of Eq. 1) over a `HunyuanVideo15ImageToVideoPipeline`'s modules.

    `max_rows` splits the transformer calls (rows are independent videos), lowered on out-of-memory.
    """

    step_cache_rows = "separate"  # the pipeline calls pred_cond and pred_uncond one by one, in contexts of their own

    def __init__(self, pipe, *, name: str = "", **overrides: Any):
        # test models (a transformer narrower than 256) get the tiny settings: 64 x 64, 9 frames, 4 steps
        config = pipe.transformer.config
        tiny = is_test_model(pipe.transformer)
        settings = {
            **HUNYUAN_SETTINGS["tiny" if tiny else "480p"], "size": native_size_of(pipe),
            "guidance": float(pipe.guider.guidance_scale), **overrides,
        }  # fmt: skip
        defaults = dict(steps=settings["steps"], guidance=settings["guidance"], negative_prompt="")
        super().__init__(
            pipe, native_size=settings["size"], num_frames=settings["num_frames"], fps=settings["fps"],
            defaults=defaults, name=name or "hunyuanvideo-1.5-i2v",
        )  # fmt: skip
        self.spatial_factor = int(pipe.vae_scale_factor_spatial)
        self.temporal_factor = int(pipe.vae_scale_factor_temporal)
        self.patch = (int(config.patch_size), int(config.patch_size))

    def set_timesteps(self, steps: int, shape: Sequence[int] | None = None) -> None:
        """The pipeline's schedule: sigmas linspace(1, 0, steps + 1)[:-1], which the scheduler shifts by `shift`.

        The Session calls this instead of `scheduler.set_timesteps(steps)`, whose default spacing differs
        (tiny, 4 steps: timesteps 1000, 910, 717, 24 against the pipeline's 1000, 938, 833, 625). A
        swapped-in scheduler that takes no sigmas gets its own schedule.
        """
        scheduler = self.scheduler
        if "sigmas" not in inspect.signature(scheduler.set_timesteps).parameters:
            scheduler.set_timesteps(steps, device=self.device)
            return
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, int(steps) + 1)[:-1], device=self.device)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> HunyuanText:
        """The pipeline's four text tensors of one prompt (an empty prompt is the pipeline's negative default)."""
        out = self.pipe.encode_prompt(prompt or "", device=self.device, dtype=self.dtype)
        return HunyuanText(*out)

    # ------------------------------------------------------------------ image condition
    @torch.no_grad()
    def _encode_clip(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Latents (mode, times `scaling_factor`, like the image latents) of N frames as one clip: (1, C, f, h, w)."""
        width, height = images[0].size
        frames = self.pipe.video_processor.preprocess(list(images), height=height, width=width)  # (N, 3, H, W)
        video = frames.permute(1, 0, 2, 3).unsqueeze(0).to(self.device, dtype=self.vae.dtype)
        latents = self.vae.encode(video).latent_dist.mode()
        return (latents * self.vae.config.scaling_factor).float()

    @torch.no_grad()
    def encode_images(
        self, images: Sequence[Image.Image], generator: torch.Generator, num_frames: int | None = None
    ) -> HunyuanEncoding:
        """The condition of x~ (one image) or of trajectory path mode's animated x~' (one image per frame).

        The VAE encode takes the posterior mode, so the generator is not drawn from (the pipeline's
        only draw is its noise). With N > 1 images the branch is conditioned on the first (the model
        takes one image), and the whole clip is encoded by the 3D VAE as the target of the trajectory
        pull (`trajectory_target`).
        """
        images = list(images)
        num_frames = int(num_frames or self.num_frames)
        width, height = images[0].size
        shape = self.latent_shape(num_frames, height, width)
        placeholder = torch.zeros(shape, dtype=self.dtype, device=self.device)  # only its shape is read
        latents, mask = self.pipe.prepare_cond_latents_and_mask(
            placeholder, images[0], 1, height, width, self.dtype, self.device
        )
        embeds = self.pipe.encode_image(images[0], batch_size=1, device=self.device, dtype=self.dtype)
        clip = self._encode_clip(images) if len(images) > 1 else None
        return HunyuanEncoding(torch.cat([latents, mask], dim=1), embeds, clip)

    def trajectory_target(self, encoded: HunyuanEncoding) -> torch.Tensor:
        """Latents (1, C, f, h, w) the trajectory guidance pulls the moving regions toward.

        Path mode: the animated clip. One image (endpoint mode): its latent frame in every latent
        frame (a still clip of it), not the condition's zeros after frame 0, which are no video.
        """
        if encoded.clip is not None:
            return encoded.clip
        first = self.reference_latents(encoded).unsqueeze(2)
        return first.expand(-1, -1, encoded.condition.shape[2], -1, -1).float()

    def reference_latents(self, encoded: HunyuanEncoding) -> torch.Tensor:
        """(1, C, h, w): the image's latent frame, for Eq. 5's statistics alignment."""
        return encoded.condition[:, : self.latent_channels, 0]

    def condition(self, encoded: HunyuanEncoding, num_frames: int, motion_scale: int = 0) -> HunyuanCondition:
        """One branch's condition (`motion_scale` is PIA's and is ignored)."""
        return HunyuanCondition(encoded.condition, encoded.image_embeds)

    # ------------------------------------------------------------------ one step
    def _timestep_r(self, scheduler, t: torch.Tensor) -> torch.Tensor | None:
        """MeanFlow (distilled) transformers also take the next timestep (0 after the last), as the pipeline passes."""
        if not self.pipe.transformer.config.use_meanflow:
            return None
        timesteps = scheduler.timesteps
        index = int((timesteps == t).nonzero()[0])
        return timesteps[index + 1] if index + 1 < len(timesteps) else torch.tensor(0.0, device=timesteps.device)

    def _guided(self, cond: torch.Tensor, plain: torch.Tensor, guidance: float) -> torch.Tensor:
        """The guider's combination with the session's guidance as its scale."""
        from diffusers.guiders.guider_utils import rescale_noise_cfg

        guider = self.pipe.guider
        start = cond if guider.use_original_formulation else plain
        pred = start + guidance * (cond - plain)
        if guider.guidance_rescale > 0.0:
            pred = rescale_noise_cfg(pred, cond, guider.guidance_rescale)
        return pred

    def uses_cfg(self, guidance: float) -> bool:
        """Whether a step runs the unconditional rows: the guider skips them at scale 1 (0, original formulation)."""
        guider = self.pipe.guider
        return guider._enabled and not math.isclose(guidance, 0.0 if guider.use_original_formulation else 1.0)

    @torch.no_grad()
    def predict(
        self,
        scheduler,
        latents: torch.Tensor,
        t: torch.Tensor,
        conditions: Sequence[HunyuanCondition],
        text: HunyuanText,
        uncond: HunyuanText,
        guidance: float,
        branches: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Guided velocities for N (latent, condition) rows: rows [text x N, uncond x N] (one call on CUDA).

        Each row gets its branch's image latents, mask and SigLIP tokens; the unconditional rows keep
        the image and drop the text, as the pipeline's unconditional call does. While a step cache is on,
        each row is a call of its own in the cache context of its branch (`branches`, `step_cache`).
        """
        n = latents.shape[0]
        use_cfg = self.uses_cfg(guidance)
        condition = torch.cat([c.condition for c in conditions]).to(latents.device)
        model_in = torch.cat([latents.to(self.dtype), condition.to(self.dtype)], dim=1)
        image_embeds = torch.cat([c.image_embeds for c in conditions]).to(self.dtype)
        prompts = [text, uncond] if use_cfg else [text]
        rows = len(prompts)
        texts = [torch.cat([p[k].expand(n, *p[k].shape[1:]) for p in prompts]) for k in range(4)]
        embeds, mask, embeds_2, mask_2 = (x.to(self.dtype) for x in texts)
        model_in, image_embeds = torch.cat([model_in] * rows), torch.cat([image_embeds] * rows)
        timestep = t.expand(model_in.shape[0]).to(model_in.dtype)
        timestep_r = self._timestep_r(scheduler, t)
        if timestep_r is not None:
            timestep_r = timestep_r.expand(model_in.shape[0]).to(model_in.dtype)

        def run(select: slice | list[int]) -> torch.Tensor:
            return self.pipe.transformer(
                hidden_states=model_in[select], image_embeds=image_embeds[select], timestep=timestep[select],
                timestep_r=None if timestep_r is None else timestep_r[select],
                encoder_hidden_states=embeds[select], encoder_attention_mask=mask[select],
                encoder_hidden_states_2=embeds_2[select], encoder_attention_mask_2=mask_2[select],
                return_dict=False,
            )[0]  # fmt: skip

        def call(offset: int, count: int) -> torch.Tensor:
            return self._split_rows(lambda a, b: run(slice(offset + a, offset + b)), count, latents.shape[2])

        labels = ("cond", "uncond") if use_cfg else ("cond",)
        velocity = step_cache.by_context(self, self.pipe.transformer, run, labels, branches, n)
        # No step cache: a CPU gains nothing from one bigger call, and one call per prompt is what the pipeline
        # makes (its conditional and unconditional calls): at lam 1 or 0 that is the pipeline's numerics bitwise.
        if velocity is None and self.device.type == "cpu":
            velocity = torch.cat([call(k * n, n) for k in range(rows)])
        elif velocity is None:
            velocity = call(0, rows * n)
        if not use_cfg:
            return velocity
        cond, plain = velocity.chunk(2)
        return self._guided(cond, plain, guidance)

    # ------------------------------------------------------------------ decode
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (1, C, f, h, w) -> float frames (F, H, W, 3) in [0, 1], as the pipeline decodes them."""
        latents = latents.to(device=self.device, dtype=self.vae.dtype) / self.vae.config.scaling_factor
        video = self.vae.decode(latents, return_dict=False)[0]  # (1, 3, F, H, W) in [-1, 1]
        frames = self.pipe.video_processor.postprocess_video(video, output_type="pt")[0]  # (F, 3, H, W)
        return frames.float().permute(0, 2, 3, 1)


# ---------------------------------------------------------------------------------------- loading
def load_hunyuan_backend(model: str, *, device: torch.device, dtype: torch.dtype, **shared: Any) -> HunyuanVideoBackend:
    """HunyuanVideo 1.5 I2V from a hub id or a local folder in the diffusers layout (safetensors only).

    bf16 is what HunyuanVideo 1.5 was trained and released in: a float16 request (the Session's default
    on CUDA) is loaded as bfloat16, since fp16 overflows in Qwen2.5-VL; on the CPU the Session asks for
    float32. The whole pipeline, VAE included, runs in that dtype, as the model card's example does.
    """
    from diffusers import HunyuanVideo15ImageToVideoPipeline

    if dtype == torch.float16:
        dtype = torch.bfloat16
    pipe = HunyuanVideo15ImageToVideoPipeline.from_pretrained(str(model), dtype=dtype, use_safetensors=True)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return HunyuanVideoBackend(pipe, name=str(model))


def tiny_hunyuan_pipeline(seed: int = 0):
    """The random-init tiny pipeline (64 x 64, 9 frames, in seconds on a CPU), built in memory."""
    from diffusers import HunyuanVideo15ImageToVideoPipeline

    pipe = HunyuanVideo15ImageToVideoPipeline(**tiny_hunyuan_components(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_hunyuan_backend(seed: int = 0) -> HunyuanVideoBackend:
    """The tiny offline HunyuanVideo 1.5 backend (native 64 x 64, 9 frames, 4 steps)."""
    return HunyuanVideoBackend(tiny_hunyuan_pipeline(seed), name="tiny-hunyuanvideo-1.5-i2v")


__all__ = [
    "MIRROR_KIND",
    "HunyuanVideoBackend",
    "load_hunyuan_backend",
    "tiny_hunyuan_backend",
    "tiny_hunyuan_pipeline",
    "write_hunyuan_mirror",
]
