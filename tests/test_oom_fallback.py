"""Out-of-memory fallback (issue 11, item 4): split UNet rows and decoded frames, remember what fit.

A forward pre-hook stands for a GPU that runs out of memory above a row count: it raises
torch.OutOfMemoryError when the UNet gets more rows (videos) than it allows. The split run must
give the unsplit result (within 1e-5 on the CPU), lower `max_rows` and keep the session usable.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import red_stroke, scene

from ivcore import InstructionError, Session
from ivcore.backends.fallback import OutOfMemoryError, split_call


class RowLimit:
    """A pre-hook that raises OutOfMemoryError when a module's first input has more than `limit` rows."""

    def __init__(self, module: torch.nn.Module, limit: int):
        self.limit = limit
        self.calls: list[int] = []  # rows of every call, failed ones included
        self.raised = 0
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        rows = args[0].shape[0]
        self.calls.append(rows)
        if rows > self.limit:
            self.raised += 1
            raise torch.OutOfMemoryError(f"test: {rows} rows > {self.limit}")

    def remove(self) -> None:
        self.handle.remove()


def blended(video: str = "pia") -> Session:
    """A tiny session whose next generate makes 4-row UNet calls (x~ and x~', with guidance)."""
    s = Session.tiny(seed=0, video=video)
    s.image = scene()
    s.motion = "the sun rises"
    s.paint(red_stroke())
    s.lam = 0.5
    s.num_frames = 4
    s.steps = 3
    return s


@pytest.fixture(scope="module")
def reference() -> tuple[torch.Tensor, np.ndarray]:
    s = blended()
    video = s.generate(seed=5, progress=False)
    return s.last_latents.clone(), video.frames.copy()


def float_frames(s: Session, latents: torch.Tensor) -> torch.Tensor:
    """Frames in [0, 1] before uint8 rounding, decoded without any split."""
    limit, s.video_backend.max_decode_frames = s.video_backend.max_decode_frames, None
    try:
        return s.video_backend.decode(latents)
    finally:
        s.video_backend.max_decode_frames = limit


def assert_same_video(s: Session, reference) -> None:
    """Equal up to float rounding of the batch size: frames within 1e-5, latents within 1e-5 relative.

    The tiny random UNet drives latents to |x| ~ 30, so their absolute rounding is ~1e-4 (DESIGN.md:
    compare frames or relative latents, not raw latents).
    """
    latents, frames = reference
    assert (s.last_latents - latents).abs().max() <= 1e-5 * latents.abs().max()
    assert (float_frames(s, s.last_latents) - float_frames(s, latents)).abs().max() <= 1e-5
    assert np.abs(s.last_video.frames.astype(int) - frames.astype(int)).max() <= 1


@pytest.mark.parametrize(("limit", "kept"), [(3, 2), (2, 2), (1, 1)])
def test_unet_rows_split_in_halves_and_the_limit_is_kept(reference, limit, kept):
    s = blended()
    assert s.video_backend.max_rows is None
    hook = RowLimit(s.video_backend.unet, limit)
    with pytest.warns(RuntimeWarning, match=r"video UNet \(4 rows of 4 frames\).*max_rows = " + str(kept)):
        s.generate(seed=5, progress=False)
    hook.remove()
    assert s.video_backend.max_rows == kept
    assert_same_video(s, reference)
    # halving: 4 rows failed, then 2 (and 1 when 2 did not fit), never more than one failure per size
    assert hook.calls[0] == 4 and hook.raised == (2 if kept == 1 else 1)
    # the first step found the limit; every later call was split up front and none failed again
    successful = [rows for rows in hook.calls if rows <= limit]
    assert max(successful) == kept and sum(successful) == 4 * s.steps
    assert s.lam == 0.5 and not s.running


def test_later_generations_split_up_front_without_errors(reference):
    s = blended()
    hook = RowLimit(s.video_backend.unet, 2)
    with pytest.warns(RuntimeWarning):
        s.generate(seed=5, progress=False)
    hook.calls.clear()
    raised = hook.raised
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second out-of-memory message
        s.generate(seed=6, progress=False)
    hook.remove()
    assert hook.raised == raised and hook.calls and max(hook.calls) == 2


