"""The command line: `python -m ivcore <command>` and the `ivcore` console script run the same parser.

One module a command, each with `add_parser(sub)` (its flags and a one-line help, and
`set_defaults(run=...)`) and `run(args)`; this module only lists them, so a new command is a new
module and one name below. `python -m ivcore --help` lists them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# the command modules, in the order --help lists them
COMMANDS = ("demo", "generate", "grid", "story", "train_shapes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivcore" if sys.argv[0].endswith("ivcore") else "python -m ivcore",
        description="InteractiveVideo (arXiv 2402.03040) from the command line: paint, prompt, drag, blend, render.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name in COMMANDS:
        importlib.import_module(f"ivcore.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the process's), run the command; its exit status (0 when it returns None)."""
    args = build_parser().parse_args(argv)
    status = args.run(args)
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
