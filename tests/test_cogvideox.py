"""CogVideoX behind the Session: diffusers' CogVideoXImageToVideoPipeline is the oracle, Eq. 4 identities exact.

The tiny CogVideoX-5b-I2V layout (`ivcore.testing.mirror`) loads through
`Session.from_pretrained(image_model, video_model)`, the path real weights take.
"""

from __future__ import annotations

import numpy as np
import pytest
from family_helpers import MOTION, family_session, levels, picture, pipeline_frames, yellow_square
from PIL import Image

from ivcore import InstructionError, Session, Trajectory
from ivcore.testing import mirror

SIZE = (64, 48)


@pytest.fixture(scope="session")
def cogvideox_folder(tmp_path_factory):
    return mirror(tmp_path_factory.mktemp("cogvideox") / "cogvideox-5b-i2v", "cogvideox-5b-i2v")


def make_session(tiny_model_dirs, folder) -> Session:
    return family_session(tiny_model_dirs, folder, SIZE)


@pytest.fixture(scope="module")
def cog(tiny_model_dirs, cogvideox_folder):
    return make_session(tiny_model_dirs, cogvideox_folder)


def reference(s: Session, image: Image.Image, seed: int = 0) -> np.ndarray:
    """CogVideoXImageToVideoPipeline over the session's own modules: same prompt, size, frames, steps, guidance."""
    return pipeline_frames(s, image, seed)


def test_the_family_and_its_defaults_come_from_the_folder(cog):
    s = cog
    assert type(s.video_backend).__name__ == "CogVideoXVideoBackend"
    assert s.video_backend.version == "1.0"
    assert s.size == SIZE and s.num_frames == 9 and s.steps == 4 and s.guidance == 6.0
    assert s.video_backend.frame_rule == (8, 1) and s.video_backend.size_multiple == 16
    assert s.video_backend.latent_rgb().shape == (5, 3)  # the preview map, fitted through trajectory_target


def test_lam_1_is_the_pipeline_on_x_tilde_and_lam_0_on_x_tilde_edited(cog):
    s = cog
    s.clear_paint()
    s.lam = 1.0
    plain = s.generate(seed=0, progress=False).frames
    z_plain = s.last_latents
    assert levels(plain, reference(s, s.intermediate(edited=False))) <= 1
    s.paint(yellow_square(s.size))
    s.lam = 0.0
    edited = s.generate(seed=0, progress=False).frames
    z_edited = s.last_latents
    assert levels(edited, reference(s, s.intermediate(edited=True))) <= 1
    s.lam = 0.5
    s.generate(seed=0, progress=False)
    z_half = s.last_latents
    # a random-init transformer barely uses its image input: compare latents, well above float noise (1e-6)
    for other in (z_plain, z_edited):
        assert float((z_half - other).abs().max() / other.abs().max()) > 1e-4
    s.lam = 1.0  # painted, but lam 1 ignores the edit: still the plain video
    assert np.array_equal(s.generate(seed=0, progress=False).frames, plain)


def test_moving_lambda_reruns_only_denoise_and_decode(cog):
    s = cog
    s.paint(yellow_square(s.size))
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


def test_a_sweep_equals_its_generates(cog):
    s = cog
    s.paint(yellow_square(s.size))
    videos = s.sweep([0.0, 0.5], seed=2, progress=False)
    for lam, video in zip((0.0, 0.5), videos, strict=True):
        assert np.array_equal(video.frames, s.generate(seed=2, lam=lam, progress=False).frames)


def test_frame_counts_and_sizes_follow_the_family(cog):
    s = cog
    s.lam = 1.0
    last = s.generate(seed=0, progress=False)
    with pytest.raises(InstructionError, match="num_frames.*8k\\+1"):
        s.generate(num_frames=5, progress=False)
    with pytest.raises(InstructionError, match="num_frames"):
        s.num_frames = 13
    assert s.num_frames == 9 and s.last_video is last
    with pytest.raises(InstructionError, match="size.*multiples of 16"):
        s.size = (72, 48)
    s.size = (64, 64)  # a multiple of 16, but CogVideoX 1.0 runs only at its sample size
    with pytest.raises(InstructionError, match="size.*64 x 48 only"):
        s.generate(seed=0, progress=False)
    s.size = SIZE
    video = s.generate(seed=0, num_frames=17, progress=False)
    assert video.frames.shape == (17, SIZE[1], SIZE[0], 3)


