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
from family_helpers import MOTION, levels, picture, yellow_square

from ivcore import Session
from ivcore.backends import qwen_image  # noqa: F401 (the mirror's processor class resolves from it)
from ivcore.stages.images import composite
from ivcore.testing import mirror

MEASURED: dict[str, int] = {}  # uint8 levels from the oracle, printed at the end (-s)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen")
    return {kind: mirror(root / kind, kind) for kind in ("qwen-image-edit", "wan2.1-i2v")}


def make_session(folders, **kwargs) -> Session:
    s = Session.from_pretrained(
        folders["qwen-image-edit"], folders["wan2.1-i2v"], device="cpu", dtype=torch.float32, **kwargs
    )
    s.image = picture(s.size)
    s.content, s.motion = "turn the square into a sun", MOTION
    s.content_strength = 0.6
    return s


@pytest.fixture(scope="module")
def session(folders):
    return make_session(folders, image_steps=3)


@pytest.fixture(scope="module")
def oracle_pipe(folders):
    from diffusers import QwenImageEditPipeline

    pipe = QwenImageEditPipeline.from_pretrained(str(folders["qwen-image-edit"]))
    pipe.set_progress_bar_config(disable=True)
    return pipe


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
    s.content_strength = 0.0
    try:
        assert np.array_equal(np.asarray(s.intermediate(edited=False)), np.asarray(s.image))
        s.paint(yellow_square(s.size))
        assert np.array_equal(np.asarray(s.intermediate()), np.asarray(composite(s.image, s.paint_layer)))
    finally:
        s.content_strength = 0.6
        s.clear_paint()


def test_an_edit_family_runs_the_same_edit_for_every_strength_above_0(session):
    s = session
    s.negative_prompt, s.image_guidance = "", 4.0
    s.content_strength = 0.3
    low = np.asarray(s.intermediate(edited=False))
    misses = s.stats["image"]["misses"]
    s.content_strength = 1.0
    assert np.array_equal(np.asarray(s.intermediate(edited=False)), low)
    assert s.stats["image"]["misses"] == misses  # one cache entry for every strength above 0
    s.content_strength = 0.6


def test_generate_with_qwen_edit_and_wan_and_restore_the_take_bitwise(session, tmp_path):
    s = session
    s.content, s.negative_prompt, s.image_guidance = "turn the square into a sun", "", 4.0
    s.paint(yellow_square(s.size))
    s.lam = 0.4
    first = s.generate(seed=3, num_frames=5, progress=False)
    assert first.frames.shape == (5, 48, 64, 3)
    s.content, s.lam = "a wolf", 0.9
    s.generate(seed=4, num_frames=5, progress=False)
    s.restore(s.takes[-2])
    s.cache.clear()  # P_img and the video recomputed, not read back
    assert np.array_equal(s.generate(num_frames=5, progress=False).frames, first.frames)
    s.save(tmp_path / "saved")
    loaded = Session.load(tmp_path / "saved")
    assert type(loaded.image_backend).__name__ == "QwenImageEditBackend"
    assert np.array_equal(np.asarray(loaded.intermediate()), np.asarray(s.intermediate()))


def test_report_measured_levels():
    """Prints what the oracle tests measured (run with -s)."""
    print("\nQwen-Image-Edit x~ / x~' vs QwenImageEditPipeline, max uint8 levels:", MEASURED)
