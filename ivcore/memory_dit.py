"""Memory plans of the DiT video families (Wan, CogVideoX, LTX-Video, HunyuanVideo 1.5), with P_img beside them.

Every stage of a generation is traced on the meta device through the family backend's own code (its
`encode_prompt`, `encode_images`, `predict` and `decode`, over meta copies of its modules): no family
has a formula here, and an option that changes what the code allocates (tiling, fp8 upcasts, `max_rows`)
is seen by the trace. The trace also says which modules each stage runs (forward hooks), so the
plan knows, without a list per family, that the text stage runs UMT5 and the decode the VAE.

Stages, in the order they run: `text` (the prompt and the negative prompt), `image text` and
`image` (P_img's text encoders, then its img2img or edit),
`encode` (x~ and x~' through the VAE and image encoder), `denoise` (one transformer call with the
rows of Eq. 4; both experts where a family has two), `decode`. What the device holds
(`ivcore.backends.offload.MemoryOptions`):

- no offload: every module throughout; the peak is all weights + the largest stage's activations;
- `offload="model"`: only the modules the running stage calls; the peak is the largest stage's
  (its modules' weights + its activations), the stages never overlap: "peak of each stage, not the sum";
- `offload="group"` (leaf level): of each running module, its largest layer twice (the one running
  and the one a CUDA stream prefetches) and the parameters no layer owns;
- `fp8`: the transformers' weights stored in float8 (the meta copies are cast the same way, so the
  weights count 1 byte an element and the trace counts each layer's upcast copy);
- `vae_tiling`: the VAE stages traced tiled.

Parts: "weights:<owner>.<module>:<dtype>" (what stays on the device throughout), then one part per
stage, "<stage>:<owner>.<module>+..." (what the stage needs beyond the largest before it: its own
weights under offloading, plus its activations), and "total", the sum: the estimated peak. Not
counted, as in `ivcore.memory`: the CUDA context, workspaces, fragmentation.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx.experimental._config
from PIL import Image
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

from ivcore import memory_trace
from ivcore.backends.offload import MemoryOptions, enable_fp8, is_denoiser, modules_of

STAGES = ("text", "image text", "image", "encode", "denoise", "decode")  # and "denoise (low noise)": a second expert


class MetaInputs(TorchFunctionMode):
    """Lets a backend's code run on meta modules unchanged.

    The clones say their device is the CPU (`meta_clone`), so what the code makes on the side
    (pixels, token ids, masks, timesteps, schedules) is real and its branches, indexing and
    `.item()` calls work; a CPU tensor is moved to the meta device when an op mixes it with a meta
    one, where in a real run it would sit on the GPU already (the trace counts it from there), and a
    meta tensor the code sends to "its device" stays where it is.
    A model that moves a mask to its own device and asks whether it is all ones (transformers'
    attention masks: the truth of a meta tensor) is answered no: it takes the masked path, the costlier.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if func is torch.Tensor.__bool__ and leaves[0].device.type == "meta":
            return False  # a mask moved to the device by the model, "all ones?": take the masked path
        if func is torch.Tensor.numpy and leaves[0].device.type == "meta":  # the host's copy: device work is done
            return torch.zeros(leaves[0].shape, dtype=leaves[0].dtype).numpy()
        if func in (torch.Tensor.to, torch.Tensor.cpu) and leaves and leaves[0].device.type == "meta":
            args, kwargs = pytree.tree_map(_cpu_to_meta_device, (args, kwargs))  # results stay on the device
            return args[0] if func is torch.Tensor.cpu else func(*args, **kwargs)
        if any(t.device.type == "meta" for t in leaves) and any(t.device.type == "cpu" and t.dim() > 0 for t in leaves):
            args, kwargs = pytree.tree_map(_to_meta, (args, kwargs))
        return func(*args, **kwargs)


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.device.type == "cpu" and value.dim() > 0:
        return value.to("meta")
    return value


def _cpu_to_meta_device(value: Any) -> Any:
    if isinstance(value, (str, torch.device)) and torch.device(value).type == "cpu":
        return torch.device("meta")
    return value


@functools.cache
def _on_cpu(cls: type) -> type:
    """A subclass of a backend class whose `device` is the CPU (its modules are meta: `MetaInputs`)."""
    return type(f"Planned{cls.__name__}", (cls,), {"device": property(lambda self: torch.device("cpu"))})


