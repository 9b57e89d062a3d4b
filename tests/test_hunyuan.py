"""HunyuanVideo 1.5 I2V behind the Session: diffusers' HunyuanVideo15ImageToVideoPipeline is the oracle.

The tiny model runs from a folder in the hub layout (`ivcore.testing.mirror`), loaded through
`Session.from_pretrained(image_model, video_model)`, the path real weights take. The pipeline has no
guidance argument: the reference sets its guider to the session's guidance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import MOTION, family_session, levels, picture, yellow_square
from PIL import Image

from ivcore import InstructionError, Session, Trajectory
from ivcore.testing import mirror

KIND = "hunyuanvideo-1.5-480p-i2v"
SIZE = (64, 64)  # what the pipeline picks for a square image at the tiny target size 64


@pytest.fixture(scope="session")
def hunyuan_folder(tmp_path_factory):
    return mirror(tmp_path_factory.mktemp("hunyuan") / KIND, KIND)


def make_session(tiny_model_dirs, folder) -> Session:
    s = family_session(tiny_model_dirs, folder, SIZE)
    s.steps = 2  # the model's 4 in half the time: each step attends over ~1300 text tokens
    return s


@pytest.fixture(scope="module")
def s(tiny_model_dirs, hunyuan_folder):
    return make_session(tiny_model_dirs, hunyuan_folder)


def reference(s: Session, image: Image.Image, seed: int = 0) -> np.ndarray:
    """The pipeline over the session's own modules: the same prompt, frames, steps, guidance (via its guider)."""
    pipe = s.video_backend.pipeline()
    assert image.size == s.size  # the size the pipeline picks for it: no crop, no resize
    guider = pipe.guider
    pipe.guider = guider.new(guidance_scale=s.guidance)
    try:
        frames = pipe(
            image=image, prompt=s.motion, negative_prompt=s.negative_prompt, num_frames=s.num_frames,
            num_inference_steps=s.steps, generator=torch.Generator().manual_seed(seed), output_type="np",
        ).frames[0]  # fmt: skip
    finally:
        pipe.guider = guider
    return (frames * 255).round().astype(np.uint8)


def test_the_family_and_its_defaults_come_from_the_folder(s):
    backend = s.video_backend
    assert type(backend).__name__ == "HunyuanVideoBackend"
    assert s.size == SIZE and s.num_frames == 9 and s.guidance == 6.0
    assert backend.defaults["steps"] == 4 and backend.fps == 8  # the tests run 2 steps (make_session)
    assert backend.frame_rule == (4, 1) and backend.size_multiple == 16
    text = backend.encode_prompt(MOTION)
    assert len(text) == 4 and text.embeds.shape[:2] == text.mask.shape and text.embeds_2.shape[:2] == text.mask_2.shape


def test_the_schedule_is_the_pipelines(s):
    from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5_image2video import retrieve_timesteps

    pipe = s.video_backend.pipeline()
    expected, _ = retrieve_timesteps(pipe.scheduler, 4, "cpu", sigmas=np.linspace(1.0, 0.0, 5)[:-1])
    s.video_backend.set_timesteps(4, s.video_backend.latent_shape(9, 64, 64))
    assert torch.equal(s.video_backend.scheduler.timesteps, expected)
    assert s.video_backend.scheduler is pipe.scheduler


def test_lam_1_is_the_pipeline_on_x_tilde_and_lam_0_on_x_tilde_edited(s):
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


def test_moving_lambda_reruns_only_denoise_and_decode(s):
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


def test_a_sweep_equals_its_generates(s):
    s.paint(yellow_square(s.size))
    videos = s.sweep([0.0, 0.5], seed=2, progress=False)
    for lam, video in zip((0.0, 0.5), videos, strict=True):
        assert np.array_equal(video.frames, s.generate(seed=2, lam=lam, progress=False).frames)


def test_frame_counts_and_sizes_follow_the_family(s):
    s.lam = 1.0
    last = s.generate(seed=0, progress=False)
    with pytest.raises(InstructionError, match="num_frames.*4k\\+1"):
        s.generate(num_frames=8, progress=False)
    with pytest.raises(InstructionError, match="num_frames"):
        s.num_frames = 6
    assert s.num_frames == 9 and s.last_video is last
    with pytest.raises(InstructionError, match="size.*multiples of 16"):
        s.size = (72, 64)
    video = s.generate(seed=0, num_frames=5, progress=False)
    assert video.frames.shape == (5, s.size[1], s.size[0], 3)


def test_takes_restore_bitwise_and_stories_continue(s):
    s.paint(yellow_square(s.size))
    s.lam = 0.4
    first = s.generate(seed=3, progress=False)
    s.lam = 0.9
    s.generate(seed=4, progress=False)
    s.restore(s.takes[-2])
    assert np.array_equal(s.generate(progress=False).frames, first.frames)
    s.continue_from()
    assert np.array_equal(np.asarray(s.image), s.story.segments[-1].video.frames[-1])


def test_trajectories_in_both_modes_move_the_video(s):
    s.image = picture(SIZE)
    s.clear_paint()
    s.lam = 0.0
    still = s.generate(seed=0, progress=False).frames
    width, height = s.size
    s.trajectories = [Trajectory(points=[(16, height // 2), (48, height // 2)], radius=8)]
    try:
        for mode in ("path", "endpoint"):
            s.trajectory_mode = mode
            moved = s.generate(seed=0, progress=False).frames
            assert np.abs(moved.astype(int) - still).mean() > 0.01, mode
    finally:
        s.trajectories = []
    # path mode's target is the animated clip through the 3D VAE: (1, C, f, h, w), like the noise
    frames = [picture(SIZE)] * 9
    encoded = s.video_backend.encode_images(frames, torch.Generator(), num_frames=9)
    assert s.video_backend.trajectory_target(encoded).shape == s.video_backend.latent_shape(9, 64, 64)


def test_save_and_load_keep_the_family(tmp_path, s):
    s.clear_paint()
    s.lam = 1.0
    video = s.generate(seed=0, progress=False)
    s.save(tmp_path / "saved")
    loaded = Session.load(tmp_path / "saved")
    assert type(loaded.video_backend).__name__ == "HunyuanVideoBackend"
    assert loaded.size == s.size and loaded.num_frames == s.num_frames
    assert np.array_equal(loaded.generate(seed=0, progress=False).frames, video.frames)


def test_the_tiny_backend_builds_offline():
    from ivcore.backends.hunyuan import tiny_hunyuan_backend

    backend = tiny_hunyuan_backend(seed=0)
    assert backend.native_size == SIZE and backend.num_frames == 9
    assert backend.latent_shape(9, 64, 64) == (1, 4, 3, 4, 4)
