"""Automatic fallback on out-of-memory: split a batched call into smaller calls and remember what fit.

The video UNet sees one row per (branch, guidance half) video: 4 rows for a blended run with
classifier-free guidance (x~ and x~', unconditional and text), each row all F frames. Rows are
independent (the motion modules mix frames within a row, never across rows), and so are the
frames of a 2-D VAE decode, so running them in smaller calls gives the same result up to float
rounding of the batch size (~1e-6). When a call raises `torch.OutOfMemoryError`, `split_call`
frees what the failed call held, halves the chunk and goes on from the first row not done yet,
down to one row; the chunk that fit is returned so the backend can keep it as its limit
(`max_rows`, `max_decode_frames`) and split up front next time instead of failing again.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ivcore.errors import InstructionError

# torch >= 2.5 has torch.OutOfMemoryError (raised for CUDA, XPU, ...); older: the CUDA one
OutOfMemoryError: type[BaseException] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def free_memory(device: torch.device) -> None:
    """Release what a failed call left: unreachable tensors, then the CUDA allocator's cached blocks."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def check_limit(value: Any, field: str) -> int | None:
    """A row or frame limit: None (no limit) or an int >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InstructionError(field, value, "None (no limit) or an integer >= 1")
    return value


def split_call(
    run: Callable[[int, int], torch.Tensor],
    total: int,
    limit: int | None,
    *,
    device: torch.device,
    what: str,
    setting: str,
) -> tuple[list[torch.Tensor], int | None]:
    """Call `run(start, stop)` over [0, total) in chunks of at most `limit`, halving on out-of-memory.

    Returns the outputs in order and the chunk size that fit after an out-of-memory error (None
    when nothing failed). Finished chunks are kept; the failed one is retried in halves. One item
    that still does not fit re-raises the error: there is nothing left to split. A warning says
    what was split (`what` names the call, `setting` the limit the caller keeps).
    """
    chunk = total if limit is None else max(1, min(limit, total))
    outputs: list[torch.Tensor] = []
    start, lowered, failed = 0, None, 0
    while start < total:
        stop = min(start + chunk, total)
        try:
            outputs.append(run(start, stop))
            start = stop
            continue
        except OutOfMemoryError:
            if stop - start == 1:
                raise
            failed = max(failed, stop - start)
        # out of the except block: the traceback, and with it the failed call's tensors, is gone
        free_memory(device)
        chunk = (stop - start + 1) // 2
        lowered = chunk
    if lowered is not None:
        warnings.warn(
            f"{what}: out of memory with {failed} in one call; ran it in calls of at most {lowered} "
            f"({setting} = {lowered} from now on)",
            RuntimeWarning,
            stacklevel=4,
        )
    return outputs, lowered


class SplitLimits:
    """`max_rows` and `max_decode_frames` of a video backend, validated and lowered on out-of-memory.

    A mixin for `SDComponents` subclasses (which provide `device`).

    `max_rows`: the most UNet rows (videos of F frames) per call, None for no limit. Users may
    set it to split up front (less memory, a little slower); an out-of-memory error lowers it
    to what fit. `max_decode_frames`: the same for the frames of one VAE decode call. Neither
    is part of cache keys: splitting changes results only by float rounding of the batch size.
    """

    device: torch.device
    denoiser_name = "UNet"  # what the out-of-memory warning calls the network (DiT families: "transformer")
    _max_rows: int | None = None
    _max_decode_frames: int | None = None

    @property
    def max_rows(self) -> int | None:
        return self._max_rows

    @max_rows.setter
    def max_rows(self, value: Any) -> None:
        self._max_rows = check_limit(value, "max_rows")

    @property
    def max_decode_frames(self) -> int | None:
        return self._max_decode_frames

    @max_decode_frames.setter
    def max_decode_frames(self, value: Any) -> None:
        self._max_decode_frames = check_limit(value, "max_decode_frames")

    def _split_rows(self, run: Callable[[int, int], torch.Tensor], rows: int, num_frames: int) -> torch.Tensor:
        """`run(start, stop)` (one denoiser call) over `rows` rows within `max_rows`; lowers it on out-of-memory."""
        outputs, lowered = split_call(
            run, rows, self._max_rows, device=self.device,
            what=f"video {self.denoiser_name} ({rows} rows of {num_frames} frames)", setting="video_backend.max_rows",
        )  # fmt: skip
        if lowered is not None:
            self._max_rows = lowered
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _split_frames(self, run: Callable[[int, int], torch.Tensor], frames: int) -> torch.Tensor:
        """`run(start, stop)` (one VAE decode) over `frames` frames within `max_decode_frames`, the same way."""
        outputs, lowered = split_call(
            run, frames, self._max_decode_frames, device=self.device,
            what=f"VAE decode ({frames} frames)", setting="video_backend.max_decode_frames",
        )  # fmt: skip
        if lowered is not None:
            self._max_decode_frames = lowered
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


__all__ = ["OutOfMemoryError", "SplitLimits", "check_limit", "free_memory", "split_call"]
