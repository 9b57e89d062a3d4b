"""Previews while denoising: the scheduler's clean-video estimate x0 as RGB frames.

The noisy latents of an early step look like noise whatever they will become; the scheduler's
estimate of the clean latents at that step (`pred_original_sample` of DDIM, Euler and friends,
the denoised sample of LCM, the converted model output of DPM++) already shows the layout. The
denoising loop passes that estimate to a step callback that takes an ``x0`` keyword
(`ivcore.stages.denoise.denoise`); this module turns it into frames, three ways:

- ``"vae"``: the video backend's own decode, exactly as the final video is decoded. Chosen when it
  is cheap: at most `VAE_PREVIEW_MAX_PIXELS` decoded pixels (the shapes and tiny models, small clips).
- ``"decoder"``: a small decoder the user loads, e.g. diffusers' ``AutoencoderTiny`` with TAESD
  weights, set as ``session.preview_decoder``; used whenever it is set.
- ``"linear"``: a fixed 4x3 map from the SD latent channels to RGB (no network at all), for big clips.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ivcore.errors import InstructionError

__all__ = [
    "LATENT_RGB",
    "PREVIEW_SOURCES",
    "VAE_PREVIEW_MAX_PIXELS",
    "decode_preview",
    "latents_to_frames",
    "preview_source",
]

# Linear map from the 4 SD-VAE latent channels (as the sampler sees them, already scaled) to RGB.
LATENT_RGB = np.array(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]],
    dtype=np.float32,
)
#: Decoded pixels (frames x height x width) up to which a VAE decode counts as cheap: 16 frames of
#: 128 x 128. The shapes and tiny presets (8 frames of 64 x 64) are well inside; SD1.5 + PIA clips
#: (16 frames of 512 x 512) are 16 times over and get the linear map (or a preview_decoder).
VAE_PREVIEW_MAX_PIXELS = 16 * 128 * 128
PREVIEW_SOURCES = ("vae", "decoder", "linear")


def latents_to_frames(latents: Any, backend: Any = None) -> np.ndarray:
    """(F, h, w, 3) uint8 frames of (B, C, F, h, w) or (C, F, h, w) latents by a linear map.

    The SD-VAE map above, or the backend's own (`backend.latent_rgb()`: (C + 1) x 3 with a bias row,
    fitted from its VAE by the DiT families, whose latents have 16 to 128 channels).
    """
    arr = latents.detach().float().cpu().numpy() if hasattr(latents, "detach") else np.asarray(latents)
    arr = arr[0] if arr.ndim == 5 else arr  # (C, F, h, w)
    own = getattr(backend, "latent_rgb", None)
    if own is not None:
        table = np.asarray(own(), dtype=np.float32)
        channels = min(arr.shape[0], table.shape[0] - 1)
        rgb = np.einsum("cfhw,cr->fhwr", arr[:channels], table[:channels]) + table[-1]
        return np.clip(rgb * 255.0, 0, 255).astype(np.uint8)
    channels = min(arr.shape[0], LATENT_RGB.shape[0])
    rgb = np.einsum("cfhw,cr->fhwr", arr[:channels], LATENT_RGB[:channels])
    return np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)


def preview_source(backend: Any, latent_shape: tuple[int, ...], decoder: Any = None) -> str:
    """Which way previews of latents of ``latent_shape`` (B, C, F, h, w) are decoded (see module doc)."""
    if decoder is not None:
        return "decoder"
    scale = int(getattr(backend, "vae_scale_factor", 8) or 8)
    frames, h, w = latent_shape[-3:]
    if getattr(backend, "vae", None) is not None and frames * h * w * scale * scale <= VAE_PREVIEW_MAX_PIXELS:
        return "vae"
    return "linear"


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Float frames in [0, 1] to uint8, rounded as `Session` rounds the final video."""
    return (frames.detach().float().cpu().numpy() * 255).round().astype(np.uint8)


@torch.no_grad()
def _decoder_frames(decoder: Any, latents: torch.Tensor) -> torch.Tensor:
    """(F, H, W, 3) floats in [0, 1] from a 2-D decoder such as ``AutoencoderTiny`` (output in [-1, 1]).

    TAESD-style decoders take the latents as the sampler sees them (scaled); their config's
    ``scaling_factor`` (1.0 for AutoencoderTiny) is divided out as diffusers' pipelines do.
    """
    param = next(iter(decoder.parameters()), None)
    device = param.device if param is not None else latents.device
    dtype = param.dtype if param is not None else latents.dtype
    _, c, f, h, w = latents.shape
    flat = latents[:1].permute(0, 2, 1, 3, 4).reshape(f, c, h, w)
    scaling = float(getattr(getattr(decoder, "config", None), "scaling_factor", 1.0) or 1.0)
    out = decoder.decode(flat.to(device=device, dtype=dtype) / scaling)
    sample = out.sample if hasattr(out, "sample") else out[0]
    return (sample.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


def decode_preview(backend: Any, x0: torch.Tensor, *, decoder: Any = None, source: str | None = None) -> np.ndarray:
    """(F, H, W, 3) uint8 frames of the first item of the x0 estimate ``x0`` (B, C, F, h, w).

    ``source`` None picks one with `preview_source`. ``"vae"`` is ``backend.decode`` (the very
    decode of the final video, so the preview of the last step is that video up to the last
    step's change); ``"linear"`` frames are at latent resolution (h, w).
    """
    source = preview_source(backend, tuple(x0.shape), decoder) if source is None else source
    if source == "decoder":
        if decoder is None:
            raise InstructionError("preview_decoder", None, "a decoder (session.preview_decoder) for source 'decoder'")
        return _to_uint8(_decoder_frames(decoder, x0))
    if source == "vae":
        return _to_uint8(backend.decode(x0[:1]))
    if source == "linear":
        return latents_to_frames(x0, backend)
    raise InstructionError("preview source", source, "one of " + ", ".join(PREVIEW_SOURCES))
