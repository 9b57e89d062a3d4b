"""Video: validation, immutability, mp4 round trips through PyAV, inline HTML and the grid."""

from __future__ import annotations

import base64
import io
import math
import re

import av
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from ivcore.errors import InstructionError
from ivcore.video import DEFAULT_CRF, Video, psnr


def smooth_noise(frames: int, h: int, w: int, passes: int = 2, seed: int = 0) -> np.ndarray:
    """Random frames box-blurred a little: the look of a random-init tiny model's output."""
    x = np.random.default_rng(seed).random((frames, h, w, 3))
    for _ in range(passes):
        x = (x + np.roll(x, 1, 1) + np.roll(x, -1, 1)) / 3
        x = (x + np.roll(x, 1, 2) + np.roll(x, -1, 2)) / 3
    x = (x - x.min()) / (x.max() - x.min())
    return np.rint(x * 255).astype(np.uint8)


def gradient_clip(frames: int = 8, h: int = 64, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        out[t, ..., 0] = (xx * 255) // max(w - 1, 1)
        out[t, ..., 1] = (yy * 255) // max(h - 1, 1)
        out[t, ..., 2] = (127 + 100 * np.sin(xx / 5 + t)).astype(np.uint8)
    return out


def decode_raw(data: bytes) -> tuple[av.video.stream.VideoStream, list[np.ndarray], dict]:
    """Decode with plain PyAV (no ivcore code), returning stream facts and rgb frames."""
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        facts = {
            "codec": s.codec_context.name,
            "pix_fmt": s.codec_context.pix_fmt,
            "width": s.codec_context.width,
            "height": s.codec_context.height,
            "rate": s.average_rate,
            "format": c.format.name,
        }
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    return s, frames, facts


# -- construction and validation ---------------------------------------------------------------


def test_accepts_uint8_float_pil_and_arrays():
    clip = gradient_clip(4, 16, 24)
    v = Video(clip, fps=12)
    assert v.frames.dtype == np.uint8 and v.frames.shape == (4, 16, 24, 3)
    assert v.num_frames == len(v) == 4 and v.size == (24, 16) and v.fps == 12
    assert v.frames.flags.c_contiguous
    assert np.array_equal(Video(clip.astype(np.float32) / 255).frames, clip)
    assert np.array_equal(Video([Image.fromarray(f) for f in clip]).frames, clip)
    assert np.array_equal(Video(list(clip)).frames, clip)
    assert np.array_equal(Video([Image.fromarray(f).convert("RGBA") for f in clip]).frames, clip)
    assert np.array_equal(Video(v).frames, clip)


def test_frames_are_read_only_and_owned():
    clip = gradient_clip(2, 8, 8)
    v = Video(clip)
    with pytest.raises(ValueError):
        v.frames[0, 0, 0, 0] = 1
    with pytest.raises(AttributeError):
        v.frames = clip  # type: ignore[misc]
    before = v.frames.copy()
    clip[:] = 0  # the caller's array is not shared
    assert np.array_equal(v.frames, before)


def test_getitem_gives_pil_frames():
    clip = gradient_clip(3, 10, 14)
    v = Video(clip)
    img = v[1]
    assert isinstance(img, Image.Image) and img.size == (14, 10)
    assert np.array_equal(np.asarray(v[-1]), clip[-1])
    assert len(list(v)) == 3
    assert isinstance(v[1:], Video) and len(v[1:]) == 2
    with pytest.raises(IndexError):
        v[3]


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((8, 8, 3), np.uint8),  # one frame, no frame axis
        np.zeros((2, 8, 8), np.uint8),  # grey
        np.zeros((2, 8, 8, 4), np.uint8),  # RGBA array
        np.zeros((2, 8, 8, 1), np.uint8),
        np.zeros((0, 8, 8, 3), np.uint8),  # empty
        np.zeros((2, 0, 8, 3), np.uint8),
        [],
        np.full((2, 4, 4, 3), 1.5),  # float out of [0, 1]
        np.full((2, 4, 4, 3), np.nan),
        np.full((2, 4, 4, 3), 300),  # ints out of 0..255
        np.zeros((2, 4, 4, 3), bool),
        [np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)],  # mixed sizes
        "frames.mp4",
    ],
)
def test_bad_frames_raise(frames):
    with pytest.raises(InstructionError) as e:
        Video(frames)
    assert e.value.field == "frames"


@pytest.mark.parametrize("fps", [0, -1, math.inf, math.nan, "8", None, True])
def test_bad_fps_raise(fps):
    with pytest.raises(InstructionError) as e:
        Video(np.zeros((1, 4, 4, 3), np.uint8), fps=fps)
    assert e.value.field == "fps"


def test_bad_crf_raises():
    v = Video(np.zeros((1, 4, 4, 3), np.uint8))
    for crf in (0, 52, -3, "18"):
        with pytest.raises(InstructionError):
            v.to_mp4(crf=crf)


# -- mp4 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,clip,scale",
    [
        ("gradient", gradient_clip(8, 64, 64), 1),
        ("smooth", smooth_noise(8, 64, 64, passes=6), 1),
        ("odd", gradient_clip(5, 21, 33), 1),
        ("large-odd", smooth_noise(3, 259, 301, passes=4, seed=2), 1),
        # the per-pixel colour noise of random-init models needs the 2x store (widgets, inline)
        ("noise", smooth_noise(8, 64, 64), 2),
        ("noise-odd", smooth_noise(5, 21, 33, seed=1), "auto"),
    ],
)
def test_mp4_round_trip(name, clip, scale):
    v = Video(clip, fps=8)
    data = v.to_mp4(scale=scale)
    _, raw, facts = decode_raw(data)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p" and facts["format"].startswith("mov")
    assert facts["width"] % 2 == 0 and facts["height"] % 2 == 0
    assert facts["rate"] == 8
    assert len(raw) == len(clip)
    back = Video.from_mp4(data)
    assert back.frames.shape == clip.shape
    assert back.fps == 8
    assert psnr(back, v) > 30, (name, psnr(back, v))


