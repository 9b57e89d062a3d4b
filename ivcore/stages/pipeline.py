"""The session's pipeline: the cached stages of Eq. 1 and the runs (generate, sweep).

    text (CLIP) -> image (P_img: x~ and x~') -> encode (VAE: z0, z0') -> denoise (Eq. 4) -> decode

`Pipeline` is a mixin of `Session`: it reads the instructions as one snapshot taken under the
session's lock (`_snapshot`), so a cell setting instructions while a run is going changes the
next run, never the running one. Each stage result is stored under a key of its own inputs
(`ivcore.stages.cache`), so changing lambda reruns only denoise and decode, and painting reruns P_img
for x~' but not for x~. A failed or cancelled generation leaves `last_video` as it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from ivcore import trajectory as traj
from ivcore.align import FrameAlign, apply_align
from ivcore.backends import step_cache
from ivcore.backends.schedulers import starts_from_pure_noise
from ivcore.backends.video import PIAVideoBackend
from ivcore.errors import InstructionError, SessionBusy
from ivcore.instructions import check_lam, lam_schedule
from ivcore.stages.cache import fingerprint
from ivcore.stages.denoise import StepCallback, denoise
from ivcore.stages.guidance import TrajectoryGuide
from ivcore.stages.images import composite
from ivcore.video import Video


@dataclass
class _Plan:
    """The inputs of one generation, snapshotted from the session and passed through the stages."""

    key: str
    plain_key: str  # the key of the same run without any edit (what lam = 1 everywhere computes)
    seed: int
    num_frames: int  # video frames (the latents' time axis may be compressed: shape[2])
    shape: tuple[int, ...]
    steps: int
    guidance: float
    motion_scale: int
    x_tilde: Image.Image
    edit_images: list[Image.Image] | None
    text: torch.Tensor
    uncond: Any  # None when the run uses no classifier-free guidance (`uses_cfg`)
    masks: np.ndarray | None
    trajectory_strength: float
    align: str | FrameAlign | None = None
    fps: float = 8.0
    timings: dict[str, float] = field(default_factory=dict)

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


def _align_key(align: str | FrameAlign | None) -> Any:
    """What identifies the Eq. 5 option in the decode key: its name, or a FrameAlign's weights."""
    if isinstance(align, FrameAlign):
        return ("FrameAlign", dict(align.state_dict()))
    return align


def draws_image_first(backend) -> bool:
    """Whether the family's pipeline draws the image's posterior sample before the noise (CogVideoX, LTX)."""
    return bool(getattr(backend, "draws_image_first", False))


def uses_cfg(backend, guidance: float) -> bool:
    """Whether a run at `guidance` reads the negative prompt: classifier-free guidance above 1, or what the family
    says (`uses_cfg`: HunyuanVideo's guider, Wan 2.2's second guidance). Without it the text stage skips the
    negative prompt, as the families' pipelines do (a distilled model at guidance 1 encodes one prompt)."""
    check = getattr(backend, "uses_cfg", None)
    return bool(check(guidance)) if check is not None else guidance > 1


def trajectory_target(backend, encoded) -> torch.Tensor | None:
    """The latents the trajectory pull aims at: PIA's per-frame latents, or what the backend says (None: no pull)."""
    if encoded is None:
        return None
    if isinstance(backend, PIAVideoBackend):
        return encoded
    target = getattr(backend, "trajectory_target", None)
    return None if target is None else target(encoded)


def model_key(backend) -> tuple:
    """What identifies a backend's weights in cache keys: name, in-place weight changes, dtype."""
    return (type(backend).__name__, backend.name, backend.weights_version, str(backend.dtype))


