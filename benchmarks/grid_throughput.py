"""Grid throughput of `ivcore.batch.run_grid`: cells per minute with 1 and 2 workers, side by side.

A tiny-preset session with a painted edit (every 0 < lam < 1 cell runs both Eq. 4 branches) is
saved once; each round renders the same grid into a fresh folder with 1 worker (in this
process) and with 2 (2 spawned processes), alternating, so both see the same machine load. Every
worker runs `--threads` torch threads (default 1: on a shared 2-core machine two OpenMP threads
in one process spin and run several times slower, which would flatter the 2-worker run). The
time covers the whole run_grid call: for 2 workers that includes starting the processes (import,
one model load each, measured alone below), then every cell, index and contact sheet. With
--engine ray both counts run as Ray actors on one local cluster (started once, not timed).

    python benchmarks/grid_throughput.py [--cells 8] [--steps 4] [--frames 8] [--repeats 2] [--engine local|ray]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from ivcore import Session  # noqa: E402
from ivcore.batch import run_grid  # noqa: E402


def saved_session(folder: Path, steps: int, frames: int) -> Path:
    s = Session.tiny(seed=0)
    s.steps, s.num_frames = steps, frames
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[20:30, 16:48] = (255, 40, 40, 255)
    s.paint(layer)
    return s.save(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=8, help="grid cells: seeds 0..n/2-1 x lam (0.5, 1.0)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="grid_throughput_"))
    folder = saved_session(root / "session", args.steps, args.frames)
    grid = {"seed": list(range(args.cells // 2)), "lam": [0.5, 1.0]}
    if args.engine == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    start = time.perf_counter()  # what a worker process pays before its first cell
    code = f"import torch; torch.set_num_threads({args.threads}); import ivcore; ivcore.Session.load({str(folder)!r})"
    subprocess.run([sys.executable, "-c", code], check=True)
    load = time.perf_counter() - start
    times: dict[int, list[float]] = {1: [], 2: []}
    try:
        for r in range(args.repeats):
            for workers in (1, 2) if r % 2 == 0 else (2, 1):
                out = root / f"out-{workers}-{r}"
                clock = time.perf_counter()
                run_grid(folder, grid, engine=args.engine, out=out, workers=workers,
                         threads=args.threads, verbose=False)  # fmt: skip
                times[workers].append(time.perf_counter() - clock)
                shutil.rmtree(out)
    finally:
        if args.engine == "ray":
            ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    cells = len(grid["seed"]) * 2
    setup = f"tiny, {args.frames} frames, {args.steps} steps, half the cells at lam 0.5"
    print(
        f"engine {args.engine}, {cells} cells ({setup}), {args.threads} torch thread(s) per worker, "
        f"load average {os.getloadavg()[0]:.1f}, a worker's start (process, import, model load) {load:.1f}s"
    )
    print("| workers | median s | cells per minute | runs (s) |")
    print("|---|---|---|---|")
    for workers, runs in times.items():
        median = statistics.median(runs)
        print(f"| {workers} | {median:.1f} | {60 * cells / median:.1f} | {', '.join(f'{t:.1f}' for t in runs)} |")
    ratio = statistics.median(times[1]) / statistics.median(times[2])
    print(f"2 workers / 1 worker throughput: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
