"""Save and load: nothing missed (bitwise the same next video) and hostile folders refused cleanly."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import red_stroke
from PIL import Image
from safetensors.torch import save_file
from test_personalize import make_lora

from ivcore import InstructionError, Session, Trajectory
from ivcore.align import FrameAlign
from ivcore.backends.fewstep import few_step_active, use_few_step
from ivcore.backends.personalize import lora_weights
from ivcore.backends.tiny import tiny_components

SEED = 3


def edited(s: Session) -> Session:
    """Every kind of instruction: paint, a masked trajectory and an anchor, a lambda schedule, align."""
    s.paint(red_stroke())
    mask = np.zeros((64, 64), bool)
    mask[10:22, 12:30] = True
    s.trajectories = [
        Trajectory(points=[(20, 16), (30, 30), (44, 40)], mask=mask, easing="ease-in-out"),
        Trajectory(points=[(50, 50), (50, 50)], radius=5, kind="anchor"),
    ]
    s.lam = [1.0, 0.6, 0.3, 0.0]
    s.trajectory_mode, s.trajectory_strength, s.motion_scale = "endpoint", 0.5, 1
    s.negative_prompt, s.content_strength, s.image_guidance, s.fps = "blurry", 0.4, 5.0, 6
    align = FrameAlign()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in align.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # not the identity: the weights must travel
    s.align = align
    return s


def assert_round_trip(s: Session, folder: Path) -> Session:
    first = s.generate(SEED, progress=False)
    s.save(folder)
    loaded = Session.load(folder)
    assert loaded.to_dict() == s.to_dict()
    assert np.array_equal(np.asarray(loaded.image), np.asarray(s.image))
    assert (loaded.paint_layer is None) == (s.paint_layer is None)
    if s.paint_layer is not None:
        assert np.array_equal(np.asarray(loaded.paint_layer), np.asarray(s.paint_layer))
    for a, b in zip(loaded.trajectories, s.trajectories, strict=True):
        assert (a.mask is None and b.mask is None) or np.array_equal(a.mask, b.mask)
    assert np.array_equal(loaded.last_video.frames, first.frames) and loaded.last_video.fps == first.fps
    again = loaded.generate(SEED, progress=False)
    assert np.array_equal(again.frames, s.generate(SEED, progress=False).frames)
    return loaded


def test_instructions_settings_and_align_round_trip(session, tmp_path):
    loaded = assert_round_trip(edited(session), tmp_path / "saved")
    assert isinstance(loaded.align, FrameAlign)
    ours, theirs = loaded.align.state_dict(), session.align.state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert json.loads((tmp_path / "saved" / "session.json").read_text())["format"] == 2


def test_loras_checkpoint_and_sampler_round_trip(session, tmp_path):
    unet = tiny_components(1)["unet"]
    checkpoint = tmp_path / "db.safetensors"
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, checkpoint)
    session.load_image_checkpoint(checkpoint)
    style = make_lora(tmp_path / "lora")
    session.load_lora(style, scale=0.7)
    session.set_lora_scale({"style": 0.4}, target="video")
    session.load_lora(make_lora(tmp_path / "lora2", seed=5, name="other.safetensors"), target="image", scale=-0.5)
    from diffusers import EulerDiscreteScheduler

    session.video_backend.scheduler = EulerDiscreteScheduler.from_config(session.video_backend.scheduler.config)
    session.paint(red_stroke())
    session.lam = 0.5
    loaded = assert_round_trip(session, tmp_path / "saved")
    assert lora_weights(loaded) == {"image": {"style": 0.7, "other": -0.5}, "video": {"style": 0.4}}
    assert loaded.to_dict()["loras"][0]["source"] == str(style)
    assert len(list((tmp_path / "saved" / "loras").iterdir())) == 2
    assert isinstance(loaded.video_backend.scheduler, EulerDiscreteScheduler)
    loaded.unload_lora("other")
    loaded.save(tmp_path / "saved")  # the copy of the LoRA no longer loaded goes
    assert len(list((tmp_path / "saved" / "loras").iterdir())) == 1
    assert Session.load(tmp_path / "saved").to_dict() == loaded.to_dict()


def test_few_step_state_round_trip(session, tmp_path):
    session.steps, session.guidance = 5, 6.0
    use_few_step(session, steps=3, guidance=1.5, lora=make_lora(tmp_path / "lcm", seed=7))
    session.paint(red_stroke())
    session.lam = 0.5
    loaded = assert_round_trip(session, tmp_path / "saved")
    assert few_step_active(loaded)
    loaded.use_default_sampler()
    session.use_default_sampler()
    assert (loaded.steps, loaded.guidance) == (5, 6.0) and lora_weights(loaded) == {"image": {}, "video": {}}
    assert loaded.to_dict() == session.to_dict()


def test_a_format_1_folder_loads(session, tmp_path):
    """What the first ivcore wrote: settings, images and video only; the rest stays at the defaults."""
    session.paint(red_stroke())
    session.lam = 0.25
    video = session.generate(SEED, progress=False)
    folder = session.save(tmp_path / "v1")
    data = json.loads((folder / "session.json").read_text())
    old = {k: v for k, v in data.items() if k not in ("loras", "checkpoints", "schedulers", "few_step", "files")}
    (folder / "session.json").write_text(json.dumps({**old, "format": 1}))
    loaded = Session.load(folder)
    assert loaded.to_dict() == session.to_dict()
    assert np.array_equal(loaded.generate(SEED, progress=False).frames, video.frames)


def test_svd_session_round_trip(tmp_path):
    s = Session.tiny(seed=0, video="svd")
    s.num_frames, s.steps, s.lam, s.align = 4, 2, 0.5, "stats"
    s.paint(red_stroke())
    loaded = assert_round_trip(s, tmp_path / "saved")
    assert loaded.models == {"preset": "tiny", "seed": 0, "video": "svd"}


def test_model_folders_round_trip(tiny_model_dirs, tmp_path):
    s = Session.from_pretrained(**tiny_model_dirs, device="cpu", steps=2)
    s.num_frames, s.content, s.lam = 4, "a field", 0.5
    s.paint(red_stroke())
    loaded = assert_round_trip(s, tmp_path / "saved")
    assert loaded.models == {k: str(v) for k, v in tiny_model_dirs.items()}


def test_saving_again_removes_what_is_gone(session, tmp_path):
    session.paint(red_stroke())
    session.align = FrameAlign()
    folder = session.save(tmp_path / "saved")
    assert (folder / "paint.png").is_file() and (folder / "align.safetensors").is_file()
    session.clear_paint()
    session.align = None
    session.save(folder)
    assert not (folder / "paint.png").exists() and not (folder / "align.safetensors").exists()
    loaded = Session.load(folder)
    assert loaded.paint_layer is None and loaded.align is None and loaded.last_video is None


# ---------------------------------------------------------------------- hostile folders
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A folder with every file: paint, masked trajectory, FrameAlign, a LoRA copy, the last video."""
    root = tmp_path_factory.mktemp("saved")
    s = Session.tiny(seed=0)
    s.num_frames, s.steps = 4, 2
    edited(s)
    s.load_lora(make_lora(root / "lora"))
    s.generate(progress=False)
    return s.save(root / "session")


