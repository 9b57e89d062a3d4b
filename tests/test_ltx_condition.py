"""LTX-Video's LTXConditionPipeline folders (0.9.5 and later, the few-step -distilled releases) behind the Session.

diffusers' `LTXConditionPipeline` is the oracle, with the image as an `LTXVideoCondition` at frame 0 and
`image_cond_noise_scale=0` (what Lightricks' distilled examples run and this backend runs); the decode settings
and, for the distilled folder, the 8 distilled timesteps are passed as the backend holds them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FirstBlockCacheConfig
from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
from family_helpers import family_session, levels, yellow_square

from ivcore import InstructionError, Session, Trajectory
from ivcore.backends.ltx_condition import DISTILLED_TIMESTEPS, is_distilled
from ivcore.testing import mirror

DISTILLED, DEV = "ltx-video-0.9.7-distilled", "ltx-video-0.9.7-dev"
SIZE = (96, 64)


@pytest.fixture(scope="session")
def condition_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("ltx-condition")
    return {kind: mirror(root / kind, kind) for kind in (DISTILLED, DEV)}


@pytest.fixture(scope="module")
def distilled(tiny_model_dirs, condition_folders):
    return family_session(tiny_model_dirs, condition_folders[DISTILLED], SIZE)


@pytest.fixture(scope="module")
def dev(tiny_model_dirs, condition_folders):
    return family_session(tiny_model_dirs, condition_folders[DEV], SIZE)


def reference(s: Session, image, seed: int = 0, **extra) -> np.ndarray:
    """LTXConditionPipeline over the session's own modules, with the session's settings and the backend's."""
    backend = s.video_backend
    width, height = s.size
    options = dict(
        conditions=[LTXVideoCondition(image=image, frame_index=0)], prompt=s.motion,
        negative_prompt=s.negative_prompt, height=height, width=width, num_frames=s.num_frames,
        num_inference_steps=s.steps, guidance_scale=s.guidance, output_type="np", **backend.oracle_kwargs(s.steps),
    )  # fmt: skip
    assert options["image_cond_noise_scale"] == 0.0 and options["frame_rate"] == 25
    assert options["timesteps"] == (list(DISTILLED_TIMESTEPS) if backend.distilled and s.steps == 8 else None)
    torch.manual_seed(seed)  # the decoder's injected noise: the global RNG, which the backend seeds with the seed
    out = backend.pipeline()(**{**options, **extra}, generator=torch.Generator().manual_seed(seed))
    return (out.frames[0] * 255).round().astype(np.uint8)


def test_the_folder_name_says_distilled_and_the_defaults_follow(distilled, dev):
    assert is_distilled("Lightricks/LTX-Video-0.9.7-distilled") and not is_distilled("Lightricks/LTX-Video-0.9.7-dev")
    backend = distilled.video_backend
    assert type(backend).__name__ == "LTXConditionBackend" and backend.distilled
    assert (distilled.steps, distilled.guidance) == (8, 1.0)  # Lightricks' distilled settings: one row a branch
    assert not dev.video_backend.distilled and (dev.steps, dev.guidance) == (4, 3.0)  # the tiny LTX settings
    assert backend.frame_rule == (8, 1) and backend.size_multiple == 32
    assert backend.vae.config.timestep_conditioning  # the decode draws noise: the run's generator matters
    backend.set_timesteps(8, (1, 8, 2, 2, 3))
    assert backend.scheduler.timesteps.tolist() == pytest.approx(list(DISTILLED_TIMESTEPS))


@pytest.mark.parametrize("which", ["distilled", "dev"])
def test_lam_1_is_the_pipeline_on_x_tilde_and_lam_0_on_x_tilde_edited(which, request):
    s = request.getfixturevalue(which)
    s.clear_paint()
    s.lam = 1.0
    plain = s.generate(seed=0, progress=False).frames
    assert levels(plain, reference(s, s.intermediate(edited=False))) <= 1
    assert levels(plain, reference(s, s.intermediate(edited=False), seed=1)) > 1  # the seed matters, decode included
    s.paint(yellow_square(SIZE))
    s.lam = 0.0
    edited = s.generate(seed=0, progress=False).frames
    assert levels(edited, reference(s, s.intermediate(edited=True))) <= 1
    z_edited = s.last_latents
    s.lam = 0.5
    half = s.generate(seed=0, progress=False).frames
    assert not np.array_equal(half, plain) and not np.array_equal(half, edited)
    assert float((s.last_latents - z_edited).abs().max()) > 1e-4
    s.lam = 1.0  # painted, but lam 1 ignores the edit
    assert np.array_equal(s.generate(seed=0, progress=False).frames, plain)
    s.clear_paint()


