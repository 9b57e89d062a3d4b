"""What the image stage (P_img: x -> x~) costs on each image family, as ratios to SD1.5's, side by side in one run.

For every image family registered in `ivcore.backends.image_families` that has a tiny hub-layout mirror
(`ivcore.testing.mirror`: sdxl, flux-dev, flux-kontext, flux2-klein, and qwen-image-edit / z-image where
registered), and for SD1.5 from the tiny models' folder, one session each through `Session.from_pretrained`
with the same tiny LTX-Video folder as P_video (96 x 64, which every family takes), the same picture, content
text and seed, and content_strength 1 (every img2img step runs; an edit family runs its edit). Timed: x~ =
`s.intermediate(edited=False)`

1. at the family's own defaults (`image_steps`, `image_guidance`: what a user gets), and
2. at a common 4 steps (the family's guidance), which compares the cost of one step's worth of models;

each with the text stage cached (P_img alone: what painting reruns) and cold (the content and negative prompts
encoded too: what changing the content text costs). Every case runs once per round, the order rotating each
round, after one warm-up round; medians. The torch thread count is fixed.

    python benchmarks/image_families.py [--repeats 5] [--threads 1] [--kinds sdxl,...] [--write-results]
"""

from __future__ import annotations

import argparse
import datetime
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
from ivcore.backends import image_families  # noqa: E402
from ivcore.backends.tiny import save_tiny_models  # noqa: E402
from ivcore.testing import mirror  # noqa: E402

SECTION = "## Image families: x~ latency against SD1.5 (tiny folders)"
PREFERRED = ("sdxl", "flux-dev", "flux-kontext", "flux2-klein", "qwen-image-edit", "z-image")
VIDEO = "ltx-video-0.9.0-i2v"
COMMON_STEPS = 4
CONTENT = "turn the square into a sun"


def available_kinds() -> tuple[str, ...]:
    """The preferred kinds that are registered now (other helpers add families), then any other image mirror."""
    registered = image_families.mirror_kinds()
    return tuple(k for k in PREFERRED if k in registered) + tuple(
        k for k in registered if k not in PREFERRED and k != "sdxl-turbo" and k != "flux-schnell"
    )


def session_for(image_model: Path, video_model: Path) -> Session:
    s = Session.from_pretrained(image_model, video_model, device="cpu", dtype=torch.float32)
    rng = np.random.RandomState(0)
    width, height = s.size
    s.image = (rng.rand(height, width, 3) * 255).astype(np.uint8)
    s.content, s.content_strength = CONTENT, 1.0
    return s


def forget(s: Session, stages: tuple[str, ...]) -> None:
    """Drop the cached results of `stages` only, so the timed run really runs them."""
    with s.cache._lock:
        for key in [k for k in s.cache._entries if k[0] in stages]:
            _, size = s.cache._entries.pop(key)
            s.cache._bytes -= size


def x_tilde(s: Session, steps: int, cold: bool) -> Callable[[], object]:
    def run() -> object:
        s.image_steps = steps
        forget(s, ("image", "text") if cold else ("image",))
        return s.intermediate(edited=False)

    return run


def medians(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(repeats + 1):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            start = time.perf_counter()
            cases[name]()
            if round_:  # round 0 warms up
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}


def measure(kinds: tuple[str, ...], repeats: int, root: Path) -> dict[str, dict]:
    """{family: {"defaults": (steps, guidance), "size": (W, H), "default" / "default cold" / "common" /
    "common cold": median seconds}}, SD1.5 first."""
    video = mirror(root / VIDEO, VIDEO)
    folders = {"sd15": save_tiny_models(root / "sd", seed=0)["image_model"]}
    folders.update({kind: mirror(root / kind, kind) for kind in kinds})
    sessions = {kind: session_for(folder, video) for kind, folder in folders.items()}
    info, cases = {}, {}
    for kind, s in sessions.items():
        steps, guidance = s.image_steps, s.image_guidance
        info[kind] = {
            "defaults": (steps, guidance),
            "size": s.size,
            "edits": bool(getattr(s.image_backend, "edits", 0)),
        }
        for label, n in (("default", steps), ("common", COMMON_STEPS)):
            cases[f"{kind}|{label}"] = x_tilde(s, n, cold=False)
            cases[f"{kind}|{label} cold"] = x_tilde(s, n, cold=True)
    for name, seconds in medians(cases, repeats).items():
        kind, label = name.split("|")
        info[kind][label] = seconds
    return info


