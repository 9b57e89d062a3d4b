"""Session: the kernel-side object that users, notebooks and widgets talk to.

A session holds the four instructions of the paper (image x, content y with painting, motion
y', trajectories r) and lambda, and runs Eq. 1 as cached stages (`ivcore.stages.pipeline`).
Every instruction and setting is declared once below as a `Setting` (`ivcore.fields`): the
declaration gives the property, its validation, what `observe` hears, what `save` writes and the
API table, so a new setting is one line. Setters validate first and raise InstructionError, so
the session always keeps its last good state. Saving and loading live in `ivcore.persistence`.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ivcore import sizes, story, takes
from ivcore import trajectory as traj
from ivcore.align import FrameAlign
from ivcore.backends.image import ImageBackend
from ivcore.backends.offload import MemoryOptions
from ivcore.backends.video import MOTION_SCALES, PIAVideoBackend
from ivcore.errors import InstructionError
from ivcore.fields import DeclaredFields, Saved, Setting, init_values, set_many
from ivcore.instructions import check_lam
from ivcore.stages.cache import DEFAULT_MAX_BYTES, StageCache
from ivcore.stages.denoise import Cancelled
from ivcore.stages.pipeline import Pipeline, model_key
from ivcore.takes import ImageStore, Take

TRAJECTORY_MODES = ("path", "endpoint")
SESSION_FILE = "session.json"


# ---------------------------------------------------------------------- checks of the custom fields
def _check_trajectories(session: Session, value: Any) -> list[traj.Trajectory]:
    if value is None:
        value = []
    if not isinstance(value, (list, tuple)):
        raise InstructionError("trajectories", value, "a list of Trajectory objects or dicts")
    return traj.validate_trajectories(list(value), session.size)


def _check_align(session: Session, value: Any) -> str | FrameAlign | None:
    if not (value is None or (isinstance(value, str) and value == "stats") or isinstance(value, FrameAlign)):
        raise InstructionError("align", value, 'None, "stats" or an ivcore.align.FrameAlign')
    return value


def _check_preview_decoder(session: Session, value: Any) -> torch.nn.Module | None:
    if value is not None and not (isinstance(value, torch.nn.Module) and callable(getattr(value, "decode", None))):
        raise InstructionError("preview_decoder", value, "None or a VAE module with decode() (AutoencoderTiny)")
    return value


def _frame_step(session: Session) -> int:
    """Frame counts go in steps of k from 1 where the VAE compresses time k-fold (4k+1, 8k+1); else 1."""
    rule = getattr(session.video_backend, "frame_rule", None)
    return 1 if rule is None else int(rule[0])


MAX_SEED = 2**63 - 1
_CONSTRUCTOR = ("seed", "steps", "image_steps", "guidance", "image_guidance", "cache_bytes")


def _apply_seed(session: Session, seed: int) -> None:
    """A seed the user sets wins over a restored take's pending video seed (see `restore`)."""
    session._values["seed"], session._next_seed = seed, None


def _train_timesteps(backend) -> int:
    """A sampler cannot take more steps than the timesteps it was trained with (diffusers raises)."""
    return int(getattr(backend.scheduler.config, "num_train_timesteps", 1000))


def _copy_image(image: Image.Image | None) -> Image.Image | None:
    return None if image is None else image.copy()


