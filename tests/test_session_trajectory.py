"""Trajectories inside the Session: x~', the motion preview and per-frame conditioning of the UNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivcore import InstructionError, Trajectory
from ivcore.trajectory import animate, apply_endpoint

DRAG = Trajectory(points=[(16, 20), (40, 36)], radius=8)


def captured_unet_inputs(session, **generate_kwargs):
    inputs = []
    handle = session.video_backend.unet.register_forward_pre_hook(lambda m, args: inputs.append(args[0].clone()))
    try:
        session.generate(progress=False, **generate_kwargs)
    finally:
        handle.remove()
    return inputs


def expected_latents(session, images, seed):
    """E(images) drawn exactly as a generation draws them: after the initial noise, from one seed."""
    b = session.video_backend
    gen = torch.Generator().manual_seed(seed)
    width, height = session.size
    b.initial_noise(b.latent_shape(session.num_frames, height, width), gen)
    return b.encode_images(images, gen)


def test_trajectories_make_the_edited_intermediate(session):
    session.trajectories = [DRAG]
    base = session.intermediate(edited=False)
    assert np.array_equal(np.asarray(session.intermediate(edited=True)), apply_endpoint(base, [DRAG]))


def test_motion_preview_animates_x_tilde(session):
    session.trajectories = [DRAG]
    preview = session.motion_preview()
    expected = animate(session.intermediate(edited=False), [DRAG], session.num_frames)
    assert np.array_equal(preview.frames, expected)
    assert np.array_equal(preview.frames[0], np.asarray(session.intermediate(edited=False)))


@pytest.mark.parametrize("mode", ["path", "endpoint"])
def test_per_frame_conditioning_reaches_the_unet(session, mode):
    session.trajectories = [DRAG]
    session.trajectory_mode = mode
    session.lam = 0.5
    inputs = captured_unet_inputs(session, seed=7)
    x = inputs[0]  # rows: [uncond base, uncond edit, text base, text edit]
    assert x.shape[:3] == (4, 9, session.num_frames)
    base_img = session.intermediate(edited=False)
    z_base = expected_latents(session, [base_img], 7)
    if mode == "path":
        frames = animate(base_img, [DRAG], session.num_frames)
        from PIL import Image

        z_edit = expected_latents(session, [Image.fromarray(f) for f in frames], 7)
    else:
        z_edit = expected_latents(session, [session.intermediate(edited=True)], 7)
    for f in range(session.num_frames):
        zi = z_edit[f] if mode == "path" else z_edit[0]
        assert torch.allclose(x[1, 5:, f], zi, atol=1e-6) and torch.allclose(x[3, 5:, f], zi, atol=1e-6)
        assert torch.allclose(x[0, 5:, f], z_base[0], atol=1e-6)
    if mode == "path":  # the path really varies over frames
        assert (z_edit[0] - z_edit[-1]).abs().max() > 1e-3


def test_trajectory_strength_pulls_only_when_edit_is_used(session):
    session.trajectories = [DRAG]
    session.lam = 1.0
    session.trajectory_strength = 0.0
    plain = session.generate(seed=1, progress=False).frames
    session.trajectory_strength = 0.5
    assert np.array_equal(session.generate(seed=1, progress=False).frames, plain)  # lam = 1: untouched

    session.lam = 0.3
    session.trajectory_strength = 0.0
    free = session.last_latents if session.generate(seed=1, progress=False) is not None else None
    session.trajectory_strength = 0.5
    session.generate(seed=1, progress=False)
    pulled = session.last_latents
    assert (pulled - free).abs().max() > 1e-4


def test_bad_trajectories_keep_the_last_good_ones(session):
    session.trajectories = [DRAG]
    for bad in (
        [Trajectory(points=[(1, 1)])],
        [Trajectory(points=[(1, 1), (500, 1)])],
        [{"points": [(1, 1), (float("nan"), 2)]}],
        [DRAG, Trajectory(points=[(1, 1), (2, 2)], easing="bounce")],
        [Trajectory(points=[(1, 1), (2, 2)], mask=np.zeros((64, 64), bool))],
        "not a list",
    ):
        with pytest.raises(InstructionError) as err:
            session.trajectories = bad
        assert "trajectories" in err.value.field
    assert session.trajectories == [DRAG]
    assert session.generate(progress=False).num_frames == session.num_frames


def test_error_names_the_trajectory_index(session):
    with pytest.raises(InstructionError, match=r"trajectories\[1\]"):
        session.trajectories = [DRAG, Trajectory(points=[(1, 1), (2, 2)], start=0.8, end=0.2)]
