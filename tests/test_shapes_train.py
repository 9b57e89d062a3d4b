"""The training recipe: the loss falls, and a stopped run resumes to the very same weights."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ivcore.shapes import train as st
from ivcore.shapes.checkpoint import deterministic_posterior
from ivcore.shapes.data import foreground_cells


def tiny_recipe(**video) -> st.TrainConfig:
    return st.TrainConfig(
        vae=st.StageConfig(steps=6, batch=2, lr=1e-3, warmup=2, checkpoint_every=2),
        # the weighted loss of the shipped image stage, on both diffusion stages
        image=st.StageConfig(steps=2, batch=2, lr=1e-3, warmup=1, ema=0.9, foreground_weight=4.0),
        video=st.StageConfig(
            **{**dict(steps=6, batch=1, lr=1e-3, warmup=2, ema=0.9, checkpoint_every=2, foreground_weight=4.0), **video}
        ),
        pool=3,
    )


def weights(root, stage):
    return load_file(str(root / "train_state" / stage / "weights.safetensors"))


@pytest.mark.slow
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


def test_video_kinds_set_the_mix_of_training_clips(tmp_path):
    from ivcore.shapes import models as sm
    from ivcore.shapes import world

    vae = deterministic_posterior(sm.new_vae())
    default = st.ClipPool(vae, st.TrainConfig(pool=6, video_kinds=None), step=0, progress=False)
    # no video_kinds: the very clips world.random_clip draws for those seeds, and what a config.json
    # written before the field existed means (old runs resume unchanged)
    assert st.TrainConfig.from_dict({"pool": 6}).video_kinds is None
    seeds = [st.derived_seed(0, 2, j) % world.TRAIN_SEEDS.stop for j in range(6)]
    assert [s["motion"] for s in default.slots] == [world.random_clip(seed).motion for seed in seeds]
    pans = st.ClipPool(vae, st.TrainConfig(pool=6, video_kinds={"pan": 1.0, "move": 0.0}), step=0, progress=False)
    assert all(s["motion"].startswith("the camera pans") for s in pans.slots)
    cfg = st.TrainConfig()  # the shipped mix is the default
    assert cfg.video_kinds == {"move": 0.45, "pan": 0.25, "still": 0.1, "path": 0.2}
    assert st.TrainConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    from ivcore.shapes.export import write_card

    card = write_card(tmp_path, cfg).read_text()
    assert "Video clips by kind: move 45%, pan 25%, still 10%, path 20%" in card
    for bad in ({"spin": 1.0}, {"move": -1.0}, {"move": 0.0}):
        with pytest.raises(ValueError, match="video_kinds"):
            st.TrainConfig(video_kinds=bad)


def test_foreground_cells_are_the_latent_cells_under_shapes():
    from ivcore.shapes import world

    clip = world.random_clip(5, kind="pan", num_shapes=1, background="grey")
    bare = np.stack([world.render(world.Scene("grey", ()), camera) for camera in clip.camera])
    cells = foreground_cells(clip.frames, bare, 16)
    assert cells.shape == (8, 1, 16, 16)
    for frame, c in zip(clip.frames, cells[:, 0], strict=True):
        shape = np.any(frame != world.PLAIN_BACKGROUNDS["grey"], axis=-1)  # the one shape's pixels
        expected = shape.reshape(16, 4, 16, 4).any(axis=(1, 3))
        assert np.array_equal(c.numpy().astype(bool), expected)
    # the cells follow the pan: the first and last frames' cells differ
    assert not torch.equal(cells[0], cells[-1])
    assert foreground_cells(bare, bare, 16).sum() == 0


def _stage(**weights: float) -> st.StageConfig:
    return st.StageConfig(steps=2, batch=2, lr=1e-3, **weights)


def test_weighted_mse_weights_errors_under_shapes():
    pred, target = torch.zeros(2, 4, 8, 16, 16), torch.zeros(2, 4, 8, 16, 16)
    foreground = torch.zeros(2, 1, 8, 16, 16)
    foreground[..., :8, :] = 1  # top half under shapes
    pred[..., :8, :] = 1.0  # the error is all there
    snr = torch.ones(2)
    plain = st._weighted_mse(pred, target, foreground, _stage(), snr)
    assert plain == torch.nn.functional.mse_loss(pred, target) == 0.5
    # weight 4: cells under shapes count 5 times: 5 * 0.5 / (5 * 0.5 + 0.5)
    weighted = _stage(foreground_weight=4.0)
    assert torch.isclose(st._weighted_mse(pred, target, foreground, weighted, snr), torch.tensor(5 / 6))
    # the same error on the background counts less than plain MSE
    assert st._weighted_mse(1 - pred, target, foreground, weighted, snr) < plain
    # a config.json written before the field existed: plain MSE
    assert st.TrainConfig.from_dict({"image": {"steps": 2, "batch": 2, "lr": 1e-3}}).image.foreground_weight == 0
    with pytest.raises(ValueError, match="foreground_weight: got -1"):
        _stage(foreground_weight=-1)


def test_min_snr_weights_count_each_timestep_min_snr_gamma_over_snr_plus_one():
    pred, target, foreground = torch.zeros(2, 4, 8, 4, 4), torch.zeros(2, 4, 8, 4, 4), torch.zeros(2, 1, 8, 4, 4)
    pred[0], pred[1] = 1.0, 3.0  # squared errors 1 (sample 0) and 9 (sample 1)
    snr = torch.tensor([0.25, 20.0])  # a noisy sample and a nearly clean one
    # weights min(snr, 5) / (snr + 1): 0.2 and 5 / 21; the loss is their weighted mean
    w0, w1 = 0.25 / 1.25, 5 / 21
    loss = st._weighted_mse(pred, target, foreground, _stage(snr_gamma=5.0), snr)
    assert torch.isclose(loss, torch.tensor((w0 * 1 + w1 * 9) / (w0 + w1)))
    assert loss != st._weighted_mse(pred, target, foreground, _stage(), snr)  # == 5, plain MSE
    assert torch.isclose(st._weighted_mse(pred, target, foreground, _stage(), snr), torch.tensor(5.0))
    # the SNR training passes in (diffusers' compute_snr) is alpha_bar / (1 - alpha_bar), falling with t
    from ivcore.shapes import models as sm

    scheduler = sm.video_scheduler()
    snrs = st.compute_snr(scheduler, torch.tensor([0, 500, 999]))
    alpha_bar = scheduler.alphas_cumprod[500]
    assert snrs[0] > snrs[1] > snrs[2] > 0 and torch.isclose(snrs[1], alpha_bar / (1 - alpha_bar))
    assert st.TrainConfig.from_dict({"video": {"steps": 2, "batch": 2, "lr": 1e-3}}).video.snr_gamma == 0
    for bad in (-1, float("nan"), "5"):
        with pytest.raises(ValueError, match=f"snr_gamma: got {bad!r}; allowed: a number >= 0"):
            _stage(snr_gamma=bad)


TWO_PROCESSES = """
import hashlib, sys
from pathlib import Path
from accelerate import PartialState, debug_launcher
from ivcore.shapes import train as st
from ivcore.shapes.checkpoint import flat_state as flat

