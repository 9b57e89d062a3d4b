"""What going back to a take costs, against a cold generation, side by side on the CPU.

A user who tried lambda 0.3, then 0.8, and goes back to 0.3 should wait for nothing: `restore`
sets the take's fields and shows its video, and the next `generate()` is served from the stage
caches. This script times, in rounds after a warm-up (the caches of the take warmed again each
round, everything else cleared):

- a cold generation at another lambda and seed (the unit of the ratios);
- `restore(take)` then `generate()` of a take whose video is in memory;
- the same for a take older than `keep_takes` (its video dropped): `restore` makes it again,
  from the caches where they still hold it.

    python benchmarks/take_cost.py [--repeats 5] [--frames 8] [--steps 10] [--write-results]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, also when imported from tests

import numpy as np  # noqa: E402
from bench_harness import SideBySide, forget_results, main, make_session  # noqa: E402

TARGET = 0.05  # issue 29: restore + generate of a cached take <= 0.05 of a cold generate


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(repeats: int, frames: int, steps: int) -> dict[str, float]:
    s = make_session(frames, steps)
    s.lam = 0.3
    made = s.generate(seed=1, progress=False)
    take = s.takes[-1]
    times: dict[str, list[float]] = {"cold": [], "restore": [], "evicted": []}
    for r in range(repeats + 1):  # round 0 warms up
        forget_results(s)
        s.restore(take)
        s.generate(progress=False)  # the take's denoise and decode back in the cache, as after making it
        s.lam = 0.8
        cold = _seconds(lambda r=r: s.generate(seed=100 + r, progress=False))

        def back():
            s.restore(take)
            assert np.array_equal(s.generate(progress=False).frames, made.frames)

        restore = _seconds(back)
        take.video = None  # as keep_takes drops it
        evicted = _seconds(back)
        if r:
            for name, value in (("cold", cold), ("restore", restore), ("evicted", evicted)):
                times[name].append(value)
    return {name: statistics.median(v) for name, v in times.items()}


def table(result: dict[str, float]) -> list[str]:
    unit = result["cold"]
    return [
        "| what | median s | ratio to a cold generate |",
        "|---|---:|---:|",
        f"| cold generate (another lambda and seed) | {unit:.3f} | 1.000 |",
        f"| restore(take) + generate(), video in memory | {result['restore']:.4f} | {result['restore'] / unit:.4f} |",
        f"| restore(take) + generate(), video dropped (older than keep_takes) | {result['evicted']:.4f} | "
        f"{result['evicted'] / unit:.4f} |",
        "",
        f"Target: <= {TARGET} for a cached take: " + ("met." if result["restore"] / unit <= TARGET else "missed."),
    ]


BENCH = SideBySide(
    doc=__doc__,
    script="take_cost.py",
    heading="## Going back to a take",
    measure=measure,
    table=table,
    repeats=5,
    caveat=" (each restore checked bitwise against the take's video)",
    note="A restore sets the fields (no model runs); the generate after it finds the text, P_img, encode,"
    " denoise and decode results under the keys the take was made with. A take whose video was dropped is"
    " made again by `restore` itself, from the same caches while they hold it (the stage cache is bounded by"
    " bytes, so after many other generations a restore can denoise again).",
)

if __name__ == "__main__":
    main(BENCH)
