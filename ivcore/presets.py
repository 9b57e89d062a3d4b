"""Presets: named recipes for a session's models, which the session asks for by name.

`Session.preset("tiny")`, `Session.preset("shapes")` or `Session.preset(folder)` (a folder
written by `python -m ivcore train-shapes --out`) look the name up here. A preset's builder
lives with what it builds (`tiny_preset` below for the random-init tiny models,
`ivcore.shapes.preset` for the trained shapes world) and is imported only when asked for, so
the session, and everything it imports, knows no particular world. Another package can add its
own with `register(name, builder)`.

A builder takes keyword arguments (at least `seed`) and returns a `Preset`: the two backends,
the constructor options (sampler steps and guidance the models were measured with), the fields
to set on the new session (its first picture, say), and the spec that `Session.save` writes so
that `Session.load` asks for the same preset again.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivcore.errors import InstructionError
from ivcore.instructions import check_choice, check_int


@dataclass
class Preset:
    """What a builder returns: everything `Session.preset` needs to make the session."""

    image_backend: Any
    video_backend: Any
    options: dict[str, Any] = field(default_factory=dict)  # Session(...) keywords: steps, guidance, ...
    settings: dict[str, Any] = field(default_factory=dict)  # fields set on the new session, in order
    spec: dict[str, Any] = field(default_factory=dict)  # {"preset": name, ...}: saved, asked for again on load


Builder = Callable[..., Preset]

# name -> builder, or "module:function" imported on first use (keeps the session free of the worlds)
_BUILDERS: dict[str, Builder | str] = {
    "tiny": "ivcore.presets:tiny_preset",
    "shapes": "ivcore.shapes.preset:shapes_preset",
}


def register(name: str, builder: Builder | str) -> None:
    """Add a preset (a callable, or "module:function" imported when first asked for)."""
    if not isinstance(name, str) or not name or os.sep in name or "/" in name:
        raise InstructionError("name", name, "a preset name without path separators")
    _BUILDERS[name] = builder


def names() -> list[str]:
    """The registered preset names."""
    return sorted(_BUILDERS)


def is_model_folder(path: str | os.PathLike) -> bool:
    """A folder of trained models as `train-shapes --out` writes them: image/ and video/unet/ inside."""
    path = Path(path)
    return (path / "video" / "unet").is_dir() and (path / "image").is_dir()


def resolve(name: str | os.PathLike) -> tuple[Builder, dict[str, Any]]:
    """The builder for `name` and the arguments the name implies (a folder becomes `folder=`)."""
    if isinstance(name, str) and name in _BUILDERS:
        builder = _BUILDERS[name]
        if isinstance(builder, str):
            module, function = builder.split(":")
            builder = _BUILDERS[name] = getattr(importlib.import_module(module), function)
        return builder, {}
    if isinstance(name, (str, os.PathLike)) and is_model_folder(name):
        return resolve("shapes")[0], {"folder": str(name)}
    allowed = f"one of {', '.join(names())}, or a folder with image/ and video/ (train-shapes --out)"
    raise InstructionError("preset", name, allowed)


# keywords of Session(...) that a preset or its caller may set (the other keywords are declared fields)
CONSTRUCTOR_OPTIONS = ("steps", "image_steps", "guidance", "image_guidance", "cache_bytes")


def make(cls: type, name: str | os.PathLike, *, seed: int = 0, **kwargs: Any):
    """`Session.preset`: the builder's keywords go to it, constructor options and fields to the session.

    Every keyword is checked to be one of those before any model is loaded.
    """
    builder, _ = resolve(name)
    params = inspect.signature(builder).parameters
    own = {k: v for k, v in kwargs.items() if k not in params}
    for key, value in own.items():
        if key not in CONSTRUCTOR_OPTIONS and key not in cls.fields:
            allowed = f"a keyword of the preset ({', '.join(params)}), of Session() or a field of the session"
            raise InstructionError(key, value, allowed)
    built = build(name, seed=seed, **{k: v for k, v in kwargs.items() if k in params})
    constructor = {k: own.pop(k) for k in list(own) if k in CONSTRUCTOR_OPTIONS}
    session = cls(built.image_backend, built.video_backend, spec=built.spec, **{**built.options, **constructor})
    first = {k: own[k] for k in cls.fields if k in own and cls.fields[k].first}  # size, fit: before the image
    for name_, value in {**first, **built.settings, **own}.items():
        setattr(session, name_, value)
    return session


def build(name: str | os.PathLike, *, seed: int = 0, **kwargs: Any) -> Preset:
    """Ask the registry for a preset's models; `kwargs` go to its builder (video=, folder=, ...)."""
    builder, implied = resolve(name)
    return builder(seed=check_int(seed, "seed", low=0), **{**implied, **kwargs})


TINY_VIDEOS = ("pia", "svd", "wan2.1-i2v", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b")


def tiny_preset(seed: int = 0, video: str = "pia") -> Preset:
    """Random-init tiny models (64x64, 8 frames): offline, CPU, seconds. `video` puts another tiny family behind:
    "svd", or a Wan variant ("wan2.1-i2v", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b": 64 x 48 or 64 x 64, 9 frames)."""
    check_choice(video, "video", TINY_VIDEOS)
    from ivcore.backends.build import tiny_backends

    image_backend, video_backend = tiny_backends(seed)
    options = dict(steps=10, image_steps=4, guidance=7.5, image_guidance=7.5)
    spec = {"preset": "tiny", "seed": seed}
    if video == "svd":
        from ivcore.backends.svd import tiny_svd_backend

        video_backend = tiny_svd_backend(seed)
    elif video != "pia":
        from ivcore.backends.wan import tiny_wan_backend

        video_backend = tiny_wan_backend(video, seed)
    if video != "pia":
        options.update(video_backend.defaults)  # the family's steps, guidance, negative prompt
        spec["video"] = video
    settings = {
        k: options.pop(k) for k in list(options) if k not in ("steps", "image_steps", "guidance", "image_guidance")
    }
    return Preset(image_backend, video_backend, options=options, settings=settings, spec=spec)
