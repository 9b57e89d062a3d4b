"""Diffusion backends: P_img (img2img) and P_video (PIA-style image-to-video), plus presets."""

from ivcore.backends.image import ImageBackend
from ivcore.backends.video import PIAVideoBackend

__all__ = ["ImageBackend", "PIAVideoBackend"]
