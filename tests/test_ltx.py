"""LTX-Video behind the Session: diffusers' LTXImageToVideoPipeline is the oracle, Eq. 4 identities exact.

The tiny model runs from a folder in the hub layout (`ivcore.testing.mirror`), loaded through
`Session.from_pretrained(image_model, video_model)`, the path real weights take.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import family_session, levels, pipeline_frames, yellow_square
from PIL import Image

from ivcore import InstructionError, Session, Trajectory
from ivcore.testing import mirror

KIND = "ltx-video-0.9.0-i2v"
SIZE = (96, 64)


@pytest.fixture(scope="session")
def ltx_folder(tmp_path_factory):
    return mirror(tmp_path_factory.mktemp("ltx") / KIND, KIND)


def make_session(tiny_model_dirs, folder) -> Session:
    return family_session(tiny_model_dirs, folder, SIZE)


@pytest.fixture(scope="module")
def ltx(tiny_model_dirs, ltx_folder):
    return make_session(tiny_model_dirs, ltx_folder)


def reference(s: Session, image: Image.Image, seed: int = 0) -> np.ndarray:
    """LTXImageToVideoPipeline over the session's own modules: same prompts, size, frames, steps, guidance, rate."""
    return pipeline_frames(s, image, seed, frame_rate=s.video_backend.frame_rate)


def reference_with(s: Session, **extra) -> np.ndarray:
    return pipeline_frames(s, **{"frame_rate": s.video_backend.frame_rate, **extra})


def test_the_family_and_its_defaults_come_from_the_folder(ltx):
    s = ltx
    backend = s.video_backend
    assert type(backend).__name__ == "LTXVideoBackend"
    assert s.size == SIZE and s.num_frames == 9 and s.steps == 4 and s.guidance == 3.0
    assert backend.frame_rule == (8, 1) and backend.size_multiple == 32 and backend.frame_rate == 25
    assert s.models["video_model"].endswith(KIND)


def test_lam_1_is_the_pipeline_on_x_tilde_and_lam_0_on_x_tilde_edited(ltx):
    s = ltx
    s.clear_paint()
    s.lam = 1.0
    plain = s.generate(seed=0, progress=False).frames
    z_plain = s.last_latents
    assert levels(plain, reference(s, s.intermediate(edited=False))) <= 1
    s.paint(yellow_square(SIZE))
    s.lam = 0.0
    edited = s.generate(seed=0, progress=False).frames
    z_edited = s.last_latents
    assert levels(edited, reference(s, s.intermediate(edited=True))) <= 1
    s.lam = 0.5
    s.generate(seed=0, progress=False)
    z_half = s.last_latents
    for other in (z_plain, z_edited):  # latents: a random-init transformer barely uses its image input
        assert float((z_half - other).abs().max() / other.abs().max()) > 1e-4
    s.lam = 1.0  # painted, but lam 1 ignores the edit: still the plain video
    assert np.array_equal(s.generate(seed=0, progress=False).frames, plain)


def test_the_first_latent_frame_is_the_blend_of_the_two_images(ltx):
    s = ltx
    s.paint(yellow_square(SIZE))
    backend = s.video_backend
    x, x_edit = s.intermediate(edited=False), s.intermediate(edited=True)
    # the pipeline's posterior draw: the first from a generator seeded with the run's seed
    frame = backend.encode_images([x], torch.Generator().manual_seed(0), num_frames=9).latents[:, :, :1]
    frame_edit = backend.encode_images([x_edit], torch.Generator().manual_seed(0), num_frames=9).latents[:, :, :1]
    for lam in (0.0, 0.25, 1.0):
        s.lam = lam
        s.generate(seed=0, progress=False)
        expected = lam * frame + (1 - lam) * frame_edit
        assert torch.allclose(s.last_latents[:, :, :1], expected, atol=1e-6), lam


def test_moving_lambda_reruns_only_denoise_and_decode(ltx):
    s = ltx
    s.paint(yellow_square(SIZE))
    s.lam = 0.3
    s.generate(seed=1, progress=False)
    before = {stage: dict(v) for stage, v in s.stats.items()}
    s.lam = 0.6
    s.generate(seed=1, progress=False)
    after = s.stats
    for stage in ("text", "image", "encode"):
        assert after[stage]["misses"] == before[stage]["misses"], stage
    for stage in ("denoise", "decode"):
        assert after[stage]["misses"] == before[stage]["misses"] + 1, stage


