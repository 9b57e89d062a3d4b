"""Which shapes a camera pan loses, and in which frame: the diagnosis behind RESULTS.md's pans row.

`quality.py` scores a pan by the first and the last frame only. This looks inside the clips: for
each held-out pan it counts, frame by frame, the shapes whose colour no longer segments (fewer
than 12 pixels, as `ivcore.shapes.evaluate.shapes_present`), and breaks the failed clips down by background,
shape size and colour. `--noise` swaps the starting noise for one correlated over the frames
(PYoCo's progressive noise, or a share common to all frames), a training-free probe.

    python benchmarks/pan_losses.py [--first 100] [--scenes 48] [--folder DIR] [--noise progressive --a 0.5]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from ivcore import Session
from ivcore.shapes import evaluate as ev
from ivcore.shapes import world


def correlated(initial_noise, kind: str, a: float):
    """Wrap a backend's `initial_noise` (B, C, F, h, w) so its frames share noise.

    progressive: frame k = a * frame k-1 + sqrt(1 - a^2) * its own draw; mixed: sqrt(a) * a draw
    common to all frames (from a generator of its own, so the session's later draws stay put) +
    sqrt(1 - a) * its own. Both keep each frame's variance."""

    def draw(shape, generator):
        noise = initial_noise(shape, generator)
        if kind == "progressive":
            out = noise.clone()
            for k in range(1, noise.shape[2]):
                out[:, :, k] = a * out[:, :, k - 1] + (1 - a * a) ** 0.5 * noise[:, :, k]
            return out
        common_shape = (*shape[:2], 1, *shape[3:])
        common = initial_noise(common_shape, torch.Generator().manual_seed(generator.initial_seed() + 1))
        return a**0.5 * common.to(noise) + (1 - a) ** 0.5 * noise

    return draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--first", type=int, default=100, help="held-out index of the first pan (default 100)")
    parser.add_argument("--scenes", type=int, default=48)
    parser.add_argument("--folder", help="trained models (train-shapes --out); default: the shipped ones")
    parser.add_argument("--noise", choices=["independent", "progressive", "mixed"], default="independent")
    parser.add_argument("--a", type=float, default=0.5, help="correlation of --noise (0 to 1)")
    args = parser.parse_args()
    if not 0 <= args.a < 1:
        parser.error(f"--a: got {args.a}; allowed: 0 <= a < 1")
    torch.set_num_threads(2)
    session = Session.shapes(folder=args.folder)
    backend = session.video_backend
    if args.noise != "independent":
        backend.initial_noise = correlated(backend.initial_noise, args.noise, args.a)

    lost_per_frame = np.zeros(world.FRAMES, int)
    shapes, passed, failed, clips, seen, lost_some, consistent = 0, 0, Counter(), Counter(), Counter(), Counter(), []
    for index in range(args.first, args.first + args.scenes):
        clip = world.random_clip(ev.HELDOUT + index, kind="pan")
        ev._reset(session, clip.frames[0], clip.motion)
        frames = session.generate(seed=0, progress=False).frames
        score = ev.score_frames(clip, frames)  # the row's own verdict on this very video
        ok = score.ok
        consistent.append(score.consistent)
        clips[clip.scene.background] += 1
        passed += ok
        if not ok:
            failed[clip.scene.background] += 1
        present = [ev.shapes_present(f, [s.colour for s in clip.scene.shapes]) for f in frames]
        for shape in clip.scene.shapes:
            shapes += 1
            lost = [shape.colour not in colours for colours in present]
            lost_per_frame += np.array(lost, int)
            for group in (shape.colour, "10-12 px" if shape.size <= 12 else "13-18 px"):
                seen[group] += 1
                lost_some[group] += any(lost)
        print(f"{index}: {clip.motion} on {clip.scene.background}: {'ok' if ok else 'FAILED'}", flush=True)

    print(f"\nshapes lost per frame (of {shapes}): {', '.join(map(str, lost_per_frame))}")
    print("failed clips by background: " + ", ".join(f"{b} {failed[b]} / {n}" for b, n in sorted(clips.items())))
    print("shapes lost in some frame: " + ", ".join(f"{k} {lost_some[k]} / {n}" for k, n in sorted(seen.items())))
    total = sum(clips.values())
    print(
        f"pans row: {passed} / {total} ({100 * passed / total:.1f} %), noise {args.noise}; "
        f"frames keeping frame 0's colours {100 * np.mean(consistent):.1f} %"
    )


if __name__ == "__main__":
    main()
