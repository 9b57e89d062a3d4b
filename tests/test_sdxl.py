"""SDXL as P_img behind the Session: diffusers' StableDiffusionXLImg2ImgPipeline is the oracle.

The image models run from tiny folders in the hub layouts of SDXL base and SDXL-Turbo (`ivcore.testing.mirror`),
loaded through `Session.from_pretrained(image_model, video_model)` with a tiny Wan 2.1 I2V folder as P_video,
the path real weights take. The oracle is loaded from the same folder by diffusers itself, not built over the
session's modules, so a wrong flag or component in our loader shows up as a difference.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from family_helpers import levels, yellow_square
from image_helpers import (
    VIDEO,
    assert_painting_reruns_p_img_for_x_tilde_edited_only,
    assert_strength_0_gives_x,
    assert_take_restores_bitwise,
    image_folders,
    image_session,
    oracle_pipeline,
)

from ivcore import InstructionError, Session
from ivcore.stages.images import composite

KINDS = ("sdxl", "sdxl-turbo")
PIPELINE = "StableDiffusionXLImg2ImgPipeline"
MEASURED: dict[str, int] = {}  # uint8 levels from the oracle, printed at the end (-s)


@pytest.fixture(scope="session")
def sdxl_folders(tmp_path_factory):
    return image_folders(tmp_path_factory, "sdxl", KINDS)


def make_session(folders, kind: str = "sdxl", dtype: torch.dtype = torch.float32, **kwargs) -> Session:
    return image_session(folders[kind], folders[VIDEO], dtype=dtype, **kwargs)


@pytest.fixture(scope="module")
def oracles(sdxl_folders):
    return {kind: oracle_pipeline(PIPELINE, sdxl_folders[kind], add_watermarker=False) for kind in KINDS}


def oracle(pipe, s: Session, image) -> np.ndarray:
    """The pipeline on `image` with the session's content text, negative prompt ("" is none), strength, image steps,
    image guidance and seed."""
    out = pipe(
        prompt=s.content, negative_prompt=s.negative_prompt or None, image=image, strength=s.content_strength,
        num_inference_steps=s.image_steps, guidance_scale=s.image_guidance,
        generator=torch.Generator().manual_seed(s.seed),
    )  # fmt: skip
    return np.asarray(out.images[0])


@pytest.mark.parametrize("kind", KINDS)
def test_the_family_and_its_defaults_come_from_the_folder(sdxl_folders, kind):
    s = make_session(sdxl_folders, kind)
    assert type(s.image_backend).__name__ == "SDXLImageBackend"
    assert s.models["image_model"].endswith(kind)
    assert (s.image_steps, s.image_guidance) == ((50, 5.0) if kind == "sdxl" else (4, 0.0))
    assert s.image_backend.size_multiple == 8  # the VAE's factor
    assert s.image_backend.native_size == ((128, 128) if kind == "sdxl" else (64, 64))
    assert s.size == (64, 48)  # the video family's native size: P_img runs at it
    assert type(s.image_backend.scheduler).__name__ == {"sdxl": "EulerDiscreteScheduler"}.get(
        kind, "EulerAncestralDiscreteScheduler"
    )


@pytest.mark.parametrize("kind, negative", [("sdxl", ""), ("sdxl", "blurry, dark"), ("sdxl-turbo", "")])
def test_x_tilde_is_the_pipeline_on_x_and_x_tilde_edited_on_x_plus_paint(sdxl_folders, oracles, kind, negative):
    s = make_session(sdxl_folders, kind, image_steps=8)
    s.negative_prompt = negative
    if kind == "sdxl-turbo":
        s.image_guidance = 0.0  # its default; the few-step model runs without guidance
    x_tilde = np.asarray(s.intermediate(edited=False))
    found = levels(x_tilde, oracle(oracles[kind], s, s.image))
    assert levels(x_tilde, np.asarray(s.image)) > 50  # it did edit
    s.paint(yellow_square(s.size))
    painted = composite(s.image, s.paint_layer)
    edited = levels(np.asarray(s.intermediate()), oracle(oracles[kind], s, painted))
    MEASURED[f"{kind}, negative {negative!r}"] = max(found, edited)
    assert found <= 1 and edited <= 1


def test_a_swapped_scheduler_and_a_strength_below_one_step(sdxl_folders, oracles):
    """The backend's pipeline follows a swapped scheduler; steps * strength < 1 still runs one step."""
    from diffusers import DDIMScheduler

    s = make_session(sdxl_folders, image_steps=6)
    s.image_backend.scheduler = DDIMScheduler.from_config(s.image_backend.scheduler.config)
    pipe = oracles["sdxl"]
    original = pipe.scheduler
    pipe.scheduler = DDIMScheduler.from_config(original.config)
    try:
        assert levels(np.asarray(s.intermediate(edited=False)), oracle(pipe, s, s.image)) <= 1
    finally:
        pipe.scheduler = original
    s.content_strength = 0.1  # int(6 * 0.1) = 0 steps in the pipeline; one here
    assert levels(np.asarray(s.intermediate(edited=False)), np.asarray(s.image)) > 0


