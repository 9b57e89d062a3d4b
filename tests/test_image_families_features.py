"""Every image family keeps what SD1.5 had (issue 37 item 4): the Studio's x~ / x~' previews, `s.commit()`, stories.

One tiny Wan 2.1 I2V video side for all; each image family through `from_pretrained` on its hub-layout mirror.
The oracle tests of each family live in its own file (test_sdxl, test_flux, ...); here the session's features.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from family_helpers import yellow_square
from image_helpers import image_folders, image_session
from PIL import Image

from ivwidgets import Studio

KINDS = ("sdxl", "flux-dev", "flux-kontext", "flux2-klein", "qwen-image-edit", "z-image")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return image_folders(tmp_path_factory, "image-features", KINDS)


@pytest.fixture(params=KINDS)
def session(request, folders):
    s = image_session(folders[request.param], folders["wan2.1-i2v"])
    s.image_steps, s.steps, s.num_frames = 2, 2, 5
    s.paint(yellow_square(s.size))
    return s


def _png(value: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(value))).convert("RGB"))


def test_the_studio_shows_both_intermediates(session):
    st = Studio(session)
    st.refresh()
    assert st.editor._jobs.wait(120)
    base, edited = _png(st.x_tilde.value), _png(st.x_tilde_edited.value)
    assert base.shape == edited.shape == (session.size[1], session.size[0], 3)
    assert np.array_equal(base, np.asarray(session.intermediate(edited=False)))
    assert np.array_equal(edited, np.asarray(session.intermediate(edited=True)))
    assert session.stats["image"]["misses"] == 2  # x~ and x~' each through P_img once, then from the cache


def test_commit_makes_the_edited_intermediate_the_image(session):
    edited = np.asarray(session.intermediate(edited=True))
    session.commit()
    assert np.array_equal(np.asarray(session.image), edited)
    assert session.paint_layer is None and session.content_strength == 0.0
    assert np.array_equal(np.asarray(session.intermediate(edited=False)), edited)  # strength 0: x~ is x


def test_a_story_continues_from_the_last_frame(session):
    first = session.generate(seed=0)
    session.continue_from()
    assert np.array_equal(np.asarray(session.image), first.frames[-1])
    second = session.generate(seed=1)
    assert len(session.story.segments) == 1 and second.frames.shape == first.frames.shape
