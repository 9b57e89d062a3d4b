"""Session.shapes: the shipped models load offline, save/load keeps the preset, the demo and widgets use it."""

from __future__ import annotations

import av
import numpy as np
import pytest

from ivcore import Session
from ivcore.shapes import world


@pytest.fixture(scope="module")
def shapes():
    return Session.shapes(seed=0, steps=4)


def test_models_and_defaults(shapes):
    assert shapes.models == {"preset": "shapes", "seed": 0}
    assert shapes.steps == 4 and shapes.content_strength == 0.0
    assert shapes.image_backend.tokenizer.tokenize("the red circle moves left") == [
        "the</w>", "red</w>", "circle</w>", "moves</w>", "left</w>",
    ]  # fmt: skip


def test_save_load_keeps_the_preset_and_the_next_video(shapes, tmp_path):
    clip = world.heldout_clip(0, kind="move")
    shapes.image = clip.frames[0]
    shapes.motion = clip.motion
    shapes.content_strength = 0.0
    video = shapes.generate(seed=1, progress=False)
    loaded = Session.load(shapes.save(tmp_path / "s"))
    assert loaded.models == shapes.models
    assert np.array_equal(loaded.generate(seed=1, progress=False).frames, video.frames)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises((OSError, ValueError)):
        Session.shapes(folder=tmp_path / "nothing-here")


def test_demo_writes_a_video_of_shapes(tmp_path):
    from ivcore.cli import main

    out = tmp_path / "demo.mp4"
    assert main(["demo", "--out", str(out), "--steps", "6"]) == 0
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 8 and container is not None
    # the picture is the world's: sky on top, grass below, the scene's shapes in their colours
    first = frames[0]
    assert np.linalg.norm(first[2, 2].astype(float) - world.SKY_TOP, axis=-1) < 40
    assert world.segment(first, "red").sum() > 40  # the red circle


def test_paint_canvas_offers_the_world_palette(shapes):
    from ivwidgets import PaintCanvas

    canvas = PaintCanvas(shapes)
    assert canvas.color == world.hex_colour(world.PALETTE["yellow"])
    assert canvas.swatches == [world.hex_colour(c) for c in world.PALETTE.values()]
    assert PaintCanvas(Session.tiny()).swatches == []
