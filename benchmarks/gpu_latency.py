"""The paper's Table 2 for this project: time per instruction on random-init hub-layout mirrors.

Weights do not change time or memory, so the rows run on `ivcore.testing.mirror` folders
(SD1.5 + PIA condition adapter + an AnimateLCM-style LoRA) loaded through the public
`Session.from_pretrained`, exactly as real weights load:

- image instruction: a new image through img2img (content_strength 0.6, `image_steps`)
- content instruction: a new prompt: text encoding + img2img
- trajectory instruction: new trajectories: animate + motion preview (no diffusion)
- motion instruction: the full video (lam 1: one branch, 2 UNet rows a call with guidance)
- lam 0 (the edited branch only, 2 rows), a blend at lam 0.5 (4 rows a call: Eq. 4), a 5-lambda
  sweep (`Session.sweep`), and few-step previews (LCM 4 steps, guidance 1, the LoRA loaded)

On CUDA (default when present): width 1.0 (the real sizes), float16, 512 x 512, 16 frames, 25
steps, with peak memory (`torch.cuda.max_memory_allocated`) next to `Session.memory_plan()`;
`--t4` repeats the video rows under a 15 GB cap (`torch.cuda.set_per_process_memory_fraction`)
to stand for a Colab T4. Without CUDA (or with `--device cpu`) a small mode runs anywhere, in
CI too: width 0.25, 128 x 128, 4 frames, 2 steps, float32. Only its ratios mean anything.

    python benchmarks/gpu_latency.py                     # CUDA: the full table
    python benchmarks/gpu_latency.py --device cpu --width 0.25 --size 128 --frames 4 --steps 2
    python benchmarks/gpu_latency.py --device cpu --write-results   # update benchmarks/RESULTS.md
    python benchmarks/gpu_latency.py --family wan2.2-ti2v-5b        # a DiT family at full size (family_latency.py)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, also when imported from tests

from bench_harness import RESULTS, write_section  # noqa: E402

from ivcore import Session, Trajectory  # noqa: E402
from ivcore.testing import mirror  # noqa: E402

CPU_SECTION = "## GPU latency (Table 2): CPU small mode"
GPU_SECTION = "## GPU latency (Table 2): GPU"
# the paper (RTX 4090, fp16): image 19.34 ms, content 31.47 ms, trajectory 77.35 ms, motion 12.22 s
PAPER_MS = {"image": 19.34, "content": 31.47, "trajectory": 77.35, "motion": 12220.0}
SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0)
GIB = 1024**3
T4_BYTES = 15 * GIB
# targets on an H100/H200 (issue 11); checked only on CUDA at full size
TARGETS = {"motion": ("<= 6 s", 6000.0), "fewstep": ("<= 2 s", 2000.0)}
BLEND_TARGET = 2.05
T4_PEAK_TARGET = 12 * GIB


@dataclass
class Row:
    key: str
    label: str
    median_ms: float
    unet_calls: int = 0
    unet_rows: int = 0
    peak_bytes: int | None = None
    plan_bytes: int | None = None
    capped: bool = False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if cuda else "cpu")
    p.add_argument("--width", type=float, help="mirror width (default 1.0 on CUDA, 0.25 on CPU)")
    p.add_argument("--size", type=int, help="frame side in pixels, a multiple of 64 (512 / 128)")
    p.add_argument("--frames", type=int, help="frames per video (16 / 4)")
    p.add_argument("--steps", type=int, help="video and image steps (25 / 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per row first")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--mirrors", type=Path, help="folder for the mirrors (default: a temporary folder)")
    p.add_argument("--t4", action="store_true", help="CUDA: repeat the video rows under a 15 GB cap")
    p.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    gpu = args.device == "cuda"
    for name, full, small in (("width", 1.0, 0.25), ("size", 512, 128), ("frames", 16, 4), ("steps", 25, 2)):
        if getattr(args, name) is None:
            setattr(args, name, full if gpu else small)
    if args.size % 64:
        p.error(f"--size {args.size}: a multiple of 64 (the latents are downsampled 3 times)")
    if gpu and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here; use --device cpu")
    return args


def build_mirrors(root: Path, width: float, device: str) -> dict[str, Path]:
    """SD1.5, PIA's adapter and the few-step LoRA; only the weight variant the device loads."""
    variants = ("fp16",) if device == "cuda" else (None,)
    return {
        "sd15": mirror(root / "sd15", "sd15", width, variants=variants),
        "pia": mirror(root / "pia", "pia", width),
        "fewstep": mirror(root / "animatelcm", "animatelcm-lora", width),
    }


