"""Clean-image previews while denoising: the scheduler's x0 estimate, decoded three ways.

Tiny preset, 2 frames, 3 DDIM steps: seconds a test. The scheduler's own `pred_original_sample`
is recorded by wrapping `scheduler.step`, so the tests compare the previews with what the
scheduler computed, not with a formula of their own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import ivcore.stages.preview as preview
from ivcore import Session
from ivcore.stages.denoise import wants_x0, x0_estimate
from ivwidgets import Studio
from ivwidgets.studio import frames_strip

STEPS, FRAMES = 3, 2
TIMEOUT = 120.0


pytestmark = pytest.mark.usefixtures("deadlock_watchdog")  # tests/conftest.py


@pytest.fixture(scope="module")
def s() -> Session:
    session = Session.tiny(seed=0)
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[20:30, 16:48] = (255, 40, 40, 255)
    session.paint(layer)
    session.lam = 0.5
    return session


@pytest.fixture()
def recorded(s: Session) -> Iterator[list[torch.Tensor]]:
    """The scheduler's pred_original_sample of every step of the next runs."""
    scheduler = s.video_backend.scheduler
    original = scheduler.step
    seen: list[torch.Tensor] = []

    @functools.wraps(original)  # keeps the signature: the loop inspects it for eta/generator
    def step(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        seen.append((out[1] if isinstance(out, tuple) else out.pred_original_sample).clone())
        return out

    scheduler.step = step
    yield seen
    del scheduler.step  # back to the class's method


def run_studio(s: Session, seed: int) -> Studio:
    """A generation in the Studio (a seed of its own per test: a cached result would not denoise)."""
    app = Studio(s, scrub_lams=None)
    app.steps.value, app.frames.value, app.seed.value = STEPS, FRAMES, seed
    assert app.generate() and app.wait(TIMEOUT), app.status.value
    assert app.error.value == "", app.error.value
    return app


def test_last_preview_is_the_decoded_x0_and_close_to_the_video(s: Session, recorded: list[torch.Tensor]) -> None:
    app = run_studio(s, seed=7)
    assert app.preview_step == STEPS and app.preview_source == "vae"  # 2 frames of 64x64: the VAE is cheap
    assert len(recorded) == STEPS
    expected = (s.video_backend.decode(recorded[-1]).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(app.preview_frames, expected)  # the scheduler's x0, decoded as the video is
    diff = np.abs(app.preview_frames.astype(int) - s.last_video.frames.astype(int))
    assert diff.mean() < 1.0 and diff.max() <= 8  # the last step's x0 is nearly the final latents
    assert (app.latents.width, app.latents.height) == (FRAMES * 64, 64)
    assert "x0" in app.preview_caption.value and "VAE" in app.preview_caption.value


def test_previews_use_the_preview_decoder_when_set(s: Session, recorded: list[torch.Tensor]) -> None:
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    decoder = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8),
        decoder_block_out_channels=(8, 8, 8),
        num_encoder_blocks=(1, 1, 1),
        num_decoder_blocks=(1, 1, 1),
        latent_channels=4,
    ).eval()
    calls: list[tuple[int, ...]] = []
    decoder.decoder.register_forward_pre_hook(lambda module, args: calls.append(tuple(args[0].shape)))
    s.preview_decoder = decoder  # what a user does with TAESD weights
    try:
        app = run_studio(s, seed=8)
    finally:
        s.preview_decoder = None
    assert app.preview_source == "decoder" and calls and set(calls) == {(FRAMES, 4, 16, 16)}
    with torch.no_grad():
        flat = recorded[-1][0].permute(1, 0, 2, 3)  # (F, 4, h, w)
        out = (decoder.decode(flat).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    assert np.array_equal(app.preview_frames, (out.numpy() * 255).round().astype(np.uint8))
    assert "preview decoder" in app.preview_caption.value


def test_big_clips_get_the_linear_map(s: Session, recorded: list[torch.Tensor], monkeypatch) -> None:
    monkeypatch.setattr(preview, "VAE_PREVIEW_MAX_PIXELS", 0)
    app = run_studio(s, seed=9)
    assert app.preview_source == "linear"
    assert np.array_equal(app.preview_frames, preview.latents_to_frames(recorded[-1]))
    assert app.preview_frames.shape == (FRAMES, 16, 16, 3)
    assert frames_strip(app.preview_frames).shape == (64, FRAMES * 64, 3)


def test_x0_previews_leave_the_results_unchanged(s: Session) -> None:
    seen: list[int] = []

    def with_x0(step: int, total: int, latents: torch.Tensor, x0: torch.Tensor | None = None) -> None:
        assert x0 is not None and x0.shape == latents.shape
        seen.append(step)

    assert wants_x0(with_x0) and not wants_x0(lambda i, n, z: None) and not wants_x0(None)
    kwargs = dict(seed=3, num_frames=FRAMES, steps=STEPS, progress=False)
    plain = s.sweep([0.5], **kwargs)[0]  # sweeps are not cached: both really denoise
    previewed = s.sweep([0.5], callback=with_x0, **kwargs)[0]
    assert seen == [1, 2, 3] and np.array_equal(plain.frames, previewed.frames)


def test_x0_estimate_without_pred_original_sample_matches_the_scheduler(s: Session) -> None:
    """For schedulers that return no x0, the loop computes it; for DDIM it must equal DDIM's own."""
    scheduler = s.video_backend.scheduler
    scheduler.set_timesteps(STEPS)
    sample, eps = torch.randn(1, 4, FRAMES, 16, 16), torch.randn(1, 4, FRAMES, 16, 16)
    t = scheduler.timesteps[1]
    out = scheduler.step(eps, t, sample, return_dict=False)
    assert x0_estimate(scheduler, out, sample, eps, t) is out[1]
    computed = x0_estimate(scheduler, out[:1], sample, eps, t)
    torch.testing.assert_close(computed, out[1], rtol=1e-5, atol=1e-5)


def test_x0_of_dpm_solver_is_its_converted_output(s: Session) -> None:
    from diffusers import DPMSolverMultistepScheduler

    backend = s.video_backend
    original = backend.scheduler
    backend.scheduler = DPMSolverMultistepScheduler.from_config(original.config)
    x0s: list[torch.Tensor] = []
    try:
        s.sweep(
            [0.5], seed=1, num_frames=FRAMES, steps=STEPS, progress=False,
            callback=lambda i, n, z, x0=None: x0s.append(x0),
        )  # fmt: skip
        last = backend.scheduler.model_outputs[-1]
    finally:
        backend.scheduler = original
    assert len(x0s) == STEPS and all(x is not None for x in x0s)
    assert torch.equal(x0s[-1], last)