class Session(Pipeline):
    """The InteractiveVideo state and its cached pipeline (Eq. 1 with the Eq. 4 blend).

    Build one with `Session.tiny()` (offline random-init models) or
    `Session.from_pretrained(...)` (real weights), set instructions, then `generate()`.
    """

    # ------------------------------------------------------------------ the fields (declared once)
    size = Setting(
        "custom", sizes.native_size, type="(width, height), multiples of the models' own (64 for SD1.5)",
        check=sizes.check_size, apply=sizes.apply_size, to_json=list, from_json=sizes.from_json, first=True,
        shown_default="the models' native size", doc="(width, height) of every picture and frame of the session; "
        "a change refits the image and clears paint and trajectories (see ivcore.sizes).",
    )  # fmt: skip
    fit = Setting(
        "choice", "crop", choices=sizes.FIT_MODES, type='`"crop"`, `"pad"` or `"stretch"`', apply=sizes.apply_fit,
        first=True, doc="How a picture of another shape is brought to `size`: centre crop, pad with its edge "
        "colour, or stretch (also paint layers of the picture's size).",
    )  # fmt: skip
    image = Setting(
        "custom", sizes.grey, type="PIL image (set: PIL, H x W x 3 uint8 array, path)", check=sizes.check_image,
        apply=sizes.apply_image, copy=_copy_image, saved=Saved.FILE, shown_default="grey, the model's size",
        doc="The Image Instruction x, at `size` (brought there by `fit` on set); setting it clears the paint.",
    )  # fmt: skip
    content = Setting("str", "", type="str", doc="The Content Instruction y: the text P_img renders x into.")
    content_strength = Setting(
        "float", 0.6, low=0.0, high=1.0, type="float in [0, 1]",
        doc="Img2img strength of P_img; 0 means x~ = x exactly (bring your own intermediate image).",
    )  # fmt: skip
    paint_layer = Setting(
        "custom", None, type="RGBA of the image's size, or None", check=sizes.check_paint, copy=_copy_image,
        saved=Saved.FILE, notify="paint", readonly=True,
        doc="The RGBA paint layer over x (None when nothing is painted); set with `paint(layer)`, `clear_paint()`.",
    )  # fmt: skip
    motion = Setting("str", "", type="str", doc="The Motion Instruction y': the text that conditions P_video.")
    negative_prompt = Setting(
        "str", "", type="str",
        doc="Text to steer away from (the unconditional branch of classifier-free guidance, both models).",
    )  # fmt: skip
    motion_scale = Setting(
        "int", 0, low=0, high=len(MOTION_SCALES) - 1, type="int 0-2",
        doc="PIA's motion strength: 0 small, 1 moderate, 2 large motion.",
    )  # fmt: skip
    trajectories = Setting(
        "custom", lambda s: [], type="list of `Trajectory` (or dicts)", check=_check_trajectories, copy=list,
        to_json=lambda v: [t.to_dict() for t in v], shown_default="`[]`",
        doc="Trajectory Instructions r: drags applied to the intermediate image (see ivcore.trajectory).",
    )  # fmt: skip
    trajectory_mode = Setting(
        "choice", "path", choices=TRAJECTORY_MODES, type='`"path"` or `"endpoint"`',
        doc='"path": x~\' is animated per frame along the paths; "endpoint": the paper\'s single x~\'.',
    )  # fmt: skip
    trajectory_strength = Setting(
        "float", 0.3, low=0.0, high=1.0, type="float in [0, 1]",
        doc="""How hard the first steps pull moving regions toward the animated frames, in [0, 1].

        The pull acts for round(strength * steps) steps, inside the moving regions only, weighted
        by (1 - lam); 0 turns it off (conditioning alone). Default 0.3: the layout forms in the
        first third of the steps, later steps are left free to add detail.""",
    )  # fmt: skip
    lam = Setting(
        "custom", 0.0, type="float in [0, 1] or a per-step list", check=lambda s, v: check_lam(v),
        to_json=lambda v: list(v) if isinstance(v, tuple) else v,
        doc="""Eq. 4's lambda: weight of the unedited branch (1: video of x~, 0: video of x~'), in [0, 1] or per step.

        The default 0 follows the edits: with nothing edited both branches are the same picture
        and lambda changes nothing, and once the user paints or drags, the video shows it.""",
    )  # fmt: skip
    align = Setting(
        "custom", None, type='`None`, `"stats"` or `ivcore.align.FrameAlign`', check=_check_align,
        to_json=lambda v: "FrameAlign" if isinstance(v, FrameAlign) else v,
        doc="""Eq. 5 post-processing of the video latents: None (default), "stats" or a FrameAlign.

        None keeps lam = 1 exactly equal to the plain PIA video. "stats" pins each frame's
        per-channel latent statistics to those of x~' (removes colour drift, training-free).
        A FrameAlign applies the paper's Conv2D(SiLU(GroupNorm(v_i - x~))) head (its identity
        at init; load trained weights with FrameAlign.from_file); save writes its weights.""",
    )  # fmt: skip
    seed = Setting(
        "int", 0, low=0, high=MAX_SEED, type="int in [0, 2**63 - 1]", apply=_apply_seed,
        doc="Seed of P_img and the default seed of `generate` (torch generators take 64-bit seeds).",
    )  # fmt: skip
    num_frames = Setting(
        "int", lambda s: s.video_backend.num_frames, low=1, high=lambda s: s.video_backend.max_frames,
        step=_frame_step, type="int in [1, the model's max_frames]; 4k+1 or 8k+1 where the VAE compresses time",
        doc="Frames per video (the default of `generate`).",
    )  # fmt: skip
    steps = Setting(
        "int", 25, low=lambda s: getattr(s.video_backend, "min_steps", 1),
        high=lambda s: _train_timesteps(s.video_backend),
        type="int in [the family's min_steps (1; LTX-Video 2), the scheduler's train timesteps]",
        doc="Denoising steps of P_video.",
    )  # fmt: skip
    guidance = Setting(
        "float", 7.5, low=0.0, type="float >= 0", doc="Classifier-free guidance scale of P_video (<= 1: off)."
    )
    image_steps = Setting(
        "int", 25, low=1, high=lambda s: _train_timesteps(s.image_backend),
        type="int in [1, the scheduler's train timesteps]",
        doc="Sampler steps of P_img (img2img runs about `content_strength` of them).",
    )  # fmt: skip
    image_guidance = Setting("float", 7.5, low=0.0, type="float >= 0", doc="Classifier-free guidance scale of P_img.")
    fps = Setting(
        "float", lambda s: float(s.video_backend.fps), low=0.01, high=1000.0, type="float in [0.01, 1000]",
        doc="Frames per second of the videos made (and of their mp4).",
    )  # fmt: skip
    preview_decoder = Setting(
        "custom", None, type="`None` or a small VAE (`AutoencoderTiny`)", check=_check_preview_decoder,
        saved=Saved.NO, cache_key=False,
        doc="An optional fast decoder for latent previews in the widgets (never used for the final video).",
    )  # fmt: skip

    keep_takes = Setting(
        "int", 50, low=0, type="int >= 0", cache_key=False,
        doc="How many of the newest takes keep their video in memory (older ones keep settings and a thumbnail).",
    )  # fmt: skip

    fields = DeclaredFields()  # {name: Setting} of the declarations above, for UIs and tools

    def __init__(
        self,
        image_backend: ImageBackend,
        video_backend: PIAVideoBackend,
        *,
        seed: int = 0,
        steps: int = 25,
        image_steps: int = 25,
        guidance: float = 7.5,
        image_guidance: float = 7.5,
        cache_bytes: int = DEFAULT_MAX_BYTES,
        spec: dict | None = None,
    ):
        self.image_backend = image_backend
        self.video_backend = video_backend
        self.cache = StageCache(cache_bytes)
        self._spec = dict(spec or {})
        self._running = threading.Lock()
        self._cancel = threading.Event()
        self._observers: list[Callable[[str], None]] = []
        init_values(self)
        self.take_images = ImageStore()  # the takes' pictures, once each, by content hash
        self._takes: list[Take] = []
        self._take_numbers = takes.counter()
        self.story = story.Story(self)
        self._recording = True  # restore's regeneration of an evicted take makes no new take
        self._next_seed: int | None = None  # a restored take's video seed, for the next generate()
        self.seed, self.steps, self.image_steps = seed, steps, image_steps
        self.guidance, self.image_guidance = guidance, image_guidance
        self.last_video = None
        self.last_latents: torch.Tensor | None = None
        self.last_timings: dict[str, float] = {}
        self.memory = MemoryOptions()  # what stays on the device: `set_memory`

    # ------------------------------------------------------------------ construction
    @classmethod
    def preset(cls, name: str | os.PathLike, seed: int = 0, **kwargs: Any) -> Session:
        """A session on a preset's models, asked for by name (`ivcore.presets`): "tiny", "shapes", or a
        folder written by `train-shapes --out`.

        Keywords the preset's builder takes (`video=`, `folder=`) go to it; the others are the
        session's own (`steps=`, `guidance=`, any declared field such as `lam=`) and override the
        preset's, so a preset's measured settings stay the default and nothing else changes.
        """
        from ivcore import presets

        return presets.make(cls, name, seed=seed, **kwargs)

    @classmethod
    def tiny(cls, seed: int = 0, video: str = "pia", **kwargs: Any) -> Session:
        """Random-init tiny models (64x64 native, any multiple of 8 with `size=(W, H)`, 8 frames): offline,
        CPU, seconds. Same seed, same models.

        `video="svd"` puts a tiny Stable Video Diffusion model behind the same session.
        """
        return cls.preset("tiny", seed=seed, video=video, **kwargs)

    @classmethod
    def shapes(cls, seed: int = 0, folder: str | os.PathLike | None = None, **kwargs: Any) -> Session:
        """Trained shapes-world models (64x64, 8 frames) shipped in the package: offline, CPU, a second.

        Unlike `tiny()`, these models were trained (`python -m ivcore train-shapes`) on the world
        of `ivcore.shapes.world`, so painting, motion text, trajectories and lambda visibly do what the
        paper says. They load through the loader `from_pretrained` uses for real SD1.5 + PIA folders,
        on the CPU in float32 (IVCORE_TINY does not apply). The session starts with a world scene as
        its image and its caption as content. `folder`: your own trained models (the `--out` of
        train-shapes) instead of the shipped ones.
        """
        return cls.preset("shapes", seed=seed, folder=folder, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        image_model: str | os.PathLike | None = None,
        video_model: str | os.PathLike | None = None,
        *,
        motion_adapter: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> Session:
        """Load real weights (hub ids or local folders, safetensors only).

        `image_model` is an SD1.5-family model (SD1.5, DreamBooth fine-tunes, LCM or turbo style
        models); `video_model` is the SD1.5 base PIA runs on, with `motion_adapter` the PIA
        condition adapter (default `openmmlab/PIA-condition-adapter`). fp16 on CUDA by default.
        With the environment variable IVCORE_TINY=1 this builds the tiny preset instead.
        """
        from ivcore.backends.build import DEFAULTS, load_backends, tiny_requested

        if tiny_requested():
            return cls.tiny(**{k: v for k, v in kwargs.items() if k in ("seed", "steps", "image_steps", *cls.fields)})
        image_backend, video_backend, spec = load_backends(
            image_model, video_model, motion_adapter=motion_adapter, device=device, dtype=dtype
        )
        options = {**DEFAULTS, **getattr(image_backend, "defaults", {}), **getattr(video_backend, "defaults", {})}
        options.update(kwargs)
        settings = {k: options.pop(k) for k in list(options) if k in cls.fields and k not in _CONSTRUCTOR}
        session = cls(image_backend, video_backend, spec=spec, **options)
        set_many(session, settings)  # size=(W, H), fit=, any declared field
        return session

    @property
    def models(self) -> dict:
        """Which models this session runs: {"preset": "tiny"|"shapes", ...} or the model ids/folders."""
        return dict(self._spec)

    # ------------------------------------------------------------------ change notification
    def observe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(field)` after each change of an instruction; returns an unsubscribe function.

        Widgets use this to redraw when a notebook cell sets `s.image`, `s.trajectories`, ...
        Fields: each declared setting under its own name (`paint` for the paint layer; see the
        table in docs/api.md), plus commit and video (a new last_video). A failing callback is
        reported as a warning and never breaks the session.
        """
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    def _notify(self, field: str) -> None:
        for callback in list(self._observers):
            try:
                callback(field)
            except Exception as err:  # an observer must not break the session
                warnings.warn(f"Session observer {callback!r} failed on {field!r}: {err}", stacklevel=3)

    # ------------------------------------------------------------------ instructions set by methods
    def paint(self, layer: Any) -> None:
        """Set the RGBA paint layer over x (the whole layer: the canvas sends it on each stroke end).

        The layer has the size of `s.image` (the model's size), or of the picture as it was given
        to `s.image =`, in which case it is cropped and scaled the same way.
        """
        type(self).paint_layer.set(self, layer)

    def clear_paint(self) -> None:
        """Remove the paint layer."""
        with self._lock:
            self._values["paint_layer"] = None
        self._notify("paint")

    # ------------------------------------------------------------------ personalization
    def load_lora(
        self,
        path_or_id: str | os.PathLike,
        *,
        target: str = "both",
        scale: float = 1.0,
        adapter_name: str | None = None,
        weight_name: str | None = None,
    ) -> str:
        """Load a LoRA (.safetensors only) on P_img ("image"), P_video ("video") or "both"; returns its name."""
        from ivcore.backends import personalize

        return personalize.load_lora(
            self, path_or_id, target=target, scale=scale, adapter_name=adapter_name, weight_name=weight_name
        )

    def set_lora_scale(self, weights: dict[str, float] | float, *, target: str = "both") -> None:
        """Set adapter weights ({name: weight}) or one weight for all loaded adapters."""
        from ivcore.backends import personalize

        personalize.set_lora_scale(self, weights, target=target)

    def unload_lora(self, adapter_name: str | None = None, *, target: str = "both") -> None:
        """Remove one adapter (or all): the original weights come back exactly."""
        from ivcore.backends import personalize

        personalize.unload_lora(self, adapter_name, target=target)

    def set_memory(self, **changes: Any) -> MemoryOptions:
        """Turn diffusers' memory features on or off: `offload` (None, "model", "group"), `fp8`, `vae_tiling`.

        "model" keeps one model on the device at a time, across P_img and P_video; see
        `ivcore.backends.offload` and docs/memory.md (which card fits which family with which options).
        """
        from ivcore.backends import offload

        return offload.set_memory(self, **changes)

    def load_image_checkpoint(self, path_or_id: str | os.PathLike) -> list[str]:
        """DreamBooth folder or single-file .safetensors checkpoint for P_img."""
        from ivcore.backends import checkpoints

        return checkpoints.load_image_checkpoint(self, path_or_id)

    def load_video_checkpoint(self, path_or_id: str | os.PathLike) -> list[str]:
        """SD1.5 checkpoint for P_video's spatial layers (PIA's motion modules are kept)."""
        from ivcore.backends import checkpoints

        return checkpoints.load_video_checkpoint(self, path_or_id)

    def use_few_step(self, **kwargs: Any) -> None:
        """Fast previews: LCM sampler, 4 steps, guidance 1 (optionally an AnimateLCM-style LoRA)."""
        from ivcore.backends import fewstep

        fewstep.use_few_step(self, **kwargs)

    def use_default_sampler(self) -> None:
        """Undo `use_few_step`: the previous scheduler, steps and guidance come back."""
        from ivcore.backends import fewstep

        fewstep.use_default_sampler(self)

    # ------------------------------------------------------------------ editing history
    def commit(self) -> None:
        """Make the edited intermediate x~' the new base image.

        Paint and trajectories are baked into the image and cleared, and content_strength is
        set to 0 so the committed frame is used as is (raise it again to re-stylize). The last
        video stays.
        """
        edited = self.intermediate(edited=True)
        with self._lock:
            self._values.update(image=edited, paint_layer=None, trajectories=[], content_strength=0.0)
        self._notify("commit")

    # ------------------------------------------------------------------ takes and stories
    @property
    def takes(self) -> list[Take]:
        """Every successful generation of this session, oldest first (see `ivcore.takes`)."""
        return list(self._takes)

    def _made(self, values: dict, seed: int, video, timings: dict[str, float]) -> None:
        if self._recording:
            takes.keep(self, takes.record(self, values, seed, video, timings))

    def restore(self, take: Take) -> None:
        """Set every instruction and setting back to the take's, so that the next `generate()` equals
        `take.video` (bitwise on the CPU; from the caches where they still hold it).

        The take's video seed is the next `generate()`'s default, once, where it differs from the
        seed P_img used (`s.seed`; a take made with `generate(seed=k)`); setting `s.seed` cancels
        that. A take made with other models, LoRAs, checkpoints or samplers than the session now has is
        refused (InstructionError naming what differs). A take whose video was dropped from memory
        (older than `keep_takes`) is generated again; the player shows the take's video.
        """
        takes.restore(self, take)

    def continue_from(self, take: Take | None = None) -> Take:
        """Append the take (default: the last) to `s.story` and start the next segment from its last frame.

        The last frame becomes the image (content_strength 0, so it is used as is), the paint and
        the trajectories are cleared and the motion text is kept: paint, drag and write the next
        segment's motion, then `generate()` again. Returns the take appended.
        """
        return story.continue_from(self, take)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """The session's instructions, settings and loaded weights as plain JSON data (images beside).

        Every field declared as saved in session.json, plus the models, the LoRAs, checkpoints,
        samplers and few-step state (`ivcore.model_state.weights_state`).
        """
        from ivcore import persistence

        return persistence.session_dict(self)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write session.json, image.png, paint.png, the last video (safetensors + mp4), the FrameAlign
        weights and copies of the loaded LoRA files into `folder`. No pickle."""
        from ivcore import persistence

        return persistence.save(self, folder)

    @classmethod
    def load(cls, folder: str | os.PathLike, **model_kwargs: Any) -> Session:
        """Rebuild a saved session; `model_kwargs` (device, dtype, model ids) override the saved models.

        A folder that is damaged or not ours raises InstructionError naming the file and field.
        """
        from ivcore import persistence

        return persistence.load(cls, folder, **model_kwargs)

    def __repr__(self) -> str:
        """Every declared field: plain values as they are; images, lists and modules summarized."""

        def shown(name: str, value: Any) -> str:
            if name in ("image", "paint_layer"):
                return "no" if value is None else "yes"
            if name == "trajectories":
                return str(len(value))
            return type(value).__name__ if isinstance(value, torch.nn.Module) else repr(value)

        parts = [f"{name}={shown(name, value)}" for name, value in self._snapshot().items() if name != "image"]
        return f"Session(models={self._spec}, " + ", ".join(parts) + ")"  # size and fit are fields


__all__ = ["Session", "Cancelled", "model_key"]
