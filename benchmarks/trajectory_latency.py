"""Latency of the trajectory engine next to the paper's trajectory latency.

The paper reports 77.35 ms for its Trajectory Instruction on an RTX 4090. Here the whole
motion preview (16 frames at 512 x 512, three trajectories) runs on the CPU with numpy; the
target is under 50 ms, so that dragging in the notebook gives feedback within a frame or two.

    python benchmarks/trajectory_latency.py [--runs 30]

Prints the median (and 90th percentile) over the runs, in ms, and the ratio to 77.35 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from ivcore.trajectory import Trajectory, animate, animate_with_masks, apply_endpoint

PAPER_MS = 77.35
TARGET_MS = 50.0
SIZE = 512
FRAMES = 16


def scene() -> np.ndarray:
    """A deterministic 512 x 512 test image: colour gradients, noise and a few bright shapes."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    img = np.stack([xs * 0.35 + 30, ys * 0.3 + 40, (xs + ys) * 0.15 + 50], -1)
    img += rng.normal(0, 8, img.shape)
    img[100:180, 100:180] = (230, 80, 60)
    img[(xs - 350) ** 2 + (ys - 150) ** 2 < 45**2] = (60, 200, 90)
    img[360:440, 380:420] = (240, 230, 80)
    return np.clip(img, 0, 255).astype(np.uint8)


def masks() -> list[np.ndarray]:
    ys, xs = np.mgrid[:SIZE, :SIZE]
    square = np.zeros((SIZE, SIZE), bool)
    square[100:180, 100:180] = True
    disk = (xs - 350) ** 2 + (ys - 150) ** 2 < 45**2
    bar = np.zeros((SIZE, SIZE), bool)
    bar[360:440, 380:420] = True
    return [square, disk, bar]


def objects() -> list[Trajectory]:
    """Three typical drags: a multi-point eased path, a timed straight drag, a short nudge."""
    square, disk, bar = masks()
    return [
        Trajectory([(139.5, 139.5), (220.3, 200.7), (300.2, 330.6)], square, easing="ease-in-out"),
        Trajectory([(349.5, 149.5), (250.25, 120.75)], disk, start=0.2, end=0.8),
        Trajectory([(399.5, 399.5), (430.6, 350.1)], bar),
    ]


def cases() -> list[tuple[str, Callable[[], object]]]:
    img, objs = scene(), objects()
    disks = [Trajectory(t.points, None, radius=40.0, easing=t.easing, start=t.start, end=t.end) for t in objs]
    camera = Trajectory([(256, 256), (270.4, 249.3)], kind="camera")
    anchor = Trajectory([(60, 450), (60, 450)], None, radius=40.0, kind="anchor")
    return [
        ("animate, 3 objects (masks)  [target]", lambda: animate(img, objs, FRAMES)),
        ("animate, 3 objects (disks r=40)", lambda: animate(img, disks, FRAMES)),
        ("animate, 2 objects + anchor", lambda: animate(img, [*objs[:2], anchor], FRAMES)),
        ("animate, 2 objects + camera", lambda: animate(img, [*objs[:2], camera], FRAMES)),
        ("animate_with_masks, 3 objects", lambda: animate_with_masks(img, objs, FRAMES)),
        ("apply_endpoint, 3 objects (x~')", lambda: apply_endpoint(img, objs)),
    ]


def measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and 90th percentile in ms, after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, ")
    print(f"numpy {np.__version__}; {FRAMES} frames at {SIZE}x{SIZE}, median of {args.runs} runs")
    print(f"| case | median ms | p90 ms | ours / paper ({PAPER_MS} ms, RTX 4090) | under {TARGET_MS:.0f} ms |")
    print("|---|---:|---:|---:|:---:|")
    for name, fn in cases():
        median, p90 = measure(fn, args.runs)
        ok = "yes" if median < TARGET_MS else "no"
        print(f"| {name} | {median:.1f} | {p90:.1f} | {median / PAPER_MS:.2f} | {ok} |")


if __name__ == "__main__":
    main()
