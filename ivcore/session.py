"""Session: the kernel-side object that users, notebooks and widgets talk to.

A session holds the four instructions of the paper (image x, content y with painting, motion
y', trajectories r) and lambda, and runs Eq. 1 as cached stages:

    text (CLIP) -> image (P_img: x~ and x~') -> encode (VAE: z0, z0') -> denoise (Eq. 4) -> decode

Each stage result is stored under a key of its own inputs (`ivcore.cache`), so changing lambda
reruns only denoise and decode, and painting reruns P_img for x~' but not for x~.
Setters validate first and raise InstructionError, so the session always keeps its last good
state; a failed or cancelled generation leaves `last_video` as it was.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ivcore import trajectory as traj
from ivcore.align import FrameAlign, apply_align
from ivcore.backends.image import ImageBackend
from ivcore.backends.video import MOTION_SCALES, PIAVideoBackend
from ivcore.cache import DEFAULT_MAX_BYTES, StageCache, fingerprint
from ivcore.denoise import Cancelled, StepCallback, denoise
from ivcore.errors import InstructionError
from ivcore.guidance import TrajectoryGuide
from ivcore.images import composite, fit_to, to_paint_layer, to_rgb_image
from ivcore.instructions import (
    check_choice,
    check_float,
    check_int,
    check_lam,
    check_prompt,
    lam_schedule,
)
from ivcore.video import Video

TRAJECTORY_MODES = ("path", "endpoint")
SESSION_FILE = "session.json"


@dataclass
class _Plan:
    """The inputs of one generation, snapshotted from the session and passed through the stages."""

    key: str
    plain_key: str  # the key of the same run without any edit (what lam = 1 everywhere computes)
    seed: int
    shape: tuple[int, ...]
    steps: int
    guidance: float
    motion_scale: int
    x_tilde: Image.Image
    edit_images: list[Image.Image] | None
    text: torch.Tensor
    uncond: torch.Tensor
    masks: np.ndarray | None
    trajectory_strength: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.shape[2]

    def for_schedules(self, schedules: Sequence[Sequence[float]]) -> _Plan:
        """When every step's lam is 1 the edit is never used: drop it (no encode, plain cache key)."""
        if self.edit_images is None or any(v != 1.0 for s in schedules for v in s):
            return self
        return replace(self, key=self.plain_key, edit_images=None, masks=None)


class _Release:
    """Context manager releasing the session's run lock."""

    def __init__(self, lock: threading.Lock):
        self._lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self._lock.release()


def model_key(backend) -> tuple:
    """What identifies a backend's weights in cache keys: name, in-place weight changes, dtype."""
    return (type(backend).__name__, backend.name, backend.weights_version, str(backend.dtype))


