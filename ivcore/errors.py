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


class SessionBusy(RuntimeError):
    """A generation is already running in this session (from another thread or the Studio).

    Generations are refused, not queued: two runs would fight over one model and the user
    would not know which result is which. Wait for the running one (`Studio.wait()`), or call
    `session.cancel()` and try again. Nothing of the session changes when this is raised.
    """

    def __init__(self) -> None:
        super().__init__("a generation is already running in this session; wait for it or cancel() it")
