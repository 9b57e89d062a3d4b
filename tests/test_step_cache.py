"""diffusers' step caches on the DiT video families, correct under Eq. 4 (`Session.enable_cache`).

With a cache on, each Eq. 4 branch (and each lambda of a sweep) runs in cache contexts of its own, the guidance
rows as the family's pipeline calls them; lam = 1 is then the family's pipeline with the same cache config.
Every model is a tiny random-init one in its family's hub layout (`ivcore.testing.mirror`), loaded through
`Session.from_pretrained(folder)`. Tiny models change little from step to step, so thresholds that skip many
steps here may skip few on real weights: these tests check correctness, benchmarks/step_cache.py the speed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig
from family_helpers import family_session, levels, pipeline_frames, yellow_square

from ivcore import InstructionError, Session
from ivcore.backends import step_cache
from ivcore.testing import mirror

SIZES = {
    "wan2.1-i2v": (64, 48), "wan2.2-i2v-a14b": (64, 48), "cogvideox-5b-i2v": (64, 48),
    "ltx-video-0.9.0-i2v": (96, 64), "hunyuanvideo-1.5-480p-i2v": (64, 64),
}  # fmt: skip
# lite mode: predict the output projection, skip the blocks (the default patterns miss Wan's attn1 / attn2)
TAYLOR = TaylorSeerCacheConfig(
    cache_interval=2, disable_cache_before_step=2, taylor_factors_dtype=torch.float32, use_lite_mode=True
)
STEPS = 6  # enough steps for a cache to skip some (the tiny default is 4)
FBC = 0.1  # a FirstBlockCache threshold that skips steps of every tiny model


@pytest.fixture(scope="session")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("step-cache")
    return {kind: mirror(root / kind, kind) for kind in SIZES}


def make(tiny_model_dirs, folders, kind: str, steps: int = STEPS) -> Session:
    s = family_session(tiny_model_dirs, folders[kind], SIZES[kind])
    s.steps = steps
    return s


@pytest.fixture(scope="module")
def wan(tiny_model_dirs, folders):
    s = make(tiny_model_dirs, folders, "wan2.1-i2v")
    yield s
    s.disable_cache()


def oracle(s: Session, kind: str, image) -> np.ndarray:
    """The family's pipeline on `image` over the session's modules (and so with the cache they have on)."""
    if kind.startswith("ltx"):
        return pipeline_frames(s, image, 0, frame_rate=s.video_backend.frame_rate)
    if kind.startswith("hunyuan"):
        pipe = s.video_backend.pipeline()
        guider, pipe.guider = pipe.guider, pipe.guider.new(guidance_scale=s.guidance)
        try:
            frames = pipe(
                image=image, prompt=s.motion, negative_prompt=s.negative_prompt, num_frames=s.num_frames,
                num_inference_steps=s.steps, generator=torch.Generator().manual_seed(0), output_type="np",
            ).frames[0]  # fmt: skip
        finally:
            pipe.guider = guider
        return (frames * 255).round().astype(np.uint8)
    return pipeline_frames(s, image, 0)


def fresh(s: Session, **kwargs) -> np.ndarray:
    """A generate that really denoises (the stage cache forgotten first)."""
    s.cache.clear()
    return s.generate(seed=0, progress=False, **kwargs).frames


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def config_for(kind: str):
    # diffusers' FirstBlockCache and MagCache do not know HunyuanVideo 1.5's block class; TaylorSeer hooks attention
    if kind.startswith("hunyuan"):
        return TAYLOR
    # CogVideoX's DDIM moves the first block's residual by 0.2-0.4 a step on the tiny model, the others by < 0.15
    return FirstBlockCacheConfig(threshold=0.3 if kind.startswith("cogvideox") else FBC)


@pytest.mark.parametrize("kind", ["wan2.1-i2v", "wan2.2-i2v-a14b", "cogvideox-5b-i2v", "ltx-video-0.9.0-i2v",
                                  "hunyuanvideo-1.5-480p-i2v"])  # fmt: skip
def test_lam_1_with_a_cache_is_the_pipeline_with_the_same_cache(tiny_model_dirs, folders, kind):
    s = make(tiny_model_dirs, folders, kind, steps=4 if kind.startswith("hunyuan") else STEPS)
    s.lam = 1.0
    plain = fresh(s)
    plain_latents = s.last_latents
    s.enable_cache(config_for(kind))
    assert all(m.is_cache_enabled for m in step_cache.denoisers(s.video_backend))
    assert len(step_cache.denoisers(s.video_backend)) == (2 if kind == "wan2.2-i2v-a14b" else 1)
    cached = fresh(s)
    skipped = not torch.equal(s.last_latents, plain_latents)  # the cache did skip work (CogVideoX's tiny VAE
    # flattens the difference to 0 levels): the comparisons here mean something
    # the pipeline runs over the very modules, so with the very cache (it resets it after its run)
    assert levels(cached, oracle(s, kind, s.intermediate(edited=False))) == 0
    s.disable_cache()
    assert not step_cache.active(s.video_backend)
    assert np.array_equal(fresh(s), plain)  # off again: bitwise the run without a cache
    assert skipped


def test_every_branch_and_guidance_row_has_contexts_of_its_own(wan):
    s = wan
    s.paint(yellow_square(s.size))
    s.lam = 0.5
    s.enable_cache(FirstBlockCacheConfig(threshold=FBC))
    head = s.video_backend.transformer.blocks[0]._diffusers_hook.hooks["fbc_leader_block_hook"]
    seen = []

    def contexts(step, total, latents):
        seen.append(set(head.state_manager._state_cache))

    s.cache.clear()
    s.generate(seed=0, progress=False, callback=contexts)
    assert seen[0] == seen[-1] == {"base0-cond", "base0-uncond", "edit0-cond", "edit0-uncond"}
    assert head.state_manager._state_cache == {}  # reset after the run


def test_lam_half_with_a_cache_differs_from_both_ends_and_from_a_shared_context(wan, monkeypatch):
    s = wan
    s.paint(yellow_square(s.size))
    s.enable_cache(FirstBlockCacheConfig(threshold=FBC))
    latents = {}
    for lam in (1.0, 0.0, 0.5):
        s.lam = lam
        fresh(s)
        latents[lam] = s.last_latents
    # a random-init transformer barely uses its image input: compare latents, well above float noise (1e-6)
    for end in (1.0, 0.0):
        assert relative(latents[0.5], latents[end]) > 1e-4
    # both branches in one context: the edited rows compare with, and reuse, the base rows' residuals
    by_context = step_cache.by_context
    monkeypatch.setattr(
        step_cache, "by_context", lambda backend, model, run, labels, branches, n: by_context(
            backend, model, run, labels, ["shared"] * n, n)
    )  # fmt: skip
    fresh(s)
    shared = s.last_latents
    assert relative(shared, latents[0.5]) > 1e-4  # as far as lam 0.5 is from either end
    # and the edited branch pulled toward the base one: the blend nearer lam 1 than lam 0, where the correct
    # run is halfway (measured: 3.6e-4 from lam 1, 9.4e-4 from lam 0; the correct run 5.1e-4 from each)
    assert relative(shared, latents[1.0]) < 0.6 * relative(shared, latents[0.0])
    monkeypatch.undo()
    fresh(s)
    assert torch.equal(s.last_latents, latents[0.5])


@pytest.mark.parametrize("config", [FirstBlockCacheConfig(threshold=FBC), TAYLOR], ids=["fbc", "taylorseer"])
def test_the_cache_is_reset_between_generations(wan, monkeypatch, config):
    s = wan
    s.clear_paint()
    s.lam = 1.0
    s.enable_cache(config)
    first = fresh(s)
    s.cache.clear()
    s.generate(seed=1, progress=False)  # another video in between
    assert np.array_equal(fresh(s), first)
    if config is TAYLOR:  # what the reset prevents: TaylorSeer counting on from the last run's steps and factors
        # (FirstBlockCache recovers by itself: the first step's residual is far from the last step's)
        monkeypatch.setattr(step_cache, "reset", lambda backend: None)
        fresh(s)
        assert not np.array_equal(fresh(s), first)


def test_sweep_with_a_cache_equals_each_generate(wan):
    s = wan
    s.paint(yellow_square(s.size))
    s.enable_cache(FirstBlockCacheConfig(threshold=FBC))
    lams = [1.0, 0.5, [1.0, 1.0, 0.3, 0.3, 0.3, 0.3]]
    swept = s.sweep(lams, seed=0, progress=False)
    for lam, video in zip(lams, swept, strict=True):
        assert np.array_equal(video.frames, fresh(s, lam=lam))


def test_the_cache_is_in_the_denoise_key_and_the_takes(wan):
    s = wan
    s.disable_cache()
    s.clear_paint()
    s.lam = 1.0
    s.cache.clear()
    s.generate(seed=3, progress=False)
    plain_take = s.takes[-1]
    assert plain_take.models["step_cache"] is None
    misses = s.stats["denoise"]["misses"]
    s.enable_cache(FirstBlockCacheConfig(threshold=FBC))
    s.generate(seed=3, progress=False)
    assert s.stats["denoise"]["misses"] == misses + 1  # turning it on reruns the denoising
    encode_misses = s.stats["encode"]["misses"]
    s.enable_cache(FirstBlockCacheConfig(threshold=0.2))
    s.generate(seed=3, progress=False)
    assert s.stats["denoise"]["misses"] == misses + 2  # another threshold, another result
    assert s.stats["encode"]["misses"] == encode_misses  # the encode stage does not depend on the cache
    take = s.takes[-1]
    assert take.models["step_cache"] == {"class": "FirstBlockCacheConfig", "config": {"threshold": 0.2}}
    assert "step_cache" in take.diff(plain_take)["models"][0]
    s.disable_cache()
    with pytest.raises(InstructionError, match="step_cache"):
        s.restore(take)  # its video needs the cache: refused, as a take of other weights is
    s.enable_cache(FirstBlockCacheConfig(threshold=0.2))
    s.restore(take)
    s.cache.clear()
    assert np.array_equal(s.generate(progress=False).frames, take.video.frames)
    s.disable_cache()


def test_bad_configs_and_backends_raise_instruction_errors(tiny_model_dirs, folders, wan):
    s = wan
    for bad, field in [
        ("fbc", "step_cache"), (FirstBlockCacheConfig(threshold=-1.0), "step_cache.threshold"),
        (FirstBlockCacheConfig(threshold=float("nan")), "step_cache.threshold"),
        (TaylorSeerCacheConfig(cache_interval=0), "step_cache.cache_interval"),
        (TaylorSeerCacheConfig(taylor_factors_dtype="bf16"), "step_cache.taylor_factors_dtype"),
        (TaylorSeerCacheConfig(), "step_cache"),  # its default patterns hook nothing of Wan: not a silent no-op
    ]:  # fmt: skip
        with pytest.raises(InstructionError) as error:
            s.enable_cache(bad)
        assert error.value.field == field
    # MagCache is made for a step count: another one is refused at generate, the last video kept
    s.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=STEPS + 1))
    last = s.last_video
    with pytest.raises(InstructionError, match="steps"):
        fresh(s)
    assert s.last_video is last
    s.disable_cache()
    pia = Session.tiny(seed=0)
    with pytest.raises(InstructionError, match="DiT video family"):
        pia.enable_cache(FirstBlockCacheConfig())
    # a cache diffusers cannot hook on the family's blocks: refused, and nothing stays hooked
    hunyuan = make(tiny_model_dirs, folders, "hunyuanvideo-1.5-480p-i2v", steps=2)
    with pytest.raises(InstructionError, match="HunyuanVideo15"):
        hunyuan.enable_cache(FirstBlockCacheConfig())
    assert not step_cache.active(hunyuan.video_backend)
    hunyuan.enable_cache(TaylorSeerCacheConfig())  # and another cache can still be turned on
    assert step_cache.describe(hunyuan.video_backend)["class"] == "TaylorSeerCacheConfig"