def test_takes_restore_bitwise_and_stories_continue(cog):
    s = cog
    s.paint(yellow_square(s.size))
    s.lam = 0.4
    first = s.generate(seed=3, progress=False)
    s.lam = 0.9
    s.generate(seed=4, progress=False)
    s.restore(s.takes[-2])
    assert np.array_equal(s.generate(progress=False).frames, first.frames)
    s.continue_from()
    assert np.array_equal(np.asarray(s.image), s.story.segments[-1].video.frames[-1])


def test_trajectories_in_both_modes_move_the_video(cog):
    s = cog
    s.clear_paint()
    s.lam = 0.0
    still = s.generate(seed=0, progress=False).frames
    width, height = s.size
    s.trajectories = [Trajectory(points=[(16, height // 2), (48, height // 2)], radius=8)]
    # CogVideoX's zero-terminal-SNR DDIM starts at pure noise (alphas_cumprod[999] = 0), so a pull at step 0
    # changes nothing; the default 0.3 of 4 steps is step 0 only: 0.6 also pulls at step 1
    s.trajectory_strength = 0.6
    for mode in ("path", "endpoint"):
        s.trajectory_mode = mode
        moved = s.generate(seed=0, progress=False).frames
        assert np.abs(moved.astype(int) - still).mean() > 0.01, mode
    s.trajectories, s.trajectory_strength = [], 0.3


def test_save_and_load_keep_the_family(tmp_path, tiny_model_dirs, cogvideox_folder):
    s = make_session(tiny_model_dirs, cogvideox_folder)
    s.lam = 1.0
    video = s.generate(seed=0, progress=False)
    s.save(tmp_path / "saved")
    loaded = Session.load(tmp_path / "saved")
    assert type(loaded.video_backend).__name__ == "CogVideoXVideoBackend"
    assert loaded.size == s.size and loaded.num_frames == s.num_frames
    assert np.array_equal(loaded.generate(seed=0, progress=False).frames, video.frames)


def test_the_dpm_scheduler_is_run_as_ddim_and_refused_when_set_later():
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline

    from ivcore.backends.cogvideox import CogVideoXVideoBackend, tiny_cogvideox_components

    components = tiny_cogvideox_components(0)
    components["scheduler"] = CogVideoXDPMScheduler.from_config(components["scheduler"].config)
    with pytest.warns(UserWarning, match="CogVideoXDPMScheduler"):
        backend = CogVideoXVideoBackend(CogVideoXImageToVideoPipeline(**components))
    assert isinstance(backend.scheduler, CogVideoXDDIMScheduler)
    with pytest.raises(InstructionError, match="scheduler.*CogVideoXDPMScheduler"):
        backend._check_scheduler(components["scheduler"])


def test_cogvideox_1_5_pads_latent_frames_and_matches_its_pipeline():
    from ivcore.backends.cogvideox import tiny_cogvideox_backend

    backend = tiny_cogvideox_backend(version="1.5")
    assert backend.latent_shape(9, 48, 64) == (1, 4, 4, 6, 8)  # 3 latent frames + 1 front padding
    s = Session.tiny(seed=0)
    s.video_backend = backend
    s.image, s.motion, s.num_frames, s.steps, s.guidance = picture(SIZE), MOTION, 9, 4, 6.0
    s.size = SIZE
    s.lam = 1.0
    frames = s.generate(seed=0, progress=False).frames
    assert frames.shape == (9, SIZE[1], SIZE[0], 3)
    assert levels(frames, reference(s, s.intermediate(edited=False))) <= 1
