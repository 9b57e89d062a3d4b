"""Lambda for the whole clip or per step: a compact shape picker drawn as a plot of lambda over steps.

The session already takes one lambda per denoising step (``session.lam = [...]``). Early steps lay
out the clip and late steps fill in detail, so a ramp from 0 to 1 takes the layout from the edited
x~' and the detail from x~ (and a ramp down the other way round). The Studio's slider keeps its
meaning in every shape: it is the mean weight over the steps, and a ramp spans as much of [0, 1]
as that mean allows (slider 0.5: 0 -> 1; slider 0.25: 0 -> 0.5; slider 0 or 1: constant).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import numpy as np

from ._common import InstructionError

__all__ = ["LAM_MODES", "LamSchedule", "lam_for", "schedule_svg", "shape_of"]

LAM_MODES = ("constant", "ramp up", "ramp down")


def lam_for(value: float, mode: str, steps: int) -> float | tuple[float, ...]:
    """The session's ``lam`` for the slider ``value`` (the mean weight) and a shape of `LAM_MODES`.

    ``"constant"`` gives the float itself (so lambda 0 and 1 stay the exact plain videos); a ramp
    gives ``steps`` weights rising (or falling) linearly between ``max(0, 2v - 1)`` and ``min(1, 2v)``,
    whose mean is ``v``.
    """
    if mode not in LAM_MODES:
        raise InstructionError("lambda schedule", mode, "one of " + ", ".join(repr(m) for m in LAM_MODES))
    value = float(value)
    if mode == "constant":
        return value
    low, high = max(0.0, 2 * value - 1), min(1.0, 2 * value)
    ramp = np.linspace(low, high, max(1, int(steps))) if steps > 1 else np.array([value])
    if mode == "ramp down":
        ramp = ramp[::-1]
    return tuple(float(v) for v in ramp)


def shape_of(lam: Any) -> tuple[float, str] | None:
    """(slider value, mode) that `lam_for` turns into ``lam``, or None for a schedule of its own.

    A restored take brings back a constant lambda or one of the app's ramps; the controls show it.
    """
    if isinstance(lam, (int, float)) and not isinstance(lam, bool):
        return float(lam), "constant"
    values = np.asarray(lam, dtype=float).ravel() if isinstance(lam, (list, tuple)) else np.zeros(0)
    if values.size == 0:
        return None
    value = float(values.mean())
    for mode in LAM_MODES[1:]:
        ramp = lam_for(value, mode, values.size)
        if np.allclose(np.atleast_1d(ramp), values, rtol=0, atol=1e-9):
            return value, mode
    return None


def schedule_svg(schedule: Sequence[float], *, width: int = 240, height: int = 60) -> str:
    """A small inline SVG: lambda (0 at the bottom, 1 at the top) over the denoising steps.

    The curve is drawn inside the axes (a weight of 0 or 1 never hides under an axis), the area
    under it is shaded, and a line of text says what it shows ("lambda 0.00 at all 20 steps").
    """
    values = [float(v) for v in schedule] or [0.0]
    n = len(values)
    left, right, top, bottom = 16, 6, 4, 16  # room for the 0/1 ticks and the caption
    inner_w, inner_h = width - left - right, height - top - bottom

    def x(i: float) -> float:
        return left + inner_w * i / n

    def y(v: float) -> float:
        return top + 3 + (inner_h - 6) * (1 - v)

    points = []
    for i, v in enumerate(values):  # one flat segment a step, as the sampler applies it
        points += [f"{x(i):.1f},{y(v):.1f}", f"{x(i + 1):.1f},{y(v):.1f}"]
    area = f"M{x(0):.1f},{y(0):.1f} L" + " L".join(points) + f" L{x(n):.1f},{y(0):.1f} Z"
    mean = sum(values) / n
    if max(values) - min(values) < 1e-9:
        caption = f"\u03bb {values[0]:.2f} at all {n} steps" if n > 1 else f"\u03bb {values[0]:.2f}"
    else:
        caption = f"\u03bb {values[0]:.2f} \u2192 {values[-1]:.2f} in {n} steps, mean {mean:.2f}"
    axis = top + inner_h
    return (
        f'<svg class="ivw-lam-plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="lambda over {n} steps, mean {mean:.2f}">'
        f'<polyline points="{" ".join(points)}" fill="none" stroke="#1976d2" stroke-width="2"/>'
        f'<path d="{area}" fill="#1976d2" fill-opacity="0.15" stroke="none"/>'
        f'<line x1="{left}" y1="{y(1):.1f}" x2="{left + inner_w}" y2="{y(1):.1f}" stroke="#ddd" '
        'stroke-dasharray="3 3"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{axis}" stroke="#999"/>'
        f'<line x1="{left}" y1="{axis}" x2="{left + inner_w}" y2="{axis}" stroke="#999"/>'
        f'<text x="{left - 9}" y="{y(1) + 3:.1f}" font-size="9" fill="#666">1</text>'
        f'<text x="{left - 9}" y="{y(0) + 3:.1f}" font-size="9" fill="#666">0</text>'
        f'<text class="ivw-lam-caption" x="{left}" y="{height - 3}" font-size="9" fill="#444">{caption}</text>'
        "</svg>"
    )


class LamSchedule(w.VBox):
    """The shape picker (``mode``: constant, ramp up, ramp down) above the plot of the schedule.

    It only shows and picks; the Studio turns the shape and its slider into ``session.lam`` with
    `lam_for` and draws what the session will run with `draw`.
    """

    def __init__(self, mode: str = "constant"):
        self.mode = w.ToggleButtons(
            options=list(LAM_MODES),
            value=mode,
            tooltips=[
                "the same lambda at every step",
                "lambda rises over the steps: layout from the edit x~', detail from x~",
                "lambda falls over the steps: layout from x~, detail from the edit x~'",
            ],
            style={"button_width": "auto"},  # as wide as each label: a fixed width cut them ("const...")
        )
        self.mode.add_class("ivw-lam-mode")
        self.plot = w.HTML(value=schedule_svg([0.0]))
        self.plot.add_class("ivw-lam-plot")
        super().__init__([self.mode, self.plot], layout=w.Layout(width="auto"))

    def draw(self, schedule: Sequence[float]) -> None:
        """Show ``schedule`` (one weight a step) in the plot."""
        self.plot.value = schedule_svg(schedule)
