"""P_img: img2img on an SD1.5-style UNet, VAE and CLIP text encoder.

The loop is our own (a few lines), written to match diffusers' StableDiffusionImg2ImgPipeline
step for step, so SD1.5, LCM-LoRA, sd-turbo style models and DreamBooth checkpoints all load
and run the same way, and tests can use that pipeline as the oracle. It is the "sd15" image family
(`ivcore.backends.image_families`); `load_sd15_backend` is its loader.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ivcore.backends.base import SDComponents
from ivcore.backends.schedulers import step_kwargs

SD15_DEFAULTS = dict(image_steps=25, image_guidance=7.5)  # the session's settings for an SD1.5 P_img


def img2img_timesteps(scheduler, steps: int, strength: float) -> torch.Tensor:
    """The timesteps img2img runs: the last `int(steps * strength)` of `steps`, as diffusers' `get_timesteps`.

    At least one: a strength above 0 always edits (the pipelines would run none below 1 / steps).
    Call after `scheduler.set_timesteps(steps)`; sets the scheduler's begin index as the pipelines do.
    """
    init_steps = max(1, min(int(steps * strength), steps))
    t_start = steps - init_steps
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start * scheduler.order)
    return scheduler.timesteps[t_start * scheduler.order :]


def guidance_embedding(w: float, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """The guidance-scale embedding LCM-distilled UNets take as `timestep_cond` (w = guidance - 1)."""
    w = torch.tensor([w * 1000.0])
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=dtype) * -(np.log(10000.0) / (half - 1)))
    emb = w.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class ImageBackend(SDComponents):
    """Img2img (P_img of Eq. 1) over diffusers components.

    Attributes carry diffusers' names (`unet`, `vae`, `text_encoder`, `tokenizer`, `scheduler`)
    so users and tests can reach the modules, swap the scheduler or load LoRAs on them.
    """

    def __init__(
        self, unet, vae, text_encoder, tokenizer, scheduler, *, size: int | tuple[int, int] = 512, name: str = ""
    ):
        super().__init__(unet, vae, text_encoder, tokenizer, scheduler, size=size, name=name)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.defaults = dict(SD15_DEFAULTS)  # the session's image_steps / image_guidance for this family

    @torch.no_grad()
    def img2img(
        self,
        image: Image.Image,
        cond: torch.Tensor,
        uncond: torch.Tensor,
        *,
        strength: float,
        steps: int,
        guidance: float,
        seed: int,
    ) -> Image.Image:
        """Run img2img; strength 0 returns the image unchanged (the user's own intermediate image)."""
        if strength <= 0:
            return image.copy()
        device, dtype = self.device, self.dtype
        generator = torch.Generator(device="cpu").manual_seed(seed)
        scheduler = self.scheduler
        scheduler.set_timesteps(steps, device=device)
        timesteps = img2img_timesteps(scheduler, steps, strength)

        pixels = self.image_processor.preprocess(image).to(device=device, dtype=self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.sample(generator) * self.vae.config.scaling_factor
        latents = latents.to(dtype)
        noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=dtype)
        latents = scheduler.add_noise(latents, noise, timesteps[:1])

        # the generator only for schedulers that take one (DDIM, LCM, Euler-a): SD1.5's own
        # PNDMScheduler has no such argument, as diffusers' prepare_extra_step_kwargs knows
        extra = step_kwargs(scheduler, generator)
        time_cond = None
        use_cfg = guidance > 1 and self.unet.config.time_cond_proj_dim is None
        if self.unet.config.time_cond_proj_dim is not None:
            time_cond = guidance_embedding(guidance - 1, self.unet.config.time_cond_proj_dim, dtype).to(device)
        embeds = torch.cat([uncond, cond]) if use_cfg else cond
        for t in timesteps:
            model_in = torch.cat([latents] * 2) if use_cfg else latents
            model_in = scheduler.scale_model_input(model_in, t)
            eps = self.unet(model_in, t, encoder_hidden_states=embeds, timestep_cond=time_cond).sample
            if use_cfg:
                eps_uncond, eps_text = eps.chunk(2)
                eps = eps_uncond + guidance * (eps_text - eps_uncond)
            latents = scheduler.step(eps, t, latents, **extra, return_dict=False)[0]

        decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return self.image_processor.postprocess(decoded.float(), output_type="pil")[0]


def load_sd15_backend(model: str, *, device, dtype: torch.dtype, **_) -> ImageBackend:
    """P_img from an SD1.5-layout model (hub id or folder, safetensors only): the "sd15" image family's loader."""
    from diffusers import UNet2DConditionModel

    from ivcore.backends.loading import load_component, load_scheduler, sd_parts

    parts = sd_parts(model, dtype, device)
    unet = load_component(UNet2DConditionModel, model, "unet", dtype).to(device)
    vae_factor = 2 ** (len(parts["vae"].config.block_out_channels) - 1)
    size = int(unet.config.sample_size) * vae_factor
    return ImageBackend(unet=unet.eval(), scheduler=load_scheduler(model), size=size, name=model, **parts)


__all__ = ["SD15_DEFAULTS", "ImageBackend", "guidance_embedding", "img2img_timesteps", "load_sd15_backend"]
