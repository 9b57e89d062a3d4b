"""The real-weights path, exercised on tiny models saved as local folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import scene

from ivcore import Session


def run(s: Session) -> np.ndarray:
    s.image = scene()
    s.content, s.motion = "a field", "wind"
    s.num_frames, s.steps, s.image_steps = 4, 3, 4
    return s.generate(seed=4, progress=False).frames


def test_from_pretrained_folders_equal_tiny(tiny_model_dirs):
    loaded = Session.from_pretrained(
        tiny_model_dirs["image_model"],
        tiny_model_dirs["video_model"],
        motion_adapter=tiny_model_dirs["motion_adapter"],
        device="cpu",
    )
    assert loaded.video_backend.unet.config.in_channels == 9
    assert type(loaded.video_backend.unet).__name__ == "UNetMotionModel"
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(loaded.video_backend, name) is not None
        assert getattr(loaded.image_backend, name) is not None
    # shared components when both pipelines come from one SD1.5 folder
    assert loaded.video_backend.vae is loaded.image_backend.vae
    assert np.array_equal(run(loaded), run(Session.tiny(seed=0)))


def test_from_pretrained_loads_saved_motion_unet(tiny_model_dirs, tmp_path):
    """A folder whose unet already is a UNetMotionModel (e.g. a saved PIA pipeline) loads directly."""
    tiny = Session.tiny(seed=0)
    folder = tmp_path / "pia"
    for name in ("vae", "text_encoder", "tokenizer", "scheduler"):
        getattr(tiny.video_backend, name).save_pretrained(folder / name)
    tiny.video_backend.unet.save_pretrained(folder / "unet", safe_serialization=True)
    loaded = Session.from_pretrained(tiny_model_dirs["image_model"], folder, device="cpu")
    assert np.array_equal(run(loaded), run(Session.tiny(seed=0)))


def test_fp16_dtype_is_applied(tiny_model_dirs):
    s = Session.from_pretrained(
        tiny_model_dirs["image_model"],
        tiny_model_dirs["video_model"],
        motion_adapter=tiny_model_dirs["motion_adapter"],
        device="cpu",
        dtype=torch.bfloat16,
    )
    assert s.video_backend.unet.dtype == torch.bfloat16 and s.image_backend.vae.dtype == torch.bfloat16


def test_pickle_weights_are_refused(tiny_model_dirs, tmp_path):
    from ivcore.backends.tiny import tiny_components

    folder = tmp_path / "pickled-adapter"
    tiny_components(0)["motion_adapter"].save_pretrained(folder, safe_serialization=False)
    assert not list(folder.glob("*.safetensors"))
    with pytest.raises((OSError, EnvironmentError, ValueError)):
        Session.from_pretrained(
            tiny_model_dirs["image_model"], tiny_model_dirs["video_model"], motion_adapter=folder, device="cpu"
        )


def test_ivcore_tiny_env_builds_tiny_preset(monkeypatch):
    monkeypatch.setenv("IVCORE_TINY", "1")
    s = Session.from_pretrained("any/model-id", "another/model-id", device="cuda")
    assert s.to_dict()["models"] == {"preset": "tiny", "seed": 0}
    assert s.size == (64, 64)


def test_from_pretrained_detects_an_svd_folder(tiny_model_dirs, tmp_path):
    from ivcore.backends.svd import save_tiny_svd

    folder = save_tiny_svd(tmp_path / "tiny-svd", seed=0)
    s = Session.from_pretrained(tiny_model_dirs["image_model"], folder, device="cpu")
    assert type(s.video_backend).__name__ == "SVDVideoBackend" and s.guidance == 3.0
    tiny = Session.tiny(seed=0, video="svd")
    for session in (s, tiny):
        session.image = scene()
        session.num_frames, session.steps, session.image_steps = 4, 2, 4
    loaded, built = s.generate(seed=1, progress=False).frames, tiny.generate(seed=1, progress=False).frames
    # same weights; the CLIP feature extractor reloaded from its JSON rounds differently by <= 1 level
    assert np.abs(loaded.astype(int) - built).max() <= 1


def test_tiny_svd_session_saves_and_loads(tmp_path):
    s = Session.tiny(seed=0, video="svd")
    s.num_frames, s.steps = 4, 2
    s.align = "stats"
    video = s.generate(progress=False)
    s.save(tmp_path / "svd")
    loaded = Session.load(tmp_path / "svd")
    assert type(loaded.video_backend).__name__ == "SVDVideoBackend"
    assert np.array_equal(loaded.generate(progress=False).frames, video.frames)
