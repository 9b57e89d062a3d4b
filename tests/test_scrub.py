"""Scrubbing lambda in the Studio: a background sweep shown while the slider moves, exact on release.

Tiny preset with a paint edit (so every lambda gives another video), 2 frames and 3 steps: each
test takes seconds. Every wait has a timeout, and a watchdog dumps all threads' stacks and ends
the run if a test hangs (a deadlock must fail, not stall CI).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import numpy as np
import pytest

from ivcore import Session
from ivwidgets import Studio
from ivwidgets.lam_control import lam_for, schedule_svg

STEPS, FRAMES = 3, 2
LAMS = (0.0, 0.5, 1.0)
TIMEOUT = 120.0


pytestmark = pytest.mark.usefixtures("deadlock_watchdog")  # tests/conftest.py


@pytest.fixture(scope="module")
def session() -> Session:
    return Session.tiny(seed=0)


@pytest.fixture()
def s(session: Session) -> Session:
    """The shared tiny session with a red bar painted on x (an edit, so lambdas differ)."""
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[20:30, 16:48] = (255, 40, 40, 255)
    session.paint(layer)
    session.trajectories = []
    session.lam = 1.0
    return session


def studio(s: Session, **kwargs: Any) -> Studio:
    app = Studio(s, scrub_lams=LAMS, **kwargs)
    app.steps.value, app.frames.value = STEPS, FRAMES
    return app


def generated(app: Studio) -> Studio:
    """Generate and wait for the background sweep: afterwards every swept lambda is held."""
    assert app.generate()
    assert app.wait(TIMEOUT), app.status.value
    assert app.error.value == "", app.error.value
    assert app._sweep.complete and sorted(app._sweep.videos) == list(LAMS)
    return app


def misses(s: Session) -> int:
    return s.stats["denoise"]["misses"]


def exact(s: Session, lam: float) -> np.ndarray:
    return s.generate(seed=0, num_frames=FRAMES, steps=STEPS, lam=lam, progress=False).frames


def test_swept_lambda_is_shown_at_once_without_denoising(s: Session) -> None:
    app = generated(studio(s))
    assert app.showing.value == "lambda 1" and app.player.video is s.last_video
    before = misses(s)
    app.lam.value = 0.5
    assert app.player.video is app._sweep.videos[0.5][0]
    assert app.showing.value == "lambda 0.5 from the sweep"
    assert app.wait(TIMEOUT)  # a release at a swept lambda: nothing runs
    assert misses(s) == before and app.showing.value == "lambda 0.5 from the sweep"
    assert s.lam == 0.5
    shown = app.player.video.frames
    assert np.array_equal(shown, exact(s, 0.5))  # the sweep's video is the exact one, bitwise
    app.lam.value = 0.0
    assert app.showing.value == "lambda 0 from the sweep"
    assert not np.array_equal(app.player.video.frames, shown)


def test_between_swept_lambdas_nearest_at_once_then_exact(s: Session) -> None:
    app = generated(studio(s, settle_s=0.2))
    before = misses(s)
    app.lam.value = 0.6
    assert app.showing.value == "lambda 0.5 from the sweep"  # at once, before any run
    assert app.player.video is app._sweep.videos[0.5][0]
    assert app.wait(TIMEOUT)
    assert misses(s) == before + 1  # the exact video: one more denoising run
    assert app.showing.value == "lambda 0.6"
    assert np.array_equal(app.player.video.frames, exact(s, 0.6))  # a cache hit: the very run
    assert misses(s) == before + 1
    app.lam.value = 0.5
    app.lam.value = 0.6  # held now (made exactly): shown at once, nothing runs
    assert app.showing.value == "lambda 0.6"
    assert app.wait(TIMEOUT) and misses(s) == before + 1


def test_moving_on_before_release_runs_only_the_last_lambda(s: Session) -> None:
    app = generated(studio(s, settle_s=0.5))
    before = misses(s)
    for value in (0.3, 0.35, 0.4):  # a drag: no rest long enough to count as a release
        app.lam.value = value
        time.sleep(0.05)
    app.lam.value = 0.5  # released on a swept lambda: nothing runs
    assert app.wait(TIMEOUT)
    assert misses(s) == before and app.showing.value == "lambda 0.5 from the sweep"


def test_other_instructions_drop_the_sweep(s: Session) -> None:
    app = generated(studio(s))
    shown = app.player.video
    s.motion = "it drifts"  # any instruction but lambda
    assert not app._sweep.complete
    before = misses(s)
    app.lam.value = 0.5  # nothing held for these instructions: the player keeps its video
    assert app.wait(TIMEOUT)
    assert app.player.video is shown and app.showing.value == "lambda 1" and misses(s) == before
    app.steps.value = STEPS  # unchanged value: no event
    generated(app)
    app.seed.value = 3  # an app setting drops it too
    assert not app._sweep.complete


def _pause_sweep(app: Studio) -> tuple[threading.Event, dict[int, list[int]]]:
    """Slow the sweep's steps down and record them per task, so a test can act while it runs."""
    started, steps = threading.Event(), {}
    tasks: list[Any] = []  # held, so that a finished task's id() is not reused by the next one
    original = app._callback

    def callback(task: Any, *, progress: bool) -> Any:
        inner = original(task, progress=progress)

        def step(i: int, total: int, latents: Any, x0: Any = None) -> None:
            if task.kind == "sweep":
                if id(task) not in steps:
                    tasks.append(task)
                steps.setdefault(id(task), []).append(i)
                started.set()
                time.sleep(0.3)
            inner(i, total, latents, x0=x0)

        return step

    app._callback = callback  # type: ignore[method-assign]
    return started, steps


