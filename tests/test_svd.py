"""Stable Video Diffusion behind the Session: Eq. 4 identities and the StableVideoDiffusionPipeline oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import red_stroke, scene

from ivcore import InstructionError, Session, Trajectory
from ivcore.backends.svd import (
    SVD_DEFAULTS,
    SVDVideoBackend,
    load_svd_backend,
    save_tiny_svd,
    tiny_svd_backend,
)
from ivcore.stages.denoise import denoise
from ivcore.stages.images import composite

FRAMES, STEPS = 3, 2


@pytest.fixture(scope="module")
def image_backend():
    """P_img of the tiny PIA preset (stateless between calls, so one per module is enough)."""
    from ivcore.backends.build import tiny_backends

    return tiny_backends(0)[0]


def svd_session(image_backend, image=None, **backend_kwargs) -> Session:
    """A tiny SVD session: x~ = x (content_strength 0), FRAMES frames, STEPS steps, guidance 3."""
    options = dict(SVD_DEFAULTS, steps=STEPS)
    s = Session(image_backend, tiny_svd_backend(0, **backend_kwargs), spec={"preset": "tiny-svd"}, **options)
    s.image = scene() if image is None else image
    s.content_strength = 0.0
    s.num_frames = FRAMES
    return s


@pytest.fixture
def svd(image_backend) -> Session:
    return svd_session(image_backend)


def float_frames(s: Session) -> np.ndarray:
    return s.video_backend.decode(s.last_latents).cpu().numpy()


def svd_reference(s: Session, *, guidance: float, seed: int, output_type: str = "np"):
    """diffusers' StableVideoDiffusionPipeline over the session's modules: the oracle.

    The Session draws the initial noise first and the noise augmentation second; the pipeline
    draws them the other way round unless it is handed `latents`. So the reference is given
    the Session's first draw as `latents` and the generator right after it: the pipeline's
    augmentation draw is then the Session's too.
    """
    b = s.video_backend
    pipe = b.pipeline()
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(seed)
    width, height = s.size
    _, c, f, h, w = b.latent_shape(s.num_frames, height, width)
    latents = torch.randn((1, f, c, h, w), generator=generator, dtype=b.dtype)
    out = pipe(
        s.intermediate(edited=False), height=s.size[1], width=s.size[0], num_frames=s.num_frames,
        num_inference_steps=s.steps, min_guidance_scale=b.min_guidance, max_guidance_scale=guidance,
        fps=b.fps, motion_bucket_id=b.motion_bucket_id, noise_aug_strength=b.noise_aug_strength,
        generator=generator, latents=latents, output_type=output_type,
    )  # fmt: skip
    return out.frames


@pytest.mark.parametrize("guidance", [3.0, 1.0])
def test_plain_run_matches_svd_pipeline(svd, guidance):
    video = svd.generate(seed=3, guidance=guidance, progress=False)
    reference = svd_reference(svd, guidance=guidance, seed=3)[0]
    assert reference.shape == float_frames(svd).shape == (FRAMES, 64, 64, 3)
    assert np.abs(float_frames(svd) - reference).max() <= 1e-4
    as_uint8 = (reference * 255).round().astype(np.uint8)
    assert np.abs(video.frames.astype(int) - as_uint8).max() <= 1
    latents = svd_reference(svd, guidance=guidance, seed=3, output_type="latent")
    assert (latents.permute(0, 2, 1, 3, 4) - svd.last_latents).abs().max() <= 1e-4


def test_fp16_matches_svd_pipeline_and_keeps_the_vae_fp16(svd):
    """fp16 (the CUDA default): the VAE encodes upcast to fp32 (force_upcast) like the pipeline, then goes back.

    Runs the Session's stages by hand up to the latents: an fp16 temporal decode on CPU is slow.
    """
    b = svd.video_backend
    for module in (b.unet, b.vae, b.image_encoder):
        module.to(torch.float16)
    generator = torch.Generator().manual_seed(3)
    latents = b.initial_noise(b.latent_shape(FRAMES, 64, 64), generator)
    condition = b.condition(b.encode_images([svd.intermediate(edited=False)], generator), FRAMES)
    assert b.vae.dtype == torch.float16 and condition.latents.dtype == torch.float16
    b.scheduler.set_timesteps(STEPS)
    out = denoise(b, b.scheduler, latents, None, None, condition, None, [1.0] * STEPS, guidance=3.0, progress=False)
    reference = svd_reference(svd, guidance=3.0, seed=3, output_type="latent")
    assert out.dtype == torch.float16
    assert (reference.permute(0, 2, 1, 3, 4) - out).abs().max() <= 1e-3


def test_lam_one_with_an_edit_is_the_plain_run(svd):
    svd.generate(seed=4, progress=False)
    plain = svd.last_latents.clone()
    svd.paint(red_stroke())
    svd.lam = 1.0
    svd.generate(seed=4, progress=False)
    assert torch.equal(svd.last_latents, plain)


def test_lam_zero_is_plain_video_of_edited_image(svd, image_backend):
    svd.paint(red_stroke())
    svd.lam = 0.0
    edited_video = svd.generate(seed=5, progress=False)

    plain = svd_session(image_backend, image=composite(scene(), svd.paint_layer))
    assert np.array_equal(np.asarray(plain.intermediate(edited=False)), np.asarray(svd.intermediate(edited=True)))
    plain_video = plain.generate(seed=5, progress=False)
    assert torch.equal(svd.last_latents, plain.last_latents)
    assert np.array_equal(edited_video.frames, plain_video.frames)


def test_lam_half_differs_from_both_ends(svd):
    svd.paint(red_stroke())
    ends = {}
    for lam in (0.0, 0.5, 1.0):
        svd.lam = lam
        svd.generate(seed=2, progress=False)
        ends[lam] = float_frames(svd)
    assert np.abs(ends[0.5] - ends[1.0]).max() > 1e-4
    assert np.abs(ends[0.5] - ends[0.0]).max() > 1e-4
    assert np.abs(ends[0.0] - ends[1.0]).max() > 1e-4


def test_sweep_batches_lambdas_on_svd(svd):
    """Session.sweep denoises several lambdas in one batch: L latents x 2 branches of SVD rows."""
    svd.paint(red_stroke())
    videos = svd.sweep([0.0, 0.5], seed=1, progress=False)
    for lam, video in zip((0.0, 0.5), videos, strict=True):
        single = svd.generate(seed=1, lam=lam, progress=False)
        assert np.abs(video.frames.astype(int) - single.frames.astype(int)).max() <= 1


def test_branches_batched_equal_branches_alone(svd):
    """Two conditions in one UNet call give each branch's own prediction (rows stay paired)."""
    b = svd.video_backend
    gen = torch.Generator().manual_seed(0)
    latents = b.initial_noise(b.latent_shape(FRAMES, 64, 64), gen)
    state = gen.get_state()
    base = b.condition(b.encode_images([scene()], gen), FRAMES)
    gen.set_state(state)
    svd.paint(red_stroke())
    edited = b.condition(b.encode_images([svd.intermediate(edited=True)], gen), FRAMES)
    b.scheduler.set_timesteps(STEPS)
    t = b.scheduler.timesteps[0]
    both = b.predict(b.scheduler, torch.cat([latents] * 2), t, [base, edited], None, None, 3.0)
    alone = [b.predict(b.scheduler, latents, t, [c], None, None, 3.0) for c in (base, edited)]
    assert both.shape == (2, 4, FRAMES, 16, 16)
    assert (both - torch.cat(alone)).abs().max() <= 1e-5
    assert (alone[0] - alone[1]).abs().max() > 1e-4


