"""Shared fixtures: tiny sessions and tiny model folders, built offline at test time."""

from __future__ import annotations

import faulthandler
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from ivcore.samples import scene

# The tiny models gain nothing from intra-op threads, and on a 2-core runner that also hosts
# notebook kernels and a browser, OpenMP threads oversubscribe the cores (measured: a tiny
# generate 1.8 s with one thread, 11.5 s with two under load).
torch.set_num_threads(1)


def red_stroke(size: int = 64) -> np.ndarray:
    """An RGBA paint layer with one opaque red bar, as a canvas stroke would make."""
    layer = np.zeros((size, size, 4), np.uint8)
    layer[size // 3 : size // 3 + 8, size // 4 : size - size // 4] = (255, 30, 30, 255)
    return layer


@pytest.fixture
def session():
    """A fresh tiny session with a scene, content and motion text set."""
    from ivcore import Session

    s = Session.tiny(seed=0)
    s.image = scene()
    s.content = "a sunny field"
    s.motion = "the sun rises"
    s.num_frames = 4
    s.steps = 4
    return s


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """The tiny models saved in the diffusers layout, for the from_pretrained(folder) path."""
    from ivcore.backends.tiny import save_tiny_models

    return save_tiny_models(tmp_path_factory.mktemp("tiny-models"), seed=0)


@pytest.fixture
def deadlock_watchdog() -> Iterator[None]:
    """For thread-heavy tests: a deadlocked test dumps every thread's stack and ends the run after
    8 minutes instead of hanging CI until its time limit."""
    faulthandler.dump_traceback_later(480, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def pytest_collection_modifyitems(config, items):
    """Browser tests are slow tests too: `pytest -m "not slow"` is the everyday suite (README)."""
    for item in items:
        if item.get_closest_marker("browser") is not None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
