"""FLUX.2 klein as P_img behind the Session: diffusers' Flux2KleinPipeline is the oracle.

The image model runs from a tiny folder in the hub layout of FLUX.2 klein 4B (`ivcore.testing.mirror(folder,
"flux2-klein")`: Qwen3 text encoder with a word-level tokenizer and chat template, AutoencoderKLFlux2 with drawn
batch-norm statistics, `is_distilled` in model_index.json), loaded through `Session.from_pretrained(image_model,
video_model)` with a tiny LTX-Video folder as P_video (96 x 64: klein's image processor takes no side under 64).
The oracle is loaded from the same folder by diffusers itself, not built over the session's modules.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from family_helpers import levels, picture, yellow_square
from image_helpers import (
    assert_one_edit_above_0,
    assert_strength_0_gives_x,
    assert_take_restores_bitwise,
    image_folders,
    image_session,
    oracle_pipeline,
)

from ivcore import InstructionError, Session
from ivcore.stages.images import composite
from ivcore.testing import mirror

KIND, VIDEO = "flux2-klein", "ltx-video-0.9.0-i2v"
MEASURED: dict[str, int] = {}  # uint8 levels from the oracle, printed at the end (-s)


@pytest.fixture(scope="session")
def klein_folders(tmp_path_factory):
    folders = image_folders(tmp_path_factory, "flux2", (KIND,), video=VIDEO)
    base = folders[KIND].parent / "flux2-klein-base"  # the same weights as a base (not step-distilled) model: CFG runs
    shutil.copytree(folders[KIND], base)
    index = json.loads((base / "model_index.json").read_text())
    (base / "model_index.json").write_text(json.dumps({**index, "is_distilled": False}))
    folders["base"] = base
    return folders


def make_session(folders, kind: str = KIND, dtype: torch.dtype = torch.float32, **kwargs) -> Session:
    return image_session(folders[kind], folders[VIDEO], "turn the square into a sun", dtype=dtype, **kwargs)


@pytest.fixture(scope="module")
def oracles(klein_folders):
    return {kind: oracle_pipeline("Flux2KleinPipeline", klein_folders[kind]) for kind in (KIND, "base")}


def oracle(pipe, s: Session, image, **extra) -> np.ndarray:
    """The pipeline on `image` (the reference) at the session's size with its content text, image steps, image
    guidance and seed."""
    width, height = s.size
    options = dict(
        prompt=s.content, image=image, height=height, width=width, num_inference_steps=s.image_steps,
        guidance_scale=s.image_guidance, generator=torch.Generator().manual_seed(s.seed), **extra,
    )  # fmt: skip
    return np.asarray(pipe(**options).images[0])


def test_the_family_and_its_defaults_come_from_the_folder(klein_folders):
    index = json.loads((klein_folders[KIND] / "model_index.json").read_text())
    assert index["_class_name"] == "Flux2KleinPipeline" and index["is_distilled"] is True
    s = make_session(klein_folders)
    backend = s.image_backend
    assert type(backend).__name__ == "Flux2KleinBackend" and backend.edits and backend.is_distilled
    assert s.models["image_model"].endswith(KIND)
    assert (s.image_steps, s.image_guidance) == (4, 1.0)  # distilled: 4 steps, guidance ignored
    assert backend.size_multiple == 16 and backend.transformer.config.guidance_embeds is False
    assert type(backend.text_encoder).__name__ == "Qwen3ForCausalLM"
    assert type(backend.vae).__name__ == "AutoencoderKLFlux2"
    assert s.size == (96, 64)  # the video family's native size: P_img runs at it
    base = make_session(klein_folders, "base")
    assert not base.image_backend.is_distilled and (base.image_steps, base.image_guidance) == (50, 4.0)


@pytest.mark.parametrize("kind, negative", [(KIND, ""), ("base", ""), ("base", "blurry, dark")])
def test_x_tilde_is_the_pipeline_on_x_and_x_tilde_edited_on_x_plus_paint(klein_folders, oracles, kind, negative):
    s = make_session(klein_folders, kind, image_steps=4)
    s.negative_prompt = negative
    extra = {}
    if negative:  # the pipeline's negative prompt is always "": another one goes in as its embeddings
        extra["negative_prompt_embeds"] = s.image_backend.encode_prompt(negative).embeds
    x_tilde = np.asarray(s.intermediate(edited=False))
    found = levels(x_tilde, oracle(oracles[kind], s, s.image, **extra))
    assert levels(x_tilde, np.asarray(s.image)) > 50  # it did edit
    s.paint(yellow_square(s.size))
    painted = composite(s.image, s.paint_layer)
    x_tilde_edited = np.asarray(s.intermediate())
    edited = levels(x_tilde_edited, oracle(oracles[kind], s, painted, **extra))
    assert not np.array_equal(x_tilde_edited, x_tilde)  # the paint reached P_img (the reference tokens)
    MEASURED[f"{kind}, negative {negative!r}"] = max(found, edited)
    assert found <= 1 and edited <= 1


def test_the_distilled_model_ignores_image_guidance_and_the_base_model_does_not(klein_folders):
    s = make_session(klein_folders, image_steps=2)
    plain = np.asarray(s.intermediate(edited=False))
    s.image_guidance = 5.0
    assert np.array_equal(np.asarray(s.intermediate(edited=False)), plain)
    base = make_session(klein_folders, "base", image_steps=2)
    base.image_guidance = 1.0
    one = np.asarray(base.intermediate(edited=False))
    assert np.array_equal(one, plain)  # guidance 1: one branch, the distilled model's very loop
    base.image_guidance = 5.0
    assert not np.array_equal(np.asarray(base.intermediate(edited=False)), one)


def test_float16_loads_bfloat16_and_matches_the_pipeline_in_bfloat16(klein_folders):
    s = make_session(klein_folders, dtype=torch.float16, image_steps=2)
    backend = s.image_backend
    assert backend.dtype == backend.text_encoder.dtype == backend.vae.dtype == torch.bfloat16
    pipe = oracle_pipeline("Flux2KleinPipeline", klein_folders[KIND], dtype=torch.bfloat16)
    found = levels(np.asarray(s.intermediate(edited=False)), oracle(pipe, s, s.image))
    MEASURED["bfloat16 (CPU)"] = found
    assert found <= 1


def test_content_strength_0_gives_x_exactly_and_every_strength_above_0_the_same_edit(klein_folders):
    s = make_session(klein_folders, image_steps=2)
    assert_strength_0_gives_x(s)
    assert_one_edit_above_0(s)


def test_sizes_the_image_processor_cannot_take_raise_naming_size(klein_folders):
    s = make_session(klein_folders, image_steps=2)
    with pytest.raises(InstructionError, match="size.*at least 64"):
        s.size = (96, 32)  # a multiple of 32, but klein refuses a side under 64
    assert s.size == (96, 64)
    s.size = (128, 64)
    assert s.intermediate(edited=False).size == (128, 64)


def test_a_video_family_with_a_smaller_native_side_gets_a_default_size_klein_takes(klein_folders, tmp_path):
    wan = mirror(tmp_path / "wan2.1-i2v", "wan2.1-i2v")  # 64 x 48 native
    s = Session.from_pretrained(klein_folders[KIND], wan, device="cpu", dtype=torch.float32, image_steps=1)
    assert s.size == (96, 64)  # the shortest side brought to 64, the shape kept, multiples of 16
    s.image, s.content, s.content_strength = picture(s.size), "a sun", 1.0
    assert s.intermediate(edited=False).size == (96, 64)
    with pytest.raises(InstructionError, match="size"):
        s.size = (64, 48)


def test_generate_with_klein_and_ltx_and_restore_the_take_bitwise(klein_folders, tmp_path):
    s = make_session(klein_folders, image_steps=2)
    assert_take_restores_bitwise(s, tmp_path, "Flux2KleinBackend", num_frames=9, steps=2)


def test_report_measured_levels():
    """Prints what the oracle tests measured (run with -s)."""
    print("\nFLUX.2 klein x~ / x~' vs Flux2KleinPipeline, max uint8 levels:", MEASURED)
