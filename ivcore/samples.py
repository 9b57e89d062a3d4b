"""Small synthetic pictures for examples, tests and benchmarks: no files, no downloads."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def scene(size: int = 64) -> Image.Image:
    """A deterministic picture with structure: sky gradient, ground and a sun."""
    y = np.linspace(0, 1, size)[:, None]
    sky = np.stack([80 + 100 * y, 120 + 80 * y, 220 - 60 * y], axis=-1) * np.ones((1, size, 1))
    img = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, size * 2 // 3, size, size], fill=(60, 140, 60))
    r = size // 8
    draw.ellipse([size // 4 - r, size // 4 - r, size // 4 + r, size // 4 + r], fill=(250, 220, 80))
    return img
