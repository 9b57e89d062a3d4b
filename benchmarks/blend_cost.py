"""What the Eq. 4 blend costs, measured side by side with diffusers' PIAPipeline.

InteractiveVideo blends two guided noise predictions per step (Eq. 4: eps_hat = lam * eps +
(1 - lam) * eps'), one conditioned on x~ and one on the edited x~'. Our own denoising loop
runs both branches in one batched UNet call and skips the unused branch when lam is 0 or 1
or nothing is edited. This script checks the costs that design promises, on the tiny preset
and on a larger random-init configuration, in one run:

1. plain own loop (lam = 1, no edit) vs diffusers' PIAPipeline over the same modules, seed,
   scheduler and steps (target ratio <= 1.05);
2. the blend (lam = 0.5, a paint edit) vs plain (target <= 2.1: the UNet sees twice the rows);
3. lam = 1 and lam = 0 with an edit present vs plain (target <= 1.05: one branch skipped);
4. a rerun after changing only lam vs a cold run (text, P_img and VAE encode come from the
   stage cache; the ratio should be below 1), with the per-stage breakdown of both.

Repeats are interleaved (every case once per round, the order rotated each round) after one
warm-up round, the torch thread count is fixed, and each row reports the median. Runs 1-3
clear the stage cache before every timed run and use content_strength = 0 (x~ = x, no img2img),
so the own loop does the same work PIAPipeline does: text encoding, VAE encoding, denoising,
decoding. Run 4 uses content_strength = 0.6 so that the cold run includes P_img.

    python benchmarks/blend_cost.py [--repeats 5] [--steps 10] [--threads 1] [--quick]
    python benchmarks/blend_cost.py --write-results    # also update benchmarks/RESULTS.md
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, also when imported from tests

from bench_harness import write_section  # noqa: E402
from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

from ivcore import Session  # noqa: E402
from ivcore.backends.image import ImageBackend  # noqa: E402
from ivcore.backends.tiny import (  # noqa: E402
    IMAGE_SCHEDULER_CONFIG,
    MOTION_ADAPTER_CONFIG,
    TEXT_CONFIG,
    UNET_CONFIG,
    VAE_CONFIG,
    VIDEO_SCHEDULER_CONFIG,
    tiny_tokenizer,
)
from ivcore.backends.video import PIAVideoBackend  # noqa: E402
from ivcore.samples import scene  # noqa: E402

SECTION = "## Blend cost"
BLEND_LAM = 0.5
RERUN_LAM = 0.7
MOTION = "the sun rises over the field"
CONTENT = "a sunny field"

# ---------------------------------------------------------------------------------- configurations
LARGE_SIZE = 128
LARGE_FRAMES = 16
LARGE_CHANNELS = (32, 64, 128)


def larger_backends(seed: int = 0) -> tuple[ImageBackend, PIAVideoBackend]:
    """A larger random-init SD1.5/PIA-style pair, built like `ivcore.backends.tiny` (offline).

    3 UNet levels (32, 64, 128) with 2 layers per block, 128 x 128 images, an SD-like VAE
    factor of 8 (16 x 16 latents), 16 frames."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **{
            **UNET_CONFIG,
            "sample_size": LARGE_SIZE // 8,
            "block_out_channels": LARGE_CHANNELS,
            "layers_per_block": 2,
            "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            "cross_attention_dim": 64,
            "attention_head_dim": 8,
            "norm_num_groups": 8,
        }
    )
    adapter = MotionAdapter(
        **{
            **MOTION_ADAPTER_CONFIG,
            "block_out_channels": LARGE_CHANNELS,
            "motion_layers_per_block": 2,
            "motion_num_attention_heads": 4,
            "motion_norm_num_groups": 8,
        }
    )
    vae = AutoencoderKL(
        **{
            **VAE_CONFIG,
            "block_out_channels": (16, 32, 64, 64),
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "sample_size": LARGE_SIZE,
        }
    )
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            **{**TEXT_CONFIG, "hidden_size": 64, "intermediate_size": 128, "projection_dim": 64},
        )
    )
    for module in (unet, adapter, vae, text_encoder):
        module.eval()
    shared = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer)
    image = ImageBackend(
        unet=unet, scheduler=DDIMScheduler(**IMAGE_SCHEDULER_CONFIG), size=LARGE_SIZE, name="large", **shared
    )
    video = PIAVideoBackend(
        unet=UNetMotionModel.from_unet2d(unet, adapter).eval(),
        scheduler=DDIMScheduler(**VIDEO_SCHEDULER_CONFIG),
        size=LARGE_SIZE,
        num_frames=LARGE_FRAMES,
        name="large",
        **shared,
    )
    return image, video


