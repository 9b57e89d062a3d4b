"""Reading files we do not trust: every failure an InstructionError naming the file and the field.

Shared by `ivcore.persistence` (session.json, the images, the last video) and
`ivcore.take_files` (the takes), so a damaged or hostile folder is refused the same way.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from safetensors import SafetensorError

from ivcore.errors import InstructionError


@contextlib.contextmanager
def reading(file: str, field: str = "") -> Iterator[None]:
    """Turn any failure while reading `file` into an InstructionError naming the file and the field."""
    where = f"{file}:{field}" if field else file
    try:
        yield
    except InstructionError as err:
        if ":" in err.field:  # already names its file
            raise
        inner = err.field if not field or err.field.startswith(field.split("[")[0]) else f"{field}.{err.field}"
        raise InstructionError(f"{file}:{inner}", err.value, err.allowed) from err
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OSError, RuntimeError, SafetensorError) as err:
        raise InstructionError(where, type(err).__name__, f"valid data written by Session.save ({err})") from err


def expect(value: Any, types: type | tuple[type, ...], where: str, allowed: str) -> Any:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise InstructionError(where, value, allowed)
    if not isinstance(value, types):
        raise InstructionError(where, value, allowed)
    return value


def no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in session.json")


def read_png(path: Path, mode: str, size: tuple[int, int]) -> Image.Image:
    """A PNG of exactly `size`, converted to `mode`; PIL's decompression-bomb limit stays on."""
    name = path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format != "PNG":
                    raise InstructionError(name, image.format, "a PNG image")
                if image.size != size:
                    raise InstructionError(name, image.size, f"an image of the session's size {size}")
                return image.convert(mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InstructionError(name, "a decompression bomb", f"an image within PIL's pixel limit ({err})") from err
    except InstructionError:
        raise
    except (OSError, ValueError, SyntaxError) as err:
        raise InstructionError(name, "unreadable", f"a PNG image ({err})") from err


def write_frames(path: Path, video: Any) -> None:
    """A Video's exact uint8 frames as `read_frames` reads them back: one tensor "frames", fps in the metadata."""
    import torch
    from safetensors.torch import save_file

    frames = torch.from_numpy(np.array(video.frames))
    save_file({"frames": frames}, str(path), metadata={"fps": repr(float(video.fps))})


def read_frames(path: Path, size: Any, max_frames: int) -> tuple[np.ndarray, float | None]:
    """The last video's frames: one uint8 tensor "frames" of shape (F, H, W, 3), F in [1, max_frames].

    `size`: the (W, H) the frames must have, or a function of (W, H) that says whether a size is taken."""
    from safetensors import safe_open

    name = path.name
    with reading(name):
        with safe_open(str(path), framework="pt") as f:
            keys, meta = list(f.keys()), f.metadata() or {}
            if keys != ["frames"]:
                raise InstructionError(name, keys, 'one tensor named "frames"')
            view = f.get_slice("frames")
            dtype, shape = view.get_dtype(), tuple(view.get_shape())
            if callable(size):
                taken = len(shape) == 4 and shape[3] == 3 and size((shape[2], shape[1]))
                expected = "(F, H, W, 3) at a (W, H) the session takes"
            else:
                width, height = size
                taken = len(shape) == 4 and shape[1:] == (height, width, 3)
                expected = f"(F, {height}, {width}, 3)"
            if dtype != "U8":
                raise InstructionError(f"{name}:frames", dtype, "uint8 frames")
            if not taken or not 1 <= shape[0] <= max_frames:
                raise InstructionError(f"{name}:frames", shape, f"{expected} with 1 <= F <= {max_frames}")
            frames = f.get_tensor("frames").numpy()
    fps = meta.get("fps")
    if fps is not None:
        try:
            fps = float(fps)
        except ValueError:
            raise InstructionError(f"{name}:fps", fps, "a number") from None
    return frames, fps
