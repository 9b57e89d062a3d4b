"""Diffusion backends: P_img (img2img) and P_video (PIA-style image-to-video), plus presets."""

import logging

from ivcore.backends.image import ImageBackend
from ivcore.backends.video import PIAVideoBackend

__all__ = ["ImageBackend", "PIAVideoBackend"]


class _EmptyFp32ListFilter(logging.Filter):
    """diffusers warns on every `.to(dtype)` of a UNetMotionModel even when the list of modules to
    keep in float32 is empty ("...: []"); that message says nothing, so drop just that one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


logging.getLogger("diffusers.models.modeling_utils").addFilter(_EmptyFp32ListFilter())
