"""Time and memory per generate on a DiT video family at full size, random-init from its configs (no weights).

Weights change neither time nor memory, so the family's transformer, VAE and encoders are built on the
GPU from `ivcore.backends.dit_configs` (bf16, random-init) beside SD1.5 as P_img, and run through the
same `Session` users run: the plain video (lam 1), the edited branch alone (lam 0) and the blend of
Eq. 4 (lam 0.5 with paint: both branches), each with its peak memory (`torch.cuda.max_memory_allocated`)
next to `s.memory_plan()` for the same settings, under the memory options given (`Session.set_memory`).

    python benchmarks/gpu_latency.py --family wan2.2-ti2v-5b                  # native size and frames
    python benchmarks/gpu_latency.py --family wan2.1-i2v-14b-480p --offload group --fp8 --vae-tiling
    python benchmarks/family_latency.py --family ltx-video-0.9 --size 768x512 --frames 121 --write-results
    python benchmarks/family_latency.py --family wan2.1-i2v-14b-480p --tiny   # CPU: the tiny mirror instead

`--tiny` runs the family's tiny hub-layout mirror on the CPU (CI's smoke test): only the code path, no
timing worth reading.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_harness import write_section  # noqa: E402

from ivcore import Session  # noqa: E402
from ivcore.backends.dit_configs import FULL_SIZE, full_size_backend  # noqa: E402
from ivcore.testing import mirror  # noqa: E402

TINY_MIRROR = {  # full-size kind -> the tiny mirror of its layout (--tiny)
    "wan2.1-i2v-14b-480p": "wan2.1-i2v", "wan2.1-i2v-14b-720p": "wan2.1-i2v", "wan2.2-i2v-a14b": "wan2.2-i2v-a14b",
    "wan2.2-ti2v-5b": "wan2.2-ti2v-5b", "cogvideox-5b-i2v": "cogvideox-5b-i2v", "ltx-video-0.9": "ltx-video-0.9.0-i2v",
    "ltx-video-0.9.7-distilled": "ltx-video-0.9.7-distilled", "hunyuanvideo-1.5-480p-i2v": "hunyuanvideo-1.5-480p-i2v",
}  # fmt: skip
ROWS = {"motion (lam 1)": 1.0, "edited branch (lam 0)": 0.0, "blend (lam 0.5, Eq. 4)": 0.5}
GIB = 2**30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", required=True, choices=sorted(FULL_SIZE), help="the full-size family to build")
    p.add_argument("--tiny", action="store_true", help="the family's tiny mirror on the CPU (smoke test)")
    p.add_argument("--size", help="WxH (default: the family's native size)")
    p.add_argument("--frames", type=int, help="frames (default: the family's)")
    p.add_argument("--steps", type=int, help="denoising steps (default: 4 with --tiny, else the family's)")
    p.add_argument("--offload", choices=("model", "group"), help="Session.set_memory(offload=...)")
    p.add_argument("--fp8", action="store_true", help="Session.set_memory(fp8=True)")
    p.add_argument("--vae-tiling", action="store_true", help="Session.set_memory(vae_tiling=True)")
    p.add_argument("--max-rows", type=int, help="video_backend.max_rows")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per row (median)")
    p.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        p.error("full-size families need a CUDA device (a 14B model does not fit a CPU run); use --tiny here")
    return args


def make_session(args: argparse.Namespace, root: Path) -> Session:
    if args.tiny:
        from ivcore.backends.tiny import save_tiny_models

        image = save_tiny_models(root / "tiny")["image_model"]
        kind = TINY_MIRROR[args.family]
        video = mirror(root / kind, kind)  # the folder named as the release (LTX: "-distilled" picks its schedule)
        return Session.from_pretrained(image, video, device="cpu", dtype=torch.float32)
    from ivcore.backends.image_configs import full_size_image_backend

    video = full_size_backend(args.family, torch.bfloat16, "cuda")
    image = full_size_image_backend("sd15", torch.bfloat16, "cuda")
    return Session(image, video, **{k: v for k, v in video.defaults.items() if k in ("steps", "guidance")})


def measure(s: Session, args: argparse.Namespace) -> list[dict]:
    cuda = s.video_backend.device.type == "cuda"
    width, height = s.size
    s.image = np.random.RandomState(0).randint(0, 256, (height, width, 3), dtype=np.uint8)
    s.content, s.motion, s.content_strength = "a fox in a field", "the fox runs to the left", 0.5
    layer = np.zeros((height, width, 4), np.uint8)
    layer[height // 4 : height // 2, width // 4 : width // 2] = (255, 220, 0, 255)
    s.paint(layer)
    rows = []
    for label, lam in ROWS.items():
        times = []
        for _ in range(args.repeats + 1):  # the first is a warm-up
            s.cache.clear()
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            s.generate(lam=lam)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() if cuda else None
        rows.append(dict(label=label, seconds=statistics.median(times[1:]), peak=peak, plan=s.memory_plan(lam=lam)))
    return rows


def report(rows: list[dict], s: Session, args: argparse.Namespace) -> str:
    width, height = s.size
    base = rows[0]["seconds"]
    device = torch.cuda.get_device_name(0) if s.video_backend.device.type == "cuda" else "CPU (tiny mirror)"
    options = ", ".join(f"{k}={v}" for k, v in s.memory.to_dict().items())
    lines = [
        f"## DiT family latency: {args.family}{' (tiny mirror, CPU)' if args.tiny else ''}",
        "",
        f"`python benchmarks/family_latency.py --family {args.family}{' --tiny' if args.tiny else ''}` "
        f"({datetime.date.today().isoformat()}, {device}): {width} x {height}, {s.num_frames} frames, {s.steps} "
        f"steps, guidance {s.guidance}, memory options {options}, max_rows {s.video_backend.max_rows}; "
        f"random-init from the configs, medians of {args.repeats} runs after a warm-up, the stage cache cleared "
        "before each run. 'peak' is torch.cuda.max_memory_allocated, 'plan' Session.memory_plan()['total'].",
        "",
        "| generate | s | / lam 1 | peak GiB | plan GiB |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        peak = "-" if row["peak"] is None else f"{row['peak'] / GIB:.2f}"
        lines.append(
            f"| {row['label']} | {row['seconds']:.2f} | {row['seconds'] / base:.2f} | {peak} | "
            f"{row['plan']['total'] / GIB:.2f} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> tuple[list[dict], str]:
    with tempfile.TemporaryDirectory() as tmp:
        s = make_session(args, Path(tmp))
        if args.size:
            s.size = tuple(int(v) for v in args.size.lower().split("x"))
        if args.frames:
            s.num_frames = args.frames
        s.steps = args.steps or (4 if args.tiny else s.steps)
        s.set_memory(offload=args.offload, fp8=args.fp8, vae_tiling=args.vae_tiling)
        s.video_backend.max_rows = args.max_rows
        rows = measure(s, args)
        return rows, report(rows, s, args)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    _, text = run(args)
    print(text)
    if args.write_results:
        write_section(text)
    return text


if __name__ == "__main__":
    main()
