"""The shapes world: the public contract (palette, shapes, captions) and that clips are what they say."""

from __future__ import annotations

import numpy as np
import pytest

from ivcore.shapes import world
from ivcore.shapes.models import shapes_tokenizer


def test_palette_shapes_and_sizes_are_the_contract():
    assert world.PALETTE == {
        "red": (220, 50, 50), "green": (60, 190, 80), "blue": (60, 100, 230),
        "yellow": (240, 210, 60), "white": (240, 240, 240),
    }  # fmt: skip
    assert world.SHAPES == ("circle", "square", "triangle")
    assert (world.SIZE, world.FRAMES, world.FPS) == (64, 8, 8)
    clip = world.random_clip(3)
    assert clip.frames.shape == (8, 64, 64, 3) and clip.frames.dtype == np.uint8


def test_same_seed_same_clip_and_heldout_seeds_are_apart():
    a, b = world.random_clip(11), world.random_clip(11)
    assert np.array_equal(a.frames, b.frames) and a.caption == b.caption and a.motion == b.motion
    assert not np.array_equal(world.random_clip(12).frames, a.frames)
    assert world.heldout_clip(0).frames is not None
    assert world.HELDOUT_SEEDS.start >= world.TRAIN_SEEDS.stop


@pytest.mark.parametrize("index", range(6))
def test_move_clips_move_the_named_shape_the_captioned_way(index):
    clip = world.random_clip(100 + index, kind="move")
    shape = clip.scene.shapes[clip.mover]
    assert clip.motion == f"the {shape.colour} {shape.kind} moves {clip.direction}"
    track = world.track(clip.frames, shape.colour)
    dx, dy = world.DIRECTIONS[clip.direction]
    moved = (track[-1][0] - track[0][0]) * dx + (track[-1][1] - track[0][1]) * dy
    assert 2 * 7 - 1 <= moved <= 4 * 7 + 1  # 2-4 px a frame over 7 frame steps
    for i, other in enumerate(clip.scene.shapes):
        if i != clip.mover:
            t = world.track(clip.frames, other.colour)
            assert max(abs(p[0] - t[0][0]) + abs(p[1] - t[0][1]) for p in t) == 0


def test_pan_shifts_everything_opposite_the_camera_and_still_stays():
    for seed in range(5):
        clip = world.random_clip(200 + seed, kind="pan")
        sign = -1 if clip.direction == "right" else 1
        assert clip.motion == f"the camera pans {clip.direction}"
        for shape in clip.scene.shapes:
            t = world.track(clip.frames, shape.colour)
            assert all(p is not None for p in t), "shapes stay in view during a pan"
            assert sign * (t[-1][0] - t[0][0]) >= 13
        still = world.random_clip(300 + seed, kind="still")
        assert still.motion == "nothing moves"
        assert np.array_equal(still.frames[0], still.frames[-1])


def test_path_clips_follow_their_trajectory_and_captions_name_shapes():
    from ivcore.trajectory import animate

    clip = world.random_clip(7, kind="path")
    shape = clip.scene.shapes[clip.mover]
    assert clip.motion == f"the {shape.name} follows the path"
    # the cut-and-paste animation along the true path is close to the true clip
    collage = animate(clip.frames[0], [clip.trajectory], world.FRAMES)
    assert np.abs(collage.astype(int) - clip.frames.astype(int)).mean() < 3
    caption = clip.scene.caption(with_background=True)
    assert caption.startswith("a ") and caption.endswith(f"on {clip.scene.background}")
    assert all(s.name in caption for s in clip.scene.shapes)
    assert len({s.colour for s in clip.scene.shapes}) == len(clip.scene.shapes)


def test_segmentation_finds_each_shape_and_classifies_it():
    hits = 0
    total = 0
    for seed in range(20):
        clip = world.random_clip(400 + seed, kind="still")
        for i, shape in enumerate(clip.scene.shapes):
            seg = world.segment(clip.frames[0], shape.colour)
            truth = world.shape_mask(clip.scene, i)
            assert (seg & truth).sum() / (seg | truth).sum() > 0.95
            total += 1
            hits += world.classify_shape(truth) == shape.kind
    assert hits / total > 0.9


def test_sky_is_not_blue_and_hills_move_in_a_pan():
    clip = world.random_clip(0, kind="pan", background="sky", num_shapes=1)
    assert world.segment(clip.frames[0], "blue").sum() <= (clip.scene.shapes[0].colour == "blue") * 400
    assert not np.array_equal(clip.frames[0][40:], clip.frames[-1][40:])


def test_tokenizer_gives_every_world_word_one_token():
    tokenizer = shapes_tokenizer()
    for word in world.VOCABULARY:
        assert len(tokenizer.tokenize(word)) == 1, word
    ids = {d: tuple(tokenizer(f"the red circle moves {d}").input_ids) for d in world.DIRECTIONS}
    assert len(set(ids.values())) == 4
    assert len(tokenizer.tokenize("an unknown word")) > 3  # still tokenizes, by bytes