def edit_json(change):
    def tamper(folder: Path) -> None:
        path = folder / "session.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return tamper


def write(name: str, content):
    def tamper(folder: Path) -> None:
        (folder / name).write_bytes(content(folder) if callable(content) else content)

    return tamper


def png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def frames_file(tensor: torch.Tensor) -> bytes:
    from safetensors.torch import save

    return save({"frames": tensor})


def point_lora_at(path: str):
    return edit_json(lambda d: d["files"]["loras"].__setitem__(0, path))


def outside_lora(folder: Path) -> None:
    shutil.copy(next((folder / "loras").iterdir()), folder.parent / "outside.safetensors")
    point_lora_at("../outside.safetensors")(folder)


class Boom:
    """Unpickling this would write a marker file: the load must never get that far."""

    def __reduce__(self):
        return (Path.write_text, (Path(__file__).with_name("PICKLE_RAN"), "x"))


def pickle_lora(folder: Path) -> None:
    (folder / "loras" / "evil.pt").write_bytes(pickle.dumps(Boom()))
    point_lora_at("loras/evil.pt")(folder)


def pickle_checkpoint(folder: Path) -> None:
    (folder / "model.ckpt").write_bytes(pickle.dumps(Boom()))
    edit_json(lambda d: d.update(checkpoints=[{"target": "image", "source": str(folder / "model.ckpt")}]))(folder)


def swapped_lora(folder: Path) -> None:
    copy = next((folder / "loras").iterdir())
    make_lora(folder / "loras" / "tmp", seed=9)
    shutil.move(folder / "loras" / "tmp" / "style.safetensors", copy)


def bomb(folder: Path) -> None:
    Image.new("1", (10000, 10000)).save(folder / "image.png")  # 100 M pixels in a few kB