def scene(size: int, shift: int = 0) -> Image.Image:
    """A deterministic picture; `shift` rolls it so every timed image is new to the stage cache."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[:size, :size].astype(np.float32)
    img = np.stack([xs * 200 / size + 30, ys * 180 / size + 40, (xs + ys) * 90 / size + 50], -1)
    img += rng.normal(0, 8, img.shape)
    img[size // 5 : size // 3, size // 5 : size // 3] = (230, 80, 60)
    return Image.fromarray(np.roll(np.clip(img, 0, 255).astype(np.uint8), shift, axis=1))


def stroke(size: int) -> np.ndarray:
    layer = np.zeros((size, size, 4), np.uint8)
    layer[size // 3 : size // 3 + size // 8, size // 4 : size - size // 4] = (255, 30, 30, 255)
    return layer


def make_session(paths: dict[str, Path], args: argparse.Namespace) -> Session:
    dtype = torch.float16 if args.device == "cuda" else torch.float32
    s = Session.from_pretrained(
        paths["sd15"], paths["sd15"], motion_adapter=paths["pia"], device=args.device, dtype=dtype
    )
    s.size = (args.size, args.size)
    s.image = scene(args.size)
    s.content, s.motion = "a red fox in snow", "the fox runs"
    s.num_frames, s.steps, s.image_steps = args.frames, args.steps, args.steps
    s.paint(stroke(args.size))  # an edit, so that x~' differs from x~ (lam < 1 has work to do)
    return s


class UNetCounter:
    """Counts video UNet calls and batch rows (5-D input: rows are videos) with a forward pre-hook."""

    def __init__(self, unet: torch.nn.Module):
        self.calls = self.rows = 0
        self.handle = unet.register_forward_pre_hook(self.hook)

    def hook(self, module, inputs) -> None:
        self.calls += 1
        self.rows += int(inputs[0].shape[0])

    def reset(self) -> None:
        self.calls = self.rows = 0


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(run: Callable[[int], object], args: argparse.Namespace, counter: UNetCounter) -> tuple[float, int, int, int]:
    """Median ms over `repeats` runs after `warmup` runs; UNet calls and rows of the last run; peak bytes."""
    for i in range(args.warmup):
        run(-1 - i)
    times = []
    for i in range(args.repeats):
        counter.reset()
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(args.device)
        start = time.perf_counter()
        run(i)
        sync(args.device)
        times.append((time.perf_counter() - start) * 1000)
    peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else None
    return statistics.median(times), counter.calls, counter.rows, peak


def measure(s: Session, paths: dict[str, Path], args: argparse.Namespace, capped: bool = False) -> list[Row]:
    """Every row once; `capped`: the video rows only (the T4 stand-in)."""
    counter = UNetCounter(s.video_backend.unet)
    size = args.size
    rows: list[Row] = []

    def add(key: str, label: str, run: Callable[[int], object], lam: float | None = None) -> None:
        ms, calls, unet_rows, peak = timed(run, args, counter)
        plan = s.memory_plan(lam=lam)["total"] if lam is not None else None
        rows.append(Row(key, label, ms, calls, unet_rows, peak, plan, capped))

    def video(lam: float) -> Callable[[int], object]:
        def run(i: int) -> object:
            s.cache.clear()  # text, VAE encode, denoise and decode each time: the whole P_video
            return s.generate(lam=lam, seed=0, progress=False)

        return run

    if not capped:
        s.content_strength = 0.6

        def image_instruction(i: int) -> object:
            s.image = scene(size, shift=i + 2)  # a new image, same prompt (text cached)
            return s.intermediate(edited=False)

        def content_instruction(i: int) -> object:
            s.content = f"a red fox in snow, take {i + 2}"  # a new prompt: text + img2img
            return s.intermediate(edited=False)

        def trajectory_instruction(i: int) -> object:
            c = size / 2
            s.trajectories = [Trajectory([(c, c), (c + size / 4, c - size / 8 + i + 2)])]
            return s.motion_preview()

        add("image", f"image instruction: img2img ({args.steps} steps x strength 0.6)", image_instruction)
        add("content", "content instruction: prompt change + img2img", content_instruction)
        add("trajectory", "trajectory instruction: animate + motion preview", trajectory_instruction)
        s.trajectories = []
    s.content_strength = 0.0  # x~ = x: the video rows time P_video alone
    s.paint(stroke(size))  # a new image drops the paint: paint again, so that x~' differs from x~
    add("motion", f"motion instruction: full video, lam 1 ({args.frames} frames x {args.steps} steps)", video(1.0), 1.0)
    add("lam0", "lam 0: the edited branch only", video(0.0), 0.0)
    add("blend", "blend, lam 0.5 (Eq. 4)", video(0.5), 0.5)

    def sweep(i: int) -> object:
        s.cache.clear()
        return s.sweep(list(SWEEP), seed=0, progress=False)

    add("sweep", "5-lambda sweep (0, .25, .5, .75, 1)", sweep)  # no plan: memory_plan takes one lam
    s.use_few_step(steps=4, guidance=1.0, lora=paths["fewstep"])
    try:
        add("fewstep", "few-step: LCM 4 steps, cfg 1, LoRA, lam 1", video(1.0), 1.0)
        add("fewstep_blend", "few-step blend, lam 0.5", video(0.5), 0.5)
    finally:
        s.use_default_sampler()
    counter.handle.remove()
    return rows


def table(rows: list[Row], gpu: bool) -> str:
    motion = {r.capped: r.median_ms for r in rows if r.key == "motion"}
    head = "| row | ms | / motion | UNet calls x rows | plan GB |" + (" peak GB |" if gpu else "")
    lines = [head, "|---|---:|---:|---:|---:|" + ("---:|" if gpu else "")]
    for r in rows:
        calls = f"{r.unet_calls} x {r.unet_rows // max(r.unet_calls, 1)}" if r.unet_calls else "-"
        plan = f"{r.plan_bytes / GIB:.2f}" if r.plan_bytes else "-"
        label = r.label + (" [15 GB cap]" if r.capped else "")
        line = f"| {label} | {r.median_ms:.1f} | {r.median_ms / motion[r.capped]:.3f} | {calls} | {plan} |"
        if gpu:
            line += f" {r.peak_bytes / GIB:.2f} |" if r.peak_bytes is not None else " - |"
        lines.append(line)
    return "\n".join(lines)


def checks(rows: list[Row]) -> list[str]:
    """The issue's H100/H200 targets, as lines of text (CUDA at full size only)."""
    by = {(r.key, r.capped): r for r in rows}
    out = [
        f"- {key}: {by[(key, False)].median_ms / 1000:.2f} s, target {text}: "
        f"{'met' if by[(key, False)].median_ms <= limit else 'NOT met'}"
        for key, (text, limit) in TARGETS.items()
    ]
    ratio = by[("blend", False)].median_ms / by[("motion", False)].median_ms
    out.append(
        f"- blend / plain: {ratio:.2f}x, target <= {BLEND_TARGET}x: {'met' if ratio <= BLEND_TARGET else 'NOT met'}"
    )
    capped = [r.peak_bytes for r in rows if r.capped and r.peak_bytes is not None]
    if capped:
        peak = max(capped)
        out.append(f"- peak under the 15 GB cap: {peak / GIB:.2f} GB, target <= 12 GB: "
                   f"{'met' if peak <= T4_PEAK_TARGET else 'NOT met'}")  # fmt: skip
    return out