def test_float16_upcasts_the_vae_as_the_pipeline_does(sdxl_folders):
    """SDXL's VAE says force_upcast: encode and decode run in float32, the VAE is float16 again afterwards."""
    s = make_session(sdxl_folders, dtype=torch.float16, image_steps=6)
    x_tilde = np.asarray(s.intermediate(edited=False))
    assert s.image_backend.vae.dtype == torch.float16 and s.image_backend.unet.dtype == torch.float16
    pipe = oracle_pipeline(PIPELINE, sdxl_folders["sdxl"], dtype=torch.float16, add_watermarker=False)
    found = levels(x_tilde, oracle(pipe, s, s.image))
    MEASURED["sdxl float16 (CPU)"] = found
    assert found <= 1


def test_content_strength_0_gives_x_exactly(sdxl_folders):
    assert_strength_0_gives_x(make_session(sdxl_folders))


def test_an_image_model_of_an_unknown_class_is_refused_before_anything_loads(sdxl_folders, tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "UnknownImagePipeline"}))
    with pytest.raises(InstructionError) as caught:
        Session.from_pretrained(tmp_path, sdxl_folders["wan2.1-i2v"], device="cpu", dtype=torch.float32)
    error = caught.value
    assert error.field == "image_model" and "UnknownImagePipeline" in str(error)
    assert "StableDiffusionXLImg2ImgPipeline" in error.allowed and "StableDiffusionPipeline" in error.allowed


def test_painting_reruns_p_img_for_x_tilde_edited_only(sdxl_folders):
    assert_painting_reruns_p_img_for_x_tilde_edited_only(make_session(sdxl_folders, image_steps=4))


def test_generate_with_wan_and_restore_the_take_bitwise(sdxl_folders, tmp_path):
    assert_take_restores_bitwise(make_session(sdxl_folders, image_steps=4), tmp_path, "SDXLImageBackend")


def test_the_size_multiples_of_both_families_combine(sdxl_folders):
    from ivcore import sizes
    from ivcore.backends.build import tiny_backends
    from ivcore.backends.svd import tiny_svd_backend
    from ivcore.backends.wan import tiny_wan_backend

    s = make_session(sdxl_folders)
    sd15, pia = tiny_backends(0)
    images = {"sd15": sd15, "sdxl": s.image_backend}
    videos = {"pia": pia, "svd": tiny_svd_backend(0), "wan2.1-i2v": s.video_backend,
              "wan2.2-ti2v-5b": tiny_wan_backend("wan2.2-ti2v-5b")}  # fmt: skip
    for image in images.values():
        for video in videos.values():
            pair = SimpleNamespace(image_backend=image, video_backend=video)
            expected = math.lcm(sizes.backend_multiple(image), sizes.backend_multiple(video))
            assert sizes.multiple(pair) == expected
            assert expected % sizes.backend_multiple(image) == 0 and expected % sizes.backend_multiple(video) == 0
    assert sizes.multiple(s) == 16  # SDXL's 8 with Wan 2.1's 16
    with pytest.raises(InstructionError, match="size.*multiples of 16"):
        s.size = (72, 48)
    s.size = (80, 48)  # a latent of 10 x 6: not a multiple of the UNet's 4, which SDXL's UNet takes
    assert s.intermediate(edited=False).size == (80, 48)


def test_report_measured_levels():
    """Prints what the oracle tests measured (run with -s)."""
    print("\nSDXL x~ / x~' vs StableDiffusionXLImg2ImgPipeline, max uint8 levels:", MEASURED)
