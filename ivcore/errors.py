"""The one error type users see for bad instructions."""

from __future__ import annotations

from typing import Any


class InstructionError(ValueError):
    """Bad input to a Session or a widget.

    It names the field, the value given and what is allowed, so that a notebook user can fix
    the input without reading the traceback. Raising it never changes the session's state.
    """

    def __init__(self, field: str, value: Any, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: got {shown}; allowed: {allowed}")