def machine(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"{os.cpu_count()}-core {platform.machine()} CPU, Python {platform.python_version()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} torch thread(s), load average {load}"
    )


def report(rows: list[Row], args: argparse.Namespace) -> str:
    gpu = args.device == "cuda"
    command = (
        f"python benchmarks/gpu_latency.py --device {args.device} --width {args.width} --size {args.size} "
        f"--frames {args.frames} --steps {args.steps} --repeats {args.repeats}" + (" --t4" if args.t4 else "")
    )
    text = [
        CPU_SECTION if not gpu else GPU_SECTION,
        "",
        f"`{command}` ({datetime.date.today().isoformat()}): {machine(args.device)}. Random-init mirrors "
        f"(`ivcore.testing.mirror`, width {args.width}) loaded through `Session.from_pretrained`; "
        f"{'float16' if gpu else 'float32'}, {args.size} x {args.size}, medians of {args.repeats} runs after "
        f"{args.warmup} warm-up run(s); the stage cache is cleared before every video run "
        "(text, VAE encode, denoise, decode). "
        "'/ motion' is the ratio to the plain video (lam 1) measured in the same run; 'plan GB' is "
        "`Session.memory_plan()['total']` for the row's lam.",
        "",
        table(rows, gpu),
        "",
        "Paper (RTX 4090, fp16, 16 frames x 25 steps): image 19.34 ms, content 31.47 ms, trajectory "
        "77.35 ms, motion 12.22 s, 16 GB.",
    ]
    if gpu and args.width == 1.0:
        text += ["", *checks(rows)]
    return "\n".join(text) + "\n"


NO_GPU = (
    f"{GPU_SECTION}\n\nNot yet measured: no GPU was lent to the task that wrote this script. On a CUDA "
    "machine, `python benchmarks/gpu_latency.py --t4 --write-results` runs the full table (width 1.0, "
    "512 x 512, 16 frames, 25 steps, fp16, with peak memory and the 15 GB rows) and replaces this section.\n"
)


def run(args: argparse.Namespace) -> list[Row]:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.mirrors or Path(tmp)
        paths = build_mirrors(root, args.width, args.device)
        s = make_session(paths, args)
        rows = measure(s, paths, args)
        if args.t4 and args.device == "cuda":
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, T4_BYTES / total))
            try:
                rows += measure(s, paths, args, capped=True)
            finally:
                torch.cuda.set_per_process_memory_fraction(1.0)
    return rows


def main(argv: list[str] | None = None) -> str:
    given = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--family" or a.startswith("--family=") for a in given):  # the DiT families: their own script
        import family_latency

        return family_latency.main(given)
    args = parse_args(argv)
    rows = run(args)
    text = report(rows, args)
    print(text)
    if args.write_results:
        write_section(text)
        if args.device == "cpu" and GPU_SECTION + "\n" not in RESULTS.read_text():
            write_section(NO_GPU)
    return text


if __name__ == "__main__":
    main()
