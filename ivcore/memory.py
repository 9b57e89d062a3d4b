"""Memory plan: an estimate of the peak device memory of the next generation (issue 11).

What a generation holds at its peak, on the video backend's device:

- weights: every parameter and buffer of P_img's and P_video's modules on that device, per
  module and dtype (shared modules, such as SD1.5's VAE and CLIP in both pipelines, once);
- the activations of one video UNet call: the rows of that call (1 or 2 branches times 2 with
  classifier-free guidance, at most `video_backend.max_rows`), each F frames at the session's size;
- the VAE decode, which runs after the last UNet call, and the VAE encode of the conditioning
  images, which runs before the first (one image, or one per frame for trajectories in path
  mode): the stages never overlap, so each counts only what it needs beyond the largest before
  it, and the parts add up to the peak (weights + the largest stage).

Activations are not guessed from formulas: the very modules are rebuilt on the meta device
(same class, config, attention processors, slicing and chunking switches; no memory, no
compute) and one call is traced with a dispatch mode that follows the bytes of every tensor
alive, so any architecture, size and option is covered. On the meta device
`scaled_dot_product_attention` is counted as the fused kernel it is on CUDA (flash or
memory-efficient: the output only, no L x L score matrix) and on the CPU (PyTorch's flash
kernel); attention processors that do not call it (attention slicing, the classic processor)
are traced as they run. Not counted: the CUDA context (~0.3-0.5 GiB outside PyTorch's
allocator), cuDNN/cuBLAS workspaces and allocator fragmentation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch.utils import _pytree as pytree

from ivcore.memory_trace import (  # re-exported: the names plans and tests have always used
    FusedAttention,
    PeakTracker,
    _settings,
    meta_copy,
    module_key,
    rows_per_call,
    trace_peak,
)

MODULE_NAMES = ("unet", "vae", "text_encoder", "image_encoder")
_TRACE_CACHE: dict[tuple, int] = {}


def _meta_like(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(tuple(shape), device="meta", dtype=dtype)


def unet_inputs(backend, rows: int, num_frames: int, height: int, width: int) -> tuple[tuple, dict]:
    """Meta (args, kwargs) of one video UNet call with `rows` rows, as the backend's `predict` builds them."""
    unet = backend.unet
    dtype = next(unet.parameters()).dtype
    f = backend.vae_scale_factor
    h, w = height // f, width // f
    channels = int(unet.config.in_channels)
    t = torch.tensor(500)
    if type(unet).__name__ == "UNetSpatioTemporalConditionModel":  # SVD: (B, F, C, h, w), one token per row
        sample = _meta_like((rows, num_frames, channels, h, w), dtype)
        embeds = _meta_like((rows, 1, unet.config.cross_attention_dim), dtype)
        return (sample, t), dict(encoder_hidden_states=embeds, added_time_ids=_meta_like((rows, 3), dtype))
    tokens = int(getattr(getattr(backend, "tokenizer", None), "model_max_length", 77) or 77)
    sample = _meta_like((rows, channels, num_frames, h, w), dtype)
    embeds = _meta_like((rows * num_frames, min(tokens, 77), unet.config.cross_attention_dim), dtype)
    return (sample, t), dict(encoder_hidden_states=embeds)


def _cached(key: tuple, compute: Callable[[], int]) -> int:
    if key not in _TRACE_CACHE:
        if len(_TRACE_CACHE) > 256:
            _TRACE_CACHE.clear()
        _TRACE_CACHE[key] = compute()
    return _TRACE_CACHE[key]


def unet_activation_bytes(backend, rows: int, num_frames: int, height: int, width: int) -> int:
    """Bytes one video UNet call with `rows` rows allocates at its peak, its inputs included."""
    meta = meta_copy(backend.unet)
    args, kwargs = unet_inputs(backend, rows, num_frames, height, width)
    inputs = sum(t.nbytes for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor))
    key = ("unet", module_key(meta), _settings(meta), rows, num_frames, height, width)
    return inputs + _cached(key, lambda: trace_peak(lambda: meta(*args, **kwargs)))


