"""Lambda for the whole clip or per step: a compact shape picker drawn as a plot of lambda over steps.

The session already takes one lambda per denoising step (``session.lam = [...]``). Early steps lay
out the clip and late steps fill in detail, so a ramp from 0 to 1 takes the layout from the edited
x~' and the detail from x~ (and a ramp down the other way round). The Studio's slider keeps its
meaning in every shape: it is the mean weight over the steps, and a ramp spans as much of [0, 1]
as that mean allows (slider 0.5: 0 -> 1; slider 0.25: 0 -> 0.5; slider 0 or 1: constant).
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as w
import numpy as np

from ._common import InstructionError

__all__ = ["LAM_MODES", "LamSchedule", "lam_for", "schedule_svg"]

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


def schedule_svg(schedule: Sequence[float], *, width: int = 150, height: int = 44) -> str:
    """A small inline SVG: lambda (0 at the bottom, 1 at the top) over the denoising steps."""
    values = [float(v) for v in schedule] or [0.0]
    pad, n = 4, len(values)
    inner_w, inner_h = width - 2 * pad - 14, height - 2 * pad
    x0 = pad + 14

    def x(i: float) -> float:
        return x0 + inner_w * i / n

    def y(v: float) -> float:
        return pad + inner_h * (1 - v)

    points = []
    for i, v in enumerate(values):  # one flat segment a step, as the sampler applies it
        points += [f"{x(i):.1f},{y(v):.1f}", f"{x(i + 1):.1f},{y(v):.1f}"]
    mean = sum(values) / n
    return (
        f'<svg class="ivw-lam-plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="lambda over {n} steps, mean {mean:.2f}">'
        f'<text x="{pad}" y="{pad + 6}" font-size="8" fill="#666">1</text>'
        f'<text x="{pad}" y="{height - pad}" font-size="8" fill="#666">0</text>'
        f'<rect x="{x0}" y="{pad}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#ccc"/>'
        f'<polyline points="{" ".join(points)}" fill="none" stroke="#1976d2" stroke-width="2"/>'
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
            style={"button_width": "72px"},
        )
        self.mode.add_class("ivw-lam-mode")
        self.plot = w.HTML(value=schedule_svg([0.0]))
        self.plot.add_class("ivw-lam-plot")
        super().__init__([self.mode, self.plot], layout=w.Layout(width="auto"))

    def draw(self, schedule: Sequence[float]) -> None:
        """Show ``schedule`` (one weight a step) in the plot."""
        self.plot.value = schedule_svg(schedule)