out = Path(sys.argv[1])
recipe = st.TrainConfig(
    vae=st.StageConfig(steps=4, batch=2, lr=1e-3, warmup=2, checkpoint_every=2),
    image=st.StageConfig(steps=2, batch=2, lr=1e-3, warmup=1, ema=0.9),
    video=st.StageConfig(steps=2, batch=1, lr=1e-3, warmup=1, ema=0.9),
    pool=2,
)


def run():
    train_stage, data_seed = st._train_stage, st._data_seed
    rank = lambda: PartialState().process_index  # noqa: E731 (asked once train's Accelerator is up)

    def record_weights(root, name, cfg, modules, *args, **kwargs):
        train_stage(root, name, cfg, modules, *args, **kwargs)
        digest = hashlib.sha256(b"".join(v.numpy().tobytes() for _, v in sorted(flat(modules).items())))
        (out / f"{name}.rank{rank()}").write_text(digest.hexdigest())

    def record_seed(cfg, accelerator):
        seed = data_seed(cfg, accelerator)
        (out / f"seed.rank{rank()}").write_text(str(seed))
        return seed

    st._train_stage, st._data_seed = record_weights, record_seed
    st.train(out, recipe, progress=False)
    st._train_stage = train_stage  # a time limit: every process stops at the same step (none hangs)
    st.train(out / "timed", recipe, progress=False, minutes=0)
    (out / f"timed.rank{rank()}").write_text(str(st.Checkpoint(out / "timed", "vae").state["step"]))


debug_launcher(run, num_processes=2)
"""


@pytest.mark.slow
def test_two_processes_train_one_model(tmp_path):
    """What `accelerate launch` on two GPUs does, on two CPU processes: each process draws its own
    data, gradients are averaged, so every stage ends with the same weights in both."""
    script, out = tmp_path / "two.py", tmp_path / "out"
    script.write_text(TWO_PROCESSES)
    out.mkdir()
    done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for stage in st.STAGES:
        assert (out / f"{stage}.rank0").read_text() == (out / f"{stage}.rank1").read_text(), stage
    assert (out / "seed.rank0").read_text() != (out / "seed.rank1").read_text()
    assert (out / "timed.rank0").read_text() == (out / "timed.rank1").read_text() == "1"
    assert st.Checkpoint(out, "video").state["step"] == 2
    assert (out / "card.md").read_text().count("| video | 2 / 2 |") == 1
