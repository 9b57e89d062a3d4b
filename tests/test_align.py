"""Eq. 5 FrameAlign (residual, zero-initialised, safetensors only) and the stats alignment."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ivcore.align import FrameAlign, align_stats, apply_align
from ivcore.errors import InstructionError


def clip(b: int = 2, c: int = 4, f: int = 5, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, f, h, w, generator=torch.Generator().manual_seed(seed))


def randomize(module: FrameAlign, seed: int = 1) -> FrameAlign:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


def channel_gap(latents: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean over frames and channels of |frame mean - reference mean| and |std - std|."""
    mu, sd = latents.mean(dim=(-2, -1)), latents.std(dim=(-2, -1), unbiased=False)  # (B, C, F)
    mu_r, sd_r = ref.mean(dim=(-2, -1)), ref.std(dim=(-2, -1), unbiased=False)  # (B, C)
    return float((mu - mu_r[..., None]).abs().mean() + (sd - sd_r[..., None]).abs().mean())


# -- FrameAlign ---------------------------------------------------------------------------------


def test_modules_in_paper_order():
    m = FrameAlign()
    kinds = [type(x) for x in m.head]
    assert kinds == [nn.GroupNorm, nn.SiLU, nn.Conv2d]
    assert [type(x) for x in m.modules()][2:] == [nn.GroupNorm, nn.SiLU, nn.Conv2d]
    assert m.head[0].num_channels == 4 and m.head[2].in_channels == m.head[2].out_channels == 4
    assert torch.count_nonzero(m.head[2].weight) == 0 and torch.count_nonzero(m.head[2].bias) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_identity_at_init(dtype):
    m = FrameAlign()
    v = clip().to(dtype) * 3 + 1
    ref = torch.randn(2, 4, 8, 8).to(dtype)
    out = m(v, ref)
    assert out.dtype == dtype and out.shape == v.shape
    assert torch.equal(out, v)
    frames = clip(b=1)[0].permute(1, 0, 2, 3)  # (F, C, h, w)
    assert torch.equal(m(frames, ref[0]), frames)
    assert torch.equal(apply_align(m, v, ref), v)


def test_reference_is_broadcast_over_frames_and_batches():
    m = randomize(FrameAlign())
    v, ref = clip(), torch.randn(1, 4, 8, 8)
    a = m(v, ref)
    b = m(v, ref[0])
    c = m(v, ref.expand(2, 4, 8, 8))
    assert torch.equal(a, b) and torch.allclose(a, c)
    assert not torch.allclose(a, v)
    # Frame 3 of batch 1 only depends on that frame and the reference.
    one = m(v[1:2, :, 3:4], ref)
    assert torch.allclose(one[0, :, 0], a[1, :, 3], atol=1e-6)
    # The (F, C, h, w) layout gives the same frames.
    frames = v[1].permute(1, 0, 2, 3)
    assert torch.allclose(m(frames, ref[0]).permute(1, 0, 2, 3), a[1], atol=1e-6)


def test_residual_structure_matches_eq5():
    m = randomize(FrameAlign())
    v, ref = clip(b=1), torch.randn(1, 4, 8, 8)
    frames = v[0].permute(1, 0, 2, 3)
    expected = frames + m.head[2](nn.functional.silu(m.head[0](frames - ref)))
    assert torch.allclose(m(v, ref)[0].permute(1, 0, 2, 3), expected, atol=1e-6)


def test_save_and_load_reproduce_outputs(tmp_path):
    m = randomize(FrameAlign(channels=8, groups=2, kernel_size=1))
    assert torch.count_nonzero(m.head[2].weight) > 0
    v, ref = clip(c=8), torch.randn(2, 8, 8, 8)
    path = tmp_path / "align.safetensors"
    m.save(path)
    loaded = FrameAlign.from_file(path)
    assert (loaded.channels, loaded.groups, loaded.kernel_size) == (8, 2, 1)
    assert torch.equal(loaded(v, ref), m(v, ref))
    assert not torch.equal(loaded(v, ref), v)
    assert torch.equal(FrameAlign.from_file(str(path))(v, ref), m(v, ref))