class Pipeline:
    """Stages and runs of a `Session` (which provides the fields, backends, cache and lock)."""

    def _snapshot(self) -> dict[str, Any]:
        """The fields as they are now, read under the lock (the running generation's inputs)."""
        with self._lock:
            return dict(self._values)

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

    def _p_img(self, image: Image.Image, v: dict[str, Any]) -> Image.Image:
        """x~ = P_img(x, y), cached on its inputs (`v`: a snapshot of the fields)."""
        backend = self.image_backend
        content, negative, strength = v["content"], v["negative_prompt"], v["content_strength"]
        steps, guidance, seed = v["image_steps"], v["image_guidance"], v["seed"]
        # an edit family (Kontext, ...) runs the same edit for every strength above 0: one cache entry
        keyed_strength = strength > 0 if getattr(backend, "edits", False) else strength
        key = fingerprint(
            "image", model_key(backend), image, content, negative, keyed_strength, steps, guidance,
            seed, type(backend.scheduler).__name__, dict(backend.scheduler.config),
        )  # fmt: skip

        def run() -> Image.Image:
            if strength <= 0:
                return image.copy()
            cond = self._text(backend, content)
            uncond = self._text(backend, negative)
            return backend.img2img(
                image, cond, uncond, strength=strength, steps=steps, guidance=guidance, seed=seed,
            )  # fmt: skip

        return self.cache.get_or_compute("image", key, run)

    def intermediate(self, edited: bool = True) -> Image.Image:
        """x~' (edited=True: painted, P_img, trajectories at their targets) or x~ (edited=False)."""
        v = self._snapshot()
        image, trajectories = v["image"], v["trajectories"]
        if not edited:
            return self._p_img(image, v).copy()
        painted = self._p_img(composite(image, v["paint_layer"]), v)
        if not trajectories:
            return painted.copy()
        return Image.fromarray(traj.apply_endpoint(painted, trajectories))

    def motion_preview(self, num_frames: int | None = None) -> Video:
        """The trajectories applied to x~ without diffusion: instant feedback while dragging."""
        frames = self.num_frames if num_frames is None else type(self).num_frames.validate(self, num_frames)
        base = self.intermediate(edited=False)
        v = self._snapshot()
        return Video(traj.animate(base, v["trajectories"], frames), fps=v["fps"])

    def _edited_frames(self, painted: Image.Image, trajectories, num_frames: int, mode: str) -> list[Image.Image]:
        """The images x~' conditions on: one (endpoint mode, or no trajectory) or one per frame (path)."""
        if not trajectories:
            return [painted]
        if mode == "endpoint":
            return [Image.fromarray(traj.apply_endpoint(painted, trajectories))]
        return [Image.fromarray(f) for f in traj.animate(painted, trajectories, num_frames)]

    def _encode(self, images: list[Image.Image], plan: _Plan, generator: torch.Generator) -> torch.Tensor:
        """z0 = E(x) * scaling, drawn from `generator` (whose state the plan's seed and shape stand for in the key)."""
        backend = self.video_backend
        key = fingerprint("encode", model_key(backend), images, plan.seed, tuple(plan.shape))

        def run():
            latents = backend.encode_images(images, generator, num_frames=plan.num_frames)
            return latents, generator.get_state()

        latents, state_after = self.cache.get_or_compute("encode", key, run)
        generator.set_state(state_after)
        return latents

    # ------------------------------------------------------------------ generation
    def _resolve(self, seed, num_frames, steps, guidance) -> tuple[int, int, int, float]:
        """Per-call overrides of the session's settings, validated like the setters."""
        v = self._snapshot()
        fields = type(self)  # the declared fields validate per-call overrides exactly as their setters do
        if seed is None:  # a restored take's video seed until the next generate (`restore`), else the session's
            seed = v["seed"] if self._next_seed is None else self._next_seed
        else:
            seed = fields.seed.validate(self, seed)
        num_frames = v["num_frames"] if num_frames is None else fields.num_frames.validate(self, num_frames)
        steps = v["steps"] if steps is None else fields.steps.validate(self, steps)
        guidance = v["guidance"] if guidance is None else fields.guidance.validate(self, guidance)
        return seed, num_frames, steps, guidance

    def _exclusive(self):
        """One generation at a time: a second click while running is refused, not queued."""
        if not self._running.acquire(blocking=False):
            raise SessionBusy()
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
        lam = self.lam if lam is None else check_lam(lam)
        with self._exclusive():
            clock = time.perf_counter()
            # one snapshot for the run and its take: the fields as this generation used them
            values = {**self._snapshot(), "num_frames": num_frames, "steps": steps, "guidance": guidance, "lam": lam}
            schedule = lam_schedule(lam, steps)
            plan = self._plan(seed, num_frames, steps, guidance, values).for_schedules([schedule])
            key = fingerprint("denoise", plan.key, schedule)
            latents = self.cache.get_or_compute(
                "denoise", key, lambda: self._denoise(plan, [schedule], callback, progress)
            )
            video = self.cache.get_or_compute(
                "decode", fingerprint(key, _align_key(plan.align), plan.fps), lambda: self._decode(plan, latents)
            )
            plan.timings["total"] = time.perf_counter() - clock
            self.last_video, self.last_latents, self.last_timings = video, latents, plan.timings
        self._next_seed = None
        self._notify("video")
        self._made(values, seed, video, plan.timings)
        return video

    def _made(self, values: dict, seed: int, video: Video, timings: dict[str, float]) -> None:
        """Called after each successful generate with what made it (the Session keeps a take)."""

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
        **memory_options: Any,
    ) -> dict[str, int]:
        """Estimated peak device memory of the next `generate`: {part: bytes, ..., "total": their sum}.

        Weights per module and dtype, the activations of the model calls (their rows follow lam,
        guidance and `video_backend.max_rows`) and of the VAE, traced on the meta device (nothing is
        allocated or run). Keywords override the settings as in `generate`; `offload`, `fp8` and
        `vae_tiling` ask what `set_memory` with them would hold (DiT families). See docs/memory.md.
        """
        from ivcore import memory

        return memory.session_plan(self, num_frames=num_frames, guidance=guidance, lam=lam, **memory_options)

    def enable_cache(self, config: Any) -> None:
        """diffusers' step cache (FirstBlockCache, MagCache or TaylorSeer config) on the video transformer(s), each
        Eq. 4 branch in cache contexts of its own; None turns it off. See `ivcore.backends.step_cache`."""
        with self._exclusive():  # not while a generation runs
            step_cache.enable(self.video_backend, config)

    def enable_parallelism(self, config: Any) -> None:
        """One generate across the GPUs of a torchrun process group: diffusers' context parallelism
        (`ContextParallelConfig`) on the video transformer(s). See `ivcore.backends.parallel`."""
        from ivcore.backends import parallel

        with self._exclusive():
            parallel.enable(self.video_backend, config)

    def disable_cache(self) -> None:
        """Turn the step cache off: the next generate is bitwise the one without a cache."""
        self.enable_cache(None)

    def cancel(self) -> None:
        """Ask a running generation to stop between steps (thread-safe)."""
        self._cancel.set()

    def _plan(self, seed: int, num_frames: int, steps: int, guidance: float, values: dict | None = None) -> _Plan:
        """Snapshot the instructions (or take `values`) and run the cheap cached stages: text, P_img, trajectories."""
        clock = time.perf_counter()
        v = self._snapshot() if values is None else values
        image, motion, negative, trajectories = v["image"], v["motion"], v["negative_prompt"], v["trajectories"]
        mode, motion_scale, trajectory_strength = v["trajectory_mode"], v["motion_scale"], v["trajectory_strength"]
        backend = self.video_backend
        x_tilde = self._p_img(image, v)
        painted = self._p_img(composite(image, v["paint_layer"]), v)
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
        cache = step_cache.describe(backend)  # a step cache changes the numbers: its config is in the key
        if cache is not None:
            common = (*common, ("step_cache", cache))
        key = fingerprint(
            common, edit_images if has_edit else None, trajectory_strength if masks is not None else 0.0, masks
        )
        return _Plan(
            key=key, plain_key=fingerprint(common, None, 0.0, None),
            seed=seed, num_frames=num_frames, shape=shape, steps=steps, guidance=guidance, motion_scale=motion_scale,
            x_tilde=x_tilde, edit_images=edit_images if has_edit else None, text=self._text(backend, motion),
            uncond=self._text(backend, negative) if uses_cfg(backend, guidance) else None,
            masks=masks, trajectory_strength=trajectory_strength,
            align=v["align"], fps=v["fps"], timings=timings,
        )  # fmt: skip

    def _encode_branches(self, plan: _Plan, generator: torch.Generator) -> tuple[Any, Any]:
        """z0 = E(x~) and z0' = E(x~') (None when nothing is edited), both drawn from the generator's present
        state (lam = 0 is then the plain video of x~'); the generator is left as after encoding x~ alone."""
        state = generator.get_state()
        z_base = self._encode([plan.x_tilde], plan, generator)
        if plan.edit_images is None:
            return z_base, None
        after_base = generator.get_state()
        generator.set_state(state)
        z_edit = self._encode(plan.edit_images, plan, generator)
        generator.set_state(after_base)
        return z_base, z_edit

    def _denoise(self, plan: _Plan, schedules: list[tuple[float, ...]], callback, progress) -> torch.Tensor:
        """Encode x~ and x~' from one generator state, then run the blended loop for each schedule."""
        backend, scheduler = self.video_backend, self.video_backend.scheduler
        start = time.perf_counter()
        # timesteps first: a scheduler's init_noise_sigma (Euler, SVD) depends on them
        if getattr(backend, "set_timesteps", None) is not None:  # a resolution-dependent schedule (LTX: mu)
            backend.set_timesteps(plan.steps, plan.shape)
        else:
            scheduler.set_timesteps(plan.steps, device=backend.device)
        generator = torch.Generator(device="cpu").manual_seed(plan.seed)
        # one generator, in the family pipeline's order: noise then the image's VAE draw (PIA, SVD, ...),
        # or the image's posterior sample first (CogVideoX, LTX-Video: `draws_image_first`)
        image_first = draws_image_first(backend)
        noise = None if image_first else backend.initial_noise(plan.shape, generator)
        z_base, z_edit = self._encode_branches(plan, generator)
        if image_first:
            noise = backend.initial_noise(plan.shape, generator)
        base = backend.condition(z_base, plan.num_frames, plan.motion_scale)
        edited = None if z_edit is None else backend.condition(z_edit, plan.num_frames, plan.motion_scale)
        guide = None
        target = trajectory_target(backend, z_edit)
        if plan.masks is not None and target is not None:
            guide = TrajectoryGuide.build(
                target, plan.masks, noise / getattr(scheduler, "init_noise_sigma", 1.0), schedules,
                plan.trajectory_strength, scheduler.timesteps, first=int(starts_from_pure_noise(scheduler)),
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
        if plan.align is not None:
            latents = self._aligned(plan, latents)
        backend = self.video_backend
        if getattr(backend, "decode_draws", False):  # LTX's timestep-conditioned decode: the run's last draw
            frames = backend.decode(latents, generator=self._replayed(plan, plan.x_tilde)[1])
        else:
            frames = backend.decode(latents)
        video = Video((frames.cpu().numpy() * 255).round().astype(np.uint8), fps=plan.fps)
        plan.timings["decode"] = time.perf_counter() - start
        return video

    def _replayed(self, plan: _Plan, image: Image.Image) -> tuple[Any, torch.Generator]:
        """`image` encoded as the run encodes x~, and the run's generator after its noise and that encode: the
        state the family's pipeline decodes from (no draws in the loop). From the encode cache: no VAE call."""
        backend = self.video_backend
        generator = torch.Generator(device="cpu").manual_seed(plan.seed)
        image_first = draws_image_first(backend)
        if not image_first:  # the encode cache key assumes the run's draws before it
            backend.initial_noise(plan.shape, generator)
        encoded = self._encode([image], plan, generator)
        if image_first:
            backend.initial_noise(plan.shape, generator)
        return encoded, generator

    def _aligned(self, plan: _Plan, latents: torch.Tensor) -> torch.Tensor:
        """Apply `align`: FrameAlign is relative to x~ (Eq. 5), "stats" to the edited image x~'."""
        image = plan.x_tilde
        if plan.align == "stats" and plan.edit_images is not None:
            image = plan.edit_images[-1]
        reference = self._replayed(plan, image)[0]
        # backends whose encoding is more than latents (SVD) say which part is the latent
        reference = getattr(self.video_backend, "reference_latents", lambda z: z)(reference)
        return apply_align(plan.align, latents, reference.to(latents.dtype))
