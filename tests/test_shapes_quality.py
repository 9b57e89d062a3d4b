"""The shipped shapes-world models do what the instructions say (a fast subset of benchmarks/quality.py).

Random-init models fail every check here: these tests are what says the method works end to end
(motion text, Eq. 4 with paint, trajectory path mode), on held-out scenes, on the CPU.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from ivcore import Session
from ivcore.shapes import evaluate as ev
from ivcore.shapes import world

# quality checks of the shipped models: minutes on a CPU, run by CI (pytest -m slow)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shapes():
    return Session.shapes(seed=0)


def test_loads_offline_fast_and_through_the_diffusers_layout(shapes):
    start = time.perf_counter()
    again = Session.shapes(seed=0)
    assert time.perf_counter() - start < 15  # about a second on an idle CPU; generous for a busy runner
    assert type(again.video_backend.unet).__name__ == "UNetMotionModel"
    assert again.video_backend.unet.config.in_channels == 9
    assert again.video_backend.scheduler.config.prediction_type == "v_prediction"
    assert again.size == (64, 64) and again.num_frames == 8


def test_vae_reconstructs_the_world(shapes):
    assert ev.vae_psnr(shapes.video_backend.vae, count=16) >= 27


def test_frame0_copies_x_and_motion_text_moves_the_named_shape(shapes):
    scores = [ev.score_motion(shapes, i, "move") for i in range(4)]
    assert np.mean([s.frame0_psnr for s in scores]) >= 22
    assert sum(s.ok for s in scores) >= MOTION_MIN, [(s.caption, s.shift) for s in scores]


def test_camera_pans_shift_every_shape_and_keep_its_colour(shapes):
    # the video UNet with the tiny preset's 1 layer per block lost a shape's colour in 4 of these 12
    # pans; grown to 2 layers per block, in 2 (benchmarks/RESULTS.md)
    scores = [ev.score_motion(shapes, i, "pan") for i in range(12)]
    assert sum(s.ok for s in scores) >= 9, [(s.caption, s.shift) for s in scores]


def test_a_two_segment_story_follows_both_texts_across_a_clean_seam(shapes):
    """'the X moves right', continue from its last frame, 'the X moves down' (benchmarks/quality.py --only stories)."""
    scores = [ev.score_story(shapes, i) for i in range(2)]
    assert all(all(s.followed) for s in scores), scores
    assert min(s.seam_psnr for s in scores) >= 30 and all(s.kept for s in scores), scores
    assert len(shapes.story) == 2 and shapes.story.video.num_frames == 2 * 8 - 1


def test_paint_is_there_at_lam_0_and_gone_at_lam_1(shapes):
    for index in range(2):
        score = ev.score_paint(shapes, index, lams=(0.0, 1.0))
        assert score[0.0]["present"] >= 0.75, score
        assert score[1.0]["area"] < 0.1, score


def test_path_mode_brings_the_shape_to_the_end_point(shapes):
    path = [ev.score_trajectory(shapes, i, mode="path") for i in range(2)]
    none = [ev.score_trajectory(shapes, i, mode=None) for i in range(2)]
    assert np.mean([p["end"] for p in path]) <= 6, path
    assert np.mean([p["objmc"] for p in path]) < np.mean([n["objmc"] for n in none]), (path, none)


MOTION_MIN = 3


def test_p_img_draws_a_caption_s_colours_and_shapes(shapes):
    # benchmark: every named shape right in 87.5 % of 48 captions, named colours in 100 %
    scores = [ev.score_caption(shapes, i) for i in range(8)]
    assert sum(s["all"] for s in scores) >= 6, scores
    assert np.mean([s["colours"] for s in scores]) >= 0.95, scores


class _Oracle:
    """A stand-in session whose video is the world's own clip: what a perfect model would make."""

    def __init__(self, clip, frames=None):
        self.clip, self.frames = clip, clip.frames if frames is None else frames
        self.size = clip.frames.shape[2:0:-1]  # (W, H): the scorers draw their scenes at the session's size

    def clear_paint(self) -> None:
        pass

    def generate(self, seed: int, progress: bool):
        assert np.array_equal(np.asarray(self.image), self.clip.frames[0])  # scored from the clip's first frame
        return SimpleNamespace(frames=self.frames)


@pytest.mark.parametrize("kind", ["move", "pan", "still"])
def test_the_motion_scores_give_the_world_s_own_clips_full_marks(kind):
    # the benchmark's misses (pans, temporal consistency) are the model's: the true clips pass every check
    for index in range(6):
        clip = world.random_clip(ev.HELDOUT + index, kind=kind)
        score = ev.score_motion(_Oracle(clip), index, kind)
        assert score.ok and score.consistent == 1.0, (kind, index, score)
        assert score.frame0_psnr > 60


def test_the_vae_keeps_every_shape_of_a_true_pan(shapes):
    # where pans lose small light shapes (RESULTS.md): not in the VAE. The true clips, encoded and
    # decoded by the shipped VAE, still pass (48 / 48 on the benchmark's pans 0-47)
    import torch

    from ivcore.shapes.data import pixels

    vae = shapes.video_backend.vae
    for index in range(6):
        clip = world.random_clip(ev.HELDOUT + index, kind="pan")
        x = pixels(clip.frames)
        with torch.no_grad():
            y = vae.decode(vae.encode(x).latent_dist.mean).sample
        frames = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        score = ev.score_motion(_Oracle(clip, frames), index, "pan")
        assert score.ok and score.consistent == 1.0, (index, score)
