"""What the memory plans share: the tracker that follows the bytes of a traced call, and meta copies of modules.

`ivcore.memory` (SD1.5 + PIA, SVD) and `ivcore.memory_dit` (the DiT families) both trace real code on the
meta device with these; see `ivcore.memory` for what a plan counts and what it does not.
"""

from __future__ import annotations

import copy
import json
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

# switches that change activations: attention slicing/feed-forward chunking, VAE slicing/tiling
COPIED_ATTRIBUTES = ("_chunk_size", "_chunk_dim", "use_slicing", "use_tiling", "use_framewise_decoding")
_META_CACHE: dict[tuple, torch.nn.Module] = {}


class PeakTracker(TorchDispatchMode):
    """Follows the bytes of the tensors that the traced ops allocate; `peak` is the most alive at once.

    A storage counts from the first op that returns it until the last tensor on it is freed.
    Views of tensors made before the trace (weights, inputs) are not new memory and are skipped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._bytes: dict[int, int] = {}
        self._refs: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage()._cdata for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self._track(tensor, inputs)
        return out

    def _track(self, tensor: torch.Tensor, inputs: set[int]) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key not in self._bytes:
            if key in inputs:  # a view (or in-place result) of memory that existed before the trace
                return
            self._bytes[key] = storage.nbytes()
            self._refs[key] = 0
            self.current += self._bytes[key]
            self.peak = max(self.peak, self.current)
        self._refs[key] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            self.current -= self._bytes.pop(key)
            del self._refs[key]


class FusedAttention(TorchFunctionMode):
    """Counts `scaled_dot_product_attention` on meta tensors as the fused kernels allocate it.

    On the meta device SDPA would take its math path and materialize the (L x L) scores (16 GiB
    for one 16-frame 512 x 512 row of SD1.5); CUDA's flash and memory-efficient kernels and the
    CPU's flash kernel allocate the output only. A function mode is thread-local, so a
    generation running in another thread (the widgets' background thread) is never affected.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:  # diffusers' attention dispatcher passes keywords
            query = args[0] if args else kwargs["query"]
            value = args[2] if len(args) > 2 else kwargs["value"]
            if query.device.type == "meta":
                return query.new_empty(query.shape[:-1] + (value.shape[-1],))
        return func(*args, **kwargs)


def trace_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes of the tensors `fn` allocates while it runs (meta tensors allocate nothing real)."""
    with torch.no_grad(), FusedAttention(), PeakTracker() as tracker:
        result = fn()
        del result
    return tracker.peak


def _settings(module: torch.nn.Module) -> tuple:
    """What, besides the config, changes a module's activations: processors and the copied switches."""
    found = []
    for name, sub in module.named_modules():
        values = tuple(
            (a, getattr(sub, a)) for a in COPIED_ATTRIBUTES if isinstance(getattr(sub, a, None), (int, bool))
        )
        processor = getattr(sub, "processor", None)
        if values or processor is not None:
            found.append((name, values, type(processor).__name__, getattr(processor, "slice_size", None)))
    return tuple(found)


def module_key(module: torch.nn.Module) -> tuple:
    """What identifies an architecture for the caches: class, config and dtype (never `id`, which is reused)."""
    config = getattr(module, "config", None)
    if config is not None and not isinstance(config, dict):
        config = config.to_dict()  # transformers' PretrainedConfig
    frozen = json.dumps(dict(config), sort_keys=True, default=str) if config is not None else ""
    return (type(module).__qualname__, frozen, str(next(module.parameters()).dtype))


def meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    """The module rebuilt on the meta device: same class, config, dtype, processors and switches.

    Built from the config (never by copying weights), so a 1.3 B-parameter UNet costs nothing.
    Stateless attention processors are shared with the original; processors holding weights
    (IP-Adapter) are left at their default. LoRA layers are not rebuilt (small activations).
    """
    if next(module.parameters()).device.type == "meta":
        return module
    dtype = next(module.parameters()).dtype
    config = getattr(module, "config", None)
    key = module_key(module)
    meta = _META_CACHE.get(key)
    if meta is None:
        from accelerate import init_empty_weights

        with init_empty_weights(include_buffers=True):
            if hasattr(type(module), "from_config"):
                meta = type(module).from_config(config)
            else:  # transformers models: the config object is the constructor's argument
                meta = type(module)(copy.deepcopy(config))
        meta = meta.to(device="meta", dtype=dtype).eval()  # stragglers built by hand (SVD's mix factors)
        _META_CACHE[key] = meta
    originals = dict(module.named_modules())
    for name, sub in meta.named_modules():
        source = originals.get(name)
        if source is None:
            continue
        for attribute in COPIED_ATTRIBUTES:
            if hasattr(source, attribute):
                setattr(sub, attribute, getattr(source, attribute))
        processor = getattr(source, "processor", None)
        if processor is not None and not isinstance(processor, torch.nn.Module) and hasattr(sub, "set_processor"):
            sub.processor = processor
    return meta


def rows_per_call(guidance: float, lams: Sequence[float], has_edit: bool, max_rows: int | None) -> int:
    """UNet rows of one denoising call: branches (2 when some step blends) x 2 with guidance, capped."""
    branches = 2 if has_edit and any(0.0 < float(v) < 1.0 for v in lams) else 1
    rows = branches * (2 if guidance > 1 else 1)
    return rows if max_rows is None else max(1, min(rows, max_rows))


__all__ = [
    "COPIED_ATTRIBUTES", "FusedAttention", "PeakTracker", "meta_copy", "module_key", "rows_per_call", "trace_peak",
]  # fmt: skip