TAMPER = {
    "truncated-json": (write("session.json", lambda f: (f / "session.json").read_bytes()[:150]), r"session\.json"),
    "not-json": (write("session.json", b"\x89PNG\x00\xff not json"), r"session\.json"),
    "json-array": (write("session.json", b"[1, 2, 3]"), r"session\.json"),
    "nan-constant": (write("session.json", b'{"format": 2, "lam": NaN}'), r"session\.json"),
    "future-format": (edit_json(lambda d: d.update(format=99)), r"session\.json:format"),
    "format-as-text": (edit_json(lambda d: d.update(format="2")), r"session\.json:format"),
    "steps-wrong-type": (edit_json(lambda d: d.update(steps="ten")), r"session\.json:steps"),
    "strength-out-of-range": (edit_json(lambda d: d.update(content_strength=5)), r"session\.json:content_strength"),
    "lam-entry-out-of-range": (edit_json(lambda d: d.update(lam=[0.5, 2.0])), r"session\.json:lam\[1\]"),
    "huge-num-frames": (edit_json(lambda d: d.update(num_frames=10**12)), r"session\.json:num_frames"),
    "unknown-mode": (edit_json(lambda d: d.update(trajectory_mode="teleport")), r"session\.json:trajectory_mode"),
    "trajectory-no-points": (
        edit_json(lambda d: d["trajectories"][0].pop("points")),
        r"session\.json:trajectories\[0\]",
    ),
    "mask-claims-huge-size": (
        edit_json(lambda d: d["trajectories"][0].update(mask={"shape": [10**6, 10**6], "runs": [10**12]})),
        r"session\.json:trajectories\[0\]\.mask",
    ),
    "unknown-preset": (edit_json(lambda d: d["models"].update(preset="evil")), r"session\.json:models"),
    "model-id-not-text": (edit_json(lambda d: d.update(models={"image_model": 1})), r"session\.json:models"),
    "scheduler-not-a-scheduler": (
        edit_json(lambda d: d["schedulers"]["video"].update({"class": "Popen"})),
        r"session\.json:schedulers\.video",
    ),
    "lora-scale-wrong-type": (edit_json(lambda d: d["loras"][0].update(scale="max")), r"session\.json:loras\[0\]"),
    "image-not-an-image": (write("image.png", b"GIF89a but not really"), r"image\.png"),
    "image-a-jpeg": (write("image.png", lambda f: _jpeg()), r"image\.png"),
    "image-decompression-bomb": (bomb, r"image\.png"),
    "image-other-size": (write("image.png", png(Image.new("RGB", (32, 32)))), r"image\.png"),
    "paint-other-size": (write("paint.png", png(Image.new("RGBA", (80, 64)))), r"paint\.png"),
    "video-wrong-dtype": (
        write("last_video.safetensors", frames_file(torch.zeros(4, 64, 64, 3))),
        r"last_video\.safetensors:frames",
    ),
    "video-wrong-shape": (
        write("last_video.safetensors", frames_file(torch.zeros(4, 64, 3, 64, dtype=torch.uint8))),
        r"last_video\.safetensors:frames",
    ),
    "video-not-safetensors": (write("last_video.safetensors", b"\x00" * 64), r"last_video\.safetensors"),
    "lora-outside-folder": (outside_lora, r"session\.json:files\.loras\[0\]"),
    "lora-absolute-path": (point_lora_at("/etc/passwd.safetensors"), r"session\.json:files\.loras\[0\]"),
    "lora-pickle": (pickle_lora, r"session\.json:files\.loras\[0\]"),
    "lora-local-source-without-copy": (
        lambda f: (point_lora_at(None)(f), edit_json(lambda d: d["loras"][0].update(source=str(f / "image.png")))(f)),
        r"session\.json:loras\[0\]\.source",
    ),
    "checkpoint-pickle": (pickle_checkpoint, r"session\.json:checkpoints\[0\]"),
    "lora-copy-swapped": (swapped_lora, r"^loras/\w+\.safetensors:sha256$"),
    "align-weights-missing": (lambda f: (f / "align.safetensors").unlink(), r"session\.json:align"),
}


def _jpeg() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def live():
    """A live session whose state a failed load must not touch."""
    s = Session.tiny(seed=0)
    s.content, s.lam = "kept", 0.5
    return s


@pytest.mark.parametrize("case", list(TAMPER))
def test_a_tampered_folder_raises_naming_file_and_field(saved, tmp_path, live, case):
    tamper, where = TAMPER[case]
    folder = tmp_path / "copy"
    shutil.copytree(saved, folder)
    tamper(folder)
    before = live.to_dict()
    with pytest.raises(InstructionError) as err:
        Session.load(folder)
    assert isinstance(err.value, ValueError)

    assert re.match(where, err.value.field) and err.value.field.count(":") <= 1, str(err.value)
    assert "allowed" in str(err.value)
    assert live.to_dict() == before
    assert not Path(__file__).with_name("PICKLE_RAN").exists()


def test_the_untampered_folder_loads(saved):
    assert Session.load(saved).num_frames == 4