def test_raw_pyav_decode_is_close_too():
    """Without ivcore's own decoder: the coded picture has the clip's size and is close to it."""
    clip = smooth_noise(8, 64, 48, passes=6)
    _, raw, facts = decode_raw(Video(clip).to_mp4())
    assert (facts["width"], facts["height"]) == (48, 64)
    assert np.stack(raw).shape == clip.shape
    assert psnr(np.stack(raw), clip) > 30


def test_scale_two_stores_small_clips_upscaled():
    """`scale=2`/"auto" (inline display, widgets): every source pixel keeps its own chroma."""
    clip = gradient_clip(4, 21, 33)
    v = Video(clip)
    _, raw, facts = decode_raw(v.to_mp4(scale=2))
    assert (facts["width"], facts["height"]) == (66, 42)
    assert psnr(np.stack(raw)[:, ::2, ::2], clip) > 30
    assert v.to_mp4(scale="auto") == v.to_mp4(scale=2)
    assert Video.from_mp4(v.to_mp4(scale=2)).frames.shape == clip.shape
    big = Video(smooth_noise(1, 300, 300, passes=4))
    assert decode_raw(big.to_mp4(scale="auto"))[2]["width"] == 300
    with pytest.raises(InstructionError):
        v.to_mp4(scale=3)


def test_odd_size_pads_with_edge_pixels():
    clip = smooth_noise(3, 259, 301, passes=4, seed=3)
    _, raw, facts = decode_raw(Video(clip).to_mp4())
    assert (facts["width"], facts["height"]) == (302, 260)
    frames = np.stack(raw).astype(int)
    # The padded column and row repeat the last real ones (up to coding error).
    assert np.abs(frames[:, :259, 301] - frames[:, :259, 300]).mean() < 3
    assert np.abs(frames[:, 259, :301] - frames[:, 258, :301]).mean() < 3


def test_mp4_is_faststart_and_cached(tmp_path):
    v = Video(smooth_noise(4, 32, 32))
    data = v.to_mp4()
    assert data.index(b"moov") < data.index(b"mdat")
    assert v.to_mp4() is data  # cached per crf
    assert v.to_mp4(crf=30) is not data and len(v.to_mp4(crf=30)) < len(data)
    out = tmp_path / "clip.mp4"
    assert v.to_mp4(out) == data and out.read_bytes() == data
    assert v.to_mp4(str(tmp_path / "b.mp4")) == data
    assert Video.from_mp4(out).frames.shape == v.frames.shape
    assert Video.from_mp4(str(out)).num_frames == 4


def test_tiny_and_fractional_fps():
    v = Video(smooth_noise(2, 1, 1), fps=7.5)
    back = Video.from_mp4(v.to_mp4())
    assert back.frames.shape == (2, 1, 1, 3) and back.fps == 7.5
    assert np.abs(back.frames.astype(int) - v.frames).max() <= 8


def test_default_crf_is_the_documented_one():
    v = Video(smooth_noise(2, 16, 16))
    assert v.to_mp4() is v.to_mp4(crf=DEFAULT_CRF)


# -- display ---------------------------------------------------------------------------------


def test_repr_html_embeds_the_mp4():
    v = Video(smooth_noise(4, 64, 64))
    html = v._repr_html_()
    for attr in ("autoplay", "loop", "muted", "playsinline", "controls"):
        assert re.search(rf"<video[^>]*\b{attr}\b", html)
    m = re.search(r'src="data:video/mp4;base64,([A-Za-z0-9+/=]+)"', html)
    assert m and base64.b64decode(m.group(1)) == v.to_mp4(scale="auto")
    width = int(re.search(r'width="(\d+)"', html).group(1))
    assert width >= 256 and width % 64 == 0
    assert "image-rendering:pixelated" in html


def test_repr_html_keeps_large_clips_at_size():
    v = Video(np.zeros((1, 300, 512, 3), np.uint8))
    html = v._repr_html_()
    assert 'width="512"' in html and "pixelated" not in html


def test_grid_is_a_figure_with_one_image_per_frame():
    v = Video(smooth_noise(5, 12, 20))
    fig = v.grid(cols=3, title="clip")
    assert isinstance(fig, Figure)
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 5
    assert [ax.get_title() for ax in fig.axes if ax.get_images()] == ["0", "1", "2", "3", "4"]
    assert np.array_equal(images[4].get_array(), v.frames[4])
    fig.savefig(io.BytesIO(), format="png")  # renders headless


def test_grid_into_an_existing_axes():
    v = Video(smooth_noise(4, 8, 8))
    fig = Figure()
    ax = fig.add_subplot()
    assert v.grid(ax=ax) is fig
    assert len(ax.get_images()) == 4
    with pytest.raises(InstructionError):
        v.grid(cols=0)


def test_psnr():
    a = gradient_clip(2, 8, 8)
    assert psnr(a, a) == math.inf
    b = a.astype(float) + 1
    assert psnr(a, b) == pytest.approx(20 * math.log10(255))
    with pytest.raises(ValueError):
        psnr(a, a[:1])
