"""P_video: PIA-style image-to-video over diffusers components.

PIA's UNet (UNetMotionModel with a 9-channel conv_in) sees, per frame,
`cat([noisy latents (4), motion mask (1), image latents * scaling (4)])`. This backend prepares
those inputs; the denoising loop with the Eq. 4 blend lives in `ivcore.stages.denoise`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from PIL import Image

from ivcore.backends.base import SDComponents
from ivcore.backends.fallback import SplitLimits

DEFAULT_MOTION_ADAPTER = "openmmlab/PIA-condition-adapter"

# PIA's motion-scale table (per-frame weights of the image condition, by distance to frame 0).
# Copied as data from the PIA paper's released statistics, which diffusers also ships.
MOTION_SCALES: tuple[tuple[float, ...], ...] = (
    (1.0, 0.9, 0.85, 0.85, 0.85, 0.8),  # small motion
    (1.0, 0.8, 0.8, 0.8, 0.79, 0.78, 0.75),  # moderate motion
    (1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5, 0.5),  # large motion
)


def motion_mask_weights(num_frames: int, motion_scale: int) -> list[float]:
    """Per-frame mask values anchored at frame 0 (the last table value repeats past its end)."""
    table = list(MOTION_SCALES[motion_scale])
    table += [table[-1]] * max(0, num_frames - len(table))
    return table[:num_frames]


class PIAVideoBackend(SplitLimits, SDComponents):
    """Image-to-video (P_video of Eq. 1) with PIA's condition layout.

    Attributes use diffusers' names (`unet`, `vae`, `text_encoder`, `tokenizer`, `scheduler`),
    so a reference `PIAPipeline` can be built over the very same modules. `max_rows` and
    `max_decode_frames` (None: no limit) split UNet calls and decodes; an out-of-memory error
    lowers them (`ivcore.backends.fallback`).
    """

    def __init__(
        self,
        unet,
        vae,
        text_encoder,
        tokenizer,
        scheduler,
        *,
        size: int | tuple[int, int] = 512,
        num_frames: int = 16,
        fps: int = 8,
        name: str = "",
    ):
        if unet.config.in_channels != 9:
            raise ValueError(
                f"video unet: in_channels is {unet.config.in_channels}; a PIA-style UNet with 9 input "
                "channels (noisy latents, mask, image latents) is needed"
            )
        super().__init__(unet, vae, text_encoder, tokenizer, scheduler, size=size, name=name)
        self.num_frames = num_frames
        self.fps = fps
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor)
        self.defaults = dict(steps=25, guidance=7.5)  # session settings matching PIAPipeline's defaults

    @property
    def max_frames(self) -> int:
        return int(self.unet.config.motion_max_seq_length)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        f = self.vae_scale_factor
        return (1, 4, num_frames, height // f, width // f)

    def initial_noise(self, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        """The starting latents: the first draw from the generator, as in PIAPipeline."""
        noise = randn_tensor(tuple(shape), generator=generator, device=self.device, dtype=self.dtype)
        return noise * self.scheduler.init_noise_sigma

    @torch.no_grad()
    def encode_images(
        self, images: Sequence[Image.Image], generator: torch.Generator, num_frames: int | None = None
    ) -> torch.Tensor:
        """VAE posterior samples * scaling factor, (N, 4, h, w), drawn from `generator`.

        The VAE input is cast to the UNet's dtype, as PIAPipeline does.
        """
        pixels = self.video_processor.preprocess(list(images)).to(self.device, self.dtype)
        latents = self.vae.encode(pixels).latent_dist.sample(generator)
        return latents.to(self.dtype) * self.vae.config.scaling_factor

    def condition(self, image_latents: torch.Tensor, num_frames: int, motion_scale: int = 0) -> torch.Tensor:
        """The 5 condition channels (1, 5, F, h, w): PIA's motion mask, then image latents.

        `image_latents` is (1, 4, h, w) for one image repeated over frames (PIA, the paper's x~'),
        or (F, 4, h, w) for one latent per frame (trajectory path mode).
        """
        n, c, h, w = image_latents.shape
        if n not in (1, num_frames):
            raise ValueError(f"image latents: {n} latents for {num_frames} frames")
        weights = torch.tensor(motion_mask_weights(num_frames, motion_scale), dtype=self.dtype, device=self.device)
        mask = weights.view(1, 1, num_frames, 1, 1).expand(1, 1, num_frames, h, w)
        frames = image_latents.permute(1, 0, 2, 3).unsqueeze(0).expand(1, c, num_frames, h, w)
        return torch.cat([mask, frames.to(self.dtype)], dim=1)

    @torch.no_grad()
    def predict(
        self,
        scheduler,
        latents: torch.Tensor,
        t: torch.Tensor,
        conditions: Sequence[torch.Tensor],
        text: torch.Tensor,
        uncond: torch.Tensor,
        guidance: float,
    ) -> torch.Tensor:
        """Guided noise predictions for N (latent, condition) rows in one batched UNet call.

        `latents` is (N, 4, F, h, w), `conditions` N tensors (1, 5, F, h, w). With guidance > 1
        the UNet sees rows [uncond x N, text x N], which for N = 1 is exactly PIAPipeline's batch.
        At most `max_rows` rows go through the UNet at once (all of them when None); rows are
        independent, so the split changes nothing but float rounding of the batch size.
        """
        n, num_frames = latents.shape[0], latents.shape[2]
        use_cfg = guidance > 1
        condition = torch.cat(list(conditions))
        model_in = scheduler.scale_model_input(torch.cat([latents] * 2) if use_cfg else latents, t)
        model_in = torch.cat([model_in, torch.cat([condition] * 2) if use_cfg else condition], dim=1)
        rows = [uncond.expand(n, -1, -1), text.expand(n, -1, -1)] if use_cfg else [text.expand(n, -1, -1)]
        embeds = torch.cat(rows).to(self.dtype).repeat_interleave(num_frames, dim=0)

        def run(start: int, stop: int) -> torch.Tensor:
            rows_embeds = embeds[start * num_frames : stop * num_frames]
            return self.unet(model_in[start:stop], t, encoder_hidden_states=rows_embeds).sample

        eps = self._split_rows(run, model_in.shape[0], num_frames)
        if not use_cfg:
            return eps
        eps_uncond, eps_text = eps.chunk(2)
        return eps_uncond + guidance * (eps_text - eps_uncond)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Video latents (1, 4, F, h, w) -> float frames (F, H, W, 3) in [0, 1], as PIAPipeline does.

        Frames are decoded independently (a 2-D VAE), at most `max_decode_frames` per call.
        """
        latents = 1 / self.vae.config.scaling_factor * latents
        _, c, f, h, w = latents.shape
        flat = latents.permute(0, 2, 1, 3, 4).reshape(f, c, h, w).to(self.vae.dtype)
        frames = self._split_frames(lambda start, stop: self.vae.decode(flat[start:stop]).sample.float(), f)
        return (frames / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


def load_pia_backend(
    model: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    image_backend=None,
    motion_adapter: str | None = None,
) -> PIAVideoBackend:
    """PIA's P_video from an SD1.5-layout base (hub id or folder) and the PIA condition adapter.

    The video UNet is the base UNet turned into a UNetMotionModel with the adapter (9-channel
    conv_in), or the folder's `unet` when it already is a UNetMotionModel. When the base is the
    image model itself, VAE, CLIP and the UNet's weights are shared with P_img.
    """
    import diffusers
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from ivcore.backends.loading import load_component, load_scheduler, sd_parts
    from ivcore.backends.tiny import TINY_FRAMES, VIDEO_SCHEDULER_CONFIG

    shared = image_backend is not None and image_backend.name == model
    parts = (
        dict(vae=image_backend.vae, text_encoder=image_backend.text_encoder, tokenizer=image_backend.tokenizer)
        if shared
        else sd_parts(model, dtype, device)
    )
    unet_class = _unet_class_name(model)
    if unet_class == "UNetMotionModel":
        video_unet = load_component(UNetMotionModel, model, "unet", dtype)
    else:
        base = image_backend.unet if shared else load_component(UNet2DConditionModel, model, "unet", dtype)
        adapter = load_component(MotionAdapter, str(motion_adapter or DEFAULT_MOTION_ADAPTER), None, dtype)
        video_unet = UNetMotionModel.from_unet2d(base, adapter)
    video_unet = video_unet.to(device=device, dtype=dtype).eval()
    keys = ("beta_schedule", "clip_sample", "timestep_spacing", "steps_offset")
    scheduler = load_scheduler(model, **{k: VIDEO_SCHEDULER_CONFIG[k] for k in keys})
    if not isinstance(scheduler, diffusers.DDIMScheduler):
        scheduler = diffusers.DDIMScheduler.from_config(scheduler.config)
    vae_factor = 2 ** (len(parts["vae"].config.block_out_channels) - 1)
    video_size = int(video_unet.config.sample_size or 64) * vae_factor
    backend = PIAVideoBackend(
        unet=video_unet, scheduler=scheduler, size=video_size,
        num_frames=16 if video_size >= 256 else TINY_FRAMES, name=model, **parts,
    )  # fmt: skip
    backend.sources = {"motion_adapter": str(motion_adapter or DEFAULT_MOTION_ADAPTER)}
    return backend


def _unet_class_name(model: str) -> str:
    import json
    from pathlib import Path

    from diffusers import UNet2DConditionModel

    local = Path(model) / "unet" / "config.json"
    if local.is_file():
        return json.loads(local.read_text()).get("_class_name", "")
    return UNet2DConditionModel.load_config(model, subfolder="unet").get("_class_name", "")