def test_other_step_counts_run_the_pipelines_linear_quadratic_schedule(distilled):
    s = distilled
    s.clear_paint()
    s.steps = 4
    try:
        frames = s.generate(seed=0, progress=False).frames
        assert levels(frames, reference(s, s.intermediate(edited=False))) <= 1
    finally:
        s.steps = 8


def test_decode_settings_are_in_the_cache_keys_and_a_take_restores_bitwise(distilled):
    s = distilled
    s.clear_paint()
    s.lam = 1.0
    first = s.generate(seed=3, progress=False).frames
    s.commit()
    take = s.takes[-1]
    backend = s.video_backend
    backend.decode_noise_scale = 0.5
    try:
        louder = s.generate(seed=3, progress=False).frames
        assert levels(louder, first) > 1
        assert levels(louder, reference(s, s.intermediate(edited=False), seed=3)) <= 1
    finally:
        backend.decode_noise_scale = 0.025
    assert np.array_equal(s.generate(seed=3, progress=False).frames, first)
    s.restore(take)
    assert np.array_equal(s.generate(progress=False).frames, first)


def test_a_sweep_cell_equals_its_own_generate(distilled):
    s = distilled
    s.paint(yellow_square(SIZE))
    try:
        videos = s.sweep([0.0, 0.5], seed=0, progress=False)
        for lam, video in zip([0.0, 0.5], videos, strict=True):
            s.lam = lam
            assert np.array_equal(video.frames, s.generate(seed=0, progress=False).frames)
    finally:
        s.clear_paint()
        s.lam = 1.0


def test_frame_counts_are_8k_plus_1(distilled):
    with pytest.raises(InstructionError, match="num_frames"):
        distilled.num_frames = 12
    assert distilled.num_frames == 9


def test_trajectories_in_both_modes_move_the_video(distilled):
    s = distilled
    s.clear_paint()
    s.lam = 0.0
    still = s.generate(seed=0, progress=False).frames
    width, height = s.size
    s.trajectories = [Trajectory(points=[(16, height // 2), (72, height // 2)], radius=12)]
    try:
        for mode in ("path", "endpoint"):
            s.trajectory_mode = mode
            moved = s.generate(seed=0, progress=False).frames
            assert np.abs(moved.astype(int) - still).mean() > 0.01, mode
    finally:
        s.trajectories = []
        s.lam = 1.0


def test_a_step_cache_at_lam_1_is_the_pipeline_with_the_same_cache(distilled):
    s = distilled
    s.clear_paint()
    s.lam = 1.0
    s.enable_cache(FirstBlockCacheConfig(threshold=0.1))
    try:
        s.cache.clear()
        cached = s.generate(seed=0, progress=False).frames
        assert levels(cached, reference(s, s.intermediate(edited=False))) <= 1
    finally:
        s.disable_cache()


def test_x0_previews_save_load_and_the_memory_plan(distilled, tmp_path):
    s = distilled
    s.clear_paint()
    s.lam = 1.0
    seen = []
    video = s.generate(seed=0, progress=False, callback=lambda step, total, latents, x0=None: seen.append(x0))
    assert len(seen) == s.steps and all(x0 is not None for x0 in seen)
    s.save(tmp_path / "saved")
    loaded = Session.load(tmp_path / "saved")
    assert type(loaded.video_backend).__name__ == "LTXConditionBackend" and loaded.video_backend.distilled
    assert (loaded.steps, loaded.guidance) == (8, 1.0)
    assert np.array_equal(loaded.generate(seed=0, progress=False).frames, video.frames)
    plan = s.memory_plan()
    assert plan["total"] > 0 and any(k.startswith("decode") for k in plan)


def test_without_guidance_the_negative_prompt_is_not_encoded(distilled):
    """At guidance 1 (the distilled setting) no row reads the negative prompt; like the pipeline, the run encodes
    the motion prompt alone. At guidance above 1 both are encoded and the video changes."""
    s = distilled
    s.clear_paint()
    s.lam = 1.0
    misses = lambda: s.stats["text"]["misses"]  # noqa: E731
    s.cache.clear()
    before = misses()
    one = s.generate(seed=0, progress=False).frames
    unguided = misses() - before  # the motion prompt and P_img's two
    s.guidance = 3.0
    try:
        s.cache.clear()
        before = misses()
        guided = s.generate(seed=0, progress=False).frames
        assert misses() - before == unguided + 1 and levels(guided, one) > 0
        assert levels(guided, reference(s, s.intermediate(edited=False))) <= 1
    finally:
        s.guidance = 1.0
