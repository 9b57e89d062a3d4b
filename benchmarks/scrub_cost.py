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

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, also when imported from tests

from bench_harness import SideBySide, alternating_medians, main, make_session  # noqa: E402

from ivcore import Session  # noqa: E402

GENERATED = 0.5
SWEPT = [0.0, 0.25, 0.75, 1.0]
WAYS = {
    "generate": lambda s: s.generate(lam=GENERATED, progress=False),
    "sweep": lambda s: s.sweep(SWEPT, progress=False),
    "one by one": lambda s: [s.generate(lam=lam, progress=False) for lam in SWEPT],
}


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
    result = alternating_medians(s, WAYS, repeats)
    result["scrub"] = scrub_show(s, frames, steps)
    return result


def table(result: dict[str, float]) -> list[str]:
    unit = result["generate"]
    return [
        "| what | UNet rows a step | median s | ratio to the generation |",
        "|---|---:|---:|---:|",
        f"| generate at lambda {GENERATED} (the click) | 4 | {unit:.2f} | 1.00 |",
        f"| background sweep of {SWEPT} | 12 (8 at step 1) | {result['sweep']:.2f} | {result['sweep'] / unit:.2f} |",
        f"| the same four generated one by one | 12 | {result['one by one']:.2f} | {result['one by one'] / unit:.2f} |",
        f"| slider move onto a swept lambda (player shows it) | 0 | {result['scrub']:.4f} | "
        f"{result['scrub'] / unit:.4f} |",
    ]


BENCH = SideBySide(
    doc=__doc__,
    script="scrub_cost.py",
    heading="## Scrubbing lambda in the Studio",
    measure=measure,
    table=table,
    repeats=3,
    machine="2-core CPU shared with other jobs",
    caveat="; only the ratios mean something",
    note="Rows: classifier-free guidance doubles every branch; 0 < lambda < 1 needs both branches (x~ and"
    " x~'), lambda 0 or 1 one. The sweep's first step is shared by all lambdas (same noise). On the CPU each"
    " lambda gets the UNet call `generate` makes (bitwise the same videos); on CUDA the 12 rows go in one"
    " batched call a step. The slider move is the kernel's side only: the worker encoded the swept mp4s, so a"
    " move swaps bytes and updates traits; docs/widgets.md explains the scrubbing.",
)

if __name__ == "__main__":
    main(BENCH)