def test_generate_during_the_sweep_stops_it_between_steps(s: Session) -> None:
    app = studio(s)
    started, steps = _pause_sweep(app)
    assert app.generate()
    assert started.wait(TIMEOUT) and app.sweeping
    first = next(iter(steps))
    assert app.generate()  # the sweep yields to a new Generate
    assert app.wait(TIMEOUT), app.status.value
    assert len(steps[first]) < STEPS  # stopped between steps
    assert len(steps) == 2 and steps[list(steps)[1]] == list(range(1, STEPS + 1))  # the new sweep ran whole
    assert app._sweep.complete and sorted(app._sweep.videos) == list(LAMS)
    assert app.error.value == "" and app.status.value.startswith("done")
    assert not app.generate_button.disabled and app.cancel_button.disabled


def test_cancel_during_the_sweep_keeps_no_partial_sweep(s: Session) -> None:
    app = studio(s)
    started, steps = _pause_sweep(app)
    assert app.generate()
    assert started.wait(TIMEOUT)
    video = app.player.video
    assert video is not None and not app.generate_button.disabled and not app.cancel_button.disabled
    app.cancel()
    assert app.wait(TIMEOUT)
    assert len(next(iter(steps.values()))) < STEPS and "sweep" in app.status.value
    assert not app._sweep.complete and app.error.value == ""
    before = misses(s)
    app.lam.value = 0.5  # no sweep held: nothing is shown as lambda 0.5, nothing runs
    assert app.wait(TIMEOUT)
    assert app.player.video is video and app.showing.value == "lambda 1" and misses(s) == before
    assert s.last_video is video and not s.running and app.cancel_button.disabled


def test_a_failing_sweep_keeps_the_video(s: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no memory for the sweep")

    monkeypatch.setattr(s, "sweep", broken)
    app = studio(s)
    assert app.generate() and app.wait(TIMEOUT)
    assert "lambda sweep failed" in app.status.value and "no memory for the sweep" in app.error.value
    assert app.player.video is s.last_video and app.showing.value == "lambda 1"
    assert not app._sweep.complete and not app.generate_button.disabled and app.cancel_button.disabled


def test_scrub_off_and_bad_values(s: Session) -> None:
    app = Studio(s, scrub_lams=None)
    assert app.lam.continuous_update is False
    app.steps.value, app.frames.value = STEPS, FRAMES
    assert app.generate() and app.wait(TIMEOUT)
    assert not app._sweep.videos and not app.sweeping
    with pytest.raises(ValueError, match="scrub_lams"):
        Studio(s, scrub_lams=[0.5, 2.0])
    with pytest.raises(ValueError, match="scrub_lams"):
        Studio(s, scrub_lams=[])


# -- per-step lambda from the app -----------------------------------------------------------------


def test_choosing_a_ramp_sets_the_session_schedule(s: Session) -> None:
    app = Studio(s, scrub_lams=None)
    app.steps.value = 5
    app.lam.value = 0.5
    app.lam_schedule.mode.value = "ramp up"
    assert s.lam == (0.0, 0.25, 0.5, 0.75, 1.0)
    points = re.search(r'points="([^"]*)"', app.lam_schedule.plot.value).group(1).split()
    assert len(points) == 2 * 5  # one flat segment a step
    app.lam_schedule.mode.value = "ramp down"
    assert s.lam == (1.0, 0.75, 0.5, 0.25, 0.0)
    app.lam.value = 0.25  # the slider is the mean weight: the ramp spans 0 .. 0.5
    assert s.lam == (0.5, 0.375, 0.25, 0.125, 0.0)
    app.steps.value = 3  # one weight a step
    assert s.lam == (0.5, 0.25, 0.0)
    app.lam_schedule.mode.value = "constant"
    assert s.lam == 0.25
    app.lam_schedule.mode.value = "ramp up"
    s.lam = 0.75  # set in code: the controls follow (constant), nothing runs
    assert app.lam_schedule.mode.value == "constant" and app.lam.value == 0.75 and s.lam == 0.75
    assert app.wait(TIMEOUT)


def test_lam_for_means_and_ends() -> None:
    for value in (0.0, 0.2, 0.5, 0.8, 1.0):
        for mode in ("ramp up", "ramp down"):
            ramp = lam_for(value, mode, 9)
            assert len(ramp) == 9 and abs(sum(ramp) / 9 - value) < 1e-12
            assert min(ramp) >= 0.0 and max(ramp) <= 1.0
    assert lam_for(0.5, "ramp up", 3) == (0.0, 0.5, 1.0) and lam_for(0.3, "constant", 3) == 0.3
    with pytest.raises(ValueError, match="lambda schedule"):
        lam_for(0.5, "zigzag", 3)
    assert schedule_svg([0.0, 1.0]).startswith("<svg")