def test_session_paths_on_svd(svd):
    """max_frames, size, fps come from SVD; motion text and PIA's motion_scale do not matter."""
    b = svd.video_backend
    assert svd.size == (64, 64) and svd.fps == b.fps == 7
    assert b.text_encoder is None and b.encode_prompt("anything").shape == (1, 1, 1)
    with pytest.raises(InstructionError):
        svd.num_frames = b.max_frames + 1
    first = svd.generate(seed=1, progress=False)
    svd.motion = "the sun rises"
    svd.motion_scale = 2
    again = svd.generate(seed=1, progress=False)
    assert np.array_equal(first.frames, again.frames)
    svd.lam = 0.5
    svd.generate(seed=1, progress=False)
    assert svd.stats["encode"]["misses"] == 1  # nothing edited: x~ is encoded once


def test_trajectory_path_mode_conditions_per_frame(svd):
    """Path mode hands SVD one edited image per frame: per-frame latents, mean embedding."""
    svd.trajectories = [Trajectory(points=[(16, 16), (40, 20)], radius=8)]
    svd.lam = 0.0
    video = svd.generate(seed=0, progress=False)
    assert video.frames.shape == (FRAMES, 64, 64, 3)
    b = svd.video_backend
    frames = [scene()] * FRAMES
    encoded = b.encode_images(frames, torch.Generator().manual_seed(0))
    condition = b.condition(encoded, FRAMES)
    assert condition.latents.shape == (1, FRAMES, 4, 16, 16) and condition.embeds.shape == (1, 1, 32)
    with pytest.raises(ValueError):
        b.condition(encoded, FRAMES + 1)


def test_settings_are_part_of_the_cache_key(svd):
    svd.generate(seed=0, progress=False)
    before = svd.last_latents.clone()
    version = svd.video_backend.weights_version
    svd.video_backend.motion_bucket_id = 30
    assert svd.video_backend.weights_version == version + 1
    svd.generate(seed=0, progress=False)
    assert svd.stats["denoise"]["misses"] == 2
    assert (svd.last_latents - before).abs().max() > 1e-4


def test_initial_noise_uses_the_sampling_sigma():
    """A never-set Euler scheduler reports 14.6; SVD's sampling schedule starts at sigma_max 700."""
    b = tiny_svd_backend(0)
    fresh = b.initial_noise((1, 4, 2, 4, 4), torch.Generator().manual_seed(0))
    b.scheduler.set_timesteps(STEPS)
    after = b.initial_noise((1, 4, 2, 4, 4), torch.Generator().manual_seed(0))
    assert torch.equal(fresh, after)
    assert float(b.scheduler.init_noise_sigma) == pytest.approx(700.0, abs=0.01)


