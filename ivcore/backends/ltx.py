"""P_video: LTX-Video 0.9.x image-to-video (Lightricks/LTX-Video) behind the Session and the Eq. 4 loop.

LTX-Video is a text-conditioned video DiT over a causal 3D VAE that compresses 32x in space and 8x
in time (8k + 1 frames), with patch size 1: one token per latent pixel. Image-to-video puts the
image's normalized latent in latent frame 0 and marks it clean with a per-token timestep of 0.
So Eq. 4 works as for Wan 2.2 TI2V-5B (`ivcore.backends.wan`): each branch's model input has its own
image's latent frame in place of frame 0, with timestep 0 on those tokens; the two branches' guided
velocities are blended and ONE scheduler step is taken over the whole latent; after the loop frame 0
becomes `lam * E(x~) + (1 - lam) * E(x~')` (`finish`): at lam 1 the pipeline's frame of x~, at lam 0
that of x~', in between the latent blend of the two.

Every number follows `LTXImageToVideoPipeline` (the test oracle), through its own methods
(`encode_prompt`, `_normalize_latents`, `_pack_latents`, `_unpack_latents`, `_denormalize_latents`,
`video_processor`) and its `calculate_shift`. Where the Session's order of things differs from the
pipeline's, the backend reorders so that lam 1 is the pipeline's video:

- generator draws: the pipeline samples the image posterior first and the noise second; the backend
  says `draws_image_first`, so the Session encodes x~ and x~' (from the same state) before it draws
  `initial_noise`: the pipeline's noise, and the same posterior draw for x~ and x~' (so lam 0 is the
  pipeline's video of x~').
- latent layout: the loop keeps latents in (B, C, f, h, w); `predict` packs them to tokens and
  unpacks its output, so the loop, the trajectory pull and the caches never see tokens.
- frame 0: the pipeline steps frames 1.. only and keeps frame 0 as the image latent. The Session
  steps the whole latent; FlowMatchEulerDiscrete's step is elementwise, so frame 0's (discarded)
  update changes nothing else: `predict` overwrites it in each branch's input and `finish` restores it.
- timesteps: the schedule is resolution dependent (`mu` from the token count), so the backend sets it
  itself (`set_timesteps(steps, shape)`, which the Session calls instead of `scheduler.set_timesteps`).

The tiny random-init models (`ivcore.backends.ltx_tiny`) are written in the hub folder layout, so tests load
them with `LTXImageToVideoPipeline.from_pretrained(folder)` exactly as the real weights load, offline, on a CPU.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from diffusers import (
    LTXImageToVideoPipeline,
)
from diffusers.pipelines.ltx.pipeline_ltx_image2video import calculate_shift
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ivcore.backends import step_cache
from ivcore.backends.base import BackendSetting
from ivcore.backends.dit import DiTVideoBackend, is_test_model

MAX_SEQUENCE_LENGTH = 128  # what LTXImageToVideoPipeline.__call__ passes to encode_prompt
#: the negative prompt of diffusers' LTX-Video examples
LTX_NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
#: real and tiny settings: 704 x 480 and 161 frames as in diffusers' LTX-Video examples (the pipeline's
#: __call__ defaults to 704 x 512), 50 steps, guidance 3.0 and frame_rate 25 as its __call__ defaults
LTX_SETTINGS: dict[str, dict[str, Any]] = {
    "ltx-video": dict(size=(704, 480), num_frames=161, fps=25, steps=50, guidance=3.0),
    "tiny": dict(size=(96, 64), num_frames=9, fps=25, steps=4, guidance=3.0),
}


class LTXText(NamedTuple):
    """A prompt's T5 embeddings and attention mask: the transformer masks the padding (a tuple the text
    stage caches and sizes as it does a tensor)."""

    embeds: torch.Tensor  # (1, 128, D)
    mask: torch.Tensor  # (1, 128) bool


class LTXEncoding(NamedTuple):
    """What `encode_images` returns: the image latent over all latent frames, and the clip of path mode."""

    latents: torch.Tensor  # (1, C, f, h, w) normalized posterior sample of the first image, repeated over f
    clip: torch.Tensor | None  # (1, C, f, h, w) normalized latents (mode) of N animated frames as one clip


class LTXVideoBackend(DiTVideoBackend):
    """LTX-Video image-to-video (P_video of Eq. 1) over an `LTXImageToVideoPipeline`'s modules.

    `frame_rate` (default: the family's fps, 25 as the pipeline's `frame_rate`) sets the RoPE time
    scale the transformer sees; it is a setting of the model, not the session's playback `fps`, so
    changing the session's fps never changes the generated latents (and their cache keys).
    `max_rows` splits the transformer calls (rows are independent videos), lowered on out-of-memory.
    """

    frame_rate = BackendSetting()
    decode_draws = True  # decode gets the run's generator: its seed seeds the decoder's noise (`decoder_rng`)
    draws_image_first = True  # the pipeline samples the image posterior before the noise (module docstring)
    step_cache_rows = "together"  # the pipeline calls [uncond, cond] as one batch in one cache context
    min_steps = 2  # one step: the schedule's stretch to `shift_terminal` divides 0 by 0 (NaN timesteps)
    first_frame = True  # the image is latent frame 0 (as Wan TI2V-5B's), put back by `finish` after the loop
    temporal_factor = 8
    spatial_factor = 32
    patch = (1, 1)
    max_sequence_length = MAX_SEQUENCE_LENGTH  # the text length the pipeline's __call__ encodes

    def __init__(self, pipe, *, name: str = "", **overrides: Any):
        tiny = is_test_model(pipe.transformer)  # test models: 96 x 64, 9 frames
        settings = {**LTX_SETTINGS["tiny" if tiny else "ltx-video"], **overrides}
        defaults = dict(
            steps=settings["steps"], guidance=settings["guidance"], negative_prompt="" if tiny else LTX_NEGATIVE_PROMPT
        )
        super().__init__(
            pipe, native_size=settings["size"], num_frames=settings["num_frames"], fps=settings["fps"],
            defaults=defaults, name=name or ("tiny-ltx-video" if tiny else "ltx-video"),
        )  # fmt: skip
        self.spatial_factor = int(pipe.vae_spatial_compression_ratio)
        self.temporal_factor = int(pipe.vae_temporal_compression_ratio)
        self.patch = (int(pipe.transformer_spatial_patch_size),) * 2
        self.patch_t = int(pipe.transformer_temporal_patch_size)
        self.frame_rate = settings["fps"]

    # ------------------------------------------------------------------ text and schedule
    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> LTXText:
        """T5 embeddings (1, L, D) and their attention mask, from the pipeline's own `encode_prompt` (L: 128 here)."""
        embeds, mask, _, _ = self.pipe.encode_prompt(
            prompt, do_classifier_free_guidance=False, max_sequence_length=self.max_sequence_length, device=self.device
        )
        return LTXText(embeds.to(self.dtype), mask)

    def tokens(self, shape: Sequence[int]) -> int:
        """Transformer tokens of a latent (1, C, f, h, w): what the resolution-dependent shift reads."""
        return int(shape[2]) // self.patch_t * (int(shape[3]) // self.patch[0]) * (int(shape[4]) // self.patch[1])

    def set_timesteps(self, steps: int, shape: Sequence[int]) -> None:
        """The pipeline's schedule: sigmas linspace(1, 1/steps), shifted by mu from the token count.

        The Session calls this instead of `scheduler.set_timesteps(steps)`: with dynamic shifting the
        scheduler refuses a schedule without `mu`. A swapped-in scheduler that takes no sigmas gets its own.
        """
        scheduler = self.scheduler
        if "sigmas" not in inspect.signature(scheduler.set_timesteps).parameters:
            scheduler.set_timesteps(steps, device=self.device)
            return
        config = scheduler.config
        mu = calculate_shift(
            self.tokens(shape), config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5), config.get("max_shift", 1.15),
        )  # fmt: skip
        sigmas = np.linspace(1.0, 1 / steps, steps)
        scheduler.set_timesteps(sigmas=sigmas, device=self.device, mu=mu)

    # ------------------------------------------------------------------ noise and image condition
    def initial_noise(self, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        """The pipeline's noise, float32 (drawn after the image's posterior sample: `draws_image_first`)."""
        return randn_tensor(tuple(shape), generator=generator, device=self.device, dtype=torch.float32)

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        width, height = images[0].size
        pixels = self.pipe.video_processor.preprocess(list(images), height=height, width=width)  # (N, 3, H, W)
        return pixels.to(self.device, dtype=self.vae.dtype)

    def _normalize(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        return self.pipe._normalize_latents(latents.float(), vae.latents_mean, vae.latents_std)

    @torch.no_grad()
    def encode_images(
        self, images: Sequence[Image.Image], generator: torch.Generator, num_frames: int | None = None
    ) -> LTXEncoding:
        """The condition of x~ (one image) or of trajectory path mode's animated x~' (one image per frame).

        As the pipeline's `prepare_latents`: a posterior sample of the first image, normalized with the
        VAE's latent statistics (scale 1.0) and repeated over the latent frames. With N > 1 images the
        whole clip is also encoded by the 3D VAE (posterior mode: no draw), the trajectory pull's target.
        """
        images = list(images)
        num_frames = int(num_frames or self.num_frames)
        pixels = self._pixels(images)
        sample = self.vae.encode(pixels[:1].unsqueeze(2)).latent_dist.sample(generator)
        latents = self._normalize(sample).repeat(1, 1, self.latent_frames(num_frames), 1, 1)
        clip = None
        if len(images) > 1:
            video = pixels.permute(1, 0, 2, 3).unsqueeze(0)  # (1, 3, N, H, W)
            clip = self._normalize(self.vae.encode(video).latent_dist.mode())
        return LTXEncoding(latents, clip)

    def trajectory_target(self, encoded: LTXEncoding) -> torch.Tensor:
        """Latents (1, C, f, h, w) the trajectory guidance pulls the moving regions toward."""
        return encoded.latents if encoded.clip is None else encoded.clip

    def reference_latents(self, encoded: LTXEncoding) -> torch.Tensor:
        """(1, C, h, w): the image's latent frame, for Eq. 5's statistics alignment."""
        return encoded.latents[:, :, 0]

    def condition(self, encoded: LTXEncoding, num_frames: int, motion_scale: int = 0) -> torch.Tensor:
        """One branch's condition: its image's latent frame (1, C, 1, h, w) (`motion_scale` is PIA's)."""
        return encoded.latents[:, :, :1]

    # ------------------------------------------------------------------ one step
    def _pack(self, latents: torch.Tensor) -> torch.Tensor:
        return self.pipe._pack_latents(latents, self.patch[0], self.patch_t)

    def _unpack(self, tokens: torch.Tensor, f: int, h: int, w: int) -> torch.Tensor:
        return self.pipe._unpack_latents(tokens, f, h, w, self.patch[0], self.patch_t)

    @torch.no_grad()
    def predict(
        self,
        scheduler,
        latents: torch.Tensor,
        t: torch.Tensor,
        conditions: Sequence[torch.Tensor],
        text: LTXText,
        uncond: LTXText,
        guidance: float,
        branches: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Guided velocities (N, C, f, h, w) for N (latent, condition) rows: [uncond x N, text x N] in one call.

        Each row's frame 0 is its branch's image latent, with timestep 0 on those tokens (the pipeline's
        `t * (1 - conditioning_mask)`); the unconditional rows keep the image and drop the text. While a step
        cache is on, each branch's [uncond, text] rows are one call in a cache context of the branch's own
        (`branches`, `step_cache`), as the pipeline's one call in "cond_uncond".
        """
        n, _, f, h, w = latents.shape
        frames = torch.cat([c.to(latents) for c in conditions])
        model_in = self._pack(torch.cat([frames, latents[:, :, 1:]], dim=2))
        mask = torch.zeros(1, 1, f, h, w, dtype=torch.float32, device=latents.device)
        mask[:, :, 0] = 1.0
        mask = self._pack(mask).squeeze(-1)  # (1, tokens): 1 on the image's tokens
        use_cfg = guidance > 1
        pairs = [uncond, text] if use_cfg else [text]
        rows = len(pairs) * n
        model_in = torch.cat([model_in] * len(pairs)).to(self.dtype)
        embeds = torch.cat([p.embeds.expand(n, -1, -1) for p in pairs]).to(self.dtype)
        masks = torch.cat([p.mask.expand(n, -1) for p in pairs])
        timestep = self.token_timesteps(t, rows, mask)
        positions = self.positions(rows, f, h, w)

        def run(select: slice | list[int]) -> torch.Tensor:
            where = {k: v[select] if isinstance(v, torch.Tensor) else v for k, v in positions.items()}
            return self.pipe.transformer(
                hidden_states=model_in[select], encoder_hidden_states=embeds[select], timestep=timestep[select],
                encoder_attention_mask=masks[select], **where, return_dict=False,
            )[0]  # fmt: skip

        labels = ("uncond", "cond") if use_cfg else ("cond",)
        velocity = step_cache.by_context(self, self.pipe.transformer, run, labels, branches, n)
        if velocity is None:  # no step cache: all rows in one call
            velocity = self._split_rows(lambda a, b: run(slice(a, b)), rows, f)
        velocity = velocity.float()
        if use_cfg:
            plain, cond = velocity.chunk(2)
            velocity = plain + guidance * (cond - plain)
        return self._unpack(velocity, f, h, w)

    def token_timesteps(self, t: torch.Tensor, rows: int, mask: torch.Tensor) -> torch.Tensor:
        """(rows, tokens) timesteps: t everywhere but 0 on the image's tokens (`mask` 1), as the pipeline's
        `t * (1 - conditioning_mask)`."""
        return t.expand(rows).unsqueeze(-1) * (1 - mask)

    def positions(self, rows: int, f: int, h: int, w: int) -> dict[str, Any]:
        """The transformer's RoPE arguments for a (f, h, w) latent: the grid and the pipeline's interpolation
        scale (the time axis in seconds: frames per latent frame over `frame_rate`)."""
        rope = (self.temporal_factor / self.frame_rate, self.spatial_factor, self.spatial_factor)
        lf, lh, lw = f // self.patch_t, h // self.patch[0], w // self.patch[1]
        return dict(num_frames=lf, height=lh, width=lw, rope_interpolation_scale=rope)

    def oracle_kwargs(self, steps: int) -> dict[str, Any]:
        """What the family's pipeline needs beyond the session's settings to make this backend's video."""
        return dict(frame_rate=self.frame_rate)

    def finish(self, latents: torch.Tensor, base: torch.Tensor, edited: torch.Tensor | None, lams) -> torch.Tensor:
        """Put the image's latent frame back at frame 0, blended by each item's last lambda.

        The same decision as Wan TI2V-5B: frame 0 is never denoised (the pipeline keeps it as the image
        latent), so lam 1 gives E(x~) exactly, lam 0 E(x~'), and in between their latent blend.
        """
        return self.put_back_first_frame(latents, base, edited, lams)

    # ------------------------------------------------------------------ decode
    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents (1, C, f, h, w) -> float frames (F, H, W, 3) in [0, 1], as the pipeline decodes them.

        0.9.1's timestep-conditioned decoder gets the pipeline's defaults: `decode_timestep` 0 and
        `decode_noise_scale` (= decode_timestep) 0, so the pipeline's decode noise is multiplied by 0 and
        is not drawn here. Its decoder's noise injection draws from torch's global RNG (`decoder_rng`).
        """
        vae = self.vae
        latents = self._denormalized(latents)
        timestep = None
        if vae.config.timestep_conditioning:
            timestep = torch.zeros(latents.shape[0], device=latents.device, dtype=latents.dtype)
        return self._decoded(latents, timestep, generator)

    def _denormalized(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        latents = latents.to(device=self.device, dtype=torch.float32)
        latents = self.pipe._denormalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
        return latents.to(vae.dtype)

    def _decoded(self, latents: torch.Tensor, timestep, generator: torch.Generator | None) -> torch.Tensor:
        injects = any(self.vae.config.get("decoder_inject_noise", ()))  # 0.9.0's decoder draws nothing
        with decoder_rng(generator, latents.device) if injects else contextlib.nullcontext():
            video = self.vae.decode(latents, timestep, return_dict=False)[0]  # (1, 3, F, H, W) in [-1, 1]
        return (video[0].float() / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0)


@contextlib.contextmanager
def decoder_rng(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """torch's global RNG seeded with the run's seed (0 without a generator: previews, plans) for one decode.

    LTX's 0.9.1-and-later decoders inject noise drawn from the global RNG (their resnets get no generator),
    so without this the same take decoded twice differs. The pipeline leaves that RNG as it finds it: the
    tests seed it with the run's seed before calling the pipeline. The caller's RNG state is put back after.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0 if generator is None else generator.initial_seed())
        yield


# ---------------------------------------------------------------------------------------- loading
def load_ltx_backend(
    model: str, *, device: torch.device, dtype: torch.dtype, pipeline_class=LTXImageToVideoPipeline,
    backend_class: type[LTXVideoBackend] = LTXVideoBackend, **shared: Any,
) -> LTXVideoBackend:  # fmt: skip
    """LTX-Video from a hub id or a local folder in the diffusers layout (safetensors only, never pickle).

    bf16 is what LTX-Video runs in (diffusers' examples; T5-XXL overflows in fp16): on CUDA a float16
    request is loaded as bfloat16; on the CPU what is asked (float32). `shared` (the image backend,
    a motion adapter) is PIA's business and ignored. `pipeline_class` / `backend_class`: the layout
    (`ivcore.backends.ltx_condition` loads `LTXConditionPipeline` folders through here).
    """
    if dtype == torch.float16:
        dtype = torch.bfloat16
    pipe = pipeline_class.from_pretrained(str(model), dtype=dtype, use_safetensors=True)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return backend_class(pipe, name=str(model))


__all__ = [
    "LTXEncoding",
    "LTXText",
    "LTXVideoBackend",
    "LTX_NEGATIVE_PROMPT",
    "LTX_SETTINGS",
    "decoder_rng",
    "load_ltx_backend",
]
