"""Qwen-Image-Edit as P_img behind the Session: diffusers' QwenImageEditPipeline is the oracle.

The image model runs from a tiny folder in the hub layout of Qwen/Qwen-Image-Edit (`ivcore.testing.mirror`:
tiny Qwen2.5-VL with its vision tower, a processor built in code), loaded through `Session.from_pretrained`
with a tiny Wan 2.1 I2V folder as P_video. The oracle is loaded from the same folder by diffusers itself. Its
auto-resolution (the reference scaled to a 1024 x 1024 area by `calculate_dimensions`) is replaced by the
session's size, the one change that makes it P_img at the session's size.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from family_helpers import levels, yellow_square
from image_helpers import (
    VIDEO,
    assert_one_edit_above_0,
    assert_strength_0_gives_x,
    assert_take_restores_bitwise,
    image_folders,
    image_session,
    oracle_pipeline,
)

from ivcore import Session
from ivcore.backends import qwen_image  # noqa: F401 (the mirror's processor class resolves from it)
from ivcore.stages.images import composite

MEASURED: dict[str, int] = {}  # uint8 levels from the oracle, printed at the end (-s)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return image_folders(tmp_path_factory, "qwen", ("qwen-image-edit",))


def make_session(folders, **kwargs) -> Session:
    return image_session(folders["qwen-image-edit"], folders[VIDEO], "turn the square into a sun", **kwargs)


@pytest.fixture(scope="module")
def session(folders):
    return make_session(folders, image_steps=3)


@pytest.fixture(scope="module")
def oracle_pipe(folders):
    return oracle_pipeline("QwenImageEditPipeline", folders["qwen-image-edit"])


def oracle(pipe, s: Session, image, monkeypatch) -> np.ndarray:
    """The pipeline on `image` with the content text, the negative prompt (the model card's " " for none),
    true CFG at the session's image guidance, its steps and seed, at the session's size."""
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit as module

    width, height = s.size
    monkeypatch.setattr(module, "calculate_dimensions", lambda area, ratio: (width, height, None))
    out = pipe(
        image=image, prompt=s.content, negative_prompt=s.negative_prompt or " ", true_cfg_scale=s.image_guidance,
        height=height, width=width, num_inference_steps=s.image_steps, generator=torch.Generator().manual_seed(s.seed),
    )  # fmt: skip
    return np.asarray(out.images[0])


def test_the_family_and_its_defaults_come_from_the_folder(folders):
    index = json.loads((folders["qwen-image-edit"] / "model_index.json").read_text())
    assert index["_class_name"] == "QwenImageEditPipeline"
    s = make_session(folders)
    backend = s.image_backend
    assert type(backend).__name__ == "QwenImageEditBackend" and backend.edits
    assert (s.image_steps, s.image_guidance) == (50, 4.0)  # the model card's steps and true CFG
    assert backend.size_multiple == 16 and s.size == (64, 48)
    assert type(backend.text_encoder).__name__ == "Qwen2_5_VLForConditionalGeneration"


@pytest.mark.parametrize("negative, guidance", [("", 4.0), ("blurry, dark", 3.0), ("", 1.0)])
def test_x_tilde_is_the_pipeline_on_x_and_x_tilde_edited_on_x_plus_paint(
    session, oracle_pipe, monkeypatch, negative, guidance
):
    s = session
    s.clear_paint()
    s.negative_prompt, s.image_guidance = negative, guidance
    x_tilde = np.asarray(s.intermediate(edited=False))
    found = levels(x_tilde, oracle(oracle_pipe, s, s.image, monkeypatch))
    assert levels(x_tilde, np.asarray(s.image)) > 50  # it did edit
    s.paint(yellow_square(s.size))
    x_tilde_edited = np.asarray(s.intermediate())
    edited = levels(x_tilde_edited, oracle(oracle_pipe, s, composite(s.image, s.paint_layer), monkeypatch))
    assert not np.array_equal(x_tilde_edited, x_tilde)  # the paint reached P_img (the VL encoder and the tokens)
    MEASURED[f"negative {negative!r}, true_cfg {guidance}"] = max(found, edited)
    assert found <= 1 and edited <= 1


def test_content_strength_0_gives_x_exactly(session):
    s = session
    s.clear_paint()
    try:
        assert_strength_0_gives_x(s)
    finally:
        s.content_strength = 0.6
        s.clear_paint()


def test_an_edit_family_runs_the_same_edit_for_every_strength_above_0(session):
    s = session
    s.negative_prompt, s.image_guidance = "", 4.0
    assert_one_edit_above_0(s)
    s.content_strength = 0.6


def test_generate_with_qwen_edit_and_wan_and_restore_the_take_bitwise(session, tmp_path):
    s = session
    s.content, s.negative_prompt, s.image_guidance = "turn the square into a sun", "", 4.0
    assert_take_restores_bitwise(s, tmp_path, "QwenImageEditBackend")


def test_report_measured_levels():
    """Prints what the oracle tests measured (run with -s)."""
    print("\nQwen-Image-Edit x~ / x~' vs QwenImageEditPipeline, max uint8 levels:", MEASURED)