def traced(fn: Callable[[], Any], modules: dict[str, torch.nn.Module]) -> tuple[int, set[str], Any]:
    """(peak bytes `fn` allocates, the names of the `modules` it runs, its result) on meta modules."""
    used: set[str] = set()
    handles = []
    for name, module in modules.items():
        for sub in module.modules():
            handles.append(sub.register_forward_pre_hook(lambda *_, name=name: used.add(name)))
    result: list[Any] = []
    try:
        # a boolean mask made on the meta device selects every element (HunyuanVideo 1.5 reorders its text
        # tokens so: the sequence counts its padding twice, a few hundred tokens beside tens of thousands)
        with MetaInputs(), torch.fx.experimental._config.patch(meta_nonzero_assume_all_nonzero=True):
            peak = memory_trace.trace_peak(lambda: result.append(fn()))
    finally:
        for handle in handles:
            handle.remove()
    return peak, used, result[0]


def meta_clone(backend, options: MemoryOptions, owner: str = "video"):
    """The backend over meta copies of its modules, with the options that change what its code allocates.

    A video backend runs on the meta device as it would on a GPU (what it makes on the side, masks
    and rotary tables, is counted; timesteps stay real: `_stage_runs`). An image backend, whose loop
    indexes its scheduler by timestep, is told its device is the CPU (`MetaInputs`); everything it
    runs through a module lands on the meta device all the same. The original is not touched.
    """
    if backend is None:
        return None
    pipe = getattr(backend, "pipe", None)
    clone = copy.copy(backend)
    if owner == "image":
        clone.__class__ = _on_cpu(type(backend))
    if pipe is not None:
        from ivcore.backends.dit import rebuilt_pipeline

        meta = {k: _meta_module(f"{owner}.{k}", v, options) for k, v in pipe.components.items()}
        clone.pipe = rebuilt_pipeline(pipe, **meta)
    else:
        for name, module in modules_of({owner: backend}).items():
            setattr(clone, name.split(".", 1)[1], _meta_module(name, module, options))
        if getattr(backend, "scheduler", None) is not None:
            clone.scheduler = _meta_module(f"{owner}.scheduler", backend.scheduler, options)
    return clone


def _meta_module(name: str, module: Any, options: MemoryOptions) -> Any:
    from diffusers.configuration_utils import ConfigMixin

    if isinstance(module, ConfigMixin) and not isinstance(module, torch.nn.Module):
        return copy.deepcopy(module)  # schedulers and guiders keep state the traced code moves to the meta device
    if not isinstance(module, torch.nn.Module):
        return module
    meta = module if next(module.parameters()).device.type == "meta" else memory_trace.meta_copy(module)
    meta = copy.deepcopy(meta)  # the options below must not reach the shared meta cache
    if hasattr(meta, "enable_tiling"):
        meta.enable_tiling() if options.vae_tiling else meta.disable_tiling()
    if options.fp8 and is_denoiser(name) and hasattr(meta, "enable_layerwise_casting"):
        enable_fp8(meta)
    return meta


def module_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def group_resident_bytes(module: torch.nn.Module) -> int:
    """Leaf-level group offloading: the largest layer twice (running + prefetched), and what no layer owns."""
    leaves = [m for m in module.modules() if not list(m.children())]
    leaf_bytes = [module_bytes(m) for m in leaves]
    unowned = module_bytes(module) - sum(leaf_bytes)
    return unowned + 2 * max(leaf_bytes, default=0)


Results = dict[str, Any]  # what the stages traced so far returned: "text", "encode"


