"""What a few-step preview costs next to the default sampler, measured side by side.

`ivcore.backends.fewstep.use_few_step` switches P_video to AnimateLCM-style LCM sampling
(4 steps, guidance 1: no unconditional branch). This script times full generations on the
tiny preset (64 x 64, 8 frames) with the default DDIM sampler (the tiny preset's 10 steps and
the real-weights default of 25, both at guidance 7.5) and with LCM (4 steps at guidance 1,
4 steps at 1.8, 8 steps at 1), for a plain run and for an Eq. 4 blend (a paint edit, lam 0.5).

Every case runs once per round, the order rotated each round, after one warm-up round; the
stage cache is cleared before every timed run and content_strength is 0 (x~ = x), so a run is
text + VAE encode + denoise + decode and only the sampler differs. The UNet calls and rows per
run are counted with a forward hook: the expected cost ratio is the ratio of UNet rows.

    python benchmarks/fewstep_cost.py [--repeats 5] [--threads 1]
    python benchmarks/fewstep_cost.py --write-results    # also update benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, also when imported from tests

from bench_harness import write_section  # noqa: E402

from ivcore import Session  # noqa: E402
from ivcore.backends.fewstep import use_default_sampler, use_few_step  # noqa: E402

SECTION = "## Few-step preview"


@dataclass(frozen=True)
class Sampler:
    label: str
    steps: int
    guidance: float
    few_step: bool


SAMPLERS = (
    Sampler("DDIM 10 steps, cfg 7.5 (tiny default)", 10, 7.5, False),
    Sampler("DDIM 25 steps, cfg 7.5 (real-weights default)", 25, 7.5, False),
    Sampler("LCM 4 steps, cfg 1.0 (few-step default)", 4, 1.0, True),
    Sampler("LCM 4 steps, cfg 1.8", 4, 1.8, True),
    Sampler("LCM 8 steps, cfg 1.0", 8, 1.0, True),
)
REFERENCE = SAMPLERS[0]


def scene(size: int = 64) -> Image.Image:
    y = np.linspace(0, 1, size)[:, None]
    sky = np.stack([80 + 100 * y, 120 + 80 * y, 220 - 60 * y], axis=-1) * np.ones((1, size, 1))
    img = Image.fromarray(sky.astype(np.uint8))
    ImageDraw.Draw(img).rectangle([0, size * 2 // 3, size, size], fill=(60, 140, 60))
    return img


def stroke(size: int = 64) -> np.ndarray:
    layer = np.zeros((size, size, 4), np.uint8)
    layer[size // 3 : size // 3 + 8, size // 4 : size - size // 4] = (255, 30, 30, 255)
    return layer


def make_session(edit: bool) -> Session:
    s = Session.tiny(seed=0)
    s.image, s.content, s.motion, s.content_strength = scene(), "a sunny field", "the sun rises", 0.0
    if edit:
        s.paint(stroke())
        s.lam = 0.5
    return s


def configure(s: Session, sampler: Sampler) -> None:
    use_default_sampler(s)
    if sampler.few_step:
        use_few_step(s, steps=sampler.steps, guidance=sampler.guidance)
    else:
        s.steps, s.guidance = sampler.steps, sampler.guidance


def timed_run(s: Session, sampler: Sampler) -> tuple[float, float, int, int]:
    """One cold generation: (total s, denoise s, UNet calls, UNet rows)."""
    configure(s, sampler)
    s.cache.clear()
    rows: list[int] = []
    handle = s.video_backend.unet.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    try:
        start = time.perf_counter()
        s.generate(seed=0, progress=False)
        total = time.perf_counter() - start
    finally:
        handle.remove()
    return total, s.last_timings["denoise"], len(rows), sum(rows)


def measure(repeats: int) -> dict[tuple[str, bool], dict]:
    sessions = {edit: make_session(edit) for edit in (False, True)}
    cases = [(sampler, edit) for edit in (False, True) for sampler in SAMPLERS]
    samples: dict[tuple[str, bool], list] = {(c.label, e): [] for c, e in cases}
    for round_ in range(repeats + 1):
        shift = round_ % len(cases)
        for sampler, edit in cases[shift:] + cases[:shift]:
            result = timed_run(sessions[edit], sampler)
            if round_:  # round 0 warms up
                samples[(sampler.label, edit)].append(result)
    out = {}
    for key, runs in samples.items():
        out[key] = {
            "total": statistics.median(r[0] for r in runs),
            "denoise": statistics.median(r[1] for r in runs),
            "calls": runs[0][2],
            "rows": runs[0][3],
        }
    return out


def table(results: dict) -> str:
    lines = [
        "| case | sampler | UNet calls x rows | total ms | denoise ms | total / default | rows / default |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for edit in (False, True):
        ref = results[(REFERENCE.label, edit)]
        for sampler in SAMPLERS:
            r = results[(sampler.label, edit)]
            case = "blend (lam 0.5, paint)" if edit else "plain (no edit)"
            lines.append(
                f"| {case} | {sampler.label} | {r['calls']} x {r['rows'] // max(r['calls'], 1)} | "
                f"{r['total'] * 1e3:.0f} | {r['denoise'] * 1e3:.0f} | {r['total'] / ref['total']:.2f} | "
                f"{r['rows'] / ref['rows']:.2f} |"
            )
    return "\n".join(lines)


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"{os.cpu_count()}-core {platform.machine()} CPU, Python {platform.python_version()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} torch threads, load average {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    results = measure(args.repeats)
    body = table(results)
    print(body)
    print(f"\n{machine()}; {args.repeats} interleaved rounds after a warm-up round")
    if args.write_results:
        stamp = datetime.date.today().isoformat()
        text = (
            f"{SECTION}\n\n`python benchmarks/fewstep_cost.py --repeats {args.repeats} --threads {args.threads}` "
            f"({stamp}): {machine()}. Tiny preset (64 x 64, 8 frames), content_strength 0, stage cache "
            f"cleared before every run; medians of {args.repeats} interleaved rounds.\n\n{body}\n"
        )
        write_section(text)


if __name__ == "__main__":
    main()
