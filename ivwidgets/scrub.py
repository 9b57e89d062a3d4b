"""The Studio's one background worker and the lambda sweep it keeps for scrubbing.

Generation, the background lambda sweep and the exact run on slider release all use the video
pipeline, so they run one after another in a single worker thread; each task carries its own
cancel flag, checked in the denoising callback between steps. A cancelled sweep is thrown away
whole (``Session.sweep`` returns all videos or raises), so a half-filled sweep is never shown.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._common import InstructionError

__all__ = ["DEFAULT_SCRUB_LAMS", "LAM_TOL", "SweepStore", "Task", "Worker", "check_scrub_lams"]

DEFAULT_SCRUB_LAMS = (0.0, 0.25, 0.5, 0.75, 1.0)
LAM_TOL = 1e-6  # two slider values closer than this are the same lambda
TASK_KINDS = ("generate", "exact", "sweep", "restore", "story")


def check_scrub_lams(value: Any) -> tuple[float, ...] | None:
    """None (scrubbing off) or the sorted distinct lambdas of a non-empty sequence of numbers in [0, 1]."""
    if value is None:
        return None
    allowed = "None or a non-empty list of numbers in [0, 1]"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InstructionError("scrub_lams", value, allowed)
    lams = list(value)
    if not lams or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1 for v in lams):
        raise InstructionError("scrub_lams", value, allowed)
    return tuple(sorted({float(v) for v in lams}))


@dataclass
class Task:
    """One unit of work for the worker: ``run(task)``; ``cancel`` stops it between denoising steps."""

    kind: str
    run: Callable[[Task], None]
    value: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    done: bool = False  # set once its pipeline call is over (its follow-ups may still run)


class Worker:
    """Runs tasks in order in one daemon thread (started on demand, gone when the queue is empty)."""

    def __init__(
        self,
        on_error: Callable[[Task, BaseException], None],
        on_done: Callable[[Task], None] | None = None,
    ):
        self._on_done = on_done
        self._cond = threading.Condition()
        self._queue: deque[Task] = deque()
        self._current: Task | None = None
        self._thread: threading.Thread | None = None
        self._on_error = on_error

    def submit(self, task: Task) -> None:
        if task.kind not in TASK_KINDS:
            raise ValueError(f"task kind: got {task.kind!r}; allowed: {', '.join(TASK_KINDS)}")
        with self._cond:
            self._queue.append(task)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ivwidgets-studio", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._thread = None
                    self._cond.notify_all()
                    return
                task = self._current = self._queue.popleft()
            try:
                if not task.cancel.is_set():
                    task.run(task)
            except BaseException as exc:  # shown in the app; a thread's traceback would be lost
                self._on_error(task, exc)
            finally:
                task.done = True
                with self._cond:
                    self._current = None
                    self._cond.notify_all()
                if self._on_done is not None:
                    self._on_done(task)

    def tasks(self, kinds: Sequence[str] = TASK_KINDS) -> list[Task]:
        """The running task (first) and the queued ones, of the given kinds, neither cancelled nor done."""
        with self._cond:
            found = ([self._current] if self._current is not None else []) + list(self._queue)
        return [t for t in found if t.kind in kinds and not t.cancel.is_set() and not t.done]

    def current(self) -> Task | None:
        with self._cond:
            return self._current

    def cancel(self, kinds: Sequence[str] = TASK_KINDS) -> list[Task]:
        """Cancel the tasks of these kinds: queued ones never start, the running one stops between steps."""
        with self._cond:
            found = ([self._current] if self._current is not None else []) + list(self._queue)
            hit = [t for t in found if t.kind in kinds and not t.cancel.is_set() and not t.done]
            for t in hit:
                t.cancel.set()
            self._queue = deque(t for t in self._queue if not t.cancel.is_set())
        return hit

    def wait(self, timeout: float | None) -> bool:
        """Block until the queue is empty and nothing runs; True when idle."""
        with self._cond:
            return self._cond.wait_for(lambda: self._thread is None, timeout=timeout)


class SweepStore:
    """Videos of one set of instructions by slider lambda: the sweep's, plus exact ones made since.

    ``signature`` names the instructions and settings they were made with; `nearest` answers only
    for the same signature and only once the sweep is ``complete``, so a stale or partial sweep
    is never shown. It has no lock of its own: the Studio reads and writes it only under its
    ``_state`` lock (the worker thread, the settle timer and the slider's handler all take it).
    """

    def __init__(self) -> None:
        self.signature: str | None = None
        self.complete = False
        self.videos: dict[float, tuple[Any, str]] = {}

    def reset(self, signature: str | None) -> None:
        self.signature, self.complete, self.videos = signature, False, {}

    def add(self, lam: float, video: Any, origin: str) -> None:
        self.videos[float(lam)] = (video, origin)

    def holds(self, lam: float, signature: str | None) -> bool:
        hit = self.nearest(lam, signature)
        return hit is not None and abs(hit[0] - lam) < LAM_TOL

    def nearest(self, value: float, signature: str | None) -> tuple[float, Any, str] | None:
        """(lambda, video, origin) nearest to ``value`` (the lower one on a tie), or None."""
        if not self.complete or signature is None or signature != self.signature or not self.videos:
            return None
        lam = min(self.videos, key=lambda v: (abs(v - value), v))
        return (lam, *self.videos[lam])
