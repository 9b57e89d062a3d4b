"""Z-Image as P_img behind the Session: diffusers' ZImageImg2ImgPipeline is the oracle.

The image model runs from a tiny folder in Z-Image-Turbo's hub layout (`ZImagePipeline`, tiny Qwen3 text
encoder, `ivcore.testing.mirror`), loaded through `Session.from_pretrained` with a tiny Wan 2.1 I2V folder as
P_video. The oracle is loaded from the same folder by diffusers itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from family_helpers import levels, yellow_square
from image_helpers import (
    VIDEO,
    assert_strength_0_gives_x,
    assert_take_restores_bitwise,
    image_folders,
    image_session,
    oracle_pipeline,
)

from ivcore import Session
from ivcore.stages.images import composite

MEASURED: dict[str, int] = {}  # uint8 levels from the oracle, printed at the end (-s)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return image_folders(tmp_path_factory, "zimage", ("z-image",))


def make_session(folders, **kwargs) -> Session:
    return image_session(folders["z-image"], folders[VIDEO], **kwargs)


@pytest.fixture(scope="module")
def session(folders):
    return make_session(folders, image_steps=4)


@pytest.fixture(scope="module")
def oracle_pipe(folders):
    return oracle_pipeline("ZImageImg2ImgPipeline", folders["z-image"])


def oracle(pipe, s: Session, image) -> np.ndarray:
    """The pipeline on `image` with the content text, negative prompt ("" is none), strength, image steps,
    image guidance and seed, at the session's size."""
    width, height = s.size
    out = pipe(
        image=image, prompt=s.content, negative_prompt=s.negative_prompt or None, strength=s.content_strength,
        height=height, width=width, num_inference_steps=s.image_steps, guidance_scale=s.image_guidance,
        generator=torch.Generator().manual_seed(s.seed),
    )  # fmt: skip
    return np.asarray(out.images[0])


def test_the_family_and_its_defaults_come_from_the_folder(folders):
    index = json.loads((folders["z-image"] / "model_index.json").read_text())
    assert index["_class_name"] == "ZImagePipeline"
    s = make_session(folders)
    backend = s.image_backend
    assert type(backend).__name__ == "ZImageBackend" and not backend.edits
    assert (s.image_steps, s.image_guidance) == (8, 0.0)  # Z-Image-Turbo's
    assert backend.size_multiple == 16 and s.size == (64, 48)


@pytest.mark.parametrize(
    "strength, negative, guidance", [(0.6, "", 0.0), (0.3, "", 3.0), (0.7, "blurry, dark", 4.0), (0.05, "", 0.0)]
)
def test_x_tilde_is_the_pipeline_on_x_and_x_tilde_edited_on_x_plus_paint(
    session, oracle_pipe, strength, negative, guidance
):
    s = session
    s.clear_paint()
    s.content_strength, s.negative_prompt, s.image_guidance = strength, negative, guidance
    x_tilde = np.asarray(s.intermediate(edited=False))
    found = levels(x_tilde, oracle(oracle_pipe, s, s.image))
    s.paint(yellow_square(s.size))
    x_tilde_edited = np.asarray(s.intermediate())
    edited = levels(x_tilde_edited, oracle(oracle_pipe, s, composite(s.image, s.paint_layer)))
    assert not np.array_equal(x_tilde_edited, x_tilde)  # the paint reached P_img
    MEASURED[f"strength {strength}, negative {negative!r}, guidance {guidance}"] = max(found, edited)
    assert found <= 1 and edited <= 1


def test_guidance_0_runs_no_negative_branch(session):
    s = session
    s.clear_paint()
    s.content_strength, s.image_guidance, s.negative_prompt = 0.6, 0.0, ""
    plain = np.asarray(s.intermediate(edited=False))
    s.negative_prompt = "blurry"  # ignored without guidance
    assert np.array_equal(np.asarray(s.intermediate(edited=False)), plain)
    s.negative_prompt = ""


def test_content_strength_0_gives_x_exactly(session):
    s = session
    s.clear_paint()
    try:
        assert_strength_0_gives_x(s)
    finally:
        s.content_strength = 0.6
        s.clear_paint()


def test_generate_with_zimage_and_wan_and_restore_the_take_bitwise(session, tmp_path):
    s = session
    s.content, s.negative_prompt, s.image_guidance, s.content_strength = "a fox in the snow", "", 0.0, 0.6
    change = {"content": "a wolf", "lam": 0.9, "content_strength": 0.8}
    assert_take_restores_bitwise(s, tmp_path, "ZImageBackend", change)


def test_report_measured_levels():
    """Prints what the oracle tests measured (run with -s)."""
    print("\nZ-Image x~ / x~' vs ZImageImg2ImgPipeline, max uint8 levels:", MEASURED)
