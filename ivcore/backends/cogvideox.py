"""P_video: CogVideoX image-to-video (CogVideoX-5b-I2V, CogVideoX1.5-5B-I2V) behind the Session's Eq. 4 loop.

CogVideoX is a text-conditioned video DiT over a causal 3D VAE (8x space, 4x time). The I2V models
concatenate the image's latent (frame 0, zeros after) to the noisy latents on the channel axis, so
the transformer's `in_channels` is twice the VAE's latent channels. Eq. 4 is then what PIA does:
one image-latent condition per branch, both branches on the same noisy latents, timestep and text,
their guided v-predictions blended, one `CogVideoXDDIMScheduler.step`.

Every number follows `CogVideoXImageToVideoPipeline` (the test oracle), through its own methods
(`encode_prompt`, `_prepare_rotary_positional_embeddings`, `decode_latents`, `video_processor`):

- Layout: CogVideoX latents are (B, F, C, h, w); the Session and the loop use (B, C, F, h, w).
  The backend permutes at its edges (noise, predict, decode), as the SVD backend does.
- Generator order: the pipeline draws the image's posterior sample FIRST and the noise second, so the
  backend says `draws_image_first` and the Session encodes x~ and x~' (from the same state) before it
  draws `initial_noise`: the pipeline's posterior draw and noise, and lam 0 is the pipeline on x~'.
- Frames: the VAE decodes latent frames in pairs after the first, so an even latent count comes back
  3 frames longer; 8k+1 frames (an odd latent count: 49 for 1.0, 81 for 1.5) come back as asked, and
  `frame_rule` is (8, 1). CogVideoX 1.5 patches latent frames in pairs (`patch_size_t` 2): `__call__`
  adds 4 frames before `prepare_latents`, so the latents get one more frame (`latent_shape` has an even
  count), the image latent sits at frame 0 of that padded run with zeros after (`prepare_latents`' front
  copy of frame 0 is then a no-op) and decode drops the first latent frame, as the pipeline does. The
  trajectory clip gets a front copy of its frame 0, so clip frame k lines up with decoded latent frame k.
- Size: CogVideoX 1.0's learned positional embedding runs only at the sample size (720 x 480; the tiny
  model 64 x 48): another size is refused naming `size`. 1.5 is RoPE-only and takes multiples of 16.
- Scheduler: `CogVideoXDPMScheduler` keeps `old_pred_original_sample` between steps, which the shared
  loop's single `scheduler.step(eps, t, latents)` cannot carry: a folder that ships it is run with
  `CogVideoXDDIMScheduler` of the same config (with a warning), and `predict` refuses it if set later.
  Dynamic CFG (`use_dynamic_cfg`) is off, as the pipeline's default.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXDPMScheduler,
    CogVideoXImageToVideoPipeline,
    CogVideoXTransformer3DModel,
)
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from transformers import T5Config, T5EncoderModel

from ivcore.backends import step_cache
from ivcore.backends.dit import DiTVideoBackend, is_test_model
from ivcore.backends.word_tokenizer import TINY_T5_ENCODER, word_tokenizer
from ivcore.errors import InstructionError

# ---- tiny models and hub-layout mirror
CogVideoXVersion = Literal["1.0", "1.5"]
#: mirror kind -> version: THUDM/CogVideoX-5b-I2V and THUDM/CogVideoX1.5-5B-I2V
COGVIDEOX_MIRROR_KINDS: dict[str, CogVideoXVersion] = {"cogvideox-5b-i2v": "1.0", "cogvideox1.5-5b-i2v": "1.5"}

#: The scheduler of THUDM/CogVideoX-5b-I2V and THUDM/CogVideoX1.5-5B-I2V (scheduler/scheduler_config.json),
#: as diffusers' scripts/convert_cogvideox_to_diffusers.py writes it: v-prediction on a zero-terminal-SNR
#: scaled-linear schedule, trailing timesteps; snr_shift_scale is 1.0 for the 5B models (3.0 for CogVideoX-2b).
COGVIDEOX_SCHEDULER_CONFIG: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    clip_sample_range=1.0,
    sample_max_value=1.0,
    set_alpha_to_one=True,
    steps_offset=0,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    snr_shift_scale=1.0,
    timestep_spacing="trailing",
)

TINY_COGVIDEOX_WIDTH = 64
TINY_COGVIDEOX_HEIGHT = 48
#: (9 - 1) / 4 + 1 = 3 latent frames. 8k + 1 frames come back as asked; 4k + 1 with an even latent count decode to
#: 3 frames more (the VAE decodes latent frames in pairs: 13 frames -> 4 latents -> 16 frames), in 1.0 and 1.5 alike.
TINY_COGVIDEOX_FRAMES = 9
TINY_COGVIDEOX_LATENT_CHANNELS = 4  # 16 in the real VAE
TINY_COGVIDEOX_VAE_FACTOR = 8  # 2 ** (4 blocks - 1), as in the real VAE
TINY_COGVIDEOX_TEXT_LENGTH = 226  # the real max_text_seq_length; the pipeline pads prompts to it

#: CogVideoX-5b-I2V's architecture at a tiny width. Its learned positional embedding (the I2V model's
#: use_learned_positional_embeddings) fixes the resolution to sample_height x sample_width latents, so the
#: tiny 1.0 model, like the real one (720 x 480 only), runs at TINY_COGVIDEOX_WIDTH x TINY_COGVIDEOX_HEIGHT.
#: attention_head_dim 16: 3D RoPE splits a head into t / h / w parts of 1/4, 3/8 and 3/8, each even.
TINY_COGVIDEOX: dict[str, dict[str, Any]] = dict(
    transformer=dict(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=2 * TINY_COGVIDEOX_LATENT_CHANNELS,  # noisy latents + image latents, concatenated
        out_channels=TINY_COGVIDEOX_LATENT_CHANNELS,
        time_embed_dim=16,
        text_embed_dim=32,  # the tiny T5's d_model
        num_layers=2,
        sample_width=TINY_COGVIDEOX_WIDTH // TINY_COGVIDEOX_VAE_FACTOR,
        sample_height=TINY_COGVIDEOX_HEIGHT // TINY_COGVIDEOX_VAE_FACTOR,
        sample_frames=TINY_COGVIDEOX_FRAMES,
        patch_size=2,
        patch_size_t=None,
        temporal_compression_ratio=4,
        max_text_seq_length=TINY_COGVIDEOX_TEXT_LENGTH,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
        patch_bias=True,
        ofs_embed_dim=None,
    ),
    vae=dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(16, 16, 16, 16),
        latent_channels=TINY_COGVIDEOX_LATENT_CHANNELS,
        layers_per_block=1,
        norm_num_groups=4,
        temporal_compression_ratio=4,
        sample_height=TINY_COGVIDEOX_HEIGHT,
        sample_width=TINY_COGVIDEOX_WIDTH,
        scaling_factor=0.7,  # the 5B models' (CogVideoX-2b: 1.15258426)
        invert_scale_latents=False,
    ),
    text_encoder=TINY_T5_ENCODER,
    scheduler=COGVIDEOX_SCHEDULER_CONFIG,
)

#: What CogVideoX1.5-5B-I2V changes (diffusers' conversion script, version "1.5"): latent frames patched in
#: pairs (patch_size_t 2; the pipeline pads the latent frames to even), an ofs embedding (ofs_embed_dim ==
#: time_embed_dim, added to it), RoPE only (no learned positions, so any size up to sample_height x
#: sample_width latents: the tiny one up to 128 x 96) and a VAE whose image latents are divided by the
#: scaling factor (invert_scale_latents). Same scheduler.
TINY_COGVIDEOX_15: dict[str, dict[str, Any]] = dict(
    transformer=dict(
        patch_size_t=2,
        ofs_embed_dim=16,
        use_learned_positional_embeddings=False,
        patch_bias=False,
        sample_width=2 * TINY_COGVIDEOX_WIDTH // TINY_COGVIDEOX_VAE_FACTOR,
        sample_height=2 * TINY_COGVIDEOX_HEIGHT // TINY_COGVIDEOX_VAE_FACTOR,
    ),
    vae=dict(invert_scale_latents=True),
)


def tiny_cogvideox_configs(version: CogVideoXVersion = "1.0") -> dict[str, dict[str, Any]]:
    """The tiny configs of one CogVideoX version (fresh copies, so callers may change them)."""
    if version not in ("1.0", "1.5"):
        raise ValueError(f"CogVideoX version must be '1.0' or '1.5', not {version!r}")
    configs = copy.deepcopy(TINY_COGVIDEOX)
    if version == "1.5":
        for name, changes in TINY_COGVIDEOX_15.items():
            configs[name].update(changes)
    return configs


def tiny_cogvideox_components(seed: int = 0, version: CogVideoXVersion = "1.0") -> dict[str, Any]:
    """Random-init tiny CogVideoX I2V components; each model is seeded on its own, so same seed, same weights."""
    configs = tiny_cogvideox_configs(version)
    torch.manual_seed(seed)
    transformer = CogVideoXTransformer3DModel(**configs["transformer"]).eval()
    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(**configs["vae"]).eval()
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(T5Config(**configs["text_encoder"])).eval()
    tokenizer = word_tokenizer(
        vocab_size=configs["text_encoder"]["vocab_size"], model_max_length=TINY_COGVIDEOX_TEXT_LENGTH
    )
    scheduler = CogVideoXDDIMScheduler(**configs["scheduler"])
    return dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler)


def write_cogvideox_mirror(
    folder: str | os.PathLike, seed: int = 0, version: CogVideoXVersion = "1.0", kind: str | None = None
) -> Path:
    """Write a tiny CogVideoX I2V in the hub layout (model_index.json, one folder per component, safetensors).

    `CogVideoXImageToVideoPipeline.from_pretrained(folder)` then loads it the way it loads THUDM's repos.
    `kind` (a key of COGVIDEOX_MIRROR_KINDS, for `ivcore.backends.families.write_mirror`) picks the version.
    """
    if kind is not None:
        if kind not in COGVIDEOX_MIRROR_KINDS:
            raise ValueError(f"unknown CogVideoX mirror kind {kind!r}; known: {', '.join(COGVIDEOX_MIRROR_KINDS)}")
        version = COGVIDEOX_MIRROR_KINDS[kind]
    folder = Path(folder)
    pipe = CogVideoXImageToVideoPipeline(**tiny_cogvideox_components(seed, version))
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


# ---- the backend
MAX_SEQUENCE_LENGTH = 226  # what CogVideoXImageToVideoPipeline.__call__ passes to encode_prompt
OFS = 2.0  # CogVideoX 1.5's ofs embedding input, as the pipeline sets it
#: version -> the model cards' settings: native (width, height), frames, fps, steps, guidance
COGVIDEOX_VARIANTS: dict[str, dict[str, Any]] = {
    "1.0": dict(size=(720, 480), num_frames=49, fps=8, steps=50, guidance=6.0),
    "1.5": dict(size=(1360, 768), num_frames=81, fps=16, steps=50, guidance=6.0),
    "tiny": dict(size=(TINY_COGVIDEOX_WIDTH, TINY_COGVIDEOX_HEIGHT), num_frames=9, fps=8, steps=4, guidance=6.0),
}


def to_session_layout(x: torch.Tensor) -> torch.Tensor:
    """(B, F, C, h, w) -> (B, C, F, h, w)."""
    return x.permute(0, 2, 1, 3, 4).contiguous()


def to_cogvideox_layout(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) -> (B, F, C, h, w)."""
    return x.permute(0, 2, 1, 3, 4).contiguous()


