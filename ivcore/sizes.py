"""The session's picture shape: `s.size` (width, height) and `s.fit` (how a picture is brought to it).

The models run at any size that is a multiple of what their VAE and UNet need: the VAE divides by
2 ** (VAE blocks - 1) and the UNet by 2 ** (down blocks - 1), so SD1.5 and PIA take multiples of
8 * 8 = 64 pixels, the tiny preset (a 4x VAE, 2 down blocks) multiples of 8. The default is the
models' native size (`video_backend.native_size`: SD1.5 + PIA 512 x 512, SVD-XT 1024 x 576).

Changing the size (or the fit) on a live session refits the image from the picture as it was given
to `s.image =` (kept beside it), or from the image itself when it was set otherwise (a commit, a
story's last frame). When the image changes, the paint and the trajectories are cleared: they were
drawn in the old frame's pixels, and after a crop or a pad those pixels show other things. A change
that leaves the image as it was (the same value, or a fit that does nothing to a picture of the
model's shape) keeps them. The stage caches need nothing: their keys hold the images and shapes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from ivcore.errors import InstructionError
from ivcore.stages.images import fit_to, to_paint_layer, to_rgb_image

FIT_MODES = ("crop", "pad", "stretch")
MAX_SCALE = 8  # a side may be at most this many times the native size (the grey default is allocated at once)


def native_size(session: Any) -> tuple[int, int]:
    """(width, height) the video model was trained at: its backend's `native_size`.

    A backend written before sizes were pairs has only a square `size` (an int): (size, size).
    """
    backend = session.video_backend
    pair = getattr(backend, "native_size", None)
    if pair is None:
        return (int(backend.size), int(backend.size))
    width, height = int(pair[0]), int(pair[1])
    low = min_side(session)
    if min(width, height) < low:  # an image model with a smallest side (FLUX.2 klein's 64): the shape kept
        m, scale = multiple(session), low / min(width, height)
        width, height = (math.ceil(v * scale / m) * m for v in (width, height))
    return (width, height)


def min_side(session: Any) -> int:
    """The smallest side both models take (a backend's `min_side`: FLUX.2 klein's image processor's 64), or 1."""
    backends = (getattr(session, "image_backend", None), getattr(session, "video_backend", None))
    return max(int(getattr(b, "min_side", 1) or 1) for b in backends)


def backend_multiple(backend: Any) -> int:
    """The pixel multiple one backend's VAE and UNet take: vae factor * 2 ** (UNet down blocks - 1).

    A backend that knows its own (`size_multiple`: a DiT's VAE factor times its patch) says so.
    """
    own = getattr(backend, "size_multiple", None)
    if own is not None:
        return int(own)
    factor = getattr(backend, "vae_scale_factor", None) or 2 ** (len(backend.vae.config.block_out_channels) - 1)
    config = backend.unet.config
    blocks = len(getattr(config, "down_block_types", None) or config.block_out_channels)
    return int(factor) * 2 ** (blocks - 1)


def multiple(session: Any) -> int:
    """The pixel multiple both of the session's models take (their least common multiple)."""
    return math.lcm(backend_multiple(session.image_backend), backend_multiple(session.video_backend))


def max_side(session: Any) -> int:
    return MAX_SCALE * max(native_size(session))


def check_size(session: Any, value: Any) -> tuple[int, int]:
    """(width, height) as two ints, positive multiples of `multiple(session)`; else InstructionError naming `size`."""
    m, high = multiple(session), max_side(session)
    low = min_side(session)
    allowed = f"(width, height): two positive integers, multiples of {m} (what the models take), at most {high}"
    if low > 1:
        allowed += f", at least {low}"
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InstructionError("size", value, allowed)
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in value):
        raise InstructionError("size", value, allowed)
    width, height = int(value[0]), int(value[1])
    if not (low <= width <= high and low <= height <= high) or width % m or height % m:
        raise InstructionError("size", value, allowed)
    return (width, height)


def from_json(data: Any) -> Any:
    """session.json's [width, height] as a tuple (anything else is left for `check_size` to refuse)."""
    return tuple(data) if isinstance(data, list) else data


def parse_size(text: str) -> tuple[int, int] | None:
    """Text such as "96x64" as (96, 64); None when it is not two integers joined by x."""
    parts = str(text).lower().replace("*", "x").split("x")
    if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        return None
    return (int(parts[0]), int(parts[1]))


# ---------------------------------------------------------------------- the picture as it was given
def remember(session: Any, image: Image.Image, source: Image.Image) -> None:
    """Keep the picture `image` was fitted from (refits after a size or fit change start from it)."""
    session._source = (image, source)


def source_of(session: Any) -> Image.Image:
    """The picture the current image was fitted from, or the image itself when it was set otherwise."""
    kept = getattr(session, "_source", None)
    image = session._values["image"]
    return kept[1] if kept is not None and kept[0] is image else image


def source_size(session: Any) -> tuple[int, int]:
    return source_of(session).size


def _relayout(session: Any, size: tuple[int, int], fit: str) -> None:
    """Store a new size or fit (under the session's lock); refit the image; clear what no longer fits."""
    values = session._values
    if (values["size"], values["fit"]) == (size, fit):
        return
    source = source_of(session)
    values["size"], values["fit"] = size, fit
    old, new = values["image"], fit_to(source, size, fit)
    if new.size == old.size and new.tobytes() == old.tobytes():
        return  # the same picture: paint and trajectories still fit
    values["image"] = new
    remember(session, new, source)
    values["paint_layer"], values["trajectories"] = None, []


def apply_size(session: Any, size: tuple[int, int]) -> None:
    _relayout(session, size, session._values["fit"])


def apply_fit(session: Any, fit: str) -> None:
    _relayout(session, session._values["size"], fit)


# ---------------------------------------------------------------------- the image and paint fields
def grey(session: Any) -> Image.Image:
    return Image.new("RGB", session.size, (127, 127, 127))


def check_image(session: Any, value: Any) -> tuple[Image.Image, Image.Image]:
    source = to_rgb_image(value, "image")
    return fit_to(source, session.size, session.fit), source


def apply_image(session: Any, checked: tuple[Image.Image, Image.Image]) -> None:
    """A new image drops the paint: a layer painted over another picture means nothing on this one."""
    session._values["image"], source = checked
    remember(session, checked[0], source)  # a later size or fit change refits from the picture as given
    session._values["paint_layer"] = None


def check_paint(session: Any, layer: Any) -> Image.Image | None:
    """The layer at the model's size; one given at the size of the picture as set is fitted like it."""
    source = source_size(session)
    if getattr(layer, "size", None) == source != session.size or (
        isinstance(layer, np.ndarray) and layer.shape[1::-1] == source != session.size
    ):
        layer = fit_to(to_paint_layer(layer, source), session.size, session.fit)
    layer = to_paint_layer(layer, session.size)
    return None if layer.getextrema()[3][1] == 0 else layer


LAYOUT_FIELDS = ("size", "fit")  # set before the others: the image, paint and trajectories are checked at them


__all__ = [
    "FIT_MODES", "LAYOUT_FIELDS", "native_size", "min_side", "multiple", "backend_multiple", "check_size", "parse_size",
    "remember", "source_of", "source_size", "apply_size", "apply_fit",
]  # fmt: skip