@pytest.mark.parametrize("name", ["align.bin", "align.pt", "align.ckpt", "align.safetensors.bin"])
def test_pickle_paths_are_refused(tmp_path, name):
    path = tmp_path / name
    torch.save(FrameAlign().state_dict(), path)
    with pytest.raises(InstructionError, match="safetensors") as e:
        FrameAlign.from_file(path)
    assert e.value.field == "path"
    with pytest.raises(InstructionError):
        FrameAlign().save(path)


def test_foreign_safetensors_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(InstructionError):
        FrameAlign.from_file(path)


def test_bad_shapes_and_settings():
    m = FrameAlign()
    with pytest.raises(InstructionError):
        m(torch.zeros(4, 8, 8), torch.zeros(4, 8, 8))
    with pytest.raises(InstructionError):
        m(clip(), torch.zeros(4, 6, 8))  # spatial size differs
    with pytest.raises(InstructionError):
        m(clip(), torch.zeros(3, 4, 8, 8))  # batch neither 1 nor B
    with pytest.raises(InstructionError):
        m(clip(c=3), torch.zeros(3, 8, 8))  # channels differ from the module
    for kwargs in ({"channels": 0}, {"channels": 4, "groups": 3}, {"kernel_size": 2}):
        with pytest.raises(InstructionError):
            FrameAlign(**kwargs)


# -- stats ----------------------------------------------------------------------------------------


def drifted(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip that starts at the reference and drifts per channel in mean and contrast."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(1, 4, 16, 16, generator=g)
    frames = []
    for i in range(8):
        shifted = torch.roll(ref, shifts=(i, 2 * i), dims=(-2, -1))
        offset = torch.tensor([0.1, -0.2, 0.15, 0.05]).view(1, 4, 1, 1) * i
        scale = 1 + torch.tensor([0.05, -0.03, 0.08, 0.02]).view(1, 4, 1, 1) * i
        frames.append(shifted * scale + offset + 0.05 * torch.randn(1, 4, 16, 16, generator=g))
    return torch.stack(frames, dim=2), ref


def test_stats_reduce_drift():
    v, ref = drifted()
    before = channel_gap(v, ref)
    out = align_stats(v, ref)
    after = channel_gap(out, ref)
    assert before > 0.3
    assert after < 1e-5 < before
    half = channel_gap(align_stats(v, ref, strength=0.5), ref)
    assert after < half < before
    assert torch.equal(align_stats(v, ref, strength=0.0), v)
    # Spatial structure is kept: each output frame is an affine map of the input frame.
    assert torch.corrcoef(torch.stack([out[0, 0, 5].flatten(), v[0, 0, 5].flatten()]))[0, 1] > 0.9999


def test_stats_leave_undrifted_clip_unchanged():
    g = torch.Generator().manual_seed(3)
    ref = torch.randn(4, 16, 16, generator=g) * 2 + 0.5
    # Rolled copies of the reference have exactly its per-channel mean and std.
    v = torch.stack([torch.roll(ref, shifts=(i, -i), dims=(-2, -1)) for i in range(6)], dim=1)[None]
    out = align_stats(v, ref)
    assert (out - v).abs().max() < 1e-6
    assert torch.equal(apply_align("stats", v, ref), out)


def test_stats_frame_layout_and_dtype():
    v, ref = drifted(1)
    frames = v[0].permute(1, 0, 2, 3).half()
    out = align_stats(frames, ref[0].half())
    assert out.dtype == torch.float16 and out.shape == frames.shape
    assert torch.allclose(out.float().permute(1, 0, 2, 3)[None], align_stats(v, ref), atol=1e-2)


def test_apply_align_dispatch():
    v, ref = drifted()
    assert apply_align(None, v, ref) is v
    for bad in ("STATS", "conv", 1, True, nn.Conv2d(4, 4, 1), FrameAlign):
        with pytest.raises(InstructionError) as e:
            apply_align(bad, v, ref)
        assert e.value.field == "align"
    for strength in (-0.1, 1.5, float("nan"), "1"):
        with pytest.raises(InstructionError):
            align_stats(v, ref, strength=strength)
