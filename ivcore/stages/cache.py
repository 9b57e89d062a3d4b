"""Content-addressed stage cache with hit/miss counters and a bounded size.

Every stage of a generation (text embeddings, P_img output, VAE encode, denoise, decode) is
stored under a key made of its own inputs, so a change reruns only the stages downstream of
it: moving lambda reruns denoise and decode, editing the motion text re-encodes that text.
Entries are evicted least-recently-used once the total size passes `max_bytes`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

STAGES = ("text", "image", "encode", "denoise", "decode")
DEFAULT_MAX_BYTES = 2 * 1024**3  # 2 GiB: a few hundred tiny clips, or ~30 SD-size 16-frame runs


def fingerprint(*parts: Any) -> str:
    """A stable hash of nested inputs: str/number/None/tuples/lists/dicts, arrays, tensors, images."""
    h = hashlib.sha1()
    _feed(h, parts)
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    if isinstance(obj, Image.Image):
        _feed(h, ("PIL", obj.mode, obj.size))
        h.update(obj.tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"nd{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"pt{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, (list, tuple)):
        h.update(f"[{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    elif isinstance(obj, dict):
        h.update(f"{{{len(obj)}".encode())
        for key in sorted(obj, key=str):
            _feed(h, str(key))
            _feed(h, obj[key])
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def size_of(value: Any) -> int:
    """Approximate bytes held by a cached value."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, Image.Image):
        return value.width * value.height * len(value.getbands())
    if isinstance(value, (list, tuple)):
        return sum(size_of(v) for v in value)
    if isinstance(value, dict):
        return sum(size_of(v) for v in value.values())
    frames = getattr(value, "frames", None)
    if isinstance(frames, np.ndarray):
        return frames.nbytes
    return 64


class StageCache:
    """LRU cache of stage results keyed by fingerprints, counting hits and misses per stage."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()
        self.stats: dict[str, dict[str, int]] = {s: {"hits": 0, "misses": 0} for s in STAGES}

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_compute(self, stage: str, key: str, compute: Callable[[], Any]) -> Any:
        """Return the cached value of (stage, key), computing and storing it on a miss."""
        with self._lock:
            entry = self._entries.get((stage, key))
            if entry is not None:
                self._entries.move_to_end((stage, key))
                self.stats[stage]["hits"] += 1
                return entry[0]
            self.stats[stage]["misses"] += 1
        value = compute()
        self.put(stage, key, value)
        return value

    def put(self, stage: str, key: str, value: Any) -> None:
        size = size_of(value)
        with self._lock:
            old = self._entries.pop((stage, key), None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[(stage, key)] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, (_, freed) = self._entries.popitem(last=False)
                self._bytes -= freed

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def reset_stats(self) -> None:
        with self._lock:
            for counters in self.stats.values():
                counters.update(hits=0, misses=0)
