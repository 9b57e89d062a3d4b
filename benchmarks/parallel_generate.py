"""One generate across the GPUs of one machine: diffusers' context parallelism through `Session.enable_parallelism`.

    torchrun --nproc-per-node 2 benchmarks/parallel_generate.py --video-model Wan-AI/Wan2.2-TI2V-5B-Diffusers
    torchrun --nproc-per-node 4 benchmarks/parallel_generate.py --video-model <folder> --ulysses 4 --out wan.mp4

Every rank builds the same session (same models, instructions and seed), enables the parallel config on
the video transformer(s) and generates; rank 0 writes the mp4 and prints the time against a run of the
same session on its GPU alone (when `--compare`). Weights come from `--video-model` (a hub id or folder);
without weights, `--random-init <kind>` builds a full-size family from `ivcore.backends.dit_configs`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivcore import Session  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--video-model", help="a DiT family's hub id or folder")
    source.add_argument("--random-init", help="a full-size kind of ivcore.backends.dit_configs (no weights)")
    p.add_argument("--image-model", default="stable-diffusion-v1-5/stable-diffusion-v1-5")
    p.add_argument("--ring", type=int, default=1, help="ContextParallelConfig.ring_degree")
    p.add_argument("--ulysses", type=int, help="ContextParallelConfig.ulysses_degree (default: the world size)")
    p.add_argument("--steps", type=int, help="denoising steps (default: the family's)")
    p.add_argument("--out", type=Path, default=Path("parallel.mp4"))
    p.add_argument("--compare", action="store_true", help="also time the same generate without parallelism")
    return p.parse_args(argv)


def build(args: argparse.Namespace, device: torch.device) -> Session:
    if args.video_model:
        return Session.from_pretrained(args.image_model, args.video_model, device=device, dtype=torch.bfloat16)
    from ivcore.backends.dit_configs import full_size_backend
    from ivcore.backends.image_configs import full_size_image_backend

    torch.manual_seed(0)  # the same random weights on every rank
    video = full_size_backend(args.random_init, torch.bfloat16, device)
    image = full_size_image_backend("sd15", torch.bfloat16, device)
    return Session(image, video, **{k: v for k, v in video.defaults.items() if k in ("steps", "guidance")})


def instruct(s: Session, steps: int | None) -> None:
    width, height = s.size
    s.image = np.random.RandomState(0).randint(0, 256, (height, width, 3), dtype=np.uint8)
    s.content, s.motion, s.content_strength, s.lam = "a fox in a field", "the fox runs to the left", 0.0, 1.0
    if steps:
        s.steps = steps


def timed(s: Session) -> tuple[float, object]:
    torch.cuda.synchronize()
    start = time.perf_counter()
    video = s.generate(seed=0)
    torch.cuda.synchronize()
    return time.perf_counter() - start, video


def main(argv: list[str] | None = None) -> None:
    from diffusers import ContextParallelConfig

    args = parse_args(argv)
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(device)
    s = build(args, device)
    instruct(s, args.steps)
    alone = timed(s)[0] if args.compare else None
    ulysses = args.ulysses or world // args.ring
    s.enable_parallelism(ContextParallelConfig(ring_degree=args.ring, ulysses_degree=ulysses))
    s.cache.clear()
    seconds, video = timed(s)
    if rank == 0:
        video.save(args.out)
        line = f"{world} GPUs: {seconds:.2f} s for {s.num_frames} frames at {s.size[0]} x {s.size[1]}, {s.steps} steps"
        print(line + ("" if alone is None else f"; one GPU: {alone:.2f} s ({alone / seconds:.2f}x)"), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
