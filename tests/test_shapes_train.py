"""The training recipe: the loss falls, and a stopped run resumes to the very same weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from ivcore import shapes_train as st


def tiny_recipe(**video) -> st.TrainConfig:
    return st.TrainConfig(
        vae=st.StageConfig(steps=6, batch=2, lr=1e-3, warmup=2, checkpoint_every=2),
        image=st.StageConfig(steps=2, batch=2, lr=1e-3, warmup=1, ema=0.9),
        video=st.StageConfig(**{**dict(steps=6, batch=1, lr=1e-3, warmup=2, ema=0.9, checkpoint_every=2), **video}),
        pool=3,
    )


def weights(root, stage):
    return load_file(str(root / "train_state" / stage / "weights.safetensors"))


def test_vae_loss_falls(tmp_path):
    cfg = st.TrainConfig(vae=st.StageConfig(steps=60, batch=4, lr=2e-3, warmup=5))
    st.train(tmp_path, cfg, stages=["vae"], progress=False)
    losses = [v for _, v in st.Checkpoint(tmp_path, "vae").state["losses"]]
    assert len(losses) == 6
    assert sum(losses[-2:]) < 0.7 * sum(losses[:2])


@pytest.mark.slow
def test_stopped_runs_resume_to_the_same_weights_and_export(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    st.train(straight, tiny_recipe(), progress=False)
    # stop every stage twice on the way (as a killed run would), then resume to the end
    for _ in range(3):
        st.train(stopped, tiny_recipe(), progress=False, stop_after=3)
    for stage in st.STAGES:
        assert st.Checkpoint(stopped, stage).state["done"], stage
        a, b = weights(straight, stage), weights(stopped, stage)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), stage
    state = st.Checkpoint(straight, "video").state
    assert state["step"] == 6 and state["wall_s"] > 0
    # the export is a pair of diffusers folders the session loads like real weights
    for name in ("image", "video"):
        assert json.loads((straight / name / "model_index.json").read_text())["_class_name"]
    assert (straight / "card.md").read_text().count("| video | 6 / 6 |") == 1
    assert (straight / "losses.png").stat().st_size > 1000
    from ivcore import Session

    s = Session.shapes(folder=straight, steps=2, image_steps=2)
    assert s.video_backend.unet.config.in_channels == 9
    assert s.generate(seed=0, progress=False).frames.shape == (8, 64, 64, 3)
