"""Checks for the scalar and text instructions a Session takes.

Each check returns the normalized value or raises InstructionError naming the field, the value
and what is allowed. Setters call them before touching any state, so a bad value never leaves a
session half-changed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from ivcore.errors import InstructionError


def check_prompt(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InstructionError(field, value, "a string (use '' for no text)")
    return value


def check_int(value: Any, field: str, low: int, high: int | None = None) -> int:
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InstructionError(field, value, allowed)
    value = int(value)
    if value < low or (high is not None and value > high):
        raise InstructionError(field, value, allowed)
    return value


def check_float(value: Any, field: str, low: float, high: float | None = None) -> float:
    allowed = f"a number >= {low}" if high is None else f"a number in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InstructionError(field, value, allowed)
    value = float(value)
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        raise InstructionError(field, value, allowed)
    return value


def check_choice(value: Any, field: str, choices: Sequence[str]) -> str:
    """`value` if it is one of `choices`; an array or any unhashable value is refused, never compared."""
    if not isinstance(value, Hashable) or value not in choices:
        raise InstructionError(field, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_lam(value: Any) -> float | tuple[float, ...]:
    """Eq. 4's lambda: a float in [0, 1] or a non-empty per-step sequence of them."""
    allowed = "a number in [0, 1] or a non-empty list of numbers in [0, 1] (one per step)"
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if not value:
            raise InstructionError("lam", value, allowed)
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, Real) or not 0 <= float(item) <= 1:
                raise InstructionError(f"lam[{i}]", item, allowed)
        return tuple(float(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= float(value) <= 1:
        raise InstructionError("lam", value, allowed)
    return float(value)


def lam_schedule(lam: float | Sequence[float], steps: int) -> tuple[float, ...]:
    """One weight per denoising step.

    A float applies to every step. A list of `steps` weights is used as is; a list of another
    length is resampled linearly over the steps, so a schedule survives a change of `steps`.
    """
    if isinstance(lam, (int, float)):
        return (float(lam),) * steps
    lam = tuple(float(v) for v in lam)
    if len(lam) == steps:
        return lam
    if len(lam) == 1:
        return lam * steps
    where = np.linspace(0, len(lam) - 1, steps)
    return tuple(float(v) for v in np.interp(where, np.arange(len(lam)), lam))
