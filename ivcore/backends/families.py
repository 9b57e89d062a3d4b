"""The video families P_video can be, found by the diffusers pipeline class a model folder names.

A model folder (or hub repository) says what it is in `model_index.json`'s `_class_name`:
`WanImageToVideoPipeline`, `StableVideoDiffusionPipeline`, ... Each family is one module of
`ivcore.backends` with a loader, and one `register` line below: the loader is imported only when
a model of its family is loaded, so the session imports no family it does not run. Adding a family
is a module and one registration; nothing else branches on the family.

A loader is `load(model, *, device, dtype, image_backend=None, motion_adapter=None) -> backend`
(a `VideoBackend`, see `ivcore.backends.base`); its backend's `defaults` are the session settings
the family ships with (native size, frames, steps, guidance, negative prompt, fps).

`Registry` is the lookup itself; the image families (P_img) keep a registry of their own in
`ivcore.backends.image_families`.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivcore.errors import InstructionError


@dataclass(frozen=True)
class Family:
    """One family (of P_video or P_img): the pipeline classes it loads and where its code lives."""

    name: str
    pipelines: tuple[str, ...]  # model_index.json `_class_name` values ("" : a folder without one)
    loader: str  # "module:function"
    mirrors: dict[str, str] = field(default_factory=dict)  # ivcore.testing.mirror kind -> "module:function"
    doc: str = ""

    def load(self, model: str, **kwargs: Any):
        return _resolve(self.loader)(model, **kwargs)


def _resolve(target: str) -> Callable:
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def model_index(model: str | os.PathLike) -> dict:
    """A model's model_index.json as a dict ({} when it has none)."""
    local = Path(model)
    if (local / "model_index.json").is_file():
        return json.loads((local / "model_index.json").read_text())
    if local.is_dir():
        return {}
    try:
        import diffusers

        return dict(diffusers.DiffusionPipeline.load_config(str(model)))
    except (OSError, ValueError):
        return {}


def pipeline_class(model: str | os.PathLike) -> str:
    """The `_class_name` of a model's model_index.json ("" when it has none)."""
    return str(model_index(model).get("_class_name", ""))


class Registry:
    """The families of one role (P_video here, P_img in `ivcore.backends.image_families`), keyed by pipeline class.

    `field` is the session argument an unknown class is reported under (`video_model`, `image_model`): the two
    roles keep separate registries because one class can be both (an SD1.5 folder is P_img, and PIA's base).
    """

    def __init__(self, field: str):
        self.field = field
        self._families: dict[str, Family] = {}

    def register(self, family: Family) -> Family:
        """Add (or replace) a family; its pipeline classes must not belong to another one."""
        for other in self._families.values():
            taken = set(other.pipelines) & set(family.pipelines)
            if other.name != family.name and taken:
                raise ValueError(f"family {family.name!r}: {sorted(taken)} already belong to {other.name!r}")
        self._families[family.name] = family
        return family

    def families(self) -> list[Family]:
        return list(self._families.values())

    def supported(self) -> list[str]:
        """The pipeline classes a model of this role may be, for error messages and docs."""
        return sorted(p for f in self._families.values() for p in f.pipelines if p)

    def family_of(self, model: str | os.PathLike) -> Family:
        """The family whose pipelines include the model's class; InstructionError naming the role's field otherwise."""
        found = pipeline_class(model)
        for family in self._families.values():
            if found in family.pipelines:
                return family
        raise InstructionError(
            self.field, str(model),
            f"a model of a supported family; its model_index.json names {found or 'no pipeline class'!r}, "
            f"supported: {', '.join(self.supported())}",
        )  # fmt: skip

    def mirror_kinds(self) -> dict[str, str]:
        """{kind: "module:function"} of every family's hub-layout mirror writers (`ivcore.testing.mirror`)."""
        return {kind: target for f in self._families.values() for kind, target in f.mirrors.items()}

    def write_mirror(self, kind: str, folder: Path, **kwargs: Any) -> Path:
        """Write the hub-layout mirror `kind` (one writer may serve several kinds of a family: it gets `kind=`)."""
        return _resolve(self.mirror_kinds()[kind])(folder, kind=kind, **kwargs)


VIDEO = Registry("video_model")
register, families, supported = VIDEO.register, VIDEO.families, VIDEO.supported
family_of, mirror_kinds, write_mirror = VIDEO.family_of, VIDEO.mirror_kinds, VIDEO.write_mirror


# ------------------------------------------------------------------------------------ the families
register(Family(
    "pia", ("StableDiffusionPipeline", "PIAPipeline", ""), "ivcore.backends.video:load_pia_backend",
    doc="SD1.5 base + PIA condition adapter (UNetMotionModel, 9-channel conv_in)",
))  # fmt: skip
register(Family(
    "svd", ("StableVideoDiffusionPipeline",), "ivcore.backends.svd:load_family",
    doc="Stable Video Diffusion (img2vid, img2vid-xt)",
))  # fmt: skip
register(Family(
    "wan", ("WanImageToVideoPipeline",), "ivcore.backends.wan:load_wan_backend",
    mirrors={
        "wan2.1-i2v": "ivcore.backends.wan:write_wan_mirror",
        "wan2.2-i2v-a14b": "ivcore.backends.wan:write_wan_mirror",
        "wan2.2-ti2v-5b": "ivcore.backends.wan:write_wan_mirror",
    },
    doc="Wan 2.1 I2V (480P, 720P), Wan 2.2 I2V-A14B (two experts), Wan 2.2 TI2V-5B",
))  # fmt: skip
register(Family(
    "cogvideox", ("CogVideoXImageToVideoPipeline",), "ivcore.backends.cogvideox:load_cogvideox_backend",
    mirrors={
        "cogvideox-5b-i2v": "ivcore.backends.cogvideox:write_cogvideox_mirror",
        "cogvideox1.5-5b-i2v": "ivcore.backends.cogvideox:write_cogvideox_mirror",
    },
    doc="CogVideoX 1.0 / 1.5 I2V",
))  # fmt: skip
register(Family(
    "ltx", ("LTXImageToVideoPipeline",), "ivcore.backends.ltx:load_ltx_backend",
    mirrors={
        "ltx-video-0.9.0-i2v": "ivcore.backends.ltx_tiny:write_ltx_mirror",
        "ltx-video-0.9.1-i2v": "ivcore.backends.ltx_tiny:write_ltx_mirror",
    },
    doc="LTX-Video 0.9.x I2V (the image is the first latent frame)",
))  # fmt: skip
register(Family(
    "ltx-condition", ("LTXConditionPipeline",), "ivcore.backends.ltx_condition:load_ltx_condition_backend",
    mirrors={
        "ltx-video-0.9.7-distilled": "ivcore.backends.ltx_condition:write_ltx_condition_mirror",
        "ltx-video-0.9.7-dev": "ivcore.backends.ltx_condition:write_ltx_condition_mirror",
    },
    doc="LTX-Video 0.9.5 and later, and the few-step -distilled releases (LTXConditionPipeline)",
))  # fmt: skip
register(Family(
    "hunyuan", ("HunyuanVideo15ImageToVideoPipeline",), "ivcore.backends.hunyuan:load_hunyuan_backend",
    mirrors={"hunyuanvideo-1.5-480p-i2v": "ivcore.backends.hunyuan_tiny:write_hunyuan_mirror"},
    doc="HunyuanVideo 1.5 I2V (480p)",
))  # fmt: skip


__all__ = [
    "VIDEO", "Family", "Registry", "families", "family_of", "mirror_kinds", "model_index", "pipeline_class",
    "register", "supported", "write_mirror",
]  # fmt: skip
