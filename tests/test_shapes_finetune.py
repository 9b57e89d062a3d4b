"""Fine-tuning the shipped models, the derived command line, time limits and the pool's refresh rate:
what a run on a lent GPU (large batches, minutes of time) needs from the recipe."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from ivcore.cli import build_parser
from ivcore.cli.train_shapes import recipe_from_args
from ivcore.shapes import models as sm
from ivcore.shapes import train as st
from ivcore.shapes.checkpoint import deterministic_posterior
from ivcore.shapes.data import ClipPool
from ivcore.shapes.export import export
from ivcore.shapes.start import start_from_models

PARTS = ["image/unet", "image/text_encoder", "video/unet", "video/text_encoder", "video/vae"]


def _tensors(folder, part):
    (path,) = list((folder / part).glob("*.safetensors"))
    return load_file(str(path))


def test_a_run_started_from_the_shipped_models_exports_them_unchanged(tmp_path):
    cfg = st.TrainConfig(init="shipped")
    assert start_from_models(tmp_path, cfg) == ["vae", "image", "video"]
    assert start_from_models(tmp_path, cfg) == []  # a run that has checkpoints resumes from its own
    assert st.Checkpoint(tmp_path, "vae").state["done"]
    assert st.Checkpoint(tmp_path, "video").state["step"] == 0
    export(tmp_path, cfg)
    shipped = sm.shipped_folder()
    for part in PARTS:
        ours, theirs = _tensors(tmp_path, part), _tensors(shipped, part)
        assert ours.keys() == theirs.keys(), part
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), part
    assert "fine-tuned from `shipped`" in (tmp_path / "card.md").read_text()


@pytest.mark.slow
def test_a_fine_tune_trains_on_from_the_shipped_video_model(tmp_path):
    video = st.StageConfig(steps=2, batch=1, lr=1e-4, warmup=1, ema=0.9, checkpoint_every=1)
    cfg = st.TrainConfig(init="shipped", video=video, pool=2, pool_refresh=2)
    st.train(tmp_path, cfg, stages=["video"], progress=False)
    state = st.Checkpoint(tmp_path, "video").state
    assert state["step"] == 2 and state["init"] == "shipped"
    ours, theirs = _tensors(tmp_path, "video/unet"), _tensors(sm.shipped_folder(), "video/unet")
    changed = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert changed  # it trained ...
    drift = max(float((ours[k].float() - theirs[k].float()).abs().max()) for k in ours)
    assert drift < 0.05  # ... from the shipped weights (two small steps), not from a fresh init
    # the image stage was not trained: still the shipped one
    assert all(
        torch.equal(v, _tensors(sm.shipped_folder(), "image/unet")[k])
        for k, v in _tensors(tmp_path, "image/unet").items()
    )


def test_init_refuses_folders_without_shapes_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="init: .* has no exported image and video models"):
        start_from_models(tmp_path / "run", st.TrainConfig(init=str(tmp_path / "nothing")))
    other = tmp_path / "other"
    shutil.copytree(sm.shipped_folder(), other)
    from diffusers import UNet2DConditionModel

    from ivcore.backends.tiny import UNET_CONFIG

    shutil.rmtree(other / "image" / "unet")
    UNet2DConditionModel(**{**UNET_CONFIG, "block_out_channels": (16, 32)}).save_pretrained(other / "image" / "unet")
    with pytest.raises(ValueError, match="does not hold shapes-world models"):
        start_from_models(tmp_path / "run", st.TrainConfig(init=str(other)))


def _args(*flags: str):
    return build_parser().parse_args(["train-shapes", "--out", "unused", *flags])


def test_every_recipe_field_is_a_flag_checked_like_config_json():
    base = st.TrainConfig()
    cfg = recipe_from_args(
        _args("--video-lr", "5e-4", "--video-batch", "32", "--pool-refresh", "8", "--init", "shipped",
              "--video-kinds", "move=0.5,pan=0.5", "--image-snr-gamma", "5"),
        base,
    )  # fmt: skip
    assert (cfg.video.lr, cfg.video.batch, cfg.pool_refresh, cfg.init) == (5e-4, 32, 8, "shipped")
    assert cfg.video_kinds == {"move": 0.5, "pan": 0.5} and cfg.image.snr_gamma == 5
    assert cfg.video.steps == base.video.steps and cfg.image.lr == base.image.lr  # the rest as it was
    assert recipe_from_args(_args(), base) == base
    for flags, message in (
        (("--video-lr", "-1"), "lr: got -1.0; allowed: a number > 0"),
        (("--pool", "4", "--pool-refresh", "5"), r"pool_refresh: got 5; allowed: 1 to pool \(4\)"),
        (("--video-ema", "1"), "ema: got 1.0; allowed: a number from 0"),
        (("--video-width", "3"), "video_width: got 3; allowed: 1, 2, 4"),
        (("--video-kinds", "spin=1"), "video_kinds"),
    ):
        with pytest.raises(ValueError, match=message):
            recipe_from_args(_args(*flags), base)


def test_the_command_refuses_bad_values_before_training(tmp_path):
    from ivcore.cli import main

    with pytest.raises(SystemExit, match="train-shapes: batch: got 0; allowed: an int >= 1"):
        main(["train-shapes", "--out", str(tmp_path / "a"), "--video-batch", "0"])
    with pytest.raises(SystemExit, match="train-shapes: init: .* has no exported"):
        main(["train-shapes", "--out", str(tmp_path / "b"), "--init", str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="train-shapes: minutes: got -1.0; allowed: a number >= 0"):
        main(["train-shapes", "--out", str(tmp_path / "c"), "--minutes", "-1"])
    refused = r"train-shapes: stages: got \['vae', 'spin'\]; allowed: one or more of vae, image, video"
    with pytest.raises(SystemExit, match=refused):
        main(["train-shapes", "--out", str(tmp_path / "d"), "--stages", "vae,spin"])
    assert not any((tmp_path / name).exists() for name in "abcd")  # refused before anything is written


def test_a_time_limit_stops_a_stage_checkpointed(tmp_path):
    cfg = st.TrainConfig(vae=st.StageConfig(steps=50, batch=2, lr=1e-3, warmup=2, checkpoint_every=25))
    st.train(tmp_path, cfg, stages=["vae"], progress=False, minutes=0)
    state = st.Checkpoint(tmp_path, "vae").state
    assert state["step"] == 1 and not state["done"]  # the step in flight ends, then it stops and saves
    with pytest.raises(ValueError, match="minutes: got -2; allowed: a number >= 0"):
        st.train(tmp_path, cfg, stages=["vae"], progress=False, minutes=-2)
    with pytest.raises(ValueError, match=r"stages: got \['vae', 'unet'\]; allowed: one or more of vae, image, video"):
        st.train(tmp_path / "other", cfg, stages=["vae", "unet"], progress=False)
    assert not (tmp_path / "other").exists()  # refused before the run's folder is made


@pytest.mark.parametrize("refresh", [1, 3])
def test_a_pool_rebuilt_at_any_step_is_the_pool_a_run_refreshed_to(refresh):
    vae = deterministic_posterior(sm.new_vae())
    cfg = st.TrainConfig(pool=5, pool_refresh=refresh, video_kinds=None)
    running = ClipPool(vae, cfg, step=0, progress=False)
    for step in range(4):
        running.refresh(step)
        rebuilt = ClipPool(vae, cfg, step=step + 1, progress=False)
        for a, b in zip(running.slots, rebuilt.slots, strict=True):
            assert a["motion"] == b["motion"] and torch.equal(a["mean"], b["mean"])
    # each step replaces `refresh` slots
    first, second = ClipPool(vae, cfg, step=0, progress=False), ClipPool(vae, cfg, step=1, progress=False)
    replaced = [not torch.equal(a["mean"], b["mean"]) for a, b in zip(first.slots, second.slots, strict=True)]
    assert sum(replaced) == refresh
