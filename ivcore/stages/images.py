"""Turning what users hand us (PIL images, arrays, paths) into checked PIL images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ivcore.errors import InstructionError

ImageLike = Image.Image | np.ndarray | str | Path


def to_rgb_image(value: Any, field: str = "image") -> Image.Image:
    """A PIL RGB image from a PIL image, an HxWx3/HxWx4/HxW uint8 array or a path to an image file."""
    allowed = "a PIL.Image, an HxWx3 uint8 array or a path to an image file"
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise InstructionError(field, str(value), f"{allowed} (no file at that path)")
        try:
            with Image.open(path) as opened:
                value = ImageOps.exif_transpose(opened).copy()
        except (UnidentifiedImageError, OSError) as err:
            raise InstructionError(field, str(value), f"{allowed} (the file is not a readable image)") from err
    if isinstance(value, np.ndarray):
        value = _array_to_image(value, field, allowed)
    if not isinstance(value, Image.Image):
        raise InstructionError(field, value, allowed)
    if value.width < 1 or value.height < 1:
        raise InstructionError(field, f"{value.width}x{value.height} image", "an image at least 1x1 pixels")
    if value.mode == "RGBA":
        white = Image.new("RGBA", value.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, value).convert("RGB")
    return value.convert("RGB")


def _array_to_image(array: np.ndarray, field: str, allowed: str) -> Image.Image:
    if array.size == 0:
        raise InstructionError(field, f"array of shape {array.shape}", f"{allowed} (it is empty)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InstructionError(field, f"array of shape {array.shape}", f"{allowed} (HxW, HxWx3 or HxWx4)")
    if array.dtype != np.uint8:
        if (
            np.issubdtype(array.dtype, np.floating)
            and np.isfinite(array).all()
            and 0 <= array.min() <= array.max() <= 1
        ):
            array = np.round(array * 255).astype(np.uint8)
        else:
            raise InstructionError(field, f"array of dtype {array.dtype}", f"{allowed} (uint8, or floats in [0, 1])")
    return Image.fromarray(np.ascontiguousarray(array))


def fit_to(image: Image.Image, size: tuple[int, int], mode: str = "crop") -> Image.Image:
    """The picture at `size` (width, height), the diffusion models' own size.

    "crop": centre-crop to the target aspect ratio, then resize. "pad": the whole picture, resized
    to fit inside, the rest filled with the mean colour of its edge (transparent for an RGBA paint
    layer). "stretch": resized to the size, the aspect ratio not kept.
    """
    size = (int(size[0]), int(size[1]))
    if image.size == size:
        return image
    if mode == "stretch":
        return image.resize(size, Image.Resampling.LANCZOS)
    if mode == "pad":
        return ImageOps.pad(image, size, method=Image.Resampling.LANCZOS, color=edge_colour(image))
    return ImageOps.fit(image, size, method=Image.Resampling.LANCZOS)


def edge_colour(image: Image.Image) -> tuple[int, ...]:
    """The mean colour of a picture's one-pixel border (fully transparent for RGBA layers)."""
    if image.mode == "RGBA":
        return (0, 0, 0, 0)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return tuple(int(round(v)) for v in border.mean(axis=0))


def to_paint_layer(value: Any, size: tuple[int, int], field: str = "paint") -> Image.Image:
    """A PIL RGBA layer of exactly `size` (width, height) from an RGBA image or HxWx4 uint8 array."""
    allowed = f"an RGBA PIL.Image or HxWx4 uint8 array of the image's size {size[0]}x{size[1]}"
    if isinstance(value, np.ndarray):
        if value.ndim != 3 or value.shape[2] != 4 or value.dtype != np.uint8:
            raise InstructionError(field, f"array of shape {value.shape} and dtype {value.dtype}", allowed)
        value = Image.fromarray(np.ascontiguousarray(value), mode="RGBA")
    if not isinstance(value, Image.Image):
        raise InstructionError(field, value, allowed)
    if value.mode != "RGBA":
        raise InstructionError(field, f"{value.mode} image", allowed)
    if value.size != tuple(size):
        raise InstructionError(field, f"{value.width}x{value.height} layer", allowed)
    return value.copy()


def composite(image: Image.Image, layer: Image.Image | None) -> Image.Image:
    """The image with the paint layer alpha-composited over it (x with the user's painting)."""
    if layer is None:
        return image
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")
