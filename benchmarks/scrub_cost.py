"""What scrubbing lambda in the Studio costs, measured side by side on the CPU.

After a generation at lambda 0.5 the Studio sweeps the other default lambdas (0, 0.25, 0.75, 1)
in the background. This script times, in alternating rounds after a warm-up and with the
denoise/decode caches cleared before every timed run:

- the generation itself (`generate(lam=0.5)`), the unit of the ratios;
- the background sweep the Studio runs after it (`sweep([0, 0.25, 0.75, 1])`);
- the same four lambdas generated one by one (what moving the slider cost before);
- showing a swept video in the player (a slider move: mp4 encode + trait update), in a Studio.

    python benchmarks/scrub_cost.py [--repeats 3] [--frames 8] [--steps 10] [--write-results]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
sys.path.insert(0, str(HERE))

from sweep_cost import forget_results, make_session  # noqa: E402

from ivcore import Session  # noqa: E402

RESULTS = HERE / "RESULTS.md"
GENERATED = 0.5
SWEPT = [0.0, 0.25, 0.75, 1.0]


def generate(s: Session) -> float:
    forget_results(s)
    start = time.perf_counter()
    s.generate(lam=GENERATED, progress=False)
    return time.perf_counter() - start


def sweep(s: Session) -> float:
    forget_results(s)
    start = time.perf_counter()
    s.sweep(SWEPT, progress=False)
    return time.perf_counter() - start


def one_by_one(s: Session) -> float:
    forget_results(s)
    start = time.perf_counter()
    for lam in SWEPT:
        s.generate(lam=lam, progress=False)
    return time.perf_counter() - start


def scrub_show(s: Session, frames: int, steps: int, moves: int = 20) -> float:
    """Median seconds of one slider move onto a swept lambda in a Studio (nothing denoises)."""
    from ivwidgets import Studio

    app = Studio(s, scrub_lams=[GENERATED, *SWEPT])
    app.frames.value, app.steps.value = frames, steps
    app.lam.value = GENERATED
    assert app.generate() and app.wait(3600), app.status.value
    misses = s.stats["denoise"]["misses"]
    times = []
    for k in range(moves):
        lam = SWEPT[k % len(SWEPT)]
        start = time.perf_counter()
        app.lam.value = lam
        times.append(time.perf_counter() - start)
        assert app.showing.value == f"lambda {lam:g} from the sweep"
    assert app.wait(600) and s.stats["denoise"]["misses"] == misses  # no move denoised
    return statistics.median(times)


def measure(repeats: int, frames: int, steps: int) -> dict[str, float]:
    s = make_session(frames, steps)
    ways = [("generate", generate), ("sweep", sweep), ("one by one", one_by_one)]
    for _, run in ways:  # warm-up
        run(s)
    times: dict[str, list[float]] = {name: [] for name, _ in ways}
    for r in range(repeats):
        for name, run in ways if r % 2 == 0 else ways[::-1]:
            times[name].append(run(s))
    result = {name: statistics.median(v) for name, v in times.items()}
    result["scrub"] = scrub_show(s, frames, steps)
    return result


def table(result: dict[str, float], frames: int, steps: int) -> str:
    unit = result["generate"]
    rows = [
        "| what | UNet rows a step | median s | ratio to the generation |",
        "|---|---:|---:|---:|",
        f"| generate at lambda {GENERATED} (the click) | 4 | {unit:.2f} | 1.00 |",
        f"| background sweep of {SWEPT} | 12 (8 at step 1) | {result['sweep']:.2f} | {result['sweep'] / unit:.2f} |",
        f"| the same four generated one by one | 12 | {result['one by one']:.2f} | {result['one by one'] / unit:.2f} |",
        f"| slider move onto a swept lambda (player shows it) | 0 | {result['scrub']:.4f} | "
        f"{result['scrub'] / unit:.4f} |",
    ]
    head = f"Tiny preset, 64x64, {frames} frames, {steps} DDIM steps, guidance 7.5, a paint edit."
    return head + "\n\n" + "\n".join(rows)


def write_results(text: str, args: argparse.Namespace) -> None:
    section = (
        "## Scrubbing lambda in the Studio\n\n"
        f"`python benchmarks/scrub_cost.py --repeats {args.repeats} --frames {args.frames} --steps {args.steps}`"
        f" on {datetime.date.today()}: 2-core CPU shared with other jobs, torch {torch.__version__}, Python"
        f" {platform.python_version()}; {torch.get_num_threads()} torch threads. Medians of alternating rounds"
        " after a warm-up; only the ratios mean something.\n\n"
        + text
        + "\n\nRows: classifier-free guidance doubles every branch; 0 < lambda < 1 needs both branches (x~ and"
        " x~'), lambda 0 or 1 one. The sweep's first step is shared by all lambdas (same noise). On the CPU each"
        " lambda gets the UNet call `generate` makes (bitwise the same videos); on CUDA the 12 rows go in one"
        " batched call a step. The slider move is the kernel's side only: the worker encoded the swept mp4s, so a"
        " move swaps bytes and updates traits; docs/widgets.md explains the scrubbing.\n"
    )
    text_all = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = text_all.find("## Scrubbing lambda in the Studio")
    if start >= 0:
        end = text_all.find("\n## ", start + 1)
        text_all = text_all[:start] + section + (text_all[end + 1 :] if end >= 0 else "")
    else:
        text_all = text_all.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    result = measure(args.repeats, args.frames, args.steps)
    text = table(result, args.frames, args.steps)
    print(text)
    if args.write_results:
        write_results(text, args)


if __name__ == "__main__":
    main()