def tiny_session() -> Session:
    return Session.tiny(seed=0)


def large_session() -> Session:
    image_backend, video_backend = larger_backends(seed=0)
    return Session(image_backend, video_backend, steps=10, image_steps=4, spec={"preset": "benchmark-large"})


@dataclass
class Config:
    """One model configuration to benchmark: how to build its session, frames and steps."""

    name: str
    build: Callable[[], Session]
    num_frames: int | None = None  # None: the backend's default
    steps: int = 10
    label: str = ""


def default_configs(steps: int, quick: bool = False) -> list[Config]:
    tiny = Config("tiny", tiny_session, steps=steps, label="tiny preset: 64x64, 8 frames, UNet (32, 64) x1")
    large = Config(
        "large",
        large_session,
        steps=steps,
        label=f"larger: {LARGE_SIZE}x{LARGE_SIZE}, {LARGE_FRAMES} frames, UNet {LARGE_CHANNELS} x2",
    )
    return [tiny] if quick else [tiny, large]


# ---------------------------------------------------------------------------------- inputs
def paint_layer(size: int) -> np.ndarray:
    """An RGBA layer with one opaque red bar: a canvas stroke, so x~' differs from x~."""
    layer = np.zeros((size, size, 4), np.uint8)
    bar = max(2, size // 8)
    layer[size // 3 : size // 3 + bar, size // 4 : size - size // 4] = (255, 30, 30, 255)
    return layer


def prepare(config: Config) -> Session:
    s = config.build()
    s.image = scene(s.size[0])
    s.content = CONTENT
    s.motion = MOTION
    s.steps = config.steps
    if config.num_frames is not None:
        s.num_frames = config.num_frames
    return s


# ---------------------------------------------------------------------------------- timed cases
def pia_pipeline(s: Session):
    """diffusers' PIAPipeline over the session's very modules (deprecated; a reference only)."""
    from diffusers import PIAPipeline

    b = s.video_backend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = PIAPipeline(
            vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet, scheduler=b.scheduler
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_pia(s: Session, pipe, seed: int) -> np.ndarray:
    """One PIAPipeline call on x~ with the session's text, frames, steps and guidance."""
    out = pipe(
        image=s.intermediate(edited=False),
        prompt=s.motion,
        negative_prompt=s.negative_prompt,
        num_frames=s.num_frames,
        height=s.size[1],
        width=s.size[0],
        num_inference_steps=s.steps,
        guidance_scale=s.guidance,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return out.frames[0]


def run_own(s: Session, seed: int, *, lam: float, edit: bool, cold: bool = True) -> np.ndarray:
    """One own-loop generation; `cold` clears the stage cache first so every stage really runs."""
    if edit:
        s.paint(paint_layer(s.size[0]))
    else:
        s.clear_paint()
    s.lam = lam
    if cold:
        s.cache.clear()
    return s.generate(seed=seed, progress=False).frames


@dataclass
class Samples:
    """Timings (seconds) of one case, plus the stage breakdowns of its runs."""

    seconds: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def stage_medians(self) -> dict[str, float]:
        names = sorted({k for run in self.stages for k in run})
        return {k: statistics.median(run.get(k, 0.0) for run in self.stages) for k in names}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


CASES = ("pia", "plain", "blend", "lam1_edit", "lam0_edit", "cold", "rerun")


def measure_config(config: Config, repeats: int, warmup: int = 1, seed: int = 0) -> dict:
    """Interleaved timings of every case on one configuration.

    Returns {"samples": {case: Samples}, "pia_max_diff": int, "rerun_hits": dict, "session": Session}.
    """
    s = prepare(config)
    s.content_strength = 0.0  # cases 1-3: x~ = x, the same work PIAPipeline does
    pipe = pia_pipeline(s)

    # Correctness first: the plain own loop and PIAPipeline must compute the same video.
    own = run_own(s, seed, lam=1.0, edit=False)
    ref = (run_pia(s, pipe, seed) * 255).round().astype(np.uint8)
    pia_max_diff = int(np.abs(own.astype(int) - ref.astype(int)).max())

    def cold_then_rerun(run_seed: int, out: dict[str, Samples] | None) -> None:
        """Case 4: a cold run (cache cleared, P_img at strength 0.6), then only lam changes."""
        s.content_strength = 0.6
        try:
            seconds = timed(lambda: run_own(s, run_seed, lam=BLEND_LAM, edit=True, cold=True))
            cold_timings = dict(s.last_timings)
            before = s.stats
            rerun_seconds = timed(lambda: run_own(s, run_seed, lam=RERUN_LAM, edit=True, cold=False))
            after = s.stats
        finally:
            s.content_strength = 0.0
        if out is not None:
            out["cold"].seconds.append(seconds)
            out["cold"].stages.append(cold_timings)
            out["rerun"].seconds.append(rerun_seconds)
            out["rerun"].stages.append(dict(s.last_timings))
            hits = {k: after[k]["hits"] - before[k]["hits"] for k in after}
            misses = {k: after[k]["misses"] - before[k]["misses"] for k in after}
            out["_hits"], out["_misses"] = hits, misses

    def one(case: str, run_seed: int, out: dict[str, Samples] | None) -> None:
        if case == "cold":
            cold_then_rerun(run_seed, out)
            return
        if case == "rerun":  # timed together with "cold"
            return
        if case == "pia":
            fn = lambda: run_pia(s, pipe, run_seed)  # noqa: E731
        elif case == "plain":
            fn = lambda: run_own(s, run_seed, lam=1.0, edit=False)  # noqa: E731
        elif case == "blend":
            fn = lambda: run_own(s, run_seed, lam=BLEND_LAM, edit=True)  # noqa: E731
        elif case == "lam1_edit":
            fn = lambda: run_own(s, run_seed, lam=1.0, edit=True)  # noqa: E731
        elif case == "lam0_edit":
            fn = lambda: run_own(s, run_seed, lam=0.0, edit=True)  # noqa: E731
        else:
            raise ValueError(case)
        seconds = timed(fn)
        if out is not None:
            out[case].seconds.append(seconds)
            if case != "pia":
                out[case].stages.append(dict(s.last_timings))

    for _ in range(warmup):
        for case in CASES:
            one(case, seed, None)
    samples: dict = {case: Samples() for case in CASES}
    timed_cases = [c for c in CASES if c != "rerun"]
    for r in range(repeats):
        k = r % len(timed_cases)
        for case in timed_cases[k:] + timed_cases[:k]:  # rotate the order each round
            one(case, seed + 1 + r, samples)
    hits, misses = samples.pop("_hits", {}), samples.pop("_misses", {})
    return {"samples": samples, "pia_max_diff": pia_max_diff, "rerun_hits": hits, "rerun_misses": misses, "session": s}


# ---------------------------------------------------------------------------------- report
@dataclass
class Row:
    config: str
    measurement: str
    median_s: float
    ratio: float | None = None  # median / median of the baseline
    paired: tuple[float, float] | None = None  # 25th and 75th percentile of per-round ratios
    target: str = ""
    passed: bool | None = None


def paired_quartiles(a: Samples, b: Samples) -> tuple[float, float]:
    ratios = sorted(x / y for x, y in zip(a.seconds, b.seconds, strict=False))
    if len(ratios) == 1:
        return ratios[0], ratios[0]
    q = statistics.quantiles(ratios, n=4, method="inclusive")
    return q[0], q[2]


def rows_for(config: str, result: dict) -> list[Row]:
    sm: dict[str, Samples] = result["samples"]

    def vs(case: str, base: str, name: str, limit: float, op: str = "<=") -> Row:
        ratio = sm[case].median / sm[base].median
        passed = ratio <= limit if op == "<=" else ratio < limit
        return Row(
            config, name, sm[case].median, ratio, paired_quartiles(sm[case], sm[base]), f"{op} {limit:g}", passed
        )

    return [
        Row(config, "PIAPipeline (diffusers), same modules/seed/steps", sm["pia"].median),
        vs("plain", "pia", "own loop plain (lam=1, no edit) / PIAPipeline", 1.05),
        vs("blend", "plain", f"blend lam={BLEND_LAM} with paint / plain", 2.1),
        vs("lam1_edit", "plain", "lam=1 with paint / plain", 1.05),
        vs("lam0_edit", "plain", "lam=0 with paint / plain", 1.05),
        Row(config, f"cold run (cache cleared, P_img strength 0.6, paint, lam={BLEND_LAM})", sm["cold"].median),
        vs("rerun", "cold", f"rerun after lam {BLEND_LAM} -> {RERUN_LAM} only / cold", 1.0, "<"),
    ]


def format_table(rows: list[Row]) -> str:
    lines = [
        "| config | measurement | median s | ratio | paired ratio p25-p75 | target | pass |",
        "|---|---|---:|---:|---:|:---:|:---:|",
    ]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.3f}"
        paired = "" if r.paired is None else f"{r.paired[0]:.3f}-{r.paired[1]:.3f}"
        verdict = "" if r.passed is None else ("pass" if r.passed else "**FAIL**")
        lines.append(
            f"| {r.config} | {r.measurement} | {r.median_s:.3f} | {ratio} | {paired} | {r.target} | {verdict} |"
        )
    return "\n".join(lines)


STAGES = ("image", "encode", "denoise", "decode", "total")


def format_stages(results: dict[str, dict]) -> str:
    lines = [
        "| config | run | " + " | ".join(f"{k} s" for k in STAGES) + " |",
        "|---|---|" + "---:|" * len(STAGES),
    ]
    for config, result in results.items():
        for case in ("plain", "blend", "cold", "rerun"):
            med = result["samples"][case].stage_medians()
            cells = " | ".join(f"{med.get(k, 0.0):.3f}" for k in STAGES)
            lines.append(f"| {config} | {case} | {cells} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()}-core {cpu} CPU, Python {platform.python_version()}, torch {torch.__version__}, "
        f"diffusers {__import__('diffusers').__version__}, {torch.get_num_threads()} torch threads"
    )


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run(
    configs: list[Config], repeats: int, warmup: int = 1, seed: int = 0, verbose: bool = False
) -> tuple[list[Row], dict[str, dict]]:
    """Measure every configuration; returns the table rows and the raw results per config."""
    rows: list[Row] = []
    results: dict[str, dict] = {}
    for config in configs:
        result = measure_config(config, repeats, warmup=warmup, seed=seed)
        results[config.name] = result
        rows.extend(rows_for(config.name, result))
        if verbose:  # partial results as soon as a configuration is done
            print(format_table(rows_for(config.name, result)), file=sys.stderr, flush=True)
    return rows, results


def report(
    rows: list[Row], results: dict[str, dict], configs: list[Config], args: argparse.Namespace, load: str
) -> str:
    """The Markdown section written to RESULTS.md (and printed)."""
    today = datetime.date.today().isoformat()
    labels = "; ".join(f"{c.name} = {c.label}, {c.steps} DDIM steps" for c in configs)
    cache = "; ".join(f"{name}: hits {r['rerun_hits']}, misses {r['rerun_misses']}" for name, r in results.items())
    diffs = ", ".join(f"{name} {r['pia_max_diff']}" for name, r in results.items())
    return "\n".join(
        [
            SECTION,
            "",
            f"`python benchmarks/blend_cost.py --repeats {args.repeats} --steps {args.steps} --threads {args.threads}"
            f"{' --quick' if args.quick else ''}` on {today}: {machine()}. Load average before / after the run: "
            f"{load}. Every case ran once per round, order rotated, after {args.warmup} warm-up round(s); "
            f"medians of {args.repeats} rounds. guidance 7.5 (two CFG rows per branch). Configurations: {labels}.",
            "",
            format_table(rows),
            "",
            "Ratio is median / median of the baseline; the paired column gives the spread of the per-round ratios"
            " (both runs of a pair ran back to back). Cases 1-3 clear the stage cache before each run and use"
            " content_strength 0, so both sides do text encoding, VAE encoding, denoising and decoding."
            f" Max |own - PIAPipeline| over uint8 frames (lam = 1, same seed): {diffs}.",
            "",
            f"Stage breakdown (`s.last_timings`, medians in seconds). Cache activity of a rerun: {cache}.",
            "",
            format_stages(results),
            "",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per configuration (median over them)")
    p.add_argument("--steps", type=int, default=10, help="denoising steps of every run")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (fixed for the whole run)")
    p.add_argument("--quick", action="store_true", help="tiny configuration only, 3 repeats")
    p.add_argument("--write-results", action="store_true", help=f"replace '{SECTION}' in benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 3)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    configs = default_configs(args.steps, args.quick)
    load_before = load_average()
    rows, results = run(configs, args.repeats, warmup=args.warmup, verbose=True)
    text = report(rows, results, configs, args, f"{load_before} / {load_average()}")
    print(text)
    if args.write_results:
        write_section(text)
        print(f"wrote '{SECTION}' in benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