def test_load_from_folder_equals_tiny(tmp_path):
    folder = save_tiny_svd(tmp_path / "tiny-svd", seed=0)
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = load_svd_backend(folder, device="cpu", size=64, num_frames=FRAMES)
    tiny = tiny_svd_backend(0)
    assert isinstance(loaded, SVDVideoBackend) and loaded.dtype == torch.float32
    for name in ("unet", "vae", "image_encoder"):
        ours, theirs = getattr(loaded, name).state_dict(), getattr(tiny, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    public = [{k: v for k, v in dict(x.scheduler.config).items() if not k.startswith("_")} for x in (loaded, tiny)]
    assert public[0] == public[1]
    images = [scene()]
    a = loaded.encode_images(images, torch.Generator().manual_seed(0))
    b = tiny.encode_images(images, torch.Generator().manual_seed(0))
    assert torch.equal(a.latents, b.latents)
    # transformers' loader lays the CLIP weights out differently in memory: equal values, 1e-7 roundings
    assert (a.embeds - b.embeds).abs().max() <= 1e-6


# ------------------------------------------------------------------------------ any picture shape (issue 30)
def wide_stroke(size: tuple[int, int]) -> np.ndarray:
    """An RGBA layer of W x H with an opaque red bar reaching into the right third of the frame."""
    width, height = size
    layer = np.zeros((height, width, 4), np.uint8)
    layer[height // 3 : height // 3 + 8, width // 4 : width - 4] = (255, 30, 30, 255)
    return layer


@pytest.mark.parametrize("size", [(96, 64), (64, 96)])
def test_non_square_plain_run_matches_svd_pipeline_and_eq4_identities_hold(image_backend, size):
    """At W x H: CLIP resize, VAE encode, time ids and the temporal decode agree with the pipeline at that size."""
    width, height = size
    s = svd_session(image_backend)
    s.size = size
    s.image = scene().resize(size)
    video = s.generate(seed=3, progress=False)
    assert video.frames.shape == (FRAMES, height, width, 3)
    assert s.last_latents.shape == (1, 4, FRAMES, height // 4, width // 4)
    reference = svd_reference(s, guidance=3.0, seed=3)[0]
    assert reference.shape == float_frames(s).shape
    assert np.abs(float_frames(s) - reference).max() <= 1e-4
    latents = svd_reference(s, guidance=3.0, seed=3, output_type="latent")
    assert (latents.permute(0, 2, 1, 3, 4) - s.last_latents).abs().max() <= 1e-4
    plain = s.last_latents.clone()
    # Eq. 4: lam = 1 with an edit is the plain video of x~; lam = 0 the plain video of x~'
    s.paint(wide_stroke(size))
    s.lam = 1.0
    s.generate(seed=3, progress=False)
    assert torch.equal(s.last_latents, plain)
    s.lam = 0.0
    edited = s.generate(seed=3, progress=False)
    assert (s.last_latents - plain).abs().max() > 1e-4  # the edit matters: the identities are not vacuous
    other = svd_session(image_backend)
    other.size = size
    other.image = s.intermediate(edited=True)
    assert np.array_equal(other.generate(seed=3, progress=False).frames, edited.frames)
    assert torch.equal(other.last_latents, s.last_latents)


def test_native_size_is_svds_landscape_for_full_size_configs(image_backend):
    """SVD-XT's configs (UNet sample_size 96, an 8x VAE: 768 px) give 1024 x 576; small models stay square."""
    from ivcore.backends.configs import SVD_XT_UNET_CONFIG, SVD_XT_VAE_CONFIG
    from ivcore.backends.svd import SVD_NATIVE_SIZE, svd_native_size

    factor = 2 ** (len(SVD_XT_VAE_CONFIG["block_out_channels"]) - 1)
    assert svd_native_size(SVD_XT_UNET_CONFIG["sample_size"] * factor) == SVD_NATIVE_SIZE == (1024, 576)
    assert svd_native_size(64) == (64, 64)
    b = tiny_svd_backend(0)
    assert b.native_size == (64, 64) and b.size == 64
    b.size = (96, 64)  # the square-era int attribute still sets, and reads the longer side
    assert b.native_size == (96, 64) and b.size == 96
    b.size = 32
    assert b.native_size == (32, 32)
    # a session's default size is its video backend's native size
    assert Session(image_backend, tiny_svd_backend(0, size=(96, 64))).size == (96, 64)


def test_unet_without_svd_time_ids_is_refused():
    parts = tiny_svd_backend(0)
    parts.unet.register_to_config(addition_time_embed_dim=4)
    with pytest.raises(ValueError, match="time ids"):
        SVDVideoBackend(parts.unet, parts.vae, parts.image_encoder, parts.feature_extractor, parts.scheduler)