class CogVideoXEncoding(NamedTuple):
    """What `encode_images` returns (a tuple, so the stage cache can size it)."""

    latents: torch.Tensor  # (1, C, 1, h, w) the image's posterior sample, unscaled, in the model dtype
    clip: torch.Tensor | None  # (1, C, f, h, w) the animated clip's latents in the diffusion scale (path mode)


class CogVideoXCondition(NamedTuple):
    image_latents: torch.Tensor  # (1, F, C, h, w) pipeline layout: scaled frame 0, zeros after


class CogVideoXVideoBackend(DiTVideoBackend):
    """CogVideoX 1.0 / 1.5 image-to-video (P_video of Eq. 1) over a `CogVideoXImageToVideoPipeline`'s modules.

    `version` is "1.5" when the transformer patches time (`patch_size_t`), else "1.0". Test models (a
    transformer narrower than 256) get the tiny settings: 64 x 48, 9 frames, 4 steps.
    """

    draws_image_first = True  # the pipeline samples the image posterior before the noise (module docstring)
    step_cache_rows = "together"  # the pipeline calls [uncond, cond] as one batch in one cache context

    def __init__(self, pipe, *, name: str = "", **overrides: Any):
        config = pipe.transformer.config
        self.version: CogVideoXVersion = "1.0" if config.patch_size_t is None else "1.5"
        tiny = is_test_model(pipe.transformer)
        settings = {**COGVIDEOX_VARIANTS["tiny" if tiny else self.version], **overrides}
        defaults = dict(steps=settings["steps"], guidance=settings["guidance"], negative_prompt="")
        if isinstance(pipe.scheduler, CogVideoXDPMScheduler):
            warnings.warn(
                "CogVideoXDPMScheduler carries old_pred_original_sample between steps, which the Eq. 4 loop cannot; "
                "running CogVideoXDDIMScheduler with the same config",
                stacklevel=2,
            )
            pipe.scheduler = CogVideoXDDIMScheduler.from_config(pipe.scheduler.config)
        super().__init__(
            pipe, native_size=settings["size"], num_frames=settings["num_frames"], fps=settings["fps"],
            defaults=defaults, name=name or f"cogvideox-{self.version}",
        )  # fmt: skip
        self.variant = self.version
        self.spatial_factor = int(pipe.vae_scale_factor_spatial)
        self.temporal_factor = int(pipe.vae_scale_factor_temporal)
        self.patch = (int(config.patch_size), int(config.patch_size))
        self.patch_t = None if config.patch_size_t is None else int(config.patch_size_t)
        if config.use_learned_positional_embeddings:  # 1.0 runs only at its sample size
            self.native_size = (config.sample_width * self.spatial_factor, config.sample_height * self.spatial_factor)

    # ------------------------------------------------------------------ shapes and rules
    @property
    def frame_rule(self) -> tuple[int, int]:
        """(8, 1): an odd latent count, which the VAE (decoding latent frames in pairs after the first) returns
        as asked; an even one comes back 3 frames longer (13 frames -> 4 latents -> 16 frames)."""
        return (2 * self.temporal_factor, 1)

    def _padding(self, latent_frames: int) -> int:
        """Latent frames CogVideoX 1.5 adds in front so that `patch_size_t` divides the count (the pipeline's)."""
        p = self.patch_t
        return 0 if p is None or latent_frames % p == 0 else p - latent_frames % p

    def latent_frames(self, num_frames: int) -> int:
        frames = (num_frames - 1) // self.temporal_factor + 1
        return frames + self._padding(frames)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        """(1, C, f, h, w), f with 1.5's front padding; a size other than 1.0's sample size is refused."""
        if self.pipe.transformer.config.use_learned_positional_embeddings and (width, height) != self.native_size:
            w, h = self.native_size
            raise InstructionError(
                "size", (width, height), f"{w} x {h} only: CogVideoX 1.0's learned positional embedding fixes it"
            )
        return super().latent_shape(num_frames, height, width)

    def initial_noise(self, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        """The pipeline's noise, float32 in the Session layout (drawn after the image's posterior sample)."""
        batch, channels, frames, h, w = (int(v) for v in shape)
        noise = randn_tensor((batch, frames, channels, h, w), generator=generator, device=self.device, dtype=self.dtype)
        return to_session_layout(noise * self.scheduler.init_noise_sigma).float()

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """T5 embeddings (1, 226, D), as the pipeline's `encode_prompt` makes them."""
        embeds, _ = self.pipe.encode_prompt(
            prompt, do_classifier_free_guidance=False, max_sequence_length=MAX_SEQUENCE_LENGTH, device=self.device
        )
        return embeds.to(self.dtype)

    # ------------------------------------------------------------------ image condition
    @property
    def _scale(self) -> float:
        return float(self.pipe.vae_scaling_factor_image)

    @torch.no_grad()
    def _encode_clip(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The clip's posterior mode in the diffusion scale (x scaling_factor), 1.5's padding in front."""
        width, height = images[0].size
        frames = self.pipe.video_processor.preprocess(list(images), height=height, width=width)  # (N, 3, H, W)
        video = frames.permute(1, 0, 2, 3).unsqueeze(0).to(self.device, dtype=self.vae.dtype)
        latents = self.vae.encode(video).latent_dist.mode().float() * self._scale
        pad = self._padding(latents.shape[2])
        return torch.cat([latents[:, :, :pad], latents], dim=2) if pad else latents

    @torch.no_grad()
    def encode_images(
        self, images: Sequence[Image.Image], generator: torch.Generator, num_frames: int | None = None
    ) -> CogVideoXEncoding:
        """The posterior sample of x~ (one image) or of the first of path mode's animated frames (and the clip).

        The sample is the generator's first draw, as in the pipeline (`draws_image_first`). `num_frames` is not
        needed: `condition` pads.
        """
        images = list(images)
        width, height = images[0].size
        pixels = self.pipe.video_processor.preprocess(images[0], height=height, width=width)
        pixels = pixels.to(self.device, dtype=self.dtype).unsqueeze(2)  # (1, 3, 1, H, W)
        latents = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.sample(generator).to(self.dtype)
        clip = self._encode_clip(images) if len(images) > 1 else None
        return CogVideoXEncoding(latents, clip)

    def condition(self, encoded: CogVideoXEncoding, num_frames: int, motion_scale: int = 0) -> CogVideoXCondition:
        """The image latents of one branch, as `prepare_latents` builds them (`motion_scale` is PIA's, ignored)."""
        frames = self.latent_frames(num_frames)  # 1.5: with the padding frame, as __call__ passes num_frames
        image = to_cogvideox_layout(encoded.latents)  # (1, 1, C, h, w)
        invert = self.vae.config.invert_scale_latents
        image = 1 / self._scale * image if invert else self._scale * image
        padding = torch.zeros((1, frames - 1, *image.shape[2:]), device=image.device, dtype=image.dtype)
        return CogVideoXCondition(torch.cat([image, padding], dim=1))

    def reference_latents(self, encoded: CogVideoXEncoding) -> torch.Tensor:
        """(1, C, h, w): the image's latent in the diffusion scale, for Eq. 5's statistics alignment."""
        return encoded.latents[:, :, 0].float() * self._scale

    def trajectory_target(self, encoded: CogVideoXEncoding) -> torch.Tensor:
        """Path mode: the clip's latents (1, C, f, h, w); one image: its latent (1, C, 1, h, w), which the pull
        broadcasts over every latent frame (endpoint mode) and the preview fit reads as frame 0."""
        return encoded.clip if encoded.clip is not None else self.reference_latents(encoded).unsqueeze(2)

    # ------------------------------------------------------------------ one step
    def _check_scheduler(self, scheduler) -> None:
        if isinstance(scheduler, CogVideoXDPMScheduler):
            raise InstructionError(
                "scheduler", type(scheduler).__name__,
                "CogVideoXDDIMScheduler (or another one-state sampler): CogVideoXDPMScheduler needs "
                "old_pred_original_sample between steps, which the Eq. 4 loop's single scheduler.step cannot pass",
            )  # fmt: skip

    @torch.no_grad()
    def predict(
        self,
        scheduler,
        latents: torch.Tensor,
        t: torch.Tensor,
        conditions: Sequence[CogVideoXCondition],
        text: torch.Tensor,
        uncond: torch.Tensor,
        guidance: float,
        branches: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Guided v-predictions (float32, Session layout) for N rows: rows [uncond x N, text x N] in one call.

        The pipeline's order and arithmetic: `cat([scale_model_input(latents), image_latents], dim=2)`,
        `uncond + g * (text - uncond)` on the float output; each row gets its branch's image latents. While a
        step cache is on, each branch's [uncond, text] rows are one call in a cache context of the branch's own
        (`branches`, `step_cache`), as the pipeline's one call in "cond_uncond".
        """
        self._check_scheduler(scheduler)
        n, _, frames, h, w = latents.shape
        x = scheduler.scale_model_input(to_cogvideox_layout(latents).to(self.dtype), t)
        image = torch.cat([c.image_latents for c in conditions]).to(self.dtype)
        use_cfg = guidance > 1
        texts = [text.expand(n, -1, -1)]
        if use_cfg:
            x, image = torch.cat([x, x]), torch.cat([image, image])
            texts.insert(0, uncond.expand(n, -1, -1))
        model_in, texts = torch.cat([x, image], dim=2), torch.cat(texts).to(self.dtype)
        timestep = t.expand(model_in.shape[0])
        config = self.pipe.transformer.config
        rotary = None
        if config.use_rotary_positional_embeddings:
            sf = self.spatial_factor
            rotary = self.pipe._prepare_rotary_positional_embeddings(h * sf, w * sf, frames, self.device)
        ofs = None if config.ofs_embed_dim is None else model_in.new_full((1,), fill_value=OFS)

        def run(rows: slice | list[int]) -> torch.Tensor:
            return self.pipe.transformer(
                hidden_states=model_in[rows], encoder_hidden_states=texts[rows], timestep=timestep[rows],
                ofs=ofs, image_rotary_emb=rotary, return_dict=False,
            )[0]  # fmt: skip

        labels = ("uncond", "cond") if use_cfg else ("cond",)
        pred = step_cache.by_context(self, self.pipe.transformer, run, labels, branches, n)
        if pred is None:  # no step cache: all rows in one call
            pred = self._split_rows(lambda a, b: run(slice(a, b)), model_in.shape[0], frames)
        pred = pred.float()
        if use_cfg:
            plain, cond = pred.chunk(2)
            pred = plain + guidance * (cond - plain)
        return to_session_layout(pred)

    # ------------------------------------------------------------------ decode
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (1, C, f, h, w) -> float frames (F, H, W, 3) in [0, 1], as the pipeline decodes them.

        1.5's front padding is dropped first: with the 8k+1 frame rule the real latent count is odd, so an
        even count under `patch_size_t` 2 holds one padding frame.
        """
        frames = latents.shape[2]
        extra = self._padding(frames - 1) if self.patch_t is not None and frames % self.patch_t == 0 else 0
        latents = to_cogvideox_layout(latents[:, :, extra:]).to(device=self.device, dtype=self.vae.dtype)
        video = self.pipe.decode_latents(latents)  # (1, 3, F, H, W) in [-1, 1]
        return (video[0] * 0.5 + 0.5).clamp(0, 1).float().permute(1, 2, 3, 0)


# ---- loading
def load_cogvideox_backend(
    model: str, *, device: torch.device, dtype: torch.dtype, **shared: Any
) -> CogVideoXVideoBackend:
    """CogVideoX from a hub id or a local folder in the diffusers layout (safetensors only, never pickle).

    The 5B models were trained in bf16 (their model cards say so; fp16 is for CogVideoX-2b): a float16
    request is loaded as bfloat16. `shared` (the image backend, a motion adapter) is not used.
    """
    if dtype == torch.float16:
        dtype = torch.bfloat16
    pipe = CogVideoXImageToVideoPipeline.from_pretrained(str(model), dtype=dtype, use_safetensors=True)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return CogVideoXVideoBackend(pipe, name=str(model))


def tiny_cogvideox_backend(seed: int = 0, version: CogVideoXVersion = "1.0") -> CogVideoXVideoBackend:
    """The tiny offline CogVideoX backend of one version (native 64 x 48, 9 frames, 4 steps)."""
    pipe = CogVideoXImageToVideoPipeline(**tiny_cogvideox_components(seed, version))
    pipe.set_progress_bar_config(disable=True)
    return CogVideoXVideoBackend(pipe, name=f"tiny-cogvideox-{version}")


__all__ = [
    "COGVIDEOX_MIRROR_KINDS",
    "COGVIDEOX_VARIANTS",
    "COGVIDEOX_SCHEDULER_CONFIG",
    "TINY_COGVIDEOX",
    "TINY_COGVIDEOX_15",
    "TINY_COGVIDEOX_FRAMES",
    "TINY_COGVIDEOX_HEIGHT",
    "TINY_COGVIDEOX_WIDTH",
    "CogVideoXVideoBackend",
    "load_cogvideox_backend",
    "tiny_cogvideox_backend",
    "tiny_cogvideox_components",
    "tiny_cogvideox_configs",
    "write_cogvideox_mirror",
]