def _stage_runs(image_backend, video_backend, v: dict[str, Any]) -> dict[str, Callable[[Results], Any]]:
    """One callable per stage over the clones; each gets what the stages before it returned."""
    width, height, frames = v["width"], v["height"], v["num_frames"]
    picture = Image.new("RGB", (width, height), (127, 127, 127))
    shape = video_backend.latent_shape(frames, height, width)

    def image(done: Results):
        cond = done["image text"]
        return image_backend.img2img(picture, cond, cond, strength=0.5, steps=2, guidance=v["guidance"], seed=0)

    def encode(_: Results):
        images = [picture] * v["encoded_images"]
        return video_backend.encode_images(images, torch.Generator().manual_seed(0), num_frames=frames)

    def denoise_at(t: torch.Tensor) -> Callable[[Results], Any]:
        def run(done: Results):
            n = v["branches"]
            latents = torch.empty([n, *shape[1:]], device="meta", dtype=torch.float32)
            conditions = [video_backend.condition(done["encode"], frames)] * n
            text = done["text"]
            return video_backend.predict(video_backend.scheduler, latents, t, conditions, text, text, v["guidance"])

        return run

    runs: dict[str, Callable[[Results], Any]] = {"text": lambda _: video_backend.encode_prompt("a prompt")}
    if image_backend is not None and v["image"]:  # its text stage apart: under offload the two never meet
        runs["image text"] = lambda _: image_backend.encode_prompt("a prompt")
        runs["image"] = image
    runs["encode"] = encode
    scheduling = copy.copy(video_backend)  # the schedule on the CPU: real timesteps (the expert switch reads them)
    scheduling.__class__ = _on_cpu(type(video_backend))
    if hasattr(scheduling, "set_timesteps"):
        scheduling.set_timesteps(v["steps"], shape)
    else:
        scheduling.scheduler.set_timesteps(v["steps"], device="cpu")
    timesteps = scheduling.scheduler.timesteps
    runs["denoise"] = denoise_at(timesteps[0].cpu())
    if getattr(video_backend.pipe, "transformer_2", None) is not None:  # the second expert: the last step's
        runs["denoise (low noise)"] = denoise_at(timesteps[-1].cpu())
    runs["decode"] = lambda _: video_backend.decode(torch.empty(shape, device="meta", dtype=torch.float32))
    return runs


def _traced_options(stage: str, options: MemoryOptions, max_rows: int | None) -> tuple:
    """What of the options changes a stage's trace: fp8 and row splits the model calls, tiling the VAE's."""
    if stage.startswith("denoise"):
        return (options.fp8, max_rows)
    if stage == "image":
        return (options.fp8, options.vae_tiling)
    if stage == "image text":
        return ()
    return (options.vae_tiling,)


def plan(
    image_backend,
    video_backend,
    *,
    options: MemoryOptions | None = None,
    num_frames: int,
    height: int,
    width: int,
    steps: int,
    guidance: float,
    lams: Sequence[float],
    has_edit: bool,
    encoded_images: int = 1,
    image_runs: bool = True,
) -> dict[str, int]:
    """Bytes per part of the next generation's peak on the video backend's device, plus "total" (module doc).

    `image_runs`: P_img runs (content_strength > 0; at 0, x~ is x and no image model is called)."""
    options = options or MemoryOptions()
    modules, stages = trace_stages(
        image_backend, video_backend, options=options, num_frames=num_frames, height=height, width=width,
        steps=steps, guidance=guidance, lams=lams, has_edit=has_edit, encoded_images=encoded_images,
        image_runs=image_runs,
    )  # fmt: skip
    return assemble(modules, stages, options)


def trace_stages(
    image_backend, video_backend, *, options: MemoryOptions, num_frames: int, height: int, width: int, steps: int,
    guidance: float, lams: Sequence[float], has_edit: bool, encoded_images: int = 1, cache: dict | None = None,
    image_runs: bool = True,
) -> tuple[dict[str, torch.nn.Module], dict[str, tuple[int, set[str]]]]:  # fmt: skip
    """({name: meta module}, {stage: (peak activation bytes, names of the modules it runs)}) of one generation.

    `cache` (a dict the caller keeps for one video model and one setting of the rest) holds each
    stage's trace under the options that change it (and P_img's name for its stages), so a table
    of options and image models traces each stage once.
    """
    image = meta_clone(image_backend, options, "image")
    video = meta_clone(video_backend, options, "video")
    owners = {"video": video} if image is None else {"image": image, "video": video}
    modules = modules_of(owners)
    rows = memory_trace.rows_per_call(guidance, lams, has_edit, None)
    branches = 2 if rows > (2 if guidance > 1 else 1) else 1
    v = dict(
        width=width, height=height, num_frames=num_frames, steps=steps, guidance=guidance, branches=branches,
        encoded_images=encoded_images, image=image is not None and image_runs,
    )  # fmt: skip
    cache = {} if cache is None else cache
    stages: dict[str, tuple[int, set[str]]] = {}
    done: Results = {}
    for stage, run in _stage_runs(image, video, v).items():
        image_tag = getattr(image_backend, "name", "") if stage.startswith("image") else ""
        key = (stage, image_tag, _traced_options(stage, options, getattr(video_backend, "max_rows", None)))
        if key not in cache:
            cache[key] = traced(lambda run=run: run(done), modules)
        peak, used, done[stage] = cache[key]
        stages[stage] = (peak, used)
    return modules, stages


