"""The `shapes` preset: the trained shapes-world models, for `Session.shapes()` and `Session.preset("shapes")`.

The models load through `ivcore.backends.build.load_backends`, the loader `from_pretrained` uses
for real SD1.5 + PIA folders, on the CPU in float32. The session starts with a world scene as its
image and its caption as content, so `Studio(Session.shapes())` is ready to paint on. With
`size=(W, H)` that first scene is laid out and rendered at W x H (the models are convolutional and
run at any multiple of 8), not cropped from the 64 x 64 one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ivcore.backends.build import load_backends
from ivcore.errors import InstructionError
from ivcore.presets import Preset
from ivcore.shapes.demo import shapes_scene
from ivcore.shapes.models import SESSION_DEFAULTS, shipped_folder
from ivcore.shapes.world import SIZE, render

# the Session constructor's keywords among SESSION_DEFAULTS; the rest are fields set after
_CONSTRUCTOR = ("steps", "image_steps", "guidance", "image_guidance")  # the others are fields


def _drawable(size: Any) -> tuple[int, int]:
    """`size` when it is a pair of positive ints (the scene is drawn at it), else the world's 64 x 64.

    The session checks the size itself (and refuses a bad one with InstructionError naming the
    multiple allowed) before the image is set, so a bad size never reaches the renderer.
    """
    if isinstance(size, (tuple, list)) and len(size) == 2:
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8 * SIZE for v in size):
            return int(size[0]), int(size[1])
    return SIZE, SIZE


def shapes_preset(
    seed: int = 0, folder: str | os.PathLike | None = None, size: tuple[int, int] | None = None
) -> Preset:
    """The shipped models (or your own `train-shapes --out` folder) with the settings they were measured with.

    `size=(W, H)`: the session's size, set before its first picture, which is then the shapes scene
    rendered at W x H: a landscape session starts on a landscape scene, not a crop of the square one.
    """
    if folder is not None and not isinstance(folder, (str, os.PathLike)):
        raise InstructionError("folder", folder, "None (the shipped models) or a train-shapes --out folder")
    root = Path(folder) if folder is not None else shipped_folder()
    image_backend, video_backend, _ = load_backends(root / "image", root / "video", device="cpu", dtype=torch.float32)
    options = {k: v for k, v in SESSION_DEFAULTS.items() if k in _CONSTRUCTOR} | {"seed": seed}
    frame = _drawable(size)
    scene = shapes_scene(frame)
    settings: dict[str, Any] = {} if size is None else {"size": size}  # first: the image is checked at it
    settings.update({k: v for k, v in SESSION_DEFAULTS.items() if k not in _CONSTRUCTOR})
    settings.update(image=render(scene, size=frame), content=scene.caption())
    spec = {"preset": "shapes", "seed": seed, **({"folder": str(folder)} if folder is not None else {})}
    return Preset(image_backend, video_backend, options=options, settings=settings, spec=spec)
