"""Growing the video UNet: more layers per block or wider channels, the same function, and a run that trains on."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from ivcore.shapes import models as sm
from ivcore.shapes import train as st
from ivcore.shapes.grow import grow_video_checkpoint


def _outputs(unet, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 9, 8, 16, 16, generator=g)
    text = torch.randn(16, 77, 32, generator=g)
    with torch.no_grad():
        return unet.eval()(x, torch.tensor([700, 50]), encoder_hidden_states=text).sample


@pytest.mark.parametrize("layers", [2, 3])
def test_deepened_unet_computes_the_same_function(layers):
    torch.manual_seed(0)
    unet = sm.new_video_unet()
    for p in unet.parameters():  # no zero-initialised projection left: every layer does something
        p.data.add_(0.05 * torch.randn_like(p))
    deep = sm.deepen_video_unet(unet, layers)
    assert deep.config.layers_per_block == layers
    assert len(deep.down_blocks[0].resnets) == layers and len(deep.up_blocks[0].resnets) == layers + 1
    assert sum(p.numel() for p in deep.parameters()) > sum(p.numel() for p in unet.parameters())
    reference = _outputs(unet)
    assert reference.abs().mean() > 0.1
    torch.testing.assert_close(_outputs(deep), reference, rtol=0, atol=1e-5)
    # the identities are a start, not a constraint: any change to a new layer changes the output
    with torch.no_grad():
        deep.up_blocks[1].resnets[1].conv2.weight.add_(0.1)
    assert not torch.allclose(_outputs(deep), reference, atol=1e-3)
    assert sm.new_video_unet(layers).config == deep.config


@pytest.mark.parametrize(("layers", "width"), [(1, 2), (2, 2), (1, 4)])
def test_widened_unet_computes_the_same_function(layers, width):
    torch.manual_seed(0)
    unet = sm.new_video_unet(layers)
    for p in unet.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    wide = sm.widen_video_unet(unet, width)
    assert tuple(wide.config.block_out_channels) == (32 * width, 64 * width)
    assert sm.video_unet_width(wide) == width and sm.new_video_unet(layers, width).config == wide.config
    reference = _outputs(unet)
    torch.testing.assert_close(_outputs(wide), reference, rtol=0, atol=1e-5)
    # the two copies of a channel are free to learn apart: a change to one copy's weights changes the output
    with torch.no_grad():
        wide.down_blocks[0].resnets[0].conv1.weight[0].add_(0.1)
    assert not torch.allclose(_outputs(wide), reference, atol=1e-3)


def test_widened_copies_split_their_weights():
    """Each weight reading a doubled channel is shared (r, 1 - r) between its two copies, not halved,
    so gradient steps differ between the copies and they stop being copies."""
    torch.manual_seed(0)
    unet = sm.new_video_unet()
    wide = sm.widen_video_unet(unet, 2)
    old, new = unet.down_blocks[0].resnets[0].conv2.weight, wide.down_blocks[0].resnets[0].conv2.weight
    pairs = new[0::2, 0::2], new[0::2, 1::2]
    torch.testing.assert_close(pairs[0] + pairs[1], old, rtol=0, atol=1e-6)
    share = (pairs[0] / old)[old.abs() > 1e-3]
    assert share.min() >= 0.25 - 1e-4 and share.max() <= 0.75 + 1e-4 and share.std() > 0.1


def test_widening_never_shrinks_and_doubles():
    unet = sm.new_video_unet()
    for width in (0, 3):
        with pytest.raises(ValueError, match=rf"width: got {width}; allowed: the model's 1 times a power of two"):
            sm.widen_video_unet(unet, width)
    with pytest.raises(ValueError, match="video_width: got 3; allowed: 1, 2, 4"):
        st.TrainConfig(video_width=3)
    assert sm.widen_video_unet(unet, 1) is unet


def test_deepening_never_shrinks():
    with pytest.raises(ValueError, match=r"layers_per_block: got 0.*>= the model's 1"):
        sm.deepen_video_unet(sm.new_video_unet(), 0)
    with pytest.raises(ValueError, match="video_layers_per_block: got 0"):
        st.TrainConfig(video_layers_per_block=0)


def _recipe(layers: int, video_steps: int, width: int = 1) -> st.TrainConfig:
    return st.TrainConfig(
        vae=st.StageConfig(steps=2, batch=2, lr=1e-3, warmup=1),
        video=st.StageConfig(steps=video_steps, batch=1, lr=1e-3, warmup=1, ema=0.9, checkpoint_every=2),
        pool=2,
        video_layers_per_block=layers,
        video_width=width,
    )


def _video_unet(root, layers: int, ema: bool, width: int = 1) -> torch.nn.Module:
    flat = load_file(str(root / "train_state" / "video" / f"{'ema' if ema else 'weights'}.safetensors"))
    unet = sm.new_video_unet(layers, width)
    unet.load_state_dict({k[5:]: v for k, v in flat.items() if k.startswith("unet.")})
    return unet


@pytest.mark.slow
def test_a_trained_run_grows_and_trains_on(tmp_path):
    st.train(tmp_path, _recipe(1, 2), stages=["vae", "video"], progress=False)
    before = {ema: _outputs(_video_unet(tmp_path, 1, ema)) for ema in (False, True)}
    assert (tmp_path / "train_state" / "video" / "optimizer.pt").is_file()

    deeper = _recipe(2, 4)
    assert grow_video_checkpoint(tmp_path, deeper)
    assert not grow_video_checkpoint(tmp_path, deeper)  # already grown
    for ema in (False, True):  # live and EMA weights grow alike, to the same function
        torch.testing.assert_close(_outputs(_video_unet(tmp_path, 2, ema)), before[ema], rtol=0, atol=1e-5)
    assert not (tmp_path / "train_state" / "video" / "optimizer.pt").exists()  # AdamW starts afresh
    assert st.Checkpoint(tmp_path, "video").state["step"] == 2

    st.train(tmp_path, deeper, stages=["vae", "video"], progress=False)
    assert st.Checkpoint(tmp_path, "video").state["step"] == 4
    assert (tmp_path / "video" / "unet" / "config.json").read_text().count('"layers_per_block": 2') == 1
    with pytest.raises(ValueError, match="has 2 .*does not shrink"):
        grow_video_checkpoint(tmp_path, _recipe(1, 4))
    # an old config.json (before the field) meant the tiny preset's depth, so old runs resume as they were
    assert st.TrainConfig.from_dict({"pool": 2}).video_layers_per_block == 1


@pytest.mark.slow
def test_a_trained_run_widens_and_trains_on(tmp_path):
    st.train(tmp_path, _recipe(1, 2), stages=["vae", "video"], progress=False)
    before = {ema: _outputs(_video_unet(tmp_path, 1, ema)) for ema in (False, True)}
    wider = _recipe(1, 4, width=2)
    assert grow_video_checkpoint(tmp_path, wider)
    assert not grow_video_checkpoint(tmp_path, wider)  # already grown
    for ema in (False, True):
        torch.testing.assert_close(_outputs(_video_unet(tmp_path, 1, ema, width=2)), before[ema], rtol=0, atol=1e-5)
    st.train(tmp_path, wider, stages=["vae", "video"], progress=False)
    assert st.Checkpoint(tmp_path, "video").state["step"] == 4
    assert '"block_out_channels": [\n    64,\n    128\n  ]' in (tmp_path / "video" / "unet" / "config.json").read_text()
    with pytest.raises(ValueError, match="video_width: 1; the checkpoint .* has 2 .*does not shrink"):
        grow_video_checkpoint(tmp_path, _recipe(1, 4))
    assert st.TrainConfig.from_dict({"pool": 2}).video_width == 1
