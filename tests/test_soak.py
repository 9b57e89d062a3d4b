"""Soak: 30 cycles of paint / lambda / trajectory changes and a generation on the tiny preset.

Resident memory after warm-up must grow by less than 50 MB, the stage cache must stay under its
byte bound (set low here so that eviction really happens), and the cache counters must add up to
the calls made. The numbers are printed (`pytest -s`) for the record.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from ivcore import Session, Trajectory

CYCLES, WARMUP = 30, 5
CACHE_BYTES = 512 * 1024  # a few tiny clips: every cycle evicts something
GROWTH_LIMIT_MB = 50.0


def _rss_mb() -> float:
    """Resident set size of this process (Linux /proc; the soak is skipped elsewhere)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_soak_30_cycles_memory_cache_and_counters() -> None:
    s = Session.tiny(seed=0, cache_bytes=CACHE_BYTES)
    s.content, s.motion = "a red circle on grey", "the red circle moves right"
    s.num_frames, s.steps, s.image_steps = 4, 3, 2
    h, w = s.size
    rng = np.random.default_rng(0)
    calls, rss, largest_cache = 0, [], 0
    for cycle in range(CYCLES):
        layer = np.zeros((h, w, 4), np.uint8)
        y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
        layer[y : y + 12, x : x + 12] = (240, 210, 60, 255)
        s.paint(layer)
        s.lam = float(rng.choice([0.0, 0.3, 0.5, 1.0]))
        start = (float(rng.integers(8, w - 8)), float(rng.integers(8, h - 8)))
        s.trajectories = [Trajectory(points=[start, (start[0] + 6, start[1] + 3)])]
        video = s.generate(seed=cycle % 3, progress=False)
        calls += 1
        assert s.last_video is video and video.frames.shape[0] == 4
        largest_cache = max(largest_cache, s.cache.nbytes)
        assert s.cache.nbytes <= CACHE_BYTES, f"cycle {cycle}: cache holds {s.cache.nbytes} bytes"
        gc.collect()
        rss.append(_rss_mb())
    stats = s.stats
    growth = max(rss[WARMUP:]) - rss[WARMUP - 1]
    print(
        f"\nsoak: {CYCLES} cycles, RSS {rss[0]:.1f} -> {rss[WARMUP - 1]:.1f} MB after warm-up -> "
        f"{rss[-1]:.1f} MB (max growth {growth:.1f} MB), cache max {largest_cache} of {CACHE_BYTES} bytes, "
        f"stats {stats}"
    )
    assert growth < GROWTH_LIMIT_MB
    # every generate asks the denoise and decode stages exactly once
    for stage in ("denoise", "decode"):
        assert stats[stage]["hits"] + stats[stage]["misses"] == calls, (stage, stats[stage])
    assert stats["denoise"]["misses"] >= CYCLES - 3  # paint and trajectories change every cycle