def test_a_sweep_equals_its_generates(ltx):
    s = ltx
    s.paint(yellow_square(SIZE))
    videos = s.sweep([0.0, 0.5], seed=2, progress=False)
    for lam, video in zip((0.0, 0.5), videos, strict=True):
        assert np.array_equal(video.frames, s.generate(seed=2, lam=lam, progress=False).frames)


def test_frame_counts_and_sizes_follow_the_family(ltx):
    s = ltx
    s.lam = 1.0
    last = s.generate(seed=0, progress=False)
    with pytest.raises(InstructionError, match="num_frames.*8k\\+1"):
        s.generate(num_frames=8, progress=False)
    with pytest.raises(InstructionError, match="num_frames"):
        s.num_frames = 5
    assert s.num_frames == 9 and s.last_video is last
    with pytest.raises(InstructionError, match="size.*multiples of 32"):
        s.size = (96 + 16, 64)
    video = s.generate(seed=0, num_frames=17, progress=False)
    assert video.frames.shape == (17, SIZE[1], SIZE[0], 3)
    assert levels(video.frames, reference_with(s, num_frames=17)) <= 1  # mu follows the token count


def test_takes_restore_bitwise_and_stories_continue(ltx):
    s = ltx
    s.paint(yellow_square(SIZE))
    s.lam = 0.4
    first = s.generate(seed=3, progress=False)
    s.lam = 0.9
    s.generate(seed=4, progress=False)
    s.restore(s.takes[-2])
    assert np.array_equal(s.generate(progress=False).frames, first.frames)
    s.continue_from()
    assert np.array_equal(np.asarray(s.image), s.story.segments[-1].video.frames[-1])


def test_trajectories_in_both_modes_move_the_video(tiny_model_dirs, ltx_folder):
    s = make_session(tiny_model_dirs, ltx_folder)
    s.lam = 0.0
    still = s.generate(seed=0, progress=False).frames
    width, height = s.size
    s.trajectories = [Trajectory(points=[(16, height // 2), (72, height // 2)], radius=12)]
    for mode in ("path", "endpoint"):
        s.trajectory_mode = mode
        moved = s.generate(seed=0, progress=False).frames
        assert np.abs(moved.astype(int) - still).mean() > 0.01, mode


def test_the_rope_frame_rate_is_a_model_setting(ltx):
    s = ltx
    s.clear_paint()
    s.lam = 1.0
    plain = s.generate(seed=0, progress=False).frames
    backend = s.video_backend
    version = backend.weights_version
    backend.frame_rate = 8  # another RoPE time scale: another video, as the pipeline's frame_rate=8 makes
    try:
        assert backend.weights_version == version + 1
        other = s.generate(seed=0, progress=False).frames
        assert levels(other, reference_with(s, frame_rate=8)) <= 1 and levels(other, plain) > 0
    finally:
        backend.frame_rate = 25
    assert np.array_equal(s.generate(seed=0, progress=False).frames, plain)


def test_the_0_9_1_decoder_decodes_as_the_pipeline(tmp_path, tiny_model_dirs):
    s = make_session(tiny_model_dirs, mirror(tmp_path / "ltx-0.9.1", "ltx-video-0.9.1-i2v"))
    assert s.video_backend.vae.config.timestep_conditioning
    s.lam = 1.0
    torch.manual_seed(7)  # the 0.9.1 decoder injects noise from the global RNG: the backend seeds it with the seed
    video = s.generate(seed=2, progress=False).frames
    after = torch.rand(1)
    torch.manual_seed(2)  # so the pipeline is the oracle with the global RNG seeded as the backend seeds it
    assert levels(video, reference_with(s, seed=2)) <= 1
    torch.manual_seed(7)
    assert torch.equal(torch.rand(1), after)  # the caller's RNG is left as it was
    s.cache.clear()
    assert np.array_equal(s.generate(seed=2, progress=False).frames, video)  # another global state, the same video


def test_save_and_load_keep_the_family(tmp_path, tiny_model_dirs, ltx_folder):
    s = make_session(tiny_model_dirs, ltx_folder)
    s.lam = 1.0
    video = s.generate(seed=0, progress=False)
    s.save(tmp_path / "saved")
    loaded = Session.load(tmp_path / "saved")
    assert type(loaded.video_backend).__name__ == "LTXVideoBackend"
    assert loaded.size == s.size and loaded.num_frames == s.num_frames
    assert np.array_equal(loaded.generate(seed=0, progress=False).frames, video.frames)
