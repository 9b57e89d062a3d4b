"""Growing the video UNet: more layers per block, the same function, and a run that trains on."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from ivcore import shapes_models as sm
from ivcore import shapes_train as st


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


def test_deepening_never_shrinks():
    with pytest.raises(ValueError, match=r"layers_per_block: 0.*>= the model's 1"):
        sm.deepen_video_unet(sm.new_video_unet(), 0)
    with pytest.raises(ValueError, match="video_layers_per_block: 0"):
        st.TrainConfig(video_layers_per_block=0)


def _recipe(layers: int, video_steps: int) -> st.TrainConfig:
    return st.TrainConfig(
        vae=st.StageConfig(steps=2, batch=2, lr=1e-3, warmup=1),
        video=st.StageConfig(steps=video_steps, batch=1, lr=1e-3, warmup=1, ema=0.9, checkpoint_every=2),
        pool=2,
        video_layers_per_block=layers,
    )


def _video_unet(root, layers: int, ema: bool) -> torch.nn.Module:
    flat = load_file(str(root / "train_state" / "video" / f"{'ema' if ema else 'weights'}.safetensors"))
    unet = sm.new_video_unet(layers)
    unet.load_state_dict({k[5:]: v for k, v in flat.items() if k.startswith("unet.")})
    return unet


def test_a_trained_run_grows_and_trains_on(tmp_path):
    st.train(tmp_path, _recipe(1, 2), stages=["vae", "video"], progress=False)
    before = {ema: _outputs(_video_unet(tmp_path, 1, ema)) for ema in (False, True)}
    assert (tmp_path / "train_state" / "video" / "optimizer.pt").is_file()

    deeper = _recipe(2, 4)
    assert st.deepen_video_checkpoint(tmp_path, deeper)
    assert not st.deepen_video_checkpoint(tmp_path, deeper)  # already grown
    for ema in (False, True):  # live and EMA weights grow alike, to the same function
        torch.testing.assert_close(_outputs(_video_unet(tmp_path, 2, ema)), before[ema], rtol=0, atol=1e-5)
    assert not (tmp_path / "train_state" / "video" / "optimizer.pt").exists()  # AdamW starts afresh
    assert st.Checkpoint(tmp_path, "video").state["step"] == 2

    st.train(tmp_path, deeper, stages=["vae", "video"], progress=False)
    assert st.Checkpoint(tmp_path, "video").state["step"] == 4
    assert (tmp_path / "video" / "unet" / "config.json").read_text().count('"layers_per_block": 2') == 1
    with pytest.raises(ValueError, match="has 2 .*does not shrink"):
        st.deepen_video_checkpoint(tmp_path, _recipe(1, 4))
    # an old config.json (before the field) meant the tiny preset's depth, so old runs resume as they were
    assert st.TrainConfig.from_dict({"pool": 2}).video_layers_per_block == 1
