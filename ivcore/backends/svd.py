"""P_video: Stable Video Diffusion (SVD) behind the same Session and Eq. 4 loop as PIA.

SVD's UNet (UNetSpatioTemporalConditionModel) sees, per frame, `cat([noisy latents (4), image
latents (4)])` and cross-attends to one CLIP image embedding. Both come from the conditioning
image, so one branch's condition is (image latents repeated over frames, image embedding,
added_time_ids): x~ gives the base branch, x~' the edited one, and Eq. 4 blends their guided
predictions exactly as for PIA. SVD has no text: the motion text is ignored, and `encode_prompt`
returns a placeholder so the Session's text stage still runs.

Layout: SVD latents are (B, F, C, h, w), the Session and `ivcore.stages.denoise` use (B, C, F, h, w).
This backend permutes at its edges (`initial_noise`, `predict`, `decode`), so nothing else
changes; every per-element operation (scheduler scaling and step, Eq. 4) is layout-free.

Every numeric step follows diffusers' `StableVideoDiffusionPipeline` (the test oracle):
noise augmentation of the VAE input, `latent_dist.mode()` without scaling, zero image latents and
zero embeddings for the unconditional rows, the per-frame guidance ramp, fps - 1 in the time ids.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
from diffusers import (
    AutoencoderKLTemporalDecoder,
    EulerDiscreteScheduler,
    StableVideoDiffusionPipeline,
    UNetSpatioTemporalConditionModel,
)

# The pipeline's own anti-aliased resize for the CLIP input: reused (not re-implemented) so the
# image embedding is bit-identical to the pipeline's.
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from PIL import Image
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from ivcore.backends.base import BackendSetting, SDComponents
from ivcore.backends.fallback import OutOfMemoryError, SplitLimits, free_memory
from ivcore.backends.loading import load_component

DEFAULT_SVD_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"
CLIP_SIZE = 224  # the pipeline resizes every conditioning image to 224 x 224 for CLIP
# (width, height) SVD and SVD-XT were trained at (16:9 landscape). Their UNet config says sample_size 96
# (768 px square), which has the same pixel count: 1024 * 576 == 768 ** 2 (see `svd_native_size`).
SVD_NATIVE_SIZE = (1024, 576)
PROBE_STEPS = 25  # steps of the scheduler copy used to read init_noise_sigma (see init_noise_sigma)
SVD_DEFAULTS = dict(steps=25, guidance=3.0)  # Session settings matching the pipeline's defaults

# The scheduler config SVD ships with (Karras sigmas up to 700, v-prediction, continuous timesteps).
SVD_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
    interpolation_type="linear",
    use_karras_sigmas=True,
    sigma_min=0.002,
    sigma_max=700.0,
    timestep_spacing="leading",
    timestep_type="continuous",
    steps_offset=1,
)

TINY_SVD_SIZE = 64
TINY_SVD_FRAMES = 4
TINY_SVD_UNET = dict(
    sample_size=TINY_SVD_SIZE // 4,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    block_out_channels=(32, 64),
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24,  # 3 time ids x addition_time_embed_dim
    layers_per_block=1,
    cross_attention_dim=32,
    num_attention_heads=(2, 4),
    num_frames=8,
)
TINY_SVD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    block_out_channels=(32, 32, 32),  # GroupNorm(32) in the temporal decoder: multiples of 32
    layers_per_block=1,
    latent_channels=4,
    sample_size=TINY_SVD_SIZE,
)
TINY_SVD_CLIP = dict(
    hidden_size=32,
    intermediate_size=37,
    projection_dim=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=CLIP_SIZE,
    patch_size=32,
)


class SVDEncoding(NamedTuple):
    """What `encode_images` returns (a tuple, so the stage cache can size it)."""

    latents: torch.Tensor  # (N, 4, h, w): VAE mode of the noise-augmented image, unscaled (as SVD uses it)
    embeds: torch.Tensor  # (N, D): CLIP image embeddings of the clean image


class SVDCondition(NamedTuple):
    """One branch's condition: what SVD's UNet needs besides the noisy latents."""

    latents: torch.Tensor  # (1, F, 4, h, w) image latents, concatenated to the noisy latents on dim 2
    embeds: torch.Tensor  # (1, 1, D) the cross-attention token
    time_ids: torch.Tensor  # (1, 3): fps - 1, motion_bucket_id, noise_aug_strength


def to_session_layout(x: torch.Tensor) -> torch.Tensor:
    """(B, F, C, h, w) -> (B, C, F, h, w)."""
    return x.permute(0, 2, 1, 3, 4).contiguous()


def to_svd_layout(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) -> (B, F, C, h, w)."""
    return x.permute(0, 2, 1, 3, 4).contiguous()


