"""Concurrency: two threads, cancel storms, a notebook cell writing while a run goes on.

Every wait here is bounded (a deadlock fails the test instead of hanging CI), and every result is
compared bitwise with a run made alone, so a lost or mixed-up update shows.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ivcore import Cancelled, Session, SessionBusy

TIMEOUT = 60.0


@pytest.fixture
def s() -> Session:
    s = Session.tiny(seed=0)
    s.content, s.motion = "a red circle", "the red circle moves right"
    s.num_frames, s.steps, s.image_steps = 2, 4, 2
    return s


def _start(fn) -> tuple[threading.Thread, dict]:
    """Run fn in a thread; its result or exception lands in the returned dict."""
    out: dict = {}

    def body() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, out


def _join(thread: threading.Thread) -> None:
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "deadlock: the thread did not finish"


def test_second_generate_from_another_thread_is_refused_as_busy(s: Session) -> None:
    started, release = threading.Event(), threading.Event()

    def hold(step: int, total: int, latents) -> None:
        started.set()
        assert release.wait(TIMEOUT)

    first, out = _start(lambda: s.generate(seed=1, callback=hold, progress=False))
    assert started.wait(TIMEOUT)
    assert s.running
    before = (s.to_dict(), s.last_video)
    with pytest.raises(SessionBusy, match="already running"):
        s.generate(seed=2, progress=False)
    with pytest.raises(SessionBusy):
        s.sweep([0.0, 1.0], progress=False)
    assert (s.to_dict(), s.last_video) == before  # the refused call changed nothing
    release.set()
    _join(first)
    assert "error" not in out
    assert s.last_video is out["result"] and not s.running
    # and the refused call is free to run now
    assert np.array_equal(s.generate(seed=2, progress=False).frames, _alone(s, seed=2))


def _alone(s: Session, seed: int) -> np.ndarray:
    """The frames a fresh session with the same settings makes alone."""
    fresh = Session.tiny(seed=0)
    fresh.content, fresh.motion, fresh.image = s.content, s.motion, s.image
    fresh.num_frames, fresh.steps, fresh.image_steps, fresh.lam = s.num_frames, s.steps, s.image_steps, s.lam
    if s.paint_layer is not None:
        fresh.paint(s.paint_layer)
    fresh.trajectories = s.trajectories
    return fresh.generate(seed=seed, progress=False).frames


def test_cancel_storm_leaves_a_consistent_session(s: Session) -> None:
    """cancel() hammered during and between runs: each run ends with a video or Cancelled, the
    previous video is kept on a cancel, and the cache never holds a half-denoised result."""
    reference = s.generate(seed=3, progress=False).frames
    s.cache.clear()
    stop = threading.Event()

    def storm() -> None:
        while not stop.is_set():
            s.cancel()

    hammer, _ = _start(storm)
    outcomes = []
    try:
        for i in range(12):
            kept = s.last_video
            try:
                video = s.generate(seed=3 + (i % 2), progress=False)
                outcomes.append("video")
                assert s.last_video is video
            except Cancelled:
                outcomes.append("cancelled")
                assert s.last_video is kept
    finally:
        stop.set()
        _join(hammer)
    assert "cancelled" in outcomes
    assert not s.running
    # cancels between runs do not leak into the next run, and nothing half-done was cached
    assert np.array_equal(s.generate(seed=3, progress=False).frames, reference)


def test_cancel_between_runs_does_not_cancel_the_next(s: Session) -> None:
    for _ in range(5):
        s.cancel()
    video = s.generate(seed=0, progress=False)
    assert s.last_video is video


def test_a_cell_writing_during_a_run_changes_the_next_run_only(s: Session) -> None:
    """The running generation keeps the snapshot it started with; the next one sees the change."""
    old = s.generate(seed=5, progress=False).frames
    s.cache.clear()
    started, written = threading.Event(), threading.Event()

    def writer(step: int, total: int, latents) -> None:
        if step == 1:
            started.set()
            assert written.wait(TIMEOUT)

    run, out = _start(lambda: s.generate(seed=5, callback=writer, progress=False))
    assert started.wait(TIMEOUT)
    s.motion = "the red circle moves left"  # a notebook cell, while the Studio's run goes on
    s.lam = 0.25
    s.steps = 3
    written.set()
    _join(run)
    assert "error" not in out, out.get("error")
    assert np.array_equal(out["result"].frames, old)  # the run used what it started with
    assert (s.motion, s.lam, s.steps) == ("the red circle moves left", 0.25, 3)  # no lost update
    new = s.generate(seed=5, progress=False).frames
    assert np.array_equal(new, _alone(s, seed=5))
    assert not np.array_equal(new, old)


def test_studio_click_during_the_background_sweep(s: Session) -> None:
    """A Generate while the scrub sweep runs: the sweep yields, the click's video is exact."""
    from ivwidgets import Studio

    app = Studio(s)
    app.generate()
    assert app.wait(TIMEOUT)  # the generation and its background sweep
    s.motion = "the red circle moves up"
    app.generate()
    app.generate()  # a double click is refused or merged, never run twice at once
    assert app.wait(TIMEOUT)
    assert np.array_equal(app.player.video.frames, _alone(s, seed=s.seed))
    assert not s.running
