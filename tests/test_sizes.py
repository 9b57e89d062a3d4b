"""Any picture shape (issue 30): `s.size` (W, H) and `s.fit` on the tiny preset at 96 x 64 and 64 x 96."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from PIL import Image
from test_denoise import pia_reference

from ivcore import InstructionError, Session, Trajectory
from ivcore.cli import main
from ivcore.stages.images import composite, edge_colour, fit_to

SHAPES = [(96, 64), (64, 96)]


def picture(width: int, height: int) -> Image.Image:
    """Left half red, right half blue, a green stripe down the left edge and a white one down the right."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, : width // 2] = (200, 40, 40)
    a[:, width // 2 :] = (40, 40, 200)
    a[:, : width // 20 + 1] = (30, 200, 30)
    a[:, -(width // 20 + 1) :] = (250, 250, 250)
    return Image.fromarray(a)


def stroke(size: tuple[int, int]) -> np.ndarray:
    """An opaque yellow bar in the right half of a layer of `size` (width, height)."""
    w, h = size
    layer = np.zeros((h, w, 4), np.uint8)
    layer[h // 3 : h // 3 + 6, w // 2 : w - 4] = (240, 220, 40, 255)
    return layer


def small(size: tuple[int, int], **kwargs) -> Session:
    s = Session.tiny(seed=0, size=size, **kwargs)
    s.image = picture(2 * size[0], 2 * size[1] + 24)
    s.content, s.motion = "a field", "the sun rises"
    s.num_frames, s.steps, s.image_steps = 4, 2, 2
    return s


def float_frames(s: Session) -> np.ndarray:
    return s.video_backend.decode(s.last_latents).cpu().numpy()


# ------------------------------------------------------------------------------ the setting
def test_size_is_a_declared_setting_with_the_native_default() -> None:
    s = Session.tiny(seed=0)
    assert s.size == (64, 64) and s.fit == "crop"
    spec = Session.fields["size"]
    assert spec.cache_key and spec.saved == "json" and Session.fields["fit"].choices == ("crop", "pad", "stretch")
    t = Session.tiny(seed=0, size=(96, 64), fit="pad")
    assert t.size == (96, 64) and t.fit == "pad" and t.image.size == (96, 64)
    assert t.to_dict()["size"] == [96, 64] and t.to_dict()["fit"] == "pad"
    assert Session.preset("tiny", size=[64, 96]).size == (64, 96)


def test_the_native_size_is_the_video_backends_pair() -> None:
    """A backend's `native_size` (W, H) is the default; one with only a square `size` int still works."""
    from types import SimpleNamespace

    from ivcore import sizes
    from ivcore.backends.build import tiny_backends

    image, video = tiny_backends(0)
    video.native_size = (96, 64)  # what a landscape model (SVD-XT: 1024 x 576) declares
    s = Session(image, video)
    assert s.size == (96, 64) and s.image.size == (96, 64) and video.size == 96
    assert sizes.native_size(SimpleNamespace(video_backend=SimpleNamespace(size=48))) == (48, 48)
    video.size = 64  # the square-era setter
    assert sizes.native_size(s) == (64, 64)


@pytest.mark.parametrize(
    "value",
    [(60, 64), (96, 100), (0, 64), (-8, 64), (64, 0), (96,), (96, 64, 3), "96x64", 96, None, (96.0, 64),
     (True, 64), (np.float32(64), 64), (64, 2**70), (1024, 64), [[96], [64]], {"w": 96, "h": 64}],
)  # fmt: skip
def test_refused_sizes_name_size_and_the_multiple(value) -> None:
    s = Session.tiny(seed=0)
    s.paint(stroke(s.size))
    before = (s.size, s.image.tobytes(), s.paint_layer.tobytes())
    with pytest.raises(InstructionError) as err:
        s.size = value
    assert err.value.field == "size" and "multiples of 8" in str(err.value)
    assert (s.size, s.image.tobytes(), s.paint_layer.tobytes()) == before


def test_the_multiple_comes_from_the_models_configs() -> None:
    from ivcore.backends.configs import build_sd15_pia
    from ivcore.backends.video import PIAVideoBackend
    from ivcore.sizes import backend_multiple, multiple

    assert multiple(Session.tiny(seed=0)) == 8  # a 4x VAE, 2 UNet down blocks
    m = build_sd15_pia("meta", torch.float16)
    pia = PIAVideoBackend(m["motion_unet"], m["vae"], m["text_encoder"], None, None, size=512, name="pia")
    assert backend_multiple(pia) == 64  # SD1.5 + PIA: an 8x VAE, 4 down blocks


# ------------------------------------------------------------------------------ fit modes
def test_fit_modes_crop_pad_and_stretch() -> None:
    source = picture(200, 100)
    crop, pad, stretch = (fit_to(source, (96, 64), mode) for mode in ("crop", "pad", "stretch"))
    assert crop.size == pad.size == stretch.size == (96, 64)
    green, white = np.array([30, 200, 30]), np.array([250, 250, 250])
    a_crop, a_pad, a_stretch = (np.asarray(im).astype(int) for im in (crop, pad, stretch))
    assert np.abs(a_crop[32, 0] - green).max() > 60  # the crop cut the sides off
    for a in (a_pad, a_stretch):  # the whole picture is kept: both edge stripes are there
        assert np.abs(a[32, 0] - green).max() < 30 and np.abs(a[32, -1] - white).max() < 30
    # pad: the picture (2:1) is 96 x 48, bands of the mean edge colour above and below
    border = np.asarray(source).astype(float)
    edge = np.concatenate([border[0], border[-1], border[:, 0], border[:, -1]]).mean(0)
    assert np.array_equal(a_pad[1, 10], a_pad[62, 70]) and np.abs(a_pad[1, 10] - edge).max() <= 1
    assert tuple(a_pad[1, 10]) == edge_colour(source)
    # a paint layer of the picture's size is padded with transparency, not colour
    layer = fit_to(Image.fromarray(stroke((200, 100)), "RGBA"), (96, 64), "pad")
    assert layer.mode == "RGBA" and np.asarray(layer)[1, :, 3].max() == 0


@pytest.mark.parametrize("fit", ["crop", "pad", "stretch"])
def test_the_session_fits_image_and_source_sized_paint_alike(fit) -> None:
    s = Session.tiny(seed=0, size=(96, 64), fit=fit)
    source = picture(200, 100)
    s.image = source
    assert np.array_equal(np.asarray(s.image), np.asarray(fit_to(source, (96, 64), fit)))
    s.paint(stroke((200, 100)))  # drawn over the picture as given: fitted the same way
    expected = fit_to(Image.fromarray(stroke((200, 100)), "RGBA"), (96, 64), fit)
    assert np.array_equal(np.asarray(s.paint_layer), np.asarray(expected))
    with pytest.raises(InstructionError):
        s.paint(stroke((64, 64)))


def test_changing_size_or_fit_refits_from_the_picture_and_clears_edits() -> None:
    s = Session.tiny(seed=0, size=(96, 64))
    source = picture(300, 150)
    s.image = source
    s.paint(stroke((96, 64)))
    s.trajectories = [Trajectory(points=[(80, 30), (90, 30)], radius=4)]
    s.size = (96, 64)  # the same size: nothing changes
    assert s.paint_layer is not None and len(s.trajectories) == 1
    heard = []
    s.observe(heard.append)
    s.size = (64, 96)
    assert s.image.size == (64, 96) and heard == ["size"]
    assert np.array_equal(np.asarray(s.image), np.asarray(fit_to(source, (64, 96))))  # from the source, not the crop
    assert s.paint_layer is None and s.trajectories == []
    s.fit = "pad"
    assert np.array_equal(np.asarray(s.image), np.asarray(fit_to(source, (64, 96), "pad")))
    # a picture of the session's own shape: a fit change leaves it (and its paint) as it is
    s.image = picture(128, 192)
    s.paint(stroke((64, 96)))
    s.fit = "stretch"
    assert s.paint_layer is not None
    # an image set otherwise (commit) is refitted from itself
    s.commit()
    s.size = (64, 64)
    assert s.image.size == (64, 64)


# ------------------------------------------------------------------------------ Eq. 4 at W x H
@pytest.mark.parametrize("size", SHAPES)
def test_lam_one_is_pia_pipeline_at_the_same_size(size) -> None:
    s = small(size)
    s.paint(stroke(size))
    s.lam = 1.0
    video = s.generate(seed=3, progress=False)
    assert video.frames.shape == (4, size[1], size[0], 3)
    reference = pia_reference(s, s.intermediate(edited=False), s.motion, steps=2, frames=4, guidance=7.5, seed=3)
    assert reference.shape == float_frames(s).shape
    assert np.abs(float_frames(s) - reference).max() <= 1e-4


@pytest.mark.parametrize("size", SHAPES)
def test_lam_zero_is_the_plain_video_of_the_edited_image(size) -> None:
    s = small(size)
    s.paint(stroke(size))
    s.lam = 0.0
    edited = s.generate(seed=5, progress=False)
    plain = small(size)
    plain.image = composite(s.image, s.paint_layer)
    assert np.array_equal(np.asarray(plain.intermediate(edited=False)), np.asarray(s.intermediate(edited=True)))
    assert np.array_equal(plain.generate(seed=5, progress=False).frames, edited.frames)
    assert torch.equal(s.last_latents, plain.last_latents)


def test_caches_hit_on_a_rerun_and_follow_the_size() -> None:
    s = small((96, 64))
    s.num_frames = 2
    first = s.generate(seed=1, progress=False)
    misses = s.stats["denoise"]["misses"]
    assert np.array_equal(s.generate(seed=1, progress=False).frames, first.frames)
    assert s.stats["denoise"]["misses"] == misses  # a hit
    s.size = (64, 96)
    assert s.generate(seed=1, progress=False).frames.shape == (2, 96, 64, 3)
    assert s.stats["denoise"]["misses"] == misses + 1
    s.size = (96, 64)
    assert np.array_equal(s.generate(seed=1, progress=False).frames, first.frames)
    assert s.stats["denoise"]["misses"] == misses + 1  # back at 96 x 64: from the cache


# ------------------------------------------------------------------------------ trajectories, paint
def test_a_trajectory_near_the_right_edge_of_a_landscape_frame() -> None:
    s = small((96, 64))
    s.num_frames = 3
    near_edge = Trajectory(points=[(70, 32), (93, 32)], radius=3)
    s.trajectories = [near_edge]
    preview = s.motion_preview()
    assert preview.frames.shape == (3, 64, 96, 3)
    assert not np.array_equal(preview.frames[0][:, 88:], preview.frames[-1][:, 88:])  # moved into the last columns
    assert np.array_equal(preview.frames[0][:, :60], preview.frames[-1][:, :60])  # the left part is left alone
    s.lam = 0.0
    assert s.generate(seed=0, progress=False).frames.shape == (3, 64, 96, 3)
    with pytest.raises(InstructionError):
        s.trajectories = [Trajectory(points=[(70, 32), (100, 32)], radius=3)]  # past the right edge
    portrait = Session.tiny(seed=0, size=(64, 96))
    with pytest.raises(InstructionError):
        portrait.trajectories = [near_edge]  # x = 93 is outside a 64-wide frame
    portrait.trajectories = [Trajectory(points=[(32, 70), (32, 93)], radius=3)]


def test_memory_plan_follows_width_and_height() -> None:
    s = Session.tiny(seed=0)
    s.num_frames = 2
    square = s.memory_plan()["total"]
    s.size = (128, 64)
    assert s.memory_plan()["total"] > square


# ------------------------------------------------------------------------------ save, load, takes
def test_save_and_load_keep_the_size(tmp_path) -> None:
    s = small((64, 64))
    s.num_frames = 2
    s.generate(seed=0, progress=False)  # a take at 64 x 64
    s.size, s.fit = (96, 64), "pad"
    s.image = picture(200, 100)
    s.paint(stroke((96, 64)))
    s.trajectories = [Trajectory(points=[(70, 32), (90, 30)], radius=3)]
    video = s.generate(seed=0, progress=False)
    s.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "session.json").read_text())["size"] == [96, 64]
    t = Session.load(tmp_path / "saved")
    assert (t.size, t.fit) == ((96, 64), "pad")
    assert t.image.tobytes() == s.image.tobytes() and t.paint_layer.tobytes() == s.paint_layer.tobytes()
    assert t.trajectories[0].points == s.trajectories[0].points
    assert np.array_equal(t.last_video.frames, video.frames)
    assert [take.video.frames.shape[1:3] for take in t.takes] == [(64, 64), (64, 96)]
    t.restore(t.takes[0])  # back to the first take's size
    assert t.size == (64, 64) and np.array_equal(t.last_video.frames, s.takes[0].video.frames)


def test_restore_across_sizes_makes_the_take_again() -> None:
    s = small((64, 96))
    s.num_frames = 2
    s.paint(stroke((64, 96)))
    first = s.generate(seed=2, progress=False)
    s.size = (96, 64)
    s.generate(seed=2, progress=False)
    take = s.takes[0]
    take.video = None  # dropped from memory: restore makes it again at its own size
    s.restore(take)
    assert s.size == (64, 96) and s.paint_layer is not None
    assert np.array_equal(take.video.frames, first.frames)


# ------------------------------------------------------------------------------ the command line
def test_the_cli_takes_size_and_fit(tmp_path, capsys) -> None:
    image = tmp_path / "x.png"
    picture(200, 100).save(image)
    out = tmp_path / "clip.mp4"
    args = ["generate", "--image", str(image), "--model", "tiny", "--steps", "2", "--frames", "2"]
    assert main([*args, "--size", "96x64", "--fit", "pad", "--out", str(out)]) == 0, capsys.readouterr().err
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (96, 64)
    s = Session.tiny(seed=0, size=(96, 64), fit="pad")
    s.image = Image.open(image).convert("RGB")
    s.steps, s.num_frames = 2, 2
    expected = tmp_path / "api.mp4"
    s.generate(progress=False).to_mp4(expected)
    assert out.read_bytes() == expected.read_bytes()
    capsys.readouterr()
    assert main([*args, "--size", "90x64", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "size" in err and "multiples of 8" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--size", "wide", "--out", str(out)]) == 2
    assert "--size" in capsys.readouterr().err


def test_the_sd15_pia_memory_plan_takes_width_and_height() -> None:
    from ivcore import memory

    square = memory.sd15_pia_plan(num_frames=2, size=512)
    assert memory.sd15_pia_plan(num_frames=2, size=(512, 512)) == square
    assert memory.sd15_pia_plan(num_frames=2, size=(768, 512))["total"] > square["total"]


def test_from_pretrained_and_shapes_take_a_size(tmp_path) -> None:
    from ivcore.backends.tiny import save_tiny_models

    folders = save_tiny_models(tmp_path)
    s = Session.from_pretrained(**folders, device="cpu", size=(96, 64), fit="stretch", steps=2)
    assert (s.size, s.fit, s.steps, s.image.size) == ((96, 64), "stretch", 2, (96, 64))
    with pytest.raises(InstructionError, match="size"):
        Session.from_pretrained(**folders, device="cpu", size=(100, 64))
    shapes = Session.shapes(seed=0, size=(96, 64))
    assert shapes.size == (96, 64) and shapes.image.size == (96, 64) and shapes.content