def table(results: dict[str, dict]) -> str:
    base = results["sd15"]
    lines = [
        "| family (tiny folder) | kind | size | defaults (steps, guidance) | x~ s, defaults | / SD1.5 | cold / SD1.5 "
        f"| x~ s, {COMMON_STEPS} steps | / SD1.5 | cold / SD1.5 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in results.items():
        (w, h), (steps, guidance) = r["size"], r["defaults"]
        lines.append(
            f"| {kind} | {'edit' if r['edits'] else 'img2img'} | {w}x{h} | {steps}, {guidance:g} | {r['default']:.3f} "
            f"| {r['default'] / base['default']:.2f} | {r['default cold'] / base['default cold']:.2f} "
            f"| {r['common']:.3f} | {r['common'] / base['common']:.2f} | {r['common cold'] / base['common cold']:.2f} |"
        )
    return "\n".join(lines)


NOTE = (
    "content_strength 1 on every family (every img2img step runs; an edit family's edit always runs every step). "
    "`x~ s`: P_img with the text stage cached, what painting reruns; `cold`: the content and negative prompts "
    "encoded too. SD1.5 is the tiny models' UNet (`Session.tiny`'s image side).\n\n"
    "What these numbers can say: that every family runs x~ through the same session path at the video's size, "
    "and how the stage's cost splits into steps, fixed work (VAE encode and decode, an edit family's reference "
    "tokens, Qwen-Image-Edit's vision encoder on the reference) and text encoding, family against family on a "
    "CPU. The part of the defaults columns that comes from the step count carries over to real weights: FLUX.2 "
    "klein's 4 distilled steps and Z-Image Turbo's 8 against SD1.5's 25, SDXL's and Qwen-Image-Edit's 50 and "
    "FLUX.1's 28. What they cannot say: the cost of one step, or of the text encoders, on real models. Every "
    "model here is random-init and a few layers of width 16-64, so a step costs little more than its Python "
    "overhead and a convolution-heavy tiny UNet (SD1.5's, SDXL's) is the slowest per step, the reverse of real "
    "sizes (0.9 B, 2.6 B parameters against FLUX.1's 12 B, klein's 4 B, Qwen-Image's 20 B); the cold columns "
    "weigh tiny text encoders (klein's 27-layer tiny Qwen3 over 512 tokens, twice: content and negative) whose "
    "real sizes (CLIP 123 M, T5-XXL 4.7 B, Qwen3 4 B, Qwen2.5-VL 7 B) differ far more. Real-size ratios need a "
    "GPU run with real weights. The CPU was shared with other jobs: ratios within about 0.2 are noise."
)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kinds", default=None, help="comma-separated image mirror kinds (default: all available)")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    kinds = tuple(args.kinds.split(",")) if args.kinds else available_kinds()
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(kinds, args.repeats, Path(tmp))
    text = table(results)
    print(text)
    if args.write_results:
        when = datetime.date.today().isoformat()
        header = (
            f"{SECTION}\n\n`python benchmarks/image_families.py --repeats {args.repeats} --threads {args.threads}` "
            f"({when}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{args.threads} thread(s)). Medians of {args.repeats} interleaved rounds after a warm-up; each family "
            f"behind the same session path with a tiny LTX-Video folder as P_video; the same picture, text and "
            f"seed.\n\n"
        )
        write_section(header + text + "\n\n" + NOTE + "\n")
    return text


if __name__ == "__main__":
    main()
