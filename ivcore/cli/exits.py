"""Exit statuses of the commands, said once: bad input exits 2, a failure 1, each with one line on stderr."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from ivcore.errors import InstructionError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def reported(
    command: str,
    bad: tuple[type[BaseException], ...] = (InstructionError,),
    failed: tuple[type[BaseException], ...] = (OSError, RuntimeError),
) -> Callable:
    """Wrap a command's `run(args)`: `bad` exceptions exit 2, `failed` ones 1, with `ivcore <command>: error: ...`
    (the first line of the message: a model loader's own message can run long)."""

    def wrap(run: Callable) -> Callable:
        @functools.wraps(run)
        def inner(args) -> int:
            try:
                return run(args)
            except bad as exc:
                status = EXIT_BAD_INPUT
                message = str(exc)
            except failed as exc:
                status = EXIT_FAILED
                message = (str(exc).splitlines() or [type(exc).__name__])[0]
            print(f"ivcore {command}: error: {message}", file=sys.stderr)
            return status

        return inner

    return wrap
