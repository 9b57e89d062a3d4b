"""What `Session.sweep` saves over generating each lambda one by one, measured side by side.

Both ways run the same UNet rows (every 0 < lam < 1 needs both branches); the sweep puts all
of them in one batched call per step, and shares the per-run work (timesteps, noise, the
encode-cache lookups, Python overhead) once. Rounds alternate the two ways after a warm-up;
the denoise and decode caches are cleared before every timed run so nothing is served from
cache. Only ratios are meaningful (this is a 2-core CPU).

    python benchmarks/sweep_cost.py [--repeats 5] [--frames 8] [--steps 10] [--write-results]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from ivcore import Session  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
LAMS = [0.0, 0.25, 0.5, 0.75, 1.0]


def make_session(frames: int, steps: int) -> Session:
    s = Session.tiny(seed=0)
    s.num_frames, s.steps = frames, steps
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[20:30, 16:48] = (255, 40, 40, 255)
    s.paint(layer)
    s.generate(progress=False)  # warm the text/image/encode caches for both ways alike
    return s


def forget_results(s: Session) -> None:
    """Drop cached denoise/decode results only, so each timed run really denoises."""
    with s.cache._lock:
        for key in [k for k in s.cache._entries if k[0] in ("denoise", "decode")]:
            _, size = s.cache._entries.pop(key)
            s.cache._bytes -= size


def one_by_one(s: Session) -> float:
    forget_results(s)
    start = time.perf_counter()
    for lam in LAMS:
        s.generate(lam=lam, progress=False)
    return time.perf_counter() - start


def swept(s: Session) -> float:
    forget_results(s)
    start = time.perf_counter()
    s.sweep(LAMS, progress=False)
    return time.perf_counter() - start


def measure(repeats: int, frames: int, steps: int) -> dict[str, float]:
    s = make_session(frames, steps)
    one_by_one(s), swept(s)  # warm-up
    times: dict[str, list[float]] = {"one by one": [], "sweep": []}
    for r in range(repeats):
        order = [("one by one", one_by_one), ("sweep", swept)]
        for name, run in order if r % 2 == 0 else order[::-1]:
            times[name].append(run(s))
    return {name: statistics.median(v) for name, v in times.items()}


def table(result: dict[str, float], frames: int, steps: int) -> str:
    base = result["one by one"]
    rows = [
        "| way | lambdas | median s | ratio to one by one |",
        "|---|---|---:|---:|",
        f"| generate, one lambda at a time | {LAMS} | {base:.2f} | 1.00 |",
        f"| `s.sweep(lams)`, one batched run | {LAMS} | {result['sweep']:.2f} | {result['sweep'] / base:.2f} |",
    ]
    head = f"Tiny preset, 64x64, {frames} frames, {steps} DDIM steps, guidance 7.5, a paint edit."
    return head + "\n\n" + "\n".join(rows)


def write_results(text: str, args: argparse.Namespace) -> None:
    section = (
        "## Lambda sweep\n\n"
        f"`python benchmarks/sweep_cost.py --repeats {args.repeats} --frames {args.frames} --steps {args.steps}`"
        f" on {datetime.date.today()}: 2-core CPU, torch {torch.__version__}, Python {platform.python_version()};"
        f" {torch.get_num_threads()} torch threads. Medians of alternating rounds after a warm-up.\n\n"
        + text
        + "\n\nAll five start from the same noise, so at the first step the three blends need the very same"
        " UNet rows: the sweep computes them once, and does the per-run work (timesteps, noise, encode"
        " lookups) once. On the CPU each lambda otherwise gets the call `generate` makes, so each swept"
        " video equals `generate(lam=...)` bitwise (tests/test_sweep_align.py); on CUDA all lambdas go"
        " in one batched UNet call per step.\n"
    )
    text_all = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = text_all.find("## Lambda sweep")
    if start >= 0:
        end = text_all.find("\n## ", start + 1)
        text_all = text_all[:start] + section + (text_all[end + 1 :] if end >= 0 else "")
    else:
        text_all = text_all.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
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
