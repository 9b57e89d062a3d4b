"""diffusers' step caches behind the Session on the DiT video families: speed-up and drift against no cache.

For each family on its tiny hub-layout folder (`ivcore.testing.mirror`) with a deeper random-init transformer
(`--layers`, 12 by default: the mirrors' 2 layers leave a first-block cache nothing to skip), at lam = 1 (plain)
and lam = 0.5 (the Eq. 4 blend of a paint edit), in one run:

1. seconds of the denoise stage with no cache, and with each cache (`s.enable_cache(config)`): FirstBlockCache at a
   few thresholds (0.0 never skips: what the per-branch cache contexts and the hooks cost by themselves), and
   TaylorSeer in lite mode (the blocks skipped between full steps, the output projection predicted);
2. the drift of each cached video from the uncached one: PSNR over all frames (dB, uint8 peak 255) and the
   largest difference in uint8 levels.

Every case runs once per round, the order rotating each round, after one warm-up round; the stage caches are
cleared before each timed run (the cache is switched outside the timing); medians are reported.

    python benchmarks/step_cache.py [--repeats 3] [--steps 20] [--layers 12] [--kinds ...] [--write-results]
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, also when imported from tests

from bench_harness import write_section  # noqa: E402

from ivcore import Session  # noqa: E402
from ivcore.backends.tiny import save_tiny_models  # noqa: E402
from ivcore.testing import mirror  # noqa: E402

SECTION = "## Step caches on the DiT families: speed-up and drift (tiny folders)"
KINDS = ("wan2.1-i2v", "cogvideox-5b-i2v", "ltx-video-0.9.0-i2v")
SIZES = {"ltx-video-0.9.0-i2v": (96, 64), "hunyuanvideo-1.5-480p-i2v": (64, 64)}
MOTION = "a red fox runs"
FBC_THRESHOLDS = (0.0, 0.05, 0.1, 0.2)
TAYLOR_INTERVALS = (2, 4)
CAVEATS = (
    "What these numbers can say: every cache runs under Eq. 4 with contexts of each branch's own, and what its "
    "skips save and its per-row calls cost on a CPU. What they cannot say: the speed-up or the drift on real "
    "weights. The models are random-init and tiny (12 blocks of width 24-32): their first-block residual moves "
    "5-15% a step (20-40% for CogVideoX's DDIM), so how many steps a threshold skips here says nothing of a "
    "trained model, and their videos are noise-like, so PSNR measures numeric drift, not visible quality. At this "
    "size a transformer call costs little more than its Python overhead, so the per-row calls a cache needs (2 a "
    "step at lam 1 for Wan and HunyuanVideo, 4 in a blend; 1 and 2 for CogVideoX and LTX-Video, which batch "
    "[uncond, cond] as their pipelines do) show as FBC 0.0 below 1 (the Wan blend), where at real sizes the "
    "FLOPs are the same and only the gain of batching is lost. FBC 0.0's 1 level (PSNR 97) is the float rounding "
    "of per-row against batched calls. The CPU was shared with other jobs: ratios within about 0.2 of 1 (FBC 0.0 "
    "above 1) are noise. Real-weight numbers need a GPU run with real weights."
)


def caches(kind: str) -> dict[str, object | None]:
    """name -> config (None: no cache). HunyuanVideo 1.5's blocks are unknown to FirstBlockCache: TaylorSeer only."""
    from diffusers import FirstBlockCacheConfig, TaylorSeerCacheConfig

    out: dict[str, object | None] = {"none": None}
    if not kind.startswith("hunyuan"):
        out.update({f"FBC {t}": FirstBlockCacheConfig(threshold=t) for t in FBC_THRESHOLDS})
    for interval in TAYLOR_INTERVALS:
        out[f"TaylorSeer lite /{interval}"] = TaylorSeerCacheConfig(
            cache_interval=interval, disable_cache_before_step=3, taylor_factors_dtype=torch.float32,
            use_lite_mode=True,
        )  # fmt: skip
    return out


def deepen(folder: Path, layers: int) -> None:
    """Replace the folder's transformer by a random-init one of the same config with `layers` blocks."""
    import json

    import diffusers

    config = json.loads((folder / "transformer" / "config.json").read_text())
    model_class = getattr(diffusers, config["_class_name"])
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    model_class.from_config({**config, "num_layers": layers}).save_pretrained(folder / "transformer")


