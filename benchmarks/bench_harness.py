"""What the benchmark scripts share, so that each one only declares what it measures.

Not a benchmark itself. Two jobs were written again in every script before:

- Writing results: `write_section` replaces (or appends) one `## ` section of RESULTS.md and
  leaves the others alone (blend_cost, fewstep_cost, gpu_latency, scrub_cost, sweep_cost).
- Timing ways side by side on the tiny preset (scrub_cost, sweep_cost): `SideBySide` holds
  what a script declares (the ways to time, its table, the words of its RESULTS section);
  `alternating_medians` times each way after a warm-up, in rounds whose order alternates, with
  the denoise/decode caches cleared before every timed run so that each run really denoises;
  `main` is the command line both scripts had (--repeats/--frames/--steps/--write-results).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from ivcore import Session  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

Way = Callable[[Session], object]


# ---------------------------------------------------------------------- RESULTS.md
def write_section(text: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section `text` starts with (its first line); other sections are kept."""
    section = text.split("\n", 1)[0]
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    start = current.find(section + "\n")
    if start < 0:
        path.write_text(current.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n")
        return
    end = current.find("\n## ", start + len(section))
    rest = current[end + 1 :] if end >= 0 else ""
    path.write_text(current[:start] + text.rstrip("\n") + "\n" + ("\n" + rest if rest else ""))


# ---------------------------------------------------------------------- side-by-side timing
def make_session(frames: int, steps: int) -> Session:
    """The tiny preset with a paint edit, one generation run to warm the text/image/encode caches."""
    s = Session.tiny(seed=0)
    s.num_frames, s.steps = frames, steps
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[20:30, 16:48] = (255, 40, 40, 255)
    s.paint(layer)
    s.generate(progress=False)  # warm the text/image/encode caches for every way alike
    return s


def preset_line(frames: int, steps: int) -> str:
    """The sentence above a table: what `make_session` runs."""
    return f"Tiny preset, 64x64, {frames} frames, {steps} DDIM steps, guidance 7.5, a paint edit."


def forget_results(s: Session) -> None:
    """Drop cached denoise/decode results only, so each timed run really denoises."""
    with s.cache._lock:
        for key in [k for k in s.cache._entries if k[0] in ("denoise", "decode")]:
            _, size = s.cache._entries.pop(key)
            s.cache._bytes -= size


def timed(s: Session, way: Way) -> float:
    """Seconds of one run of `way`, with nothing of it served from the cache."""
    forget_results(s)
    start = time.perf_counter()
    way(s)
    return time.perf_counter() - start


def alternating_medians(s: Session, ways: Mapping[str, Way], repeats: int) -> dict[str, float]:
    """Median seconds of each way: one warm-up run each, then `repeats` rounds, every other one reversed."""
    for way in ways.values():
        timed(s, way)
    times: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways.items())
    for r in range(repeats):
        for name, way in order if r % 2 == 0 else order[::-1]:
            times[name].append(timed(s, way))
    return {name: statistics.median(v) for name, v in times.items()}


@dataclass(frozen=True)
class SideBySide:
    """What a side-by-side script declares; `main` runs it and writes its RESULTS.md section."""

    doc: str  # the script's docstring: its first line is the --help description
    script: str  # file name, for the command line quoted in RESULTS.md
    heading: str  # its section of RESULTS.md
    measure: Callable[[int, int, int], dict[str, float]]  # (repeats, frames, steps) -> median seconds
    table: Callable[[dict[str, float]], list[str]]  # median seconds -> the Markdown table's lines
    note: str  # what the rows mean, below the table in RESULTS.md
    repeats: int = 5
    machine: str = "2-core CPU"
    caveat: str = ""  # appended to the sentence on medians

    def text(self, result: dict[str, float], frames: int, steps: int) -> str:
        """What is printed: the preset sentence, then the table."""
        return preset_line(frames, steps) + "\n\n" + "\n".join(self.table(result))

    def section(self, text: str, args: argparse.Namespace) -> str:
        """The RESULTS.md section: the command, the machine, the printed text, the note."""
        return (
            f"{self.heading}\n\n"
            f"`python benchmarks/{self.script} --repeats {args.repeats} --frames {args.frames} --steps {args.steps}`"
            f" on {datetime.date.today()}: {self.machine}, torch {torch.__version__}, Python"
            f" {platform.python_version()}; {torch.get_num_threads()} torch threads. Medians of alternating rounds"
            f" after a warm-up{self.caveat}.\n\n{text}\n\n{self.note}\n"
        )


def main(bench: SideBySide, argv: list[str] | None = None) -> str:
    """Measure, print the table and, with --write-results, replace the script's RESULTS.md section."""
    parser = argparse.ArgumentParser(description=bench.doc.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=bench.repeats)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    text = bench.text(bench.measure(args.repeats, args.frames, args.steps), args.frames, args.steps)
    print(text)
    if args.write_results:
        write_section(bench.section(text, args))
    return text
