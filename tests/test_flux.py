"""FLUX.1 as P_img behind the Session: diffusers' FluxImg2ImgPipeline and FluxKontextPipeline are the oracles.

The image models run from tiny folders in the hub layouts of FLUX.1 dev, schnell (`FluxPipeline`) and Kontext
(`FluxKontextPipeline`) (`ivcore.testing.mirror`), loaded through `Session.from_pretrained(image_model,
video_model)` with a tiny Wan 2.1 I2V folder as P_video, the path real weights take. The oracles are loaded from
the same folders by diffusers itself, not built over the session's modules, so a wrong flag or component in our
loader shows up as a difference.
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
    assert_painting_reruns_p_img_for_x_tilde_edited_only,
    assert_strength_0_gives_x,
    assert_take_restores_bitwise,
    image_folders,
    image_session,
    oracle_pipeline,
)

from ivcore import InstructionError, Session
from ivcore.stages.images import composite

KINDS = ("flux-dev", "flux-schnell", "flux-kontext")
MEASURED: dict[str, int] = {}  # uint8 levels from the oracle, printed at the end (-s)


@pytest.fixture(scope="session")
def flux_folders(tmp_path_factory):
    return image_folders(tmp_path_factory, "flux", KINDS)


def make_session(folders, kind: str = "flux-dev", dtype: torch.dtype = torch.float32, **kwargs) -> Session:
    return image_session(folders[kind], folders[VIDEO], dtype=dtype, **kwargs)


@pytest.fixture(scope="module")
def oracles(flux_folders):
    return {kind: oracle_pipeline(pipeline_class(kind), flux_folders[kind]) for kind in KINDS}


def pipeline_class(kind: str) -> str:
    return "FluxKontextPipeline" if kind == "flux-kontext" else "FluxImg2ImgPipeline"


def oracle(pipe, s: Session, image) -> np.ndarray:
    """The pipeline on `image` at the session's size with its content text, negative prompt ("" is none), the
    backend's true CFG scale, strength (img2img), image steps, image guidance and seed. Kontext's resizing is off:
    no preferred resolution (`_auto_resize=False`), no scaling to `max_area`."""
    width, height = s.size
    options = dict(
        prompt=s.content, negative_prompt=s.negative_prompt or None, true_cfg_scale=s.image_backend.true_cfg_scale,
        image=image, height=height, width=width, num_inference_steps=s.image_steps, guidance_scale=s.image_guidance,
        generator=torch.Generator().manual_seed(s.seed),
    )  # fmt: skip
    if type(pipe).__name__ == "FluxKontextPipeline":
        options.update(max_area=width * height, _auto_resize=False)
    else:
        options.update(strength=s.content_strength)
    return np.asarray(pipe(**options).images[0])


@pytest.mark.parametrize("kind", KINDS)
def test_the_family_and_its_defaults_come_from_the_folder(flux_folders, kind):
    index = json.loads((flux_folders[kind] / "model_index.json").read_text())
    assert index["_class_name"] == ("FluxKontextPipeline" if kind == "flux-kontext" else "FluxPipeline")
    s = make_session(flux_folders, kind)
    backend = s.image_backend
    assert type(backend).__name__ == ("FluxKontextBackend" if kind == "flux-kontext" else "FluxImageBackend")
    assert s.models["image_model"].endswith(kind)
    defaults = {"flux-dev": (28, 3.5), "flux-schnell": (4, 0.0), "flux-kontext": (28, 2.5)}[kind]
    assert (s.image_steps, s.image_guidance) == defaults
    assert backend.size_multiple == 16  # the VAE's 8 times the packing's 2
    assert backend.vae.config.latent_channels == 16 and backend.transformer.config.in_channels == 64
    assert backend.scheduler.config.use_dynamic_shifting == (kind != "flux-schnell")
    assert backend.transformer.config.guidance_embeds == (kind != "flux-schnell")
    assert backend.edits == (kind == "flux-kontext") and backend.true_cfg_scale == 1.0
    assert s.size == (64, 48)  # the video family's native size: P_img runs at it


@pytest.mark.parametrize(
    "kind, negative, true_cfg",
    [("flux-dev", "", 1.0), ("flux-dev", "blurry, dark", 4.0), ("flux-schnell", "", 1.0), ("flux-kontext", "", 1.0),
     ("flux-kontext", "blurry, dark", 3.0)],
)  # fmt: skip
def test_x_tilde_is_the_pipeline_on_x_and_x_tilde_edited_on_x_plus_paint(
    flux_folders, oracles, kind, negative, true_cfg
):
    s = make_session(flux_folders, kind, image_steps=6)
    s.negative_prompt, s.image_backend.true_cfg_scale = negative, true_cfg
    x_tilde = np.asarray(s.intermediate(edited=False))
    found = levels(x_tilde, oracle(oracles[kind], s, s.image))
    assert levels(x_tilde, np.asarray(s.image)) > 50  # it did edit
    s.paint(yellow_square(s.size))
    painted = composite(s.image, s.paint_layer)
    x_tilde_edited = np.asarray(s.intermediate())
    edited = levels(x_tilde_edited, oracle(oracles[kind], s, painted))
    assert not np.array_equal(x_tilde_edited, x_tilde)  # the paint reached P_img (Kontext: the reference tokens)
    MEASURED[f"{kind}, negative {negative!r}, true_cfg {true_cfg}"] = max(found, edited)
    assert found <= 1 and edited <= 1


@pytest.mark.parametrize("kind", ("flux-dev", "flux-kontext"))
def test_float16_loads_bfloat16_and_matches_the_pipeline_in_bfloat16(flux_folders, kind):
    """FLUX.1 ships in bfloat16 (float16 overflows in its activations): a float16 request loads bfloat16."""
    s = make_session(flux_folders, kind, dtype=torch.float16, image_steps=4)
    backend = s.image_backend
    assert backend.dtype == backend.text_encoder_2.dtype == backend.vae.dtype == torch.bfloat16
    pipe = oracle_pipeline(pipeline_class(kind), flux_folders[kind], dtype=torch.bfloat16)
    found = levels(np.asarray(s.intermediate(edited=False)), oracle(pipe, s, s.image))
    MEASURED[f"{kind} bfloat16 (CPU)"] = found
    assert found <= 1


def test_true_cfg_needs_a_scale_above_1_and_a_negative_prompt(flux_folders):
    s = make_session(flux_folders, image_steps=4)
    plain = np.asarray(s.intermediate(edited=False))
    s.image_backend.true_cfg_scale = 4.0  # a backend setting: the cached x~ is not reused
    assert np.array_equal(np.asarray(s.intermediate(edited=False)), plain)  # no negative prompt: off
    s.negative_prompt = "blurry"
    assert not np.array_equal(np.asarray(s.intermediate(edited=False)), plain)


def test_schnell_ignores_image_guidance(flux_folders):
    s = make_session(flux_folders, "flux-schnell")
    plain = np.asarray(s.intermediate(edited=False))
    s.image_guidance = 5.0  # schnell has no guidance embedding
    assert np.array_equal(np.asarray(s.intermediate(edited=False)), plain)


@pytest.mark.parametrize("kind", ("flux-dev", "flux-kontext"))
def test_content_strength_0_gives_x_exactly(flux_folders, kind):
    assert_strength_0_gives_x(make_session(flux_folders, kind))


def test_an_edit_family_runs_the_same_edit_for_every_strength_above_0(flux_folders):
    s = make_session(flux_folders, "flux-kontext", image_steps=4)
    low = assert_one_edit_above_0(s)
    s.cache.clear()  # recomputed, not read back: the same edit
    assert np.array_equal(np.asarray(s.intermediate(edited=False)), low)


def test_the_size_multiples_of_both_families_combine(flux_folders):
    from ivcore import sizes

    s = make_session(flux_folders, "flux-kontext", image_steps=2)
    assert sizes.multiple(s) == 16  # FLUX's 16 with Wan 2.1's 16
    with pytest.raises(InstructionError, match="size.*multiples of 16"):
        s.size = (72, 48)
    s.size = (80, 48)
    assert s.intermediate(edited=False).size == (80, 48)  # no resizing to Kontext's preferred resolutions


def test_painting_reruns_p_img_for_x_tilde_edited_only(flux_folders):
    assert_painting_reruns_p_img_for_x_tilde_edited_only(make_session(flux_folders, "flux-kontext", image_steps=4))


def test_generate_with_kontext_and_wan_and_restore_the_take_bitwise(flux_folders, tmp_path):
    s = make_session(flux_folders, "flux-kontext", image_steps=4)
    s.content = "turn the square into a sun"
    assert_take_restores_bitwise(s, tmp_path, "FluxKontextBackend")


def test_report_measured_levels():
    """Prints what the oracle tests measured (run with -s)."""
    print("\nFLUX.1 x~ / x~' vs FluxImg2ImgPipeline / FluxKontextPipeline, max uint8 levels:", MEASURED)
