"""Shared pieces of the widgets: ES module loading, PNG checks, a per-session lock, background jobs."""

from __future__ import annotations

import atexit
import io
import threading
import weakref
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import traitlets
from ipywidgets.widgets.trait_types import bytes_serialization
from PIL import Image

try:
    from ivcore.errors import InstructionError
except ImportError:  # pragma: no cover - ivcore always ships with ivwidgets; kept for partial checkouts

    class InstructionError(ValueError):  # type: ignore[no-redef]
        def __init__(self, field: str, value: Any, allowed: str):
            self.field, self.value, self.allowed = field, value, allowed
            super().__init__(f"{field}: got {value!r}; allowed: {allowed}")


__all__ = [
    "BYTES",
    "InstructionError",
    "Jobs",
    "SafeStateMixin",
    "asset",
    "decode_png",
    "encode_png",
    "session_lock",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _bytes_from_json(js: Any, obj: Any) -> bytes | None:
    """Binary traits from the page: Jupyter hands over a memoryview, marimo plain bytes; take both."""
    return None if js is None else bytes(js)


# Bytes from the front end arrive as memoryview (Jupyter) or bytes (marimo); a plain Bytes trait
# rejects a memoryview and ipywidgets then drops the whole save_changes batch silently. These tags
# convert either to bytes first.
BYTES: dict[str, Any] = {"sync": True, **bytes_serialization, "from_json": _bytes_from_json}


def asset(name: str) -> str:
    """The text of a file from js/ (package data of ``ivwidgets.js`` in a wheel).

    A source checkout that is not installed has no ``ivwidgets.js`` package (pyproject maps it to
    js/), so fall back to the js/ folder next to this package.
    """
    try:
        return resources.files("ivwidgets.js").joinpath(name).read_text(encoding="utf-8")
    except (ImportError, OSError, TypeError, ValueError):
        return (Path(__file__).resolve().parent.parent / "js" / name).read_text(encoding="utf-8")


def encode_png(image: Any) -> bytes:
    """PNG bytes of a PIL image or a uint8 array (what the front ends show)."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(
    data: bytes | memoryview | bytearray,
    *,
    field: str,
    size: tuple[int, int],
    max_bytes: int,
) -> Image.Image:
    """Decode a PNG sent by a front end into an RGBA image, refusing anything unexpected.

    Checks run cheapest first and before any pixel is decoded: the byte count, the PNG signature,
    then the size from the header, so a huge or hostile payload never reaches the decoder.
    """
    data = bytes(data)
    w, h = size
    if len(data) > max_bytes:
        raise InstructionError(field, f"<{len(data)} bytes>", f"a PNG of at most {max_bytes} bytes")
    if not data.startswith(PNG_SIGNATURE):
        raise InstructionError(field, data[:16], f"PNG bytes of a {w}x{h} RGBA image")
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG"])
    except Exception as exc:
        raise InstructionError(field, data[:16], f"a readable PNG ({exc})") from exc
    if image.size != (w, h):
        raise InstructionError(field, f"{image.size[0]}x{image.size[1]} PNG", f"a PNG of {w}x{h} (the image size)")
    if image.mode not in ("RGBA", "RGB", "LA", "L", "P"):
        raise InstructionError(field, f"PNG mode {image.mode}", "an 8-bit PNG (RGBA, RGB, LA, L or P)")
    try:
        image.load()
    except Exception as exc:
        raise InstructionError(field, data[:16], f"a complete PNG ({exc})") from exc
    return image.convert("RGBA")


_locks: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_locks_by_id: dict[int, threading.RLock] = {}
_locks_guard = threading.Lock()


def session_lock(session: Any) -> threading.RLock:
    """One lock a session, shared by all widgets bound to it.

    Widgets run the slow session calls (intermediate images, motion previews, generate) in
    background threads; the lock keeps two of them from running the pipelines at once.
    """
    with _locks_guard:
        try:
            lock = _locks.get(session)
            if lock is None:
                lock = _locks[session] = threading.RLock()
        except TypeError:  # not weak-referenceable
            lock = _locks_by_id.setdefault(id(session), threading.RLock())
    return lock


_ALL_JOBS: weakref.WeakSet = weakref.WeakSet()
EXIT_WAIT = 60.0  # seconds the interpreter waits at exit for background jobs to finish


@atexit.register
def _finish_jobs_at_exit() -> None:
    """Let running jobs end before the interpreter does: a daemon thread killed inside torch aborts the
    process ("terminate called without an active exception"), e.g. a script that builds a Studio and exits."""
    for jobs in list(_ALL_JOBS):
        with jobs._cond:
            jobs._pending.clear()
        jobs.wait(EXIT_WAIT)


class Jobs:
    """Background jobs keyed by name: one runs at a time a key, and the latest request wins.

    A drag sends many trajectory updates; recomputing the preview for each would queue work the
    user no longer wants, so while a job runs only the newest pending request of its key is kept.
    """

    def __init__(self, on_error: Callable[[BaseException], None] | None = None):
        self._cond = threading.Condition()
        self._running: set[str] = set()
        self._pending: dict[str, Callable[[], None]] = {}
        self._on_error = on_error
        _ALL_JOBS.add(self)

    def submit(self, key: str, fn: Callable[[], None]) -> None:
        with self._cond:
            if key in self._running:
                self._pending[key] = fn
                return
            self._running.add(key)
        threading.Thread(target=self._run, args=(key, fn), name=f"ivwidgets-{key}", daemon=True).start()

    def _run(self, key: str, fn: Callable[[], None]) -> None:
        while True:
            try:
                fn()
            except BaseException as exc:  # shown in the widget, never lost in a thread
                if self._on_error is not None:
                    self._on_error(exc)
            with self._cond:
                next_fn = self._pending.pop(key, None)
                if next_fn is None:
                    self._running.discard(key)
                    self._cond.notify_all()
                    return
            fn = next_fn

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._running)

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Block until no job runs; True if idle (tests and notebooks use it before reading results)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout=timeout)


class SafeStateMixin:
    """Report front-end updates that fail trait validation in ``error`` instead of a kernel log.

    ipywidgets raises out of ``set_state`` on a TraitError (a wrong type from the front end), and
    traitlets rolls the batch back, so the widget and the session stay as they were; without this
    the user would never see why nothing happened.
    """

    def set_state(self, sync_data: dict[str, Any]) -> None:
        try:
            super().set_state(sync_data)  # type: ignore[misc]
        except traitlets.TraitError as exc:
            self.error = f"rejected update of {', '.join(sorted(sync_data))}: {exc}"  # type: ignore[attr-defined]
