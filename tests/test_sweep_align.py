"""Lambda sweeps in one batched run, and Eq. 5 alignment wired into the Session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import red_stroke

from ivcore import InstructionError
from ivcore.align import FrameAlign


def test_sweep_matches_generate_per_lambda(session):
    session.paint(red_stroke())
    lams = [0.0, 0.25, 0.5, 1.0, [1.0, 0.5, 0.5, 0.0]]
    videos = session.sweep(lams, seed=3, progress=False)
    assert len(videos) == len(lams)
    decode = session.video_backend.decode
    for lam, video in zip(lams, videos, strict=True):
        session.generate(seed=3, lam=lam, progress=False)
        single = decode(session.last_latents).numpy()
        # on the CPU each lambda gets the very UNet call generate makes: bitwise equal
        assert np.array_equal(video.frames, session.last_video.frames)
        assert video.frames.shape == session.last_video.frames.shape
        # float frames of the batched run agree within 1e-5 of the range
        assert np.abs(np.asarray(video.frames, float) / 255 - single).max() <= 1 / 255 + 1e-5
    assert not np.array_equal(videos[0].frames, videos[3].frames)


def test_sweep_latents_match_generate_closely(session):
    session.paint(red_stroke())
    captured = []
    session.sweep([0.2, 0.7], seed=1, progress=False, callback=lambda s, n, lat: captured.append(lat.clone()))
    swept = captured[-1]
    for i, lam in enumerate([0.2, 0.7]):
        session.generate(seed=1, lam=lam, progress=False)
        assert (swept[i : i + 1] - session.last_latents).abs().max() <= 1e-4
        frames_sweep = session.video_backend.decode(swept[i : i + 1]).numpy()
        frames_single = session.video_backend.decode(session.last_latents).numpy()
        assert np.abs(frames_sweep - frames_single).max() <= 1e-5


def test_sweep_rejects_bad_lambdas_and_keeps_state(session):
    session.lam = 0.4
    for bad in ([], [0.5, 1.5], "0.5", None):
        with pytest.raises(InstructionError):
            session.sweep(bad, progress=False)
    assert session.lam == 0.4 and session.last_video is None


def test_align_default_is_none_and_identity_framealign_changes_nothing(session):
    assert session.align is None
    session.paint(red_stroke())
    session.lam = 0.5
    plain = session.generate(progress=False).frames
    session.align = FrameAlign()
    assert np.array_equal(session.generate(progress=False).frames, plain)


def test_align_stats_changes_decode_only(session):
    session.paint(red_stroke())
    session.lam = 0.5
    plain = session.generate(progress=False).frames
    before = {k: v["misses"] for k, v in session.stats.items()}
    session.align = "stats"
    aligned = session.generate(progress=False).frames
    after = {k: v["misses"] for k, v in session.stats.items()}
    assert after["denoise"] == before["denoise"] and after["decode"] == before["decode"] + 1
    assert not np.array_equal(aligned, plain)


def test_trained_framealign_is_applied(session):
    head = FrameAlign()
    with torch.no_grad():
        head.head[2].weight.normal_(0, 0.05)
    session.align = head
    first = session.generate(progress=False).frames
    session.align = None
    assert not np.array_equal(session.generate(progress=False).frames, first)


def test_bad_align(session):
    with pytest.raises(InstructionError, match="align"):
        session.align = "colour"
    assert session.align is None
