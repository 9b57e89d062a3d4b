"""Quality of the method on the shapes world, measured like the paper's Table 1 but with ground truth.

The paper scores InteractiveVideo with CLIP, FVD and user studies on real videos. The shapes
world knows the truth, so each instruction is scored directly by colour segmentation
(`ivcore.shapes.evaluate`), on held-out seeds never seen in training:

* VAE reconstruction PSNR; frame 0 of a generated video against x (content_strength 0).
* Motion text: the named shape moves >= 6 px the captioned way; "nothing moves" stays within 2 px;
  camera pans shift every shape the opposite way.
* P_img: a scene generated from its caption (strength 1) holds the named colours and shapes;
  img2img at strength 0.5 keeps positions within 3 px.
* Eq. 4: a square painted on x is there at lam = 0 (IoU >= 0.5) and gone at lam = 1 (< 10 % of its
  area); its area over lam is the teaching curve.
* Trajectories: ObjMC (mean px between the generated and the requested track) in path mode,
  endpoint mode and with no trajectory; the end point; an anchored shape's drift.
* Temporal consistency: frames whose set of shape colours equals frame 0's.
* Stories (`Session.continue_from`): "the X moves right", then from its last frame "the X moves
  down": both segments followed; the seam (the next segment's first frame against the last frame
  it continued from) in dB; every shape kept in its colour and place across the seam.

A share of clips or scenes is shown with its count and 95 % Wilson interval; camera pans, the
noisiest row, are scored on every scene.

`--size 96x64` draws, renders and scores the held-out scenes at that size (the models are
convolutional, trained at 64 x 64); `--only motion,paint,trajectory` runs those groups of rows
(vae, motion, caption, paint, trajectory, stories).

    python benchmarks/quality.py [--scenes 16] [--first 0] [--folder DIR] [--json out.json]
        [--only stories|motion,paint,trajectory] [--size 96x64]

Prints a markdown table (metric, target, measured, pass) for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from ivcore import Session
from ivcore.shapes import evaluate as ev


def _mean(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


def share_row(oks) -> tuple[float, tuple[int, int]]:
    """A pass share in percent and its (passed, counted) pair, for rows that count clips or scenes."""
    oks = [bool(ok) for ok in oks]
    return 100 * _mean(oks), (sum(oks), len(oks))


GROUPS = ("vae", "motion", "caption", "paint", "trajectory", "stories")


def parse_only(text: str | None) -> tuple[str, ...]:
    """`--only motion,paint` as the groups of rows to run, in the table's order (None: all of them)."""
    if text is None:
        return GROUPS
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in GROUPS]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(f"--only: {text!r}; give groups of {', '.join(GROUPS)} joined by commas")
    return tuple(g for g in GROUPS if g in wanted)