class Session:
    """The InteractiveVideo state and its cached pipeline (Eq. 1 with the Eq. 4 blend).

    Build one with `Session.tiny()` (offline random-init models) or
    `Session.from_pretrained(...)` (real weights), set instructions, then `generate()`.
    """

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
        self._lock = threading.RLock()
        self._running = threading.Lock()
        self._cancel = threading.Event()

        size = (video_backend.size, video_backend.size)
        self._image = Image.new("RGB", size, (127, 127, 127))
        self._paint: Image.Image | None = None
        self._content = ""
        self._motion = ""
        self._negative = ""
        self._content_strength = 0.6
        self._trajectories: list[traj.Trajectory] = []
        self._lam: float | tuple[float, ...] = 1.0
        self._seed = check_int(seed, "seed", 0)
        self._num_frames = video_backend.num_frames
        self._steps = check_int(steps, "steps", 1)
        self._image_steps = check_int(image_steps, "image_steps", 1)
        self._guidance = check_float(guidance, "guidance", 0.0)
        self._image_guidance = check_float(image_guidance, "image_guidance", 0.0)
        self._motion_scale = 0
        self._trajectory_mode = "path"
        self._trajectory_strength = 0.3
        self._align: str | FrameAlign | None = None
        self.fps = video_backend.fps
        self.last_video: Video | None = None
        self.last_latents: torch.Tensor | None = None
        self.last_timings: dict[str, float] = {}
        self._observers: list[Callable[[str], None]] = []

    # ------------------------------------------------------------------ construction
    @classmethod
    def tiny(cls, seed: int = 0, video: str = "pia", **kwargs: Any) -> Session:
        """Random-init tiny models (64x64, 8 frames): offline, CPU, seconds. Same seed, same models.

        `video="svd"` puts a tiny Stable Video Diffusion model behind the same session.
        """
        from ivcore.backends.presets import tiny_backends

        check_choice(video, "video", ("pia", "svd"))
        image_backend, video_backend = tiny_backends(seed)
        options = dict(steps=10, image_steps=4, guidance=7.5, image_guidance=7.5)
        spec = {"preset": "tiny", "seed": seed}
        if video == "svd":
            from ivcore.backends.svd import tiny_svd_backend

            video_backend = tiny_svd_backend(seed)
            options["guidance"] = 3.0
            spec["video"] = "svd"
        options.update(kwargs)
        return cls(image_backend, video_backend, spec=spec, **options)

    @classmethod
    def shapes(cls, seed: int = 0, folder: str | os.PathLike | None = None, **kwargs: Any) -> Session:
        """Trained shapes-world models (64x64, 8 frames) shipped in the package: offline, CPU, a second.

        Unlike `tiny()`, these models were trained (`python -m ivcore train-shapes`) on the world
        of `ivcore.world`, so painting, motion text, trajectories and lambda visibly do what the
        paper says. They load through the loader `from_pretrained` uses for real SD1.5 + PIA folders,
        on the CPU in float32 (IVCORE_TINY does not apply). The session starts with a world scene as
        its image and its caption as content. `folder`: your own trained models (the `--out` of
        train-shapes) instead of the shipped ones.
        """
        from ivcore import world
        from ivcore.backends.presets import load_backends
        from ivcore.samples import shapes_scene
        from ivcore.shapes_models import SESSION_DEFAULTS, shipped_folder

        root = Path(folder) if folder is not None else shipped_folder()
        options = {**SESSION_DEFAULTS, "seed": seed, **kwargs}
        content_strength = options.pop("content_strength")
        image_backend, video_backend, _ = load_backends(
            root / "image", root / "video", device="cpu", dtype=torch.float32
        )
        spec = {"preset": "shapes", "seed": seed, **({"folder": str(folder)} if folder is not None else {})}
        session = cls(image_backend, video_backend, spec=spec, **options)
        session.content_strength = content_strength
        # start from a picture of the world (not grey): Studio(Session.shapes()) is ready to paint on
        scene = shapes_scene()
        session.image = world.render(scene)
        session.content = scene.caption()
        return session

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
        from ivcore.backends.presets import DEFAULTS, load_backends, tiny_requested

        if tiny_requested():
            return cls.tiny(**{k: v for k, v in kwargs.items() if k in ("seed", "steps", "image_steps")})
        image_backend, video_backend, spec = load_backends(
            image_model, video_model, motion_adapter=motion_adapter, device=device, dtype=dtype
        )
        options = dict(DEFAULTS)
        if type(video_backend).__name__ == "SVDVideoBackend":
            options["guidance"] = 3.0  # SVD's max_guidance_scale; PIA's 7.5 is far too strong for it
        options.update(kwargs)
        return cls(image_backend, video_backend, spec=spec, **options)

    @property
    def models(self) -> dict:
        """Which models this session runs: {"preset": "tiny"|"shapes", ...} or the model ids/folders."""
        return dict(self._spec)

    # ------------------------------------------------------------------ change notification
    def observe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(field)` after each change of an instruction; returns an unsubscribe function.

        Widgets use this to redraw when a notebook cell sets `s.image`, `s.trajectories`, ...
        Fields: image, content, motion, negative_prompt, content_strength, paint, trajectories,
        lam, commit, video (a new last_video). A failing callback is reported as a warning and
        never breaks the session.
        """
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    def _notify(self, field: str) -> None:
        for callback in list(self._observers):
            try:
                callback(field)
            except Exception as err:  # an observer must not break the session
                warnings.warn(f"Session observer {callback!r} failed on {field!r}: {err}", stacklevel=2)

    # ------------------------------------------------------------------ instructions
    @property
    def size(self) -> tuple[int, int]:
        """(width, height) every image of this session has: the video model's size."""
        return (self.video_backend.size, self.video_backend.size)

    @property
    def image(self) -> Image.Image:
        """The Image Instruction x, at the model's size (center-cropped and resized on set)."""
        return self._image.copy()

    @image.setter
    def image(self, value: Any) -> None:
        source = to_rgb_image(value, "image")
        image = fit_to(source, self.size)
        with self._lock:
            self._source_size = source.size
            self._image = image
            self._paint = None
        self._notify("image")

    @property
    def content(self) -> str:
        """The Content Instruction y: the text P_img renders x into."""
        return self._content

    @content.setter
    def content(self, value: Any) -> None:
        self._content = check_prompt(value, "content")
        self._notify("content")

    @property
    def motion(self) -> str:
        """The Motion Instruction y': the text that conditions P_video."""
        return self._motion

    @motion.setter
    def motion(self, value: Any) -> None:
        self._motion = check_prompt(value, "motion")
        self._notify("motion")

    @property
    def negative_prompt(self) -> str:
        """Text to steer away from (the unconditional branch of classifier-free guidance)."""
        return self._negative

    @negative_prompt.setter
    def negative_prompt(self, value: Any) -> None:
        self._negative = check_prompt(value, "negative_prompt")
        self._notify("negative_prompt")

    @property
    def content_strength(self) -> float:
        """Img2img strength of P_img; 0 means x~ = x exactly (bring your own intermediate image)."""
        return self._content_strength

    @content_strength.setter
    def content_strength(self, value: Any) -> None:
        self._content_strength = check_float(value, "content_strength", 0.0, 1.0)
        self._notify("content_strength")

    @property
    def paint_layer(self) -> Image.Image | None:
        """The RGBA paint layer over x (None when nothing is painted)."""
        return None if self._paint is None else self._paint.copy()

    def paint(self, layer: Any) -> None:
        """Set the RGBA paint layer over x (the whole layer: the canvas sends it on each stroke end).

        The layer has the size of `s.image` (the model's size), or of the picture as it was given
        to `s.image =`, in which case it is cropped and scaled the same way.
        """
        source = getattr(self, "_source_size", self.size)
        if getattr(layer, "size", None) == source != self.size or (
            isinstance(layer, np.ndarray) and layer.shape[1::-1] == source != self.size
        ):
            # painted over the picture as the user gave it: crop and scale it like the image
            layer = fit_to(to_paint_layer(layer, source), self.size)
        layer = to_paint_layer(layer, self.size)
        with self._lock:
            self._paint = None if layer.getextrema()[3][1] == 0 else layer
        self._notify("paint")

    def clear_paint(self) -> None:
        with self._lock:
            self._paint = None
        self._notify("paint")

    @property
    def trajectories(self) -> list[traj.Trajectory]:
        """Trajectory Instructions r: drags applied to the intermediate image (see ivcore.trajectory)."""
        return list(self._trajectories)

    @trajectories.setter
    def trajectories(self, value: Any) -> None:
        if value is None:
            value = []
        if not isinstance(value, (list, tuple)):
            raise InstructionError("trajectories", value, "a list of Trajectory objects or dicts")
        checked = traj.validate_trajectories(list(value), self.size)
        with self._lock:
            self._trajectories = checked
        self._notify("trajectories")

    @property
    def trajectory_mode(self) -> str:
        """ "path": x~' is animated per frame along the paths; "endpoint": the paper's single x~'."""
        return self._trajectory_mode

    @trajectory_mode.setter
    def trajectory_mode(self, value: Any) -> None:
        self._trajectory_mode = check_choice(value, "trajectory_mode", TRAJECTORY_MODES)

    @property
    def trajectory_strength(self) -> float:
        """How hard the first steps pull moving regions toward the animated frames, in [0, 1].

        The pull acts for round(strength * steps) steps, inside the moving regions only, weighted
        by (1 - lam); 0 turns it off (conditioning alone). Default 0.3: the layout forms in the
        first third of the steps, later steps are left free to add detail.
        """
        return self._trajectory_strength

    @trajectory_strength.setter
    def trajectory_strength(self, value: Any) -> None:
        self._trajectory_strength = check_float(value, "trajectory_strength", 0.0, 1.0)

    @property
    def align(self) -> str | FrameAlign | None:
        """Eq. 5 post-processing of the video latents: None (default), "stats" or a FrameAlign.

        None keeps lam = 1 exactly equal to the plain PIA video. "stats" pins each frame's
        per-channel latent statistics to those of x~' (removes colour drift, training-free).
        A FrameAlign applies the paper's Conv2D(SiLU(GroupNorm(v_i - x~))) head (its identity
        at init; load trained weights with FrameAlign.from_file).
        """
        return self._align

    @align.setter
    def align(self, value: Any) -> None:
        if not (value is None or (isinstance(value, str) and value == "stats") or isinstance(value, FrameAlign)):
            raise InstructionError("align", value, 'None, "stats" or an ivcore.align.FrameAlign')
        self._align = value

    def _align_key(self):
        if isinstance(self._align, FrameAlign):
            return ("FrameAlign", {k: v for k, v in self._align.state_dict().items()})
        return self._align

    def _aligned(self, plan: _Plan, latents: torch.Tensor) -> torch.Tensor:
        """Apply `align`: FrameAlign is relative to x~ (Eq. 5), "stats" to the edited image x~'."""
        image = plan.x_tilde
        if self._align == "stats" and plan.edit_images is not None:
            image = plan.edit_images[-1]
        generator = torch.Generator(device="cpu").manual_seed(plan.seed)
        self.video_backend.initial_noise(plan.shape, generator)  # the encode cache key assumes this draw
        reference = self._encode([image], plan.seed, plan.shape, generator)
        # backends whose encoding is more than latents (SVD) say which part is the latent
        reference = getattr(self.video_backend, "reference_latents", lambda z: z)(reference)
        return apply_align(self._align, latents, reference.to(latents.dtype))

    @property
    def lam(self) -> float | tuple[float, ...]:
        """Eq. 4's lambda: weight of the unedited branch; a float in [0, 1] or a per-step list."""
        return self._lam

    @lam.setter
    def lam(self, value: Any) -> None:
        self._lam = check_lam(value)
        self._notify("lam")

    @property
    def seed(self) -> int:
        """Seed of P_img and the default seed of `generate`."""
        return self._seed

    @seed.setter
    def seed(self, value: Any) -> None:
        self._seed = check_int(value, "seed", 0)

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @num_frames.setter
    def num_frames(self, value: Any) -> None:
        self._num_frames = check_int(value, "num_frames", 1, self.video_backend.max_frames)

    @property
    def steps(self) -> int:
        """Denoising steps of P_video."""
        return self._steps

    @steps.setter
    def steps(self, value: Any) -> None:
        self._steps = check_int(value, "steps", 1)

    @property
    def image_steps(self) -> int:
        """Sampler steps of P_img (img2img runs about `content_strength` of them)."""
        return self._image_steps

    @image_steps.setter
    def image_steps(self, value: Any) -> None:
        self._image_steps = check_int(value, "image_steps", 1)

    @property
    def guidance(self) -> float:
        """Classifier-free guidance scale of P_video (<= 1 turns guidance off)."""
        return self._guidance

    @guidance.setter
    def guidance(self, value: Any) -> None:
        self._guidance = check_float(value, "guidance", 0.0)

    @property
    def image_guidance(self) -> float:
        return self._image_guidance

    @image_guidance.setter
    def image_guidance(self, value: Any) -> None:
        self._image_guidance = check_float(value, "image_guidance", 0.0)

    @property
    def motion_scale(self) -> int:
        """PIA's motion strength: 0 small, 1 moderate, 2 large motion."""
        return self._motion_scale

    @motion_scale.setter
    def motion_scale(self, value: Any) -> None:
        self._motion_scale = check_int(value, "motion_scale", 0, len(MOTION_SCALES) - 1)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """{stage: {"hits": n, "misses": n}} for text, image, encode, denoise, decode."""
        return {stage: dict(counts) for stage, counts in self.cache.stats.items()}

    @property
    def running(self) -> bool:
        """True while a generation is in progress."""
        return self._running.locked()

    # ------------------------------------------------------------------ stages
    def _text(self, backend, prompt: str) -> torch.Tensor:
        key = fingerprint("text", model_key(backend), id(getattr(backend, "text_encoder", None)), prompt)
        return self.cache.get_or_compute("text", key, lambda: backend.encode_prompt(prompt))

    def _p_img(self, image: Image.Image, content: str, negative: str, strength: float) -> Image.Image:
        """x~ = P_img(x, y), cached on its inputs."""
        backend = self.image_backend
        key = fingerprint(
            "image", model_key(backend), image, content, negative, strength, self._image_steps, self._image_guidance,
            self._seed, type(backend.scheduler).__name__, dict(backend.scheduler.config),
        )  # fmt: skip

        def run() -> Image.Image:
            if strength <= 0:
                return image.copy()
            cond = self._text(backend, content)
            uncond = self._text(backend, negative)
            return backend.img2img(
                image, cond, uncond, strength=strength, steps=self._image_steps,
                guidance=self._image_guidance, seed=self._seed,
            )  # fmt: skip

        return self.cache.get_or_compute("image", key, run)

    def intermediate(self, edited: bool = True) -> Image.Image:
        """x~' (edited=True: painted, P_img, trajectories at their targets) or x~ (edited=False)."""
        with self._lock:
            image, paint, content, negative = self._image, self._paint, self._content, self._negative
            strength, trajectories = self._content_strength, list(self._trajectories)
        if not edited:
            return self._p_img(image, content, negative, strength).copy()
        painted = self._p_img(composite(image, paint), content, negative, strength)
        if not trajectories:
            return painted.copy()
        return Image.fromarray(traj.apply_endpoint(painted, trajectories))

    def motion_preview(self, num_frames: int | None = None) -> Video:
        """The trajectories applied to x~ without diffusion: instant feedback while dragging."""
        frames = self.num_frames if num_frames is None else check_int(num_frames, "num_frames", 1)
        base = self.intermediate(edited=False)
        with self._lock:
            trajectories = list(self._trajectories)
        return Video(traj.animate(base, trajectories, frames), fps=self.fps)

    def _edited_frames(self, painted: Image.Image, trajectories, num_frames: int, mode: str) -> list[Image.Image]:
        """The images x~' conditions on: one (endpoint mode, or no trajectory) or one per frame (path)."""
        if not trajectories:
            return [painted]
        if mode == "endpoint":
            return [Image.fromarray(traj.apply_endpoint(painted, trajectories))]
        return [Image.fromarray(f) for f in traj.animate(painted, trajectories, num_frames)]

    def _encode(self, images: list[Image.Image], seed: int, shape, generator: torch.Generator) -> torch.Tensor:
        """z0 = E(x) * scaling, drawn from `generator` (whose state the cache key stands for)."""
        backend = self.video_backend
        key = fingerprint("encode", model_key(backend), images, seed, tuple(shape))

        def run():
            latents = backend.encode_images(images, generator)
            return latents, generator.get_state()

        latents, state_after = self.cache.get_or_compute("encode", key, run)
        generator.set_state(state_after)
        return latents

    # ------------------------------------------------------------------ generation
    def _resolve(self, seed, num_frames, steps, guidance) -> tuple[int, int, int, float]:
        """Per-call overrides of the session's settings, validated like the setters."""
        seed = self._seed if seed is None else check_int(seed, "seed", 0)
        if num_frames is None:
            num_frames = self._num_frames
        else:
            num_frames = check_int(num_frames, "num_frames", 1, self.video_backend.max_frames)
        steps = self._steps if steps is None else check_int(steps, "steps", 1)
        guidance = self._guidance if guidance is None else check_float(guidance, "guidance", 0.0)
        return seed, num_frames, steps, guidance

    def _exclusive(self):
        """One generation at a time: a second click while running is refused, not queued."""
        if not self._running.acquire(blocking=False):
            raise RuntimeError("a generation is already running in this session; wait for it or cancel() it")
        self._cancel.clear()
        return _Release(self._running)

    def generate(
        self,
        seed: int | None = None,
        *,
        num_frames: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        lam: float | Sequence[float] | None = None,
        callback: StepCallback | None = None,
        progress: bool = True,
    ) -> Video:
        """Run Eq. 1 with the Eq. 4 blend and return the Video (also kept as `last_video`).

        Keywords override the session's settings for this call only. `callback(step, total,
        latents)` runs after each denoising step; `cancel()` from another thread stops the run
        between steps (raising `ivcore.Cancelled`) and keeps the previous video.
        """
        seed, num_frames, steps, guidance = self._resolve(seed, num_frames, steps, guidance)
        lam = self._lam if lam is None else check_lam(lam)
        with self._exclusive():
            clock = time.perf_counter()
            schedule = lam_schedule(lam, steps)
            plan = self._plan(seed, num_frames, steps, guidance).for_schedules([schedule])
            key = fingerprint("denoise", plan.key, schedule)
            latents = self.cache.get_or_compute(
                "denoise", key, lambda: self._denoise(plan, [schedule], callback, progress)
            )
            video = self.cache.get_or_compute(
                "decode", fingerprint(key, self._align_key()), lambda: self._decode(plan, latents)
            )
            plan.timings["total"] = time.perf_counter() - clock
            self.last_video, self.last_latents, self.last_timings = video, latents, plan.timings
        self._notify("video")
        return video

    def sweep(
        self,
        lams: Sequence[float | Sequence[float]],
        seed: int | None = None,
        *,
        num_frames: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        callback: StepCallback | None = None,
        progress: bool = True,
    ) -> list[Video]:
        """One Video per lambda, denoised together in one batched run (cheaper than one by one).

        Every lambda starts from the same noise and UNet rows shared by several lambdas (the
        first step) are computed once. On the CPU each lambda otherwise gets the very UNet call
        `generate` makes, so the videos equal `generate(lam=...)` bitwise; on CUDA all lambdas
        share one batched call per step (equal up to float rounding of the larger batch).
        Deterministic samplers (DDIM, Euler, DPM++) only. The session's `lam` and `last_video`
        are left as they are.
        """
        if isinstance(lams, (str, bytes)) or not isinstance(lams, Sequence) or len(lams) == 0:
            raise InstructionError(
                "lams", lams, "a non-empty list of lambda values (floats in [0, 1] or per-step lists)"
            )
        checked = [check_lam(v) for v in lams]
        seed, num_frames, steps, guidance = self._resolve(seed, num_frames, steps, guidance)
        with self._exclusive():
            schedules = [lam_schedule(v, steps) for v in checked]
            plan = self._plan(seed, num_frames, steps, guidance).for_schedules(schedules)
            latents = self._denoise(plan, schedules, callback, progress)
            return [self._decode(plan, latents[i : i + 1]) for i in range(len(schedules))]

    def memory_plan(
        self,
        *,
        num_frames: int | None = None,
        guidance: float | None = None,
        lam: float | Sequence[float] | None = None,
    ) -> dict[str, int]:
        """Estimated peak device memory of the next `generate`: {part: bytes, ..., "total": their sum}.

        Weights per module and dtype, the activations of one video UNet call (its rows follow
        lam, guidance and `video_backend.max_rows`) and the VAE decode, traced on the meta
        device (nothing is allocated or run). Keywords override the settings as in `generate`.
        See `ivcore.memory` and docs/memory.md.
        """
        from ivcore import memory

        return memory.session_plan(self, num_frames=num_frames, guidance=guidance, lam=lam)

    def cancel(self) -> None:
        """Ask a running generation to stop between steps (thread-safe)."""
        self._cancel.set()

    def _plan(self, seed: int, num_frames: int, steps: int, guidance: float) -> _Plan:
        """Snapshot the instructions and run the cheap cached stages: text, P_img, trajectories."""
        clock = time.perf_counter()
        with self._lock:
            image, paint = self._image, self._paint
            content, motion, negative = self._content, self._motion, self._negative
            strength, trajectories = self._content_strength, list(self._trajectories)
            mode, motion_scale = self._trajectory_mode, self._motion_scale
            trajectory_strength = self._trajectory_strength
        backend = self.video_backend
        x_tilde = self._p_img(image, content, negative, strength)
        painted = self._p_img(composite(image, paint), content, negative, strength)
        edit_images = self._edited_frames(painted, trajectories, num_frames, mode)
        has_edit = fingerprint(edit_images) != fingerprint([x_tilde])
        masks = None
        if trajectories and has_edit and trajectory_strength > 0:
            _, masks = traj.animate_with_masks(painted, trajectories, num_frames)
            if mode == "endpoint":
                masks = np.repeat(masks[-1:], num_frames, axis=0)
        timings = {"image": time.perf_counter() - clock}
        width, height = self.size
        shape = backend.latent_shape(num_frames, height, width)
        scheduler = backend.scheduler
        common = (
            model_key(backend), [x_tilde], motion, negative, seed, shape, steps, guidance, motion_scale,
            type(scheduler).__name__, dict(scheduler.config),
        )  # fmt: skip
        key = fingerprint(
            common, edit_images if has_edit else None, trajectory_strength if masks is not None else 0.0, masks
        )
        return _Plan(
            key=key, plain_key=fingerprint(common, None, 0.0, None),
            seed=seed, shape=shape, steps=steps, guidance=guidance, motion_scale=motion_scale,
            x_tilde=x_tilde, edit_images=edit_images if has_edit else None, text=self._text(backend, motion),
            uncond=self._text(backend, negative), masks=masks, trajectory_strength=trajectory_strength,
            timings=timings,
        )  # fmt: skip

    def _denoise(self, plan: _Plan, schedules: list[tuple[float, ...]], callback, progress) -> torch.Tensor:
        """Encode x~ and x~' from one generator state, then run the blended loop for each schedule."""
        backend, scheduler = self.video_backend, self.video_backend.scheduler
        start = time.perf_counter()
        # timesteps first: a scheduler's init_noise_sigma (Euler, SVD) depends on them
        scheduler.set_timesteps(plan.steps, device=backend.device)
        generator = torch.Generator(device="cpu").manual_seed(plan.seed)
        noise = backend.initial_noise(plan.shape, generator)
        state = generator.get_state()
        z_base = self._encode([plan.x_tilde], plan.seed, plan.shape, generator)
        after_base = generator.get_state()
        base = backend.condition(z_base, plan.num_frames, plan.motion_scale)
        edited, z_edit = None, None
        if plan.edit_images is not None:
            generator.set_state(state)  # the same posterior draw for x~': lam = 0 is the plain video of x~'
            z_edit = self._encode(plan.edit_images, plan.seed, plan.shape, generator)
            edited = backend.condition(z_edit, plan.num_frames, plan.motion_scale)
            generator.set_state(after_base)
        guide = None
        if plan.masks is not None and z_edit is not None and isinstance(backend, PIAVideoBackend):
            guide = TrajectoryGuide.build(
                z_edit, plan.masks, noise / scheduler.init_noise_sigma, schedules, plan.trajectory_strength,
                scheduler.timesteps,
            )  # fmt: skip
        latents = noise.expand(len(schedules), *noise.shape[1:]).clone()
        if guide is not None:
            latents = guide.apply(scheduler, latents, 0)
        plan.timings["encode"] = time.perf_counter() - start
        start = time.perf_counter()
        out = denoise(
            backend, scheduler, latents, plan.text, plan.uncond, base, edited,
            schedules if len(schedules) > 1 else schedules[0], guidance=plan.guidance, generator=generator,
            callback=callback, cancel=self._cancel, progress=progress, after_step=guide.after_step if guide else None,
            batch_items=backend.device.type == "cuda",
        )  # fmt: skip
        plan.timings["denoise"] = time.perf_counter() - start
        return out

    def _decode(self, plan: _Plan, latents: torch.Tensor) -> Video:
        """VAE decode (after the optional Eq. 5 alignment) to uint8 frames."""
        start = time.perf_counter()
        if self._align is not None:
            latents = self._aligned(plan, latents)
        frames = self.video_backend.decode(latents)
        video = Video((frames.cpu().numpy() * 255).round().astype(np.uint8), fps=self.fps)
        plan.timings["decode"] = time.perf_counter() - start
        return video

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
        from ivcore import personalize

        return personalize.load_lora(
            self, path_or_id, target=target, scale=scale, adapter_name=adapter_name, weight_name=weight_name
        )

    def set_lora_scale(self, weights: dict[str, float] | float, *, target: str = "both") -> None:
        """Set adapter weights ({name: weight}) or one weight for all loaded adapters."""
        from ivcore import personalize

        personalize.set_lora_scale(self, weights, target=target)

    def unload_lora(self, adapter_name: str | None = None, *, target: str = "both") -> None:
        """Remove one adapter (or all): the original weights come back exactly."""
        from ivcore import personalize

        personalize.unload_lora(self, adapter_name, target=target)

    def load_image_checkpoint(self, path_or_id: str | os.PathLike) -> list[str]:
        """DreamBooth folder or single-file .safetensors checkpoint for P_img."""
        from ivcore import personalize

        return personalize.load_image_checkpoint(self, path_or_id)

    def load_video_checkpoint(self, path_or_id: str | os.PathLike) -> list[str]:
        """SD1.5 checkpoint for P_video's spatial layers (PIA's motion modules are kept)."""
        from ivcore import personalize

        return personalize.load_video_checkpoint(self, path_or_id)

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
            self._image = edited
            self._paint = None
            self._trajectories = []
            self._content_strength = 0.0
        self._notify("commit")

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """The session's instructions and settings as plain JSON data (images are saved beside)."""
        return {
            "format": 1,
            "models": self._spec,
            "content": self._content,
            "motion": self._motion,
            "negative_prompt": self._negative,
            "content_strength": self._content_strength,
            "lam": list(self._lam) if isinstance(self._lam, tuple) else self._lam,
            "seed": self._seed,
            "num_frames": self._num_frames,
            "steps": self._steps,
            "image_steps": self._image_steps,
            "guidance": self._guidance,
            "image_guidance": self._image_guidance,
            "motion_scale": self._motion_scale,
            "trajectory_mode": self._trajectory_mode,
            "trajectory_strength": self._trajectory_strength,
            "align": self._align if not isinstance(self._align, FrameAlign) else "FrameAlign",
            "fps": self.fps,
            "trajectories": [t.to_dict() for t in self._trajectories],
        }

    def save(self, folder: str | os.PathLike) -> Path:
        """Write session.json, image.png, paint.png and the last video (safetensors + mp4). No pickle."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SESSION_FILE).write_text(json.dumps(self.to_dict(), indent=2))
        self._image.save(folder / "image.png")
        paint_path = folder / "paint.png"
        if self._paint is not None:
            self._paint.save(paint_path)
        elif paint_path.exists():
            paint_path.unlink()
        if self.last_video is not None:
            frames = torch.from_numpy(np.array(self.last_video.frames))
            save_file({"frames": frames}, str(folder / "last_video.safetensors"), metadata={"fps": str(self.fps)})
            self.last_video.to_mp4(folder / "last_video.mp4")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, **model_kwargs: Any) -> Session:
        """Rebuild a saved session; `model_kwargs` (device, dtype, model ids) override the saved models."""
        from safetensors import safe_open

        folder = Path(folder)
        path = folder / SESSION_FILE
        if not path.is_file():
            raise InstructionError("folder", str(folder), f"a folder written by Session.save (with {SESSION_FILE})")
        data = json.loads(path.read_text())
        models = dict(data.get("models") or {})
        if models.get("preset") == "tiny" and not {"image_model", "video_model"} & set(model_kwargs):
            session = cls.tiny(seed=models.get("seed", 0), video=models.get("video", "pia"))
        elif models.get("preset") == "shapes" and not {"image_model", "video_model"} & set(model_kwargs):
            session = cls.shapes(seed=models.get("seed", 0), folder=models.get("folder"))
        else:
            models.pop("preset", None)
            models.update(model_kwargs)
            session = cls.from_pretrained(**models)
        session.image = folder / "image.png"
        if (folder / "paint.png").is_file():
            with Image.open(folder / "paint.png") as layer:
                session.paint(layer.convert("RGBA"))
        for name in ("content", "motion", "negative_prompt", "content_strength", "seed", "num_frames", "steps",
                     "image_steps", "guidance", "image_guidance", "motion_scale", "trajectory_mode",
                     "trajectory_strength"):  # fmt: skip
            if name in data:
                setattr(session, name, data[name])
        session.lam = data.get("lam", 1.0)
        if data.get("align") == "stats":
            session.align = "stats"
        session.fps = data.get("fps", session.fps)
        session.trajectories = [traj.Trajectory.from_dict(d) for d in data.get("trajectories", [])]
        video_path = folder / "last_video.safetensors"
        if video_path.is_file():
            with safe_open(str(video_path), framework="pt") as f:
                frames = f.get_tensor("frames").numpy()
                fps = float(f.metadata().get("fps", session.fps))
            session.last_video = Video(frames, fps=fps)
        return session

    def __repr__(self) -> str:
        return (
            f"Session(models={self._spec}, size={self.size}, frames={self._num_frames}, steps={self._steps}, "
            f"lam={self._lam}, content={self._content!r}, motion={self._motion!r}, "
            f"paint={'yes' if self._paint is not None else 'no'}, trajectories={len(self._trajectories)})"
        )


__all__ = ["Session", "Cancelled"]