def assemble(
    modules: dict[str, torch.nn.Module], stages: dict[str, tuple[int, set[str]]], options: MemoryOptions
) -> dict[str, int]:
    """Parts from the traced stages: resident weights, then what each stage adds to the largest before it."""
    parts: dict[str, int] = {}
    if options.offload is None:
        for name, module in modules.items():
            for tensor in [*module.parameters(), *module.buffers()]:
                key = f"weights:{name}:{str(tensor.dtype).removeprefix('torch.')}"
                parts[key] = parts.get(key, 0) + tensor.numel() * tensor.element_size()
    resident = group_resident_bytes if options.offload == "group" else module_bytes
    largest = 0
    for stage, (activations, used) in stages.items():
        weights = 0 if options.offload is None else sum(resident(modules[name]) for name in used)
        value = weights + activations
        label = f"{stage}:{'+'.join(sorted(used)) or '-'}"
        parts[label] = max(0, value - largest)
        largest = max(largest, value)
    parts["total"] = sum(parts.values())
    return parts


def session_plan(session, *, num_frames=None, guidance=None, lam=None, options: MemoryOptions | None = None):
    """`plan` for a DiT session's settings and memory options (what `Session.memory_plan` returns for them)."""
    from ivcore.instructions import check_lam, lam_schedule

    _, num_frames, steps, guidance = session._resolve(None, num_frames, None, guidance)
    lams = lam_schedule(session.lam if lam is None else check_lam(lam), steps)
    width, height = session.size
    trajectories = session.trajectories
    has_edit = session.paint_layer is not None or bool(trajectories)
    per_frame = bool(trajectories) and session.trajectory_mode == "path"
    return plan(
        session.image_backend, session.video_backend, options=options or session.memory, num_frames=num_frames,
        height=height, width=width, steps=steps, guidance=guidance, lams=lams, has_edit=has_edit,
        encoded_images=num_frames if per_frame else 1, image_runs=session.content_strength > 0,
    )  # fmt: skip


def full_size_plan(
    kind: str,
    *,
    size: tuple[int, int] | None = None,
    num_frames: int | None = None,
    guidance: float | None = None,
    lam: float = 0.5,
    steps: int = 4,
    offload: str | None = None,
    fp8: bool = False,
    vae_tiling: bool = False,
    image_model: str | None = None,
    **backend_settings: Any,
) -> dict[str, int]:
    """The plan of a full-size family (`ivcore.backends.dit_configs.FULL_SIZE` kinds) at its native size and frames.

    Defaults: the family's native size, frames and guidance, 0 < lam < 1 with an edit (both branches:
    the largest call), bf16. `image_model` adds P_img ("sd15", "sdxl", "flux-kontext"; None: the video
    side alone). `backend_settings` are set on the video backend (`max_rows`).
    """
    from ivcore.backends.dit_configs import full_size_backend

    options = MemoryOptions(offload=offload, fp8=fp8, vae_tiling=vae_tiling)
    video = full_size_backend(kind)
    for name, value in backend_settings.items():
        setattr(video, name, value)
    width, height = size or video.native_size
    guidance = video.defaults["guidance"] if guidance is None else guidance
    num_frames = num_frames or video.num_frames
    # one stage cache per model pair and setting: a table of options traces each stage once (`trace_stages`)
    # (the video stages do not depend on P_img: pairs share them with the video side alone)
    cache = _FULL_SIZE_TRACES.setdefault((kind, width, height, num_frames, guidance, lam, steps), {})
    traces = trace_stages(
        _full_size_image(image_model), video, options=options, num_frames=num_frames, height=height, width=width,
        steps=steps, lams=[lam], has_edit=True, guidance=guidance, cache=cache,
    )  # fmt: skip
    return assemble(*traces, options)


_FULL_SIZE_TRACES: dict[tuple, dict] = {}


def _full_size_image(image_model: str | None):
    """P_img at full size on the meta device: "sd15" or a kind of `ivcore.backends.image_configs.FULL_SIZE_IMAGE`."""
    if image_model is None:
        return None
    from ivcore.backends.image_configs import full_size_image_backend

    return full_size_image_backend(image_model)


__all__ = ["STAGES", "MetaInputs", "full_size_plan", "group_resident_bytes", "meta_clone", "plan", "session_plan"]
