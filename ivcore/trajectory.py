"""Trajectory instructions (placeholder until the trajectory module lands)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Trajectory:
    """A handle point dragged along a path to a target, moving a region of the image."""

    points: list[tuple[float, float]]
    mask: np.ndarray | None = None
    radius: float = 8.0
    easing: str = "linear"
    start: float = 0.0
    end: float = 1.0
    kind: str = "object"
    extra: dict = field(default_factory=dict)
