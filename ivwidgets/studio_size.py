"""The Studio's picture shape: a size picker offering what the models take, and the fit of a picture.

Why a list and not two number boxes: the models take only multiples of what their VAE and UNet
need (`ivcore.sizes`), so the picker offers sizes that work: the models' native size and, at the
same short side, landscape and portrait at common aspect ratios. A size set in code that is not in
the list is added to it, so the picker always shows the session's size.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ivcore import sizes

from ._common import InstructionError

__all__ = ["ASPECTS", "StudioSize", "size_choices"]

#: Aspect ratios the picker offers (long side : short side), each as landscape and portrait.
ASPECTS = ((4, 3), (3, 2), (16, 9))


def _label(size: tuple[int, int], what: str) -> str:
    return f"{size[0]} \u00d7 {size[1]}" + (f" ({what})" if what else "")


def size_choices(session: Any) -> list[tuple[str, tuple[int, int]]]:
    """(label, (width, height)) the models take: native, square, then landscape and portrait ratios."""
    step, high = sizes.multiple(session), sizes.max_side(session)
    native = tuple(sizes.native_size(session))
    short = min(native)
    out: list[tuple[str, tuple[int, int]]] = [(_label(native, "native"), native)]

    def offer(size: tuple[int, int], what: str) -> None:
        if max(size) <= high and size not in [s for _, s in out]:
            out.append((_label(size, what), size))

    offer((short, short), "square")
    for a, b in ASPECTS:
        long = max(step, round(short * a / b / step) * step)
        offer((long, short), f"landscape {a}:{b}")
        offer((short, long), f"portrait {b}:{a}")
    current = tuple(session.size)
    offer(current, "")
    return out


class StudioSize:
    """The size and fit controls of the Studio (see `ivwidgets.Studio`)."""

    def _build_size(self) -> w.Widget:
        """The Size and Fit dropdowns, bound to ``session.size`` and ``session.fit``."""
        session = self.session
        # narrow, so the row with the upload stays as wide as the text boxes below it
        narrow = {"description_width": "32px"}
        self.size_picker = w.Dropdown(
            options=size_choices(session), value=tuple(session.size), description="Size", style=narrow,
            layout=w.Layout(width="230px"),
            tooltip="width x height of every picture and frame; a change refits the image and clears paint and "
            "trajectories",
        )  # fmt: skip
        self.size_picker.add_class("ivw-size-picker")
        self.fit_picker = w.Dropdown(
            options=list(sizes.FIT_MODES), value=session.fit, description="Fit", style=narrow,
            layout=w.Layout(width="120px"),
            tooltip="how a picture of another shape is brought to the size: centre crop, pad, stretch",
        )  # fmt: skip
        self.fit_picker.add_class("ivw-fit-picker")
        self.size_picker.observe(lambda c: self._set_layout("size", c["new"]), "value")
        self.fit_picker.observe(lambda c: self._set_layout("fit", c["new"]), "value")
        return w.HBox([self.size_picker, self.fit_picker])

    def _set_layout(self, name: str, value: Any) -> None:
        if self._syncing or value is None or getattr(self.session, name) == value:
            return
        try:
            setattr(self.session, name, value)  # announced: the Studio's observer redraws every view
        except (InstructionError, ValueError, TypeError) as exc:
            self.show_error(str(exc))
            self._show_layout()  # the pickers go back to the session's size and fit
            return
        self.show_error("")

    def _show_layout(self) -> None:
        """The pickers show the session's size and fit (changed here or in code)."""
        session = self.session
        self._syncing = True
        try:
            current = tuple(session.size)
            if current not in [size for _, size in self.size_picker.options]:
                self.size_picker.options = size_choices(session)
            self.size_picker.value = current
            self.fit_picker.value = session.fit
        finally:
            self._syncing = False