def decode_bytes(backend, num_frames: int, height: int, width: int) -> int:
    """Bytes the backend's `decode` of F frames allocates at its peak (its chunking and casts included)."""
    meta_vae = meta_copy(backend.vae)
    clone = copy.copy(backend)  # the backend's own decode code, over the meta VAE
    clone.vae = meta_vae
    f = backend.vae_scale_factor
    latents = _meta_like((1, meta_vae.config.latent_channels, num_frames, height // f, width // f), meta_vae.dtype)
    limits = tuple(getattr(backend, a, None) for a in ("max_decode_frames", "decode_chunk_size"))
    key = ("decode", type(backend).__name__, module_key(meta_vae), _settings(meta_vae), limits, tuple(latents.shape))
    return _cached(key, lambda: trace_peak(lambda: clone.decode(latents)))


def encode_bytes(backend, num_images: int, height: int, width: int) -> int:
    """Bytes one VAE encode of `num_images` conditioning images allocates at its peak.

    The Session encodes x~ (one image) and x~' (one, or one per frame in trajectory path mode)
    in separate calls; the posterior's mean stands for its sample (same bytes).
    """
    meta_vae = meta_copy(backend.vae)
    # SVD encodes an fp16 VAE with force_upcast in fp32 (as its pipeline does): fp32 activations, and the
    # VAE's weights grow from 2 to 4 bytes an element meanwhile
    upcast = hasattr(backend, "_vae_upcast") and meta_vae.dtype == torch.float16
    upcast = upcast and bool(getattr(meta_vae.config, "force_upcast", False))
    grown = sum(2 * t.numel() for t in [*meta_vae.parameters(), *meta_vae.buffers()]) if upcast else 0
    dtype = torch.float32 if upcast else meta_vae.dtype
    pixels = _meta_like((num_images, meta_vae.config.in_channels, height, width), dtype)
    key = ("encode", module_key(meta_vae), _settings(meta_vae), tuple(pixels.shape), upcast)

    def trace() -> int:
        vae = copy.deepcopy(meta_vae).float() if upcast else meta_vae
        return trace_peak(lambda: vae.encode(pixels).latent_dist.mean)

    return grown + _cached(key, trace)


def weight_bytes(backends: dict[str, Any], device: torch.device) -> dict[str, int]:
    """{"weights:<backend>.<module>:<dtype>": bytes} of the parameters and buffers on `device`.

    A module shared by two backends is counted once, under the first; tensors elsewhere (a
    module moved to the CPU by hand) are not on the device and do not count.
    """
    parts: dict[str, int] = {}
    seen: set[int] = set()
    for owner, backend in backends.items():
        for name in MODULE_NAMES:
            module = getattr(backend, name, None)
            if not isinstance(module, torch.nn.Module) or id(module) in seen:
                continue
            seen.add(id(module))
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.device.type != device.type:
                    continue
                key = f"weights:{owner}.{name}:{str(tensor.dtype).removeprefix('torch.')}"
                parts[key] = parts.get(key, 0) + tensor.numel() * tensor.element_size()
    return parts


def plan(
    image_backend,
    video_backend,
    *,
    num_frames: int,
    height: int,
    width: int,
    guidance: float,
    lams: Sequence[float],
    has_edit: bool,
    encoded_images: int = 1,
) -> dict[str, int]:
    """Bytes per part of the next generation's peak on the video backend's device, plus "total".

    Parts: "weights:<backend>.<module>:<dtype>", "activations:video.unet" (one UNet call with
    the rows `rows_per_call` gives), "decode:video.vae" (what the decode needs beyond the UNet
    call) and "encode:video.vae" (what encoding `encoded_images` conditioning images at once
    needs beyond both). The stages run one after the other, so each counts only what it adds
    to the largest before it, and "total", the sum of the parts, is weights + the largest stage.
    """
    device = video_backend.device
    parts = weight_bytes({"image": image_backend, "video": video_backend}, device)
    rows = rows_per_call(guidance, lams, has_edit, getattr(video_backend, "max_rows", None))
    stages = {
        "activations:video.unet": unet_activation_bytes(video_backend, rows, num_frames, height, width),
        "decode:video.vae": decode_bytes(video_backend, num_frames, height, width),
        "encode:video.vae": encode_bytes(video_backend, encoded_images, height, width),
    }
    largest = 0
    for name, value in stages.items():
        parts[name] = max(0, value - largest)
        largest = max(largest, value)
    parts["total"] = sum(parts.values())
    return parts


def session_plan(
    session, *, num_frames: int | None = None, guidance: float | None = None, lam=None, **memory_options: Any
) -> dict[str, int]:
    """`plan` for a Session's settings (what `Session.memory_plan` returns); keywords as in `generate`.

    The DiT families (a backend over a diffusers pipeline) are planned by `ivcore.memory_dit`, with the
    session's memory options (`Session.set_memory`) or those given here.
    """
    from ivcore.instructions import check_lam, lam_schedule

    options = session.memory.updated(**memory_options)
    if getattr(session.video_backend, "pipe", None) is not None:
        from ivcore import memory_dit

        return memory_dit.session_plan(session, num_frames=num_frames, guidance=guidance, lam=lam, options=options)
    if options != type(options)():
        raise NotImplementedError(
            "memory_plan: memory options are planned for the DiT families; for SD1.5 + PIA and SVD see "
            "sd15_pia_plan / svd_xt_plan (max_rows, max_decode_frames, offload_image) and docs/memory.md"
        )
    _, num_frames, steps, guidance = session._resolve(None, num_frames, None, guidance)
    lams = lam_schedule(session.lam if lam is None else check_lam(lam), steps)
    width, height = session.size
    trajectories = session.trajectories
    has_edit = session.paint_layer is not None or bool(trajectories)
    per_frame = bool(trajectories) and session.trajectory_mode == "path"  # x~' is one image per frame
    return plan(
        session.image_backend, session.video_backend, num_frames=num_frames, height=height, width=width,
        guidance=guidance, lams=lams, has_edit=has_edit, encoded_images=num_frames if per_frame else 1,
    )  # fmt: skip


def format_plan(parts: dict[str, int], budget: int | None = None) -> str:
    """The plan as a small text table (GiB, or MiB below 1 GiB in all; with what is left of `budget` bytes)."""
    scale, unit = (2**30, "GiB") if parts["total"] >= 2**30 else (2**20, "MiB")
    rows = [(name, value) for name, value in parts.items() if name != "total"]
    rows.append(("total (estimated peak)", parts["total"]))
    if budget is not None:
        rows.append(("left of the budget", budget - parts["total"]))
    return "\n".join(f"{name:<40} {value / scale:9.2f} {unit}" for name, value in rows)


def sd15_pia_plan(
    *,
    num_frames: int = 16,
    size: int | tuple[int, int] = 512,
    guidance: float = 7.5,
    lam: float = 0.5,
    dtype: torch.dtype = torch.float16,
    attention: str = "sdpa",
    vae_slicing: bool = False,
    forward_chunking: int = 0,
    trajectory_path: bool = False,
    offload_image: bool = False,
    **options: Any,
) -> dict[str, int]:
    """The plan for full-size SD1.5 img2img + PIA (built on the meta device from `backends.configs`).

    Defaults are the T4 case of docs/memory.md: 16 frames at 512 x 512 (`size`: a side or (width, height)),
    guidance 7.5,
    0 < lam < 1 with an edit (the 4-row call), fp16, diffusers' default attention (SDPA).
    `attention` "classic" (materialized scores, no SDPA) or "sliced" (the spatial attention one
    frame of one row at a time, scores materialized per slice), `vae_slicing`
    (`vae.enable_slicing()`), `forward_chunking` (a chunk size for
    `unet.enable_forward_chunking(chunk_size, dim=1)`; 0: off), `trajectory_path` (x~' is one
    image per frame, all encoded in one call), `offload_image` (P_img's own UNet on the CPU during
    the video stages; the VAE and CLIP it shares with PIA stay) and
    `options` set on the video backend (`max_rows`, `max_decode_frames`) show what each option
    does to the peak.
    """
    from diffusers.models.attention_processor import AttnProcessor, SlicedAttnProcessor

    from ivcore.backends.configs import SD15_UNET_CONFIG, build_sd15_pia
    from ivcore.backends.image import ImageBackend
    from ivcore.backends.video import PIAVideoBackend

    width, height = (size, size) if isinstance(size, int) else size
    m = build_sd15_pia("meta", dtype)
    image = ImageBackend(m["unet"], m["vae"], m["text_encoder"], None, None, name="sd15")
    if offload_image:
        image = SimpleNamespace(vae=m["vae"], text_encoder=m["text_encoder"])  # no UNet on the device
    video = PIAVideoBackend(
        m["motion_unet"], m["vae"], m["text_encoder"], None, None, num_frames=num_frames, name="pia"
    )
    if attention == "classic":
        video.unet.set_attn_processor(AttnProcessor())
    elif attention == "sliced":  # the spatial layers, 8 heads (one frame of one row) at a time
        heads = SD15_UNET_CONFIG["attention_head_dim"]  # SD1.5's legacy name for its 8 heads
        video.unet.set_attn_processor(
            {
                name: processor if "motion_modules" in name else SlicedAttnProcessor(heads)
                for name, processor in video.unet.attn_processors.items()
            }
        )
    if vae_slicing:
        video.vae.enable_slicing()
    if forward_chunking:  # chunks of the sequence: pixels in spatial blocks, frames in motion modules
        video.unet.enable_forward_chunking(chunk_size=forward_chunking, dim=1)
    for name, value in options.items():
        setattr(video, name, value)
    return plan(
        image, video, num_frames=num_frames, height=height, width=width, guidance=guidance, lams=[lam], has_edit=True,
        encoded_images=num_frames if trajectory_path else 1,
    )  # fmt: skip


def svd_xt_plan(
    *,
    num_frames: int = 25,
    size: tuple[int, int] = (1024, 576),
    guidance: float = 3.0,
    lam: float = 0.5,
    dtype: torch.dtype = torch.float16,
    decode_chunk_size: int | None = None,
    forward_chunking: bool = False,
    offload_image: bool = False,
    **options: Any,
) -> dict[str, int]:
    """The plan for SD1.5 img2img + SVD-XT, what `from_pretrained(image_model=<SD1.5>, video_model=<SVD-XT>)` holds.

    Built like `sd15_pia_plan`: the full-size modules from the configs of `ivcore.backends.configs`
    on the meta device (SVD-XT's UNet, temporal-decoder VAE and ViT-H image encoder; SD1.5's
    UNet, VAE and text encoder for P_img), the video backend's own `predict` inputs and `decode`
    traced. Defaults: SVD-XT's 25 frames at its native 1024 x 576, guidance 3 (the pipeline's
    max_guidance_scale), 0 < lam < 1 with an edit (4 rows), fp16, SDPA, all frames decoded at once
    (the pipeline's default). `decode_chunk_size` (the temporal decoder's frames at once; it
    changes the video slightly), `forward_chunking` (`unet.enable_forward_chunking()`: spatial
    feed-forwards one frame at a time, temporal ones one frame position at a time),
    `offload_image` (P_img's modules on the CPU during the video stages) and `options` set on the
    video backend (`max_rows`) show what each does to the peak. The fp16 VAE encodes upcast to fp32
    (force_upcast, as the pipeline does); the CLIP image embedding (224 x 224) is not counted.
    """
    from ivcore.backends.configs import build_sd15_pia, build_svd_xt
    from ivcore.backends.image import ImageBackend
    from ivcore.backends.svd import SVDVideoBackend

    width, height = size
    sd, m = build_sd15_pia("meta", dtype), build_svd_xt("meta", dtype)
    image = SimpleNamespace() if offload_image else ImageBackend(sd["unet"], sd["vae"], sd["text_encoder"], None, None)
    video = SVDVideoBackend(
        m["unet"], m["vae"], m["image_encoder"], None, None, num_frames=num_frames, decode_chunk_size=decode_chunk_size
    )
    if forward_chunking:
        video.unet.enable_forward_chunking()
    for name, value in options.items():
        setattr(video, name, value)
    return plan(
        image, video, num_frames=num_frames, height=height, width=width, guidance=guidance, lams=[lam], has_edit=True
    )


# the option rows of docs/memory.md's table: `python -m ivcore.memory` prints them (not the
# feed-forward chunking row: `sd15_pia_plan(forward_chunking=1)` traces 4096 chunks per spatial
# block, which takes minutes)
T4_VARIANTS: dict[str, dict[str, Any]] = {
    "defaults (SDPA, all 16 frames decoded at once)": {},
    "lam = 1 or no edit (2 rows)": {"lam": 1.0},
    "max_rows = 2": {"max_rows": 2},
    "max_rows = 1": {"max_rows": 1},
    "max_decode_frames = 4": {"max_decode_frames": 4},
    "VAE slicing (one frame per decode)": {"vae_slicing": True},
    "max_rows = 1 + VAE slicing": {"max_rows": 1, "vae_slicing": True},
    "attention slicing instead of SDPA": {"attention": "sliced"},
    "classic attention (no SDPA)": {"attention": "classic"},
    "trajectories in path mode (16 images encoded at once)": {"trajectory_path": True},
    "path mode + max_decode_frames = 4": {"trajectory_path": True, "max_decode_frames": 4},
    "path mode + VAE slicing (encode and decode)": {"trajectory_path": True, "vae_slicing": True},
    "8 frames": {"num_frames": 8},
    "fp32 weights and activations": {"dtype": torch.float32},
}


def main() -> None:
    """Print the full-size plan and the option table of docs/memory.md (meta device: any machine, seconds)."""
    torch.set_num_threads(1)
    print(format_plan(sd15_pia_plan(), budget=15 * 2**30))
    print()
    columns = ("UNet", "decode+", "encode+", "peak")
    print(f"{'option (16 frames, 512 x 512, 0 < lam < 1, fp16)':<56}" + "".join(f"{c:>9}" for c in columns) + "  GiB")
    for name, kwargs in T4_VARIANTS.items():
        parts = sd15_pia_plan(**kwargs)
        values = [parts[k] for k in ("activations:video.unet", "decode:video.vae", "encode:video.vae", "total")]
        print(f"{name:<56}" + "".join(f"{v / 2**30:9.2f}" for v in values))


__all__ = [
    "FusedAttention",
    "PeakTracker",
    "decode_bytes",
    "encode_bytes",
    "format_plan",
    "meta_copy",
    "plan",
    "rows_per_call",
    "sd15_pia_plan",
    "session_plan",
    "svd_xt_plan",
    "trace_peak",
    "unet_activation_bytes",
    "weight_bytes",
]

if __name__ == "__main__":
    main()
