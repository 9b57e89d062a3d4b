"""The `shapes` preset: the trained shapes-world models, for `Session.shapes()` and `Session.preset("shapes")`.

The models load through `ivcore.backends.build.load_backends`, the loader `from_pretrained` uses
for real SD1.5 + PIA folders, on the CPU in float32. The session starts with a world scene as its
image and its caption as content, so `Studio(Session.shapes())` is ready to paint on.
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
from ivcore.shapes.world import render

# the Session constructor's keywords among SESSION_DEFAULTS; the rest are fields set after
_CONSTRUCTOR = ("steps", "image_steps", "guidance", "image_guidance")  # the others are fields


def shapes_preset(seed: int = 0, folder: str | os.PathLike | None = None) -> Preset:
    """The shipped models (or your own `train-shapes --out` folder) with the settings they were measured with."""
    if folder is not None and not isinstance(folder, (str, os.PathLike)):
        raise InstructionError("folder", folder, "None (the shipped models) or a train-shapes --out folder")
    root = Path(folder) if folder is not None else shipped_folder()
    image_backend, video_backend, _ = load_backends(root / "image", root / "video", device="cpu", dtype=torch.float32)
    options = {k: v for k, v in SESSION_DEFAULTS.items() if k in _CONSTRUCTOR} | {"seed": seed}
    scene = shapes_scene()
    settings: dict[str, Any] = {k: v for k, v in SESSION_DEFAULTS.items() if k not in _CONSTRUCTOR}
    settings.update(image=render(scene), content=scene.caption())
    spec = {"preset": "shapes", "seed": seed, **({"folder": str(folder)} if folder is not None else {})}
    return Preset(image_backend, video_backend, options=options, settings=settings, spec=spec)