def test_user_set_max_rows_splits_up_front(reference):
    s = blended()
    s.video_backend.max_rows = 1
    hook = RowLimit(s.video_backend.unet, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.generate(seed=5, progress=False)
    hook.remove()
    assert hook.raised == 0 and set(hook.calls) == {1}
    assert_same_video(s, reference)
    s.video_backend.max_rows = None  # back to one call: the very same batch as before
    assert s.video_backend.max_rows is None


@pytest.mark.parametrize("value", [0, -2, 1.5, "2", True])
def test_bad_max_rows_raises_and_keeps_the_limit(value):
    s = Session.tiny(seed=0)
    s.video_backend.max_rows = 3
    with pytest.raises(InstructionError, match="max_rows"):
        s.video_backend.max_rows = value
    with pytest.raises(InstructionError, match="max_decode_frames"):
        s.video_backend.max_decode_frames = value
    assert s.video_backend.max_rows == 3 and s.video_backend.max_decode_frames is None


def test_one_row_that_does_not_fit_raises_and_keeps_the_session(reference):
    s = blended()
    s.generate(seed=5, progress=False)
    before = s.last_video.frames.copy()
    hook = RowLimit(s.video_backend.unet, 0)
    with pytest.raises(OutOfMemoryError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.generate(seed=9, progress=False)
    hook.remove()
    assert np.array_equal(s.last_video.frames, before)  # the last good video stays
    assert not s.running and s.lam == 0.5
    assert s.video_backend.max_rows is None  # nothing fit: no limit was learned
    s.generate(seed=5, progress=False)  # and the session still works
    assert_same_video(s, reference)


def test_decode_splits_frames_on_out_of_memory(reference):
    s = blended()
    original = s.video_backend.vae.decode
    calls: list[int] = []

    def decode(z, *args, **kwargs):
        calls.append(z.shape[0])
        if z.shape[0] > 2:
            raise torch.OutOfMemoryError("test: decode")
        return original(z, *args, **kwargs)

    s.video_backend.vae.decode = decode
    try:
        with pytest.warns(RuntimeWarning, match=r"VAE decode \(4 frames\).*max_decode_frames = 2"):
            s.generate(seed=5, progress=False)
    finally:
        del s.video_backend.vae.decode
    assert calls[-3:] == [4, 2, 2]  # (before: P_img's one-image decodes of x~ and x~')
    assert s.video_backend.max_decode_frames == 2
    assert_same_video(s, reference)


def test_split_call_keeps_finished_chunks():
    done: list[tuple[int, int]] = []

    def run(start: int, stop: int) -> torch.Tensor:
        if stop - start > 2 or (start, stop) == (4, 6):
            raise torch.OutOfMemoryError("test")
        done.append((start, stop))
        return torch.arange(start, stop)

    with pytest.warns(RuntimeWarning, match="calls of at most 1"):
        outputs, lowered = split_call(run, 7, 3, device=torch.device("cpu"), what="x", setting="limit")
    assert torch.equal(torch.cat(outputs), torch.arange(7))
    # 3 failed -> 2 fit for (0, 2) and (2, 4); (4, 6) failed -> 1 from row 4 on, rows 0-3 not redone
    assert done == [(0, 2), (2, 4), (4, 5), (5, 6), (6, 7)] and lowered == 1


def test_svd_unet_rows_split_too():
    from ivcore.backends.svd import SVDEncoding

    s = blended("svd")
    b = s.video_backend
    encoded = b.encode_images([s.intermediate(edited=False), s.intermediate()], torch.Generator().manual_seed(0))
    conditions = [b.condition(SVDEncoding(encoded.latents[i : i + 1], encoded.embeds[i : i + 1]), 4) for i in (0, 1)]
    b.scheduler.set_timesteps(2)
    latents = torch.randn((2, *b.latent_shape(4, 64, 64)[1:]), generator=torch.Generator().manual_seed(1))
    latents = latents * b.scheduler.init_noise_sigma
    t = b.scheduler.timesteps[0]
    plain = b.predict(b.scheduler, latents, t, conditions, None, None, 3.0)  # one 4-row call
    hook = RowLimit(b.unet, 1)
    with pytest.warns(RuntimeWarning, match="max_rows = 1"):
        split = b.predict(b.scheduler, latents, t, conditions, None, None, 3.0)
    hook.remove()
    assert b.max_rows == 1 and hook.raised == 2 and hook.calls[-4:] == [1, 1, 1, 1]
    assert (split - plain).abs().max() <= 1e-5 * plain.abs().max()
    # end to end the split run works too; SVD's Euler steps start at sigma 700, where one float32
    # ulp of the sample (~2e-4) is already more than 1e-5 of the final latents, so compare loosely
    reference = blended("svd")
    reference.steps = s.steps = 2
    reference.generate(seed=5, progress=False)
    s.generate(seed=5, progress=False)
    assert (s.last_latents - reference.last_latents).abs().max() <= 1e-3


def test_svd_decode_out_of_memory_names_the_chunk_setting():
    s = blended("svd")
    s.steps = 1
    original = s.video_backend.vae.decode

    def decode(z, *args, **kwargs):
        if z.shape[0] > 1:
            raise torch.OutOfMemoryError("test: decode")
        return original(z, *args, **kwargs)

    s.video_backend.vae.decode = decode
    with pytest.raises(OutOfMemoryError), pytest.warns(RuntimeWarning, match="decode_chunk_size = 2"):
        s.generate(seed=5, progress=False)
    assert s.last_video is None and not s.running
    s.video_backend.decode_chunk_size = 1  # what the message says: then it runs
    video = s.generate(seed=5, progress=False)
    del s.video_backend.vae.decode
    assert video.frames.shape[0] == 4
