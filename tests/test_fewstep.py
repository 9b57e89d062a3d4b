"""Few-step previews (AnimateLCM-style LCM sampling): step count, the Eq. 4 identities, restore."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import red_stroke, scene
from diffusers import DDIMScheduler, LCMScheduler
from test_personalize import make_lora, state

from ivcore import InstructionError, Session
from ivcore.backends.fewstep import few_step_active, use_default_sampler, use_few_step
from ivcore.backends.personalize import lora_weights
from ivcore.stages.denoise import step_kwargs
from ivcore.stages.images import composite


def run(s: Session, seed: int = 0) -> np.ndarray:
    return s.generate(seed=seed, progress=False).frames


def float_frames(s: Session) -> np.ndarray:
    return s.video_backend.decode(s.last_latents).cpu().numpy()


def count_calls(s: Session):
    """Hooks counting scheduler.step calls and UNet forward calls (with their batch rows)."""
    steps, unet_rows = [], []
    scheduler = s.video_backend.scheduler
    original = scheduler.step

    def counted(*args, **kwargs):
        steps.append(1)
        return original(*args, **kwargs)

    scheduler.step = counted
    handle = s.video_backend.unet.register_forward_pre_hook(lambda m, args: unet_rows.append(args[0].shape[0]))
    return steps, unet_rows, handle


@pytest.mark.parametrize("steps", [2, 4])
def test_video_in_the_stated_number_of_steps(session, steps):
    use_few_step(session, steps=steps)
    assert isinstance(session.video_backend.scheduler, LCMScheduler)
    assert (session.steps, session.guidance) == (steps, 1.0)
    calls, rows, handle = count_calls(session)
    try:
        video = run(session)
    finally:
        handle.remove()
    assert len(calls) == steps
    assert rows == [1] * steps  # guidance 1: one UNet row per step, no unconditional branch
    assert len(session.video_backend.scheduler.timesteps) == steps
    assert video.shape == (4, 64, 64, 3)


def test_guidance_above_one_doubles_rows_not_steps(session):
    use_few_step(session, steps=3, guidance=1.8)
    calls, rows, handle = count_calls(session)
    try:
        run(session)
    finally:
        handle.remove()
    assert len(calls) == 3 and rows == [2, 2, 2]


def test_lcm_step_gets_the_seeded_generator(session):
    use_few_step(session, steps=4)
    assert "generator" in step_kwargs(session.video_backend.scheduler, torch.Generator())
    first = run(session, seed=7)
    session.cache.clear()
    assert np.array_equal(run(session, seed=7), first)
    assert not np.array_equal(run(session, seed=8), first)


def plain_session(image, like: Session, guidance: float) -> Session:
    s = Session.tiny(seed=0)
    s.image = image
    s.content, s.motion = like.content, like.motion
    s.num_frames = like.num_frames
    use_few_step(s, steps=4, guidance=guidance)
    return s


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_lam_identities_hold_with_lcm(session, guidance):
    session.paint(red_stroke())
    use_few_step(session, steps=4, guidance=guidance)

    session.lam = 1.0
    lam_one = run(session, seed=5)
    lam_one_latents = session.last_latents.clone()
    plain = plain_session(scene(), session, guidance)
    assert np.array_equal(lam_one, run(plain, seed=5))
    assert torch.equal(lam_one_latents, plain.last_latents)

    session.lam = 0.0
    lam_zero = run(session, seed=5)
    edited = plain_session(composite(scene(), session.paint_layer), session, guidance)
    assert np.array_equal(np.asarray(edited.intermediate(edited=False)), np.asarray(session.intermediate()))
    assert np.array_equal(lam_zero, run(edited, seed=5))
    assert torch.equal(session.last_latents, edited.last_latents)

    session.lam = 0.5
    run(session, seed=5)
    half = float_frames(session)
    for end in (plain, edited):
        assert np.abs(half - float_frames(end)).max() > 1e-4


def test_default_sampler_restores_scheduler_settings_and_cache(session):
    scheduler = session.video_backend.scheduler
    before = run(session)
    use_few_step(session, steps=2, guidance=1.5)
    assert few_step_active(session)
    misses = session.stats["denoise"]["misses"]
    fast = run(session)
    assert session.stats["denoise"]["misses"] == misses + 1  # another sampler: not served from the cache
    assert not np.array_equal(fast, before)
    use_few_step(session, steps=3)  # a second call keeps the first saved defaults
    use_default_sampler(session)
    assert not few_step_active(session)
    assert session.video_backend.scheduler is scheduler
    assert (session.steps, session.guidance) == (4, 7.5)
    assert np.array_equal(run(session), before)
    use_default_sampler(session)  # nothing saved: a no-op for DDIM
    assert session.video_backend.scheduler is scheduler


def test_hand_set_lcm_falls_back_to_ddim(session):
    b = session.video_backend
    b.scheduler = LCMScheduler.from_config(b.scheduler.config)
    use_default_sampler(session)
    assert isinstance(b.scheduler, DDIMScheduler)


def test_few_step_lora_is_loaded_on_video_and_removed(session, tmp_path):
    path = make_lora(tmp_path, name="animatelcm.safetensors")
    image_state, video_state = state(session.image_backend.unet), state(session.video_backend.unet)
    use_few_step(session, steps=2, lora=path, lora_scale=0.8)
    assert lora_weights(session) == {"image": {}, "video": {"fewstep": 0.8}}
    use_few_step(session, steps=2, lora=path, lora_scale=0.5)  # replaced, not stacked
    assert lora_weights(session)["video"] == {"fewstep": 0.5}
    run(session)
    use_default_sampler(session)
    assert lora_weights(session) == {"image": {}, "video": {}}
    for before, module in ((image_state, session.image_backend.unet), (video_state, session.video_backend.unet)):
        after = module.state_dict()
        assert list(after) == list(before) and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"steps": 0}, "steps"), ({"steps": 51}, "steps"), ({"guidance": -1}, "guidance"), ({"lora": "x.bin"}, "lora")],
)
def test_bad_settings_are_refused_and_change_nothing(session, kwargs, field):
    scheduler = session.video_backend.scheduler
    with pytest.raises(InstructionError) as info:
        use_few_step(session, **kwargs)
    assert info.value.field == field
    assert session.video_backend.scheduler is scheduler and not few_step_active(session)
    assert (session.steps, session.guidance) == (4, 7.5)
