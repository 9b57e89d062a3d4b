"""What `Session.sweep` saves over generating each lambda one by one, measured side by side.

Both ways run the same UNet rows (every 0 < lam < 1 needs both branches); the sweep puts all
of them in one batched call per step, and shares the per-run work (timesteps, noise, the
encode-cache lookups, Python overhead) once. Rounds alternate the two ways after a warm-up;
the denoise and decode caches are cleared before every timed run so nothing is served from
cache. Only ratios are meaningful (this is a 2-core CPU).

    python benchmarks/sweep_cost.py [--repeats 5] [--frames 8] [--steps 10] [--write-results]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, also when imported from tests

from bench_harness import SideBySide, alternating_medians, main, make_session  # noqa: E402

LAMS = [0.0, 0.25, 0.5, 0.75, 1.0]
WAYS = {
    "one by one": lambda s: [s.generate(lam=lam, progress=False) for lam in LAMS],
    "sweep": lambda s: s.sweep(LAMS, progress=False),
}


def measure(repeats: int, frames: int, steps: int) -> dict[str, float]:
    return alternating_medians(make_session(frames, steps), WAYS, repeats)


def table(result: dict[str, float]) -> list[str]:
    base = result["one by one"]
    return [
        "| way | lambdas | median s | ratio to one by one |",
        "|---|---|---:|---:|",
        f"| generate, one lambda at a time | {LAMS} | {base:.2f} | 1.00 |",
        f"| `s.sweep(lams)`, one batched run | {LAMS} | {result['sweep']:.2f} | {result['sweep'] / base:.2f} |",
    ]


BENCH = SideBySide(
    doc=__doc__,
    script="sweep_cost.py",
    heading="## Lambda sweep",
    measure=measure,
    table=table,
    repeats=5,
    note="All five start from the same noise, so at the first step the three blends need the very same"
    " UNet rows: the sweep computes them once, and does the per-run work (timesteps, noise, encode"
    " lookups) once. On the CPU each lambda otherwise gets the call `generate` makes, so each swept"
    " video equals `generate(lam=...)` bitwise (tests/test_sweep_align.py); on CUDA all lambdas go"
    " in one batched UNet call per step.",
)

if __name__ == "__main__":
    main(BENCH)