def session_for(kind: str, root: Path, image_model: Path, steps: int, layers: int) -> Session:
    folder = mirror(root / kind, kind)
    deepen(folder, layers)
    s = Session.from_pretrained(image_model, folder, device="cpu", dtype=torch.float32)
    if kind in SIZES:
        s.size = SIZES[kind]
    rng = np.random.RandomState(0)
    width, height = s.size
    s.image = (rng.rand(height, width, 3) * 255).astype(np.uint8)
    s.motion, s.content_strength, s.steps = MOTION, 0.0, steps
    return s


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def generate(s: Session, config, lam: float, layer: np.ndarray) -> tuple[Callable[[], None], Callable[[], tuple]]:
    """A generate at `lam` (a paint edit when lam < 1) with `config` switched on before it."""

    def setup() -> None:
        s.enable_cache(config)
        if lam < 1:
            s.paint(layer)
        else:
            s.clear_paint()
        s.cache.clear()

    def run() -> tuple[float, np.ndarray]:
        frames = s.generate(seed=0, lam=lam, progress=False).frames
        return s.last_timings["denoise"], frames

    return setup, run


def medians(cases: dict[str, tuple[Callable, Callable]], repeats: int) -> tuple[dict[str, tuple], dict]:
    """Median (denoise, total) seconds of each case's run (its setup untimed) and each case's last frames."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    outputs: dict[str, np.ndarray] = {}
    names = list(cases)
    for round_ in range(repeats + 1):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            setup, run = cases[name]
            setup()
            start = time.perf_counter()
            denoise, outputs[name] = run()
            if round_:  # round 0 warms up
                times[name].append((denoise, time.perf_counter() - start))
    return {name: tuple(statistics.median(x) for x in zip(*v, strict=True)) for name, v in times.items()}, outputs


def measure(kind: str, root: Path, image_model: Path, repeats: int, steps: int, layers: int) -> dict:
    s = session_for(kind, root, image_model, steps, layers)
    layer = np.zeros((s.size[1], s.size[0], 4), np.uint8)
    layer[4:20, 4:20] = (255, 220, 0, 255)
    result: dict = {"size": s.size, "frames": s.num_frames, "steps": s.steps, "layers": layers, "rows": {}}
    for lam in (1.0, 0.5):
        configs = caches(kind)
        cases = {name: generate(s, config, lam, layer) for name, config in configs.items()}
        seconds, frames = medians(cases, repeats)
        for name in configs:
            (denoise, total), (plain_denoise, plain_total) = seconds[name], seconds["none"]
            result["rows"][(lam, name)] = {
                "denoise": denoise, "speedup": plain_denoise / denoise, "total_speedup": plain_total / total,
                "psnr": psnr(frames[name], frames["none"]),
                "levels": int(np.abs(frames[name].astype(int) - frames["none"].astype(int)).max()),
            }  # fmt: skip
    s.disable_cache()
    return result


def table(results: dict[str, dict]) -> str:
    lines = [
        "| family (tiny folder) | size, frames, steps, layers | lam | cache | denoise s | speed-up (denoise) "
        "| speed-up (generate) | PSNR vs none dB | max levels |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in results.items():
        (w, h), f, n = r["size"], r["frames"], r["steps"]
        for (lam, name), row in r["rows"].items():
            shown = "inf" if math.isinf(row["psnr"]) else f"{row['psnr']:.1f}"
            lines.append(
                f"| {kind} | {w}x{h}, {f}, {n}, {r['layers']} | {lam:g} | {name} | {row['denoise']:.3f} "
                f"| {row['speedup']:.2f} | {row['total_speedup']:.2f} | {shown} | {row['levels']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        image_model = save_tiny_models(root / "sd", seed=0)["image_model"]
        for kind in args.kinds.split(","):
            results[kind] = measure(kind, root, image_model, args.repeats, args.steps, args.layers)
            print(kind, "done", flush=True)
    text = table(results)
    print(text)
    if args.write_results:
        when = datetime.date.today().isoformat()
        header = (
            f"{SECTION}\n\n`python benchmarks/step_cache.py --repeats {args.repeats} --steps {args.steps} "
            f"--layers {args.layers} --threads {args.threads}` ({when}, {platform.processor() or platform.machine()}, "
            f"torch {torch.__version__}, {args.threads} thread(s)). Medians of {args.repeats} interleaved rounds "
            "after a warm-up; stage caches cleared before each run. lam 1: no edit; lam 0.5: the blend of a paint edit "
            "(4 transformer rows a step). FBC t: FirstBlockCache with threshold t (0.0 never skips: the cost of "
            "the per-branch contexts alone); TaylorSeer lite /k: a full step every k after 3 warm-up steps.\n\n"
            f"{CAVEATS}\n\n"
        )
        write_section(header + text + "\n")
    return text


if __name__ == "__main__":
    main()