def guidance_ramp(min_guidance: float, max_guidance: float, num_frames: int, like: torch.Tensor) -> torch.Tensor:
    """SVD's per-frame guidance, (1, F, 1, 1, 1): linear from min (frame 0) to max (last frame)."""
    ramp = torch.linspace(min_guidance, max_guidance, num_frames).unsqueeze(0)
    return ramp.to(like.device, like.dtype).view(1, num_frames, 1, 1, 1)


class SVDVideoBackend(SplitLimits, SDComponents):
    """Image-to-video (P_video of Eq. 1) with Stable Video Diffusion, implementing `VideoBackend`.

    Attributes use diffusers' names (`unet`, `vae`, `image_encoder`, `feature_extractor`,
    `scheduler`), so a reference `StableVideoDiffusionPipeline` can be built over the very same
    modules. `text_encoder` and `tokenizer` are None: SVD is conditioned on the image only.
    The Session's `guidance` is the pipeline's `max_guidance_scale` (last frame); frame 0 gets
    `min_guidance`. `fps`, `motion_bucket_id`, `noise_aug_strength`, `min_guidance` and
    `decode_chunk_size` are SVD's micro-conditioning and decode settings; changing one bumps
    `weights_version`, so cached results of other settings are never reused. `max_rows` splits
    UNet calls as for PIA (lowered on out-of-memory); the decode is not split automatically,
    because the temporal decoder mixes the frames of a chunk (see `decode`).
    """

    fps = BackendSetting()
    motion_bucket_id = BackendSetting()
    noise_aug_strength = BackendSetting()
    min_guidance = BackendSetting()
    decode_chunk_size = BackendSetting()

    def __init__(
        self,
        unet: UNetSpatioTemporalConditionModel,
        vae: AutoencoderKLTemporalDecoder,
        image_encoder: CLIPVisionModelWithProjection,
        feature_extractor: CLIPImageProcessor,
        scheduler,
        *,
        size: int | tuple[int, int] = SVD_NATIVE_SIZE,
        num_frames: int | None = None,
        fps: int = 7,
        motion_bucket_id: int = 127,
        noise_aug_strength: float = 0.02,
        min_guidance: float = 1.0,
        decode_chunk_size: int | None = None,
        name: str = "",
    ):
        check_time_ids(unet)
        # no text: text_encoder and tokenizer stay None (SVD is conditioned on the image only)
        super().__init__(unet, vae, None, None, scheduler, size=size, name=name)
        self.image_encoder = image_encoder
        self.feature_extractor = feature_extractor
        self.num_frames = int(num_frames or unet.config.num_frames)
        self.fps = fps
        self.motion_bucket_id = motion_bucket_id
        self.noise_aug_strength = noise_aug_strength
        self.min_guidance = min_guidance
        self.decode_chunk_size = decode_chunk_size
        self.video_processor = VideoProcessor(do_resize=True, vae_scale_factor=self.vae_scale_factor)
        self.defaults = dict(SVD_DEFAULTS)  # max_guidance_scale 3: PIA's 7.5 is far too strong for SVD

    @property
    def max_frames(self) -> int:
        """The clip length the UNet was trained on (14 for img2vid, 25 for img2vid-xt)."""
        return int(self.unet.config.num_frames)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        """Session layout (1, 4, F, h, w); SVD's UNet input is twice the latent channels."""
        f = self.vae_scale_factor
        return (1, self.unet.config.in_channels // 2, num_frames, height // f, width // f)

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """A (1, 1, 1) zero placeholder: SVD has no text encoder, so the motion text is ignored."""
        return torch.zeros(1, 1, 1, device=self.device, dtype=self.dtype)

    def init_noise_sigma(self) -> torch.Tensor | float:
        """The scheduler's `init_noise_sigma` as it is once `set_timesteps` has run.

        The Session calls `set_timesteps` before drawing the noise; for direct use without it, a
        fresh Euler scheduler reports the sigma of its training schedule (14.6 for SVD's config)
        instead of the sampling schedule's sigma_max (700), so a scheduler that was never set is
        read through a set copy. With SVD's Karras config the value does not depend on the steps.
        """
        if getattr(self.scheduler, "num_inference_steps", None) is not None:
            return self.scheduler.init_noise_sigma
        probe = type(self.scheduler).from_config(self.scheduler.config)
        probe.set_timesteps(PROBE_STEPS)
        return probe.init_noise_sigma

    def initial_noise(self, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        """The first generator draw, in SVD's (B, F, C, h, w) order, returned in the Session's layout.

        Drawing in SVD's order makes the values those that `StableVideoDiffusionPipeline` draws
        for the same shape, so the pipeline can be handed these very latents.
        """
        b, c, f, h, w = shape
        noise = randn_tensor((b, f, c, h, w), generator=generator, device=self.device, dtype=self.dtype)
        return to_session_layout(noise * self.init_noise_sigma())

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """CLIP image embeddings (N, D), preprocessed exactly as the pipeline does."""
        pixels = self.video_processor.numpy_to_pt(self.video_processor.pil_to_numpy(list(images)))
        pixels = (_resize_with_antialiasing(pixels * 2.0 - 1.0, (CLIP_SIZE, CLIP_SIZE)) + 1.0) / 2.0
        pixels = self.feature_extractor(
            images=pixels, do_normalize=True, do_center_crop=False, do_resize=False, do_rescale=False,
            return_tensors="pt",
        ).pixel_values  # fmt: skip
        dtype = next(self.image_encoder.parameters()).dtype
        return self.image_encoder(pixels.to(device=self.device, dtype=dtype)).image_embeds

    @contextmanager
    def _vae_upcast(self) -> Iterator[None]:
        """Encode an fp16 VAE with `force_upcast` in fp32, then restore it (as the pipeline does)."""
        upcast = self.vae.dtype == torch.float16 and bool(self.vae.config.force_upcast)
        if upcast:
            self.vae.to(dtype=torch.float32)
        try:
            yield
        finally:
            if upcast:
                self.vae.to(dtype=torch.float16)

    @torch.no_grad()
    def encode_images(
        self, images: Sequence[Image.Image], generator: torch.Generator, num_frames: int | None = None
    ) -> SVDEncoding:
        """Latents and embeddings of N images; the noise augmentation is drawn from `generator`.

        SVD adds `noise_aug_strength * noise` to the VAE input (not to the CLIP input) and takes
        the posterior mode. The Session encodes x~ and x~' from the same generator state, so both
        branches get the same augmentation noise and lam = 0 is the plain video of x~'.
        """
        images = list(images)
        embeds = self.image_embeddings(images)
        width, height = images[0].size
        pixels = self.video_processor.preprocess(images, height=height, width=width).to(self.device)
        noise = randn_tensor(pixels.shape, generator=generator, device=self.device, dtype=pixels.dtype)
        pixels = pixels + self.noise_aug_strength * noise
        with self._vae_upcast():
            latents = self.vae.encode(pixels.to(dtype=self.vae.dtype)).latent_dist.mode()
        return SVDEncoding(latents.to(embeds.dtype), embeds)

    def reference_latents(self, encoded: SVDEncoding) -> torch.Tensor:
        """Image latents in the video latents' (scaled) space, (N, 4, h, w): Eq. 5 alignment's x~."""
        return encoded.latents * self.vae.config.scaling_factor

    def condition(self, encoded: SVDEncoding, num_frames: int, motion_scale: int = 0) -> SVDCondition:
        """One branch's condition. `motion_scale` is PIA's and is ignored (SVD: `motion_bucket_id`).

        One image is repeated over frames (the pipeline's layout); N = num_frames images (the
        Session's trajectory path mode) give one latent per frame, and, since SVD's UNet takes a
        single image token per clip, the mean of their embeddings.
        """
        latents, embeds = encoded
        n = latents.shape[0]
        if n not in (1, num_frames):
            raise ValueError(f"image latents: {n} latents for {num_frames} frames")
        frames = latents.unsqueeze(0).repeat(1, num_frames // n, 1, 1, 1)
        token = embeds[:1] if n == 1 else embeds.mean(dim=0, keepdim=True)
        time_ids = torch.tensor(
            [[self.fps - 1, self.motion_bucket_id, self.noise_aug_strength]], dtype=embeds.dtype
        ).to(embeds.device)  # fps - 1: SVD was micro-conditioned on it during training
        return SVDCondition(frames, token.unsqueeze(1), time_ids)

    @torch.no_grad()
    def predict(
        self,
        scheduler,
        latents: torch.Tensor,
        t: torch.Tensor,
        conditions: Sequence[SVDCondition],
        text: torch.Tensor,
        uncond: torch.Tensor,
        guidance: float,
    ) -> torch.Tensor:
        """Guided predictions for N (latent, condition) rows in one UNet call, Session layout in and out.

        `latents` is (N, 4, F, h, w). With guidance > 1 the UNet sees rows [uncond x N, cond x N]
        where the unconditional rows have zero image latents and zero embeddings (for N = 1
        exactly the pipeline's batch), and frame i is guided by the ramp min_guidance -> guidance.
        `text` and `uncond` are the placeholders of `encode_prompt` and are not used.
        """
        use_cfg = guidance > 1
        x = to_svd_layout(latents)
        image_latents = torch.cat([c.latents for c in conditions])
        embeds = torch.cat([c.embeds for c in conditions])
        time_ids = torch.cat([c.time_ids for c in conditions])
        if use_cfg:
            x = torch.cat([x] * 2)
            image_latents = torch.cat([torch.zeros_like(image_latents), image_latents])
            embeds = torch.cat([torch.zeros_like(embeds), embeds])
            time_ids = torch.cat([time_ids, time_ids])
        model_in = torch.cat([scheduler.scale_model_input(x, t), image_latents.to(x.dtype)], dim=2)
        embeds = embeds.to(self.dtype)

        def run(start: int, stop: int) -> torch.Tensor:  # rows are independent videos: split freely
            return self.unet(
                model_in[start:stop], t, encoder_hidden_states=embeds[start:stop],
                added_time_ids=time_ids[start:stop], return_dict=False,
            )[0]  # fmt: skip

        eps = self._split_rows(run, model_in.shape[0], model_in.shape[1])
        if use_cfg:
            eps_uncond, eps_cond = eps.chunk(2)
            ramp = guidance_ramp(self.min_guidance, guidance, x.shape[1], eps)
            eps = eps_uncond + ramp * (eps_cond - eps_uncond)
        return to_session_layout(eps)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Video latents (1, 4, F, h, w) -> float frames (F, H, W, 3) in [0, 1], as the pipeline does.

        The temporal decoder mixes frames within a chunk: `decode_chunk_size` None decodes all
        frames at once (the pipeline's default, best temporal consistency); smaller saves memory.
        Because a smaller chunk changes the frames, an out-of-memory error here is not split
        automatically (unlike the UNet rows): it is re-raised with a warning that names the setting.
        """
        flat = to_svd_layout(latents).flatten(0, 1)
        flat = 1 / self.vae.config.scaling_factor * flat
        chunk = self.decode_chunk_size or flat.shape[0]
        frames = []
        for i in range(0, flat.shape[0], chunk):
            part = flat[i : i + chunk].to(self.vae.dtype)
            try:
                frames.append(self.vae.decode(part, num_frames=part.shape[0]).sample)
            except OutOfMemoryError:
                frames.clear()
                free_memory(self.device)
                warnings.warn(
                    f"SVD decode: out of memory decoding {part.shape[0]} frames at once; set "
                    f"video_backend.decode_chunk_size = {max(1, part.shape[0] // 2)} (or lower) and generate "
                    "again (the temporal decoder mixes the frames of a chunk, so the video changes slightly)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                raise
        frames = torch.cat(frames).float()
        return (frames * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)

    def pipeline(self) -> StableVideoDiffusionPipeline:
        """diffusers' pipeline over these very modules (the reference; also handy for saving)."""
        return StableVideoDiffusionPipeline(
            vae=self.vae, image_encoder=self.image_encoder, unet=self.unet, scheduler=self.scheduler,
            feature_extractor=self.feature_extractor,
        )  # fmt: skip


def check_time_ids(unet: UNetSpatioTemporalConditionModel) -> None:
    """Fail at construction, not mid-run, when the UNet does not take SVD's three time ids."""
    expected = unet.add_embedding.linear_1.in_features
    passed = unet.config.addition_time_embed_dim * 3
    if expected != passed:
        raise ValueError(
            f"svd unet: its added time embedding takes {expected} values but 3 time ids x "
            f"addition_time_embed_dim = {passed}; an SVD UNet (fps, motion_bucket_id, noise_aug_strength) is needed"
        )


def svd_native_size(sample_side: int) -> tuple[int, int]:
    """(width, height) an SVD model was trained at, from its UNet's sample side in pixels (sample_size x VAE factor).

    SVD's configs hold no aspect ratio: the UNet's sample_size 96 is 768 px, a square of the same
    pixel count as the 1024 x 576 clips it was trained on. A model of that area gets SVD's
    landscape shape; any other (the tiny preset, test folders) is square at its sample side.
    """
    side = int(sample_side)
    width, height = SVD_NATIVE_SIZE
    return (width, height) if side * side == width * height else (side, side)


# ---------------------------------------------------------------------------------------- tiny preset
def tiny_svd_components(seed: int = 0) -> dict[str, Any]:
    """Random-init tiny SVD components (64x64, 16x16 latents, up to 8 frames). Same seed, same weights."""
    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(**TINY_SVD_UNET).eval()
    vae = AutoencoderKLTemporalDecoder(**TINY_SVD_VAE).eval()
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_SVD_CLIP)).eval()
    feature_extractor = CLIPImageProcessor(crop_size=CLIP_SIZE, size=CLIP_SIZE)
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    return dict(
        unet=unet, vae=vae, image_encoder=image_encoder, feature_extractor=feature_extractor, scheduler=scheduler
    )


def tiny_svd_backend(seed: int = 0, **kwargs: Any) -> SVDVideoBackend:
    """The tiny offline SVD backend (CPU, a fraction of a second per step); kwargs go to the backend."""
    options = dict(size=TINY_SVD_SIZE, num_frames=TINY_SVD_FRAMES, name="tiny-svd")
    options.update(kwargs)
    return SVDVideoBackend(**tiny_svd_components(seed), **options)


def save_tiny_svd(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny SVD model in the hub's folder layout (safetensors), for `load_svd_backend(folder)`."""
    folder = Path(folder)
    tiny_svd_backend(seed).pipeline().save_pretrained(folder, safe_serialization=True)
    return folder


# ---------------------------------------------------------------------------------------- real weights
def load_svd_backend(
    model: str | os.PathLike = DEFAULT_SVD_MODEL,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    *,
    size: int | tuple[int, int] | None = None,
    num_frames: int | None = None,
    **kwargs: Any,
) -> SVDVideoBackend:
    """SVD from a hub id or a local folder in the diffusers layout (safetensors only, never pickle).

    fp16 on CUDA, fp32 elsewhere; the weights come from the plain or the `fp16` variant files,
    whichever are there (fp16 first in float16: `ivcore.backends.loading`). `size` is the
    native size, (width, height) or a square side; None derives it from the configs
    (`svd_native_size`: 1024 x 576 for SVD and SVD-XT). `kwargs` go to `SVDVideoBackend` (fps,
    motion_bucket_id, noise_aug_strength, ...).
    """
    model = str(model)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    unet = load_component(UNetSpatioTemporalConditionModel, model, "unet", dtype)
    vae = load_component(AutoencoderKLTemporalDecoder, model, "vae", dtype)
    image_encoder = load_component(CLIPVisionModelWithProjection, model, "image_encoder", dtype)
    feature_extractor = CLIPImageProcessor.from_pretrained(model, subfolder="feature_extractor")
    scheduler = EulerDiscreteScheduler.from_pretrained(model, subfolder="scheduler")
    if size is None:
        size = svd_native_size(unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1))
    return SVDVideoBackend(
        unet.to(device).eval(), vae.to(device).eval(), image_encoder.to(device).eval(), feature_extractor,
        scheduler, size=size, num_frames=num_frames, name=kwargs.pop("name", model), **kwargs,
    )  # fmt: skip


def load_family(model: str, *, device: torch.device, dtype: torch.dtype, **shared: Any) -> SVDVideoBackend:
    """The families registry's loader (`ivcore.backends.families`): SVD shares nothing with P_img."""
    return load_svd_backend(model, device=device, dtype=dtype)


__all__ = [
    "DEFAULT_SVD_MODEL",
    "SVD_DEFAULTS",
    "SVDCondition",
    "SVDEncoding",
    "SVDVideoBackend",
    "SVD_NATIVE_SIZE",
    "load_svd_backend",
    "save_tiny_svd",
    "svd_native_size",
    "tiny_svd_backend",
    "tiny_svd_components",
]