def measure(
    session: Session, scenes: int, progress: bool = True, first: int = 0, only: tuple[str, ...] = GROUPS
) -> list[dict]:
    """Run every check (or the groups in `only`) over `scenes` held-out scenes from index `first`; rows of
    metric, target, value, passed, count.

    `count` is (passed, counted) for rows that are a share of clips or scenes, else None. The table
    in RESULTS.md is scenes 0-47; choose checkpoints on others (`--first 100`) so it stays unbiased.
    The scenes are drawn at the session's size (`ivcore.shapes.evaluate`).
    """
    every, half = range(first, first + scenes), range(first, first + max(4, scenes // 2))
    rows: list[dict] = []

    def row(name: str, target: str, value: float, passed: bool, count: tuple[int, int] | None = None) -> None:
        rows.append(dict(metric=name, target=target, value=value, passed=bool(passed), count=count))
        if progress:
            print(f"  {name}: {value:.3g} ({target}) {'pass' if passed else 'MISS'}", flush=True)

    if "vae" in only:
        size = getattr(session, "size", None)  # a stand-in session without one scores the world's 64 x 64
        sized = {"size": tuple(size)} if size is not None else {}
        psnr = ev.vae_psnr(session.video_backend.vae, count=8 * scenes, offset=first, **sized)
        row("VAE reconstruction PSNR (dB)", ">= 28", psnr, psnr >= 28)
    if "motion" in only:
        _motion(session, every, half, row)
    if "caption" in only:
        _captions(session, every, row)
    if "paint" in only:
        _paint(session, half, row)
    if "trajectory" in only:
        _trajectories(session, half, row)
    if "stories" in only:
        rows += measure_stories(session, len(half), progress, first)
    return rows


def _motion(session: Session, every: range, half: range, row) -> None:
    """Motion text, camera pans, stills: frame 0 against x, shares and temporal consistency."""
    moves = [ev.score_motion(session, i, "move") for i in every]
    stills = [ev.score_motion(session, i, "still") for i in half]
    pans = [ev.score_motion(session, i, "pan") for i in every]  # the noisiest row: all scenes
    f0 = _mean([m.frame0_psnr for m in moves + stills + pans])
    row("frame 0 vs x, content_strength 0 (dB)", ">= 24", f0, f0 >= 24)
    share, count = share_row(m.ok for m in moves)
    row("motion text: named shape moves >= 6 px the captioned way", ">= 90 %", share, share >= 90, count)
    row("motion text: mean shift the captioned way (px)", "(20 px in the data)", _mean([m.shift for m in moves]), True)
    share, count = share_row(m.ok for m in stills)
    row('"nothing moves": every shape within 2 px', ">= 90 %", share, share >= 90, count)
    share, count = share_row(m.ok for m in pans)
    row("camera pans: shapes shift >= 6 px opposite the pan", ">= 90 %", share, share >= 90, count)
    consistent = _mean([m.consistent for m in moves + stills + pans])
    row("temporal consistency: frames with frame 0's shape colours", ">= 95 %", 100 * consistent, consistent >= 0.95)


def _captions(session: Session, every: range, row) -> None:
    """P_img from a caption (strength 1) and img2img at strength 0.5."""
    captions = [ev.score_caption(session, i) for i in every]
    share, count = share_row(c["all"] for c in captions)
    row("P_img from caption: all named colours and shapes", ">= 80 %", share, share >= 80, count)
    row("P_img from caption: named colours present", "(context)", 100 * _mean([c["colours"] for c in captions]), True)
    moved = [ev.score_img2img(session, i) for i in every]
    share, count = share_row(m <= 3 for m in moved)
    row("img2img strength 0.5: every shape within 3 px", ">= 90 %", share, share >= 90, count)


def _paint(session: Session, half: range, row) -> None:
    """Eq. 4 on a painted square: there at lam 0, gone at lam 1, and the curve between."""
    paints = [ev.score_paint(session, i) for i in half]
    at0 = _mean([p[0.0]["present"] for p in paints])
    row("Eq. 4: painted square present at lam 0 (IoU >= 0.5)", ">= 90 % of frames", 100 * at0, at0 >= 0.9)
    at1 = _mean([p[1.0]["area"] for p in paints])
    row("Eq. 4: painted square area at lam 1", "< 10 %", 100 * at1, at1 < 0.1)
    for lam in (0.0, 0.25, 0.5, 0.75, 1.0):
        row(f"Eq. 4 curve: painted area at lam {lam}", "(curve)", 100 * _mean([p[lam]["area"] for p in paints]), True)


def _trajectories(session: Session, half: range, row) -> None:
    """ObjMC and end point in path mode, the endpoint and no-trajectory baselines, an anchor's drift."""
    for mode in ("path", "endpoint", None):
        scores = [ev.score_trajectory(session, i, mode=mode) for i in half]
        objmc, end = _mean([s["objmc"] for s in scores]), _mean([s["end"] for s in scores])
        label = mode or "no trajectory"
        if mode == "path":
            row("trajectory ObjMC, path mode, lam 0 (px)", "<= 3", objmc, objmc <= 3)
            row("trajectory end point error, path mode (px)", "<= 4", end, end <= 4)
        else:
            row(f"trajectory ObjMC, {label} (px)", "(baseline)", objmc, True)
    drifts = [d for d in (ev.score_anchor(session, i) for i in half) if d is not None]
    drift = _mean(drifts)
    row("anchor: anchored shape's max drift (px)", "<= 1.5", drift, drift <= 1.5)


def measure_stories(session: Session, scenes: int, progress: bool = True, first: int = 0) -> list[dict]:
    """The story rows alone (`--only stories`): two-segment stories on `scenes` held-out scenes."""
    stories = [ev.score_story(session, i) for i in range(first, first + scenes)]
    rows: list[dict] = []
    share, count = share_row(all(s.followed) for s in stories)
    rows.append(dict(metric='stories: "moves right", continue, "moves down": both followed', target=">= 90 %",
                     value=share, passed=share >= 90, count=count))  # fmt: skip
    seam = _mean([s.seam_psnr for s in stories])
    rows.append(dict(metric="stories: seam, next segment's frame 0 vs the last frame (dB)", target=">= 30",
                     value=seam, passed=seam >= 30, count=None))  # fmt: skip
    share, count = share_row(s.kept for s in stories)
    rows.append(dict(metric="stories: shapes and colours kept across the seam", target=">= 95 %",
                     value=share, passed=share >= 95, count=count))  # fmt: skip
    if progress:
        for r in rows:
            print(f"  {r['metric']}: {r['value']:.3g} ({r['target']}) {'pass' if r['passed'] else 'MISS'}", flush=True)
    return rows


def parse_size(text: str) -> tuple[int, int]:
    """`--size 96x64` as (96, 64); the session refuses a size its models cannot take."""
    from ivcore.sizes import parse_size as parse

    size = parse(text)
    if size is None:
        raise argparse.ArgumentTypeError(f"--size: {text!r}; give WIDTHxHEIGHT, e.g. 96x64")
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=16, help="held-out scenes per check (default 16)")
    parser.add_argument("--first", type=int, default=0, help="held-out index of the first scene (default 0)")
    parser.add_argument("--folder", help="trained models (train-shapes --out); default: the shipped ones")
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--only", type=parse_only, default=GROUPS, help=f"groups of rows, joined by commas: {', '.join(GROUPS)}"
    )
    parser.add_argument("--size", type=parse_size, help="WIDTHxHEIGHT of the held-out scenes (default 64x64)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    session = Session.shapes(folder=args.folder, **({"size": args.size} if args.size else {}))
    scenes = f"{args.scenes} held-out scenes per check from {args.first}"
    print(f"shapes models, {scenes}, groups {','.join(args.only)}, settings: {session!r}", flush=True)
    rows = measure(session, args.scenes, first=args.first, only=args.only)
    print()
    print(ev.metrics_table(rows))
    targets = [r for r in rows if not r["target"].startswith("(")]
    print(f"\n{sum(r['passed'] for r in targets)}/{len(targets)} targets met; {time.perf_counter() - start:.0f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
