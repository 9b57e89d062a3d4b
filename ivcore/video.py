"""The Video result: immutable frames, H.264 mp4 bytes, inline HTML and a matplotlib grid.

Every stage of a Session ends in a `Video`. Its frames never change after construction, so
the encoded mp4 can be cached on the instance and handed to a widget, a notebook cell and a
file without encoding twice.

Encoding choices, and why:
- H.264 in yuv420p with `+faststart`: the one combination that JupyterLab, VS Code (Chromium
  without proprietary codecs still plays H.264 there) and Colab all play, progressively.
- yuv420p keeps one chroma sample per 2x2 pixels. Real model output is smooth and loses
  little (> 30 dB PSNR at the default crf), but the per-pixel colour noise of random-init tiny
  models drops to ~20 dB. `to_mp4()` writes the clip at its own size (what any player or
  decoder expects); `to_mp4(scale=2)` (or `"auto"`: 2 for clips whose longest side is at most
  `SMALL_SIDE` pixels) stores it nearest-neighbour upscaled so every source pixel keeps its own
  chroma, which is what inline display and the widgets use for tiny clips: they are shown
  bigger and pixelated anyway. `Video.from_mp4` undoes the upscale.
- yuv420p needs even sizes: a larger clip with an odd width or height is padded at the right
  and bottom with copies of its edge pixels. The original size is stored in the mp4's
  `comment` tag, and `Video.from_mp4` crops back to it.
- The RGB <-> YCbCr conversion (BT.601, limited range, tagged as such in the stream) is done
  here in numpy with exact 2x2 chroma averaging, rather than by swscale, whose chroma filters
  blur across pixels and cost several dB.
"""

from __future__ import annotations

import base64
import io
import math
import os
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ivcore.errors import InstructionError

#: Clips with longest side <= this many pixels are stored upscaled by 2 in the mp4.
SMALL_SIDE = 256
#: Default x264 constant rate factor: >= 30 dB PSNR on smooth and noisy test content.
DEFAULT_CRF = 18
#: Narrowest width at which `_repr_html_` shows a clip (tiny clips are upscaled).
MIN_DISPLAY_WIDTH = 256
_TAG_PREFIX = "ivcore-video"

# BT.601 luma weights; limited ("tv") range: Y in [16, 235], Cb/Cr in [16, 240].
_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB


def psnr(a: Any, b: Any, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two same-shaped arrays (or Videos).

    Returns `inf` for identical inputs. Used by tests across the repo to say "close".
    """
    x = np.asarray(a.frames if isinstance(a, Video) else a, dtype=np.float64)
    y = np.asarray(b.frames if isinstance(b, Video) else b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ, {x.shape} vs {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert one array of pixels to uint8, refusing values that would need guessing."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InstructionError("frames", f"array of dtype {arr.dtype}", "uint8 or float arrays")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise InstructionError("frames", f"integers in [{arr.min()}, {arr.max()}]", "0..255")
        return arr.astype(np.uint8)
    if not np.all(np.isfinite(arr)):
        raise InstructionError("frames", "float array with NaN or inf", "finite floats in [0, 1]")
    # Half a uint8 step of slack: decoders overshoot slightly and that rounds to 0 or 255.
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -0.5 / 255 or hi > 1 + 0.5 / 255:
        raise InstructionError("frames", f"floats in [{lo:.4g}, {hi:.4g}]", "floats in [0, 1]")
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def _as_frames(frames: Any) -> np.ndarray:
    """Normalise the accepted inputs to a fresh (F, H, W, 3) uint8 array."""
    if isinstance(frames, Video):
        return frames.frames.copy()
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise InstructionError("frames", frames, "a non-empty clip")
        items = []
        for f in frames:
            if isinstance(f, Image.Image):
                items.append(np.asarray(f.convert("RGB")))
            else:
                items.append(_to_uint8(np.asarray(f)))
        shapes = {a.shape for a in items}
        if len(shapes) != 1:
            raise InstructionError("frames", f"frames of shapes {sorted(shapes)}", "frames of one size")
        arr = np.stack(items)
    elif isinstance(frames, np.ndarray):
        arr = _to_uint8(frames)
    else:
        raise InstructionError("frames", type(frames).__name__, "a (F, H, W, 3) array or a list of PIL images/arrays")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise InstructionError("frames", f"shape {arr.shape}", "(F, H, W, 3) RGB frames")
    if 0 in arr.shape:
        raise InstructionError("frames", f"shape {arr.shape}", "a non-empty clip")
    return np.array(arr, dtype=np.uint8, order="C", copy=True)


def _check_fps(fps: Any) -> float | int:
    ok = isinstance(fps, (int, float, np.integer, np.floating)) and not isinstance(fps, bool)
    if not ok or not math.isfinite(fps) or fps <= 0:
        raise InstructionError("fps", fps, "a finite number > 0")
    return int(fps) if float(fps).is_integer() else float(fps)


def _rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 with even H, W -> Y, Cb, Cr planes (BT.601 limited range)."""
    x = rgb.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    ey = _KR * r + _KG * g + _KB * b
    cb = (b - ey) / (2 * (1 - _KB))
    cr = (r - ey) / (2 * (1 - _KR))
    h, w = ey.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    def q(v: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(v), 0, 255).astype(np.uint8)

    return q(16 + 219 * ey), q(128 + 224 * sub(cb)), q(128 + 224 * sub(cr))


def _yuv420_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Inverse of `_rgb_to_yuv420`; chroma is repeated over its 2x2 block."""
    ey = (y.astype(np.float64) - 16) / 219
    pb = np.repeat(np.repeat((cb.astype(np.float64) - 128) / 224, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]]
    pr = np.repeat(np.repeat((cr.astype(np.float64) - 128) / 224, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]]
    r = ey + 2 * (1 - _KR) * pr
    b = ey + 2 * (1 - _KB) * pb
    g = (ey - _KR * r - _KB * b) / _KG
    return np.clip(np.rint(np.stack([r, g, b], -1) * 255), 0, 255).astype(np.uint8)


def _encode_geometry(h: int, w: int, scale: int | str = 1) -> tuple[int, int, int]:
    """(scale, padded height, padded width) of the coded picture for an h x w clip."""
    if scale == "auto":
        scale = 2 if max(h, w) <= SMALL_SIDE else 1
    return scale, h * scale + (h * scale) % 2, w * scale + (w * scale) % 2


def _parse_tag(text: str) -> tuple[int, int, int] | None:
    """Read `ivcore-video size=WxH scale=S` back; None for mp4s made elsewhere."""
    if not text.startswith(_TAG_PREFIX):
        return None
    fields = dict(p.split("=", 1) for p in text.split()[1:] if "=" in p)
    try:
        w, h = (int(v) for v in fields["size"].split("x"))
        return w, h, int(fields["scale"])
    except (KeyError, ValueError):
        return None


class Video:
    """A clip of RGB frames with a frame rate; the result type of every Session stage.

    `frames` is a read-only, C-contiguous uint8 (F, H, W, 3) array owned by this object (the
    input is copied), so cached encodings stay valid: make a new Video to change pixels.
    Accepts uint8 arrays, float arrays in [0, 1], integer arrays in 0..255, or a list of PIL
    images or H x W x 3 arrays of one size. Bad input raises `InstructionError`.
    """

    def __init__(self, frames: Any, fps: float = 8):
        arr = _as_frames(frames)
        arr.flags.writeable = False
        self._frames = arr
        self._fps = _check_fps(fps)
        self._mp4: dict[tuple, bytes] = {}
        self._lock = threading.Lock()

    @property
    def frames(self) -> np.ndarray:
        """(F, H, W, 3) uint8, read-only."""
        return self._frames

    @property
    def fps(self) -> float | int:
        return self._fps

    @property
    def num_frames(self) -> int:
        return self._frames.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), in PIL's order."""
        return self._frames.shape[2], self._frames.shape[1]

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index: int | slice) -> Image.Image | Video:
        """An int gives one frame as a PIL image; a slice gives a shorter Video."""
        if isinstance(index, slice):
            return Video(self._frames[index], fps=self._fps)
        return Image.fromarray(self._frames[index])

    def __repr__(self) -> str:
        w, h = self.size
        return f"Video({self.num_frames} frames, {w}x{h}, {self._fps} fps)"

    # -- mp4 -------------------------------------------------------------------------------

    def to_mp4(self, path: str | os.PathLike | None = None, *, crf: float = DEFAULT_CRF, scale: int | str = 1) -> bytes:
        """Encode as H.264/yuv420p mp4 with `+faststart`; return the bytes, write `path` if given.

        `crf` is x264's constant rate factor in [1, 51] (lower is better and larger; 0 is
        refused because lossless H.264 uses a profile browsers do not play). `scale` 1 keeps
        the clip's size; 2 or "auto" store small clips upscaled (see the module docstring, also
        for the edge padding of odd sizes). The bytes are cached per (crf, scale).
        """
        ok = isinstance(crf, (int, float)) and not isinstance(crf, bool) and 1 <= crf <= 51
        if not ok:
            raise InstructionError("crf", crf, "a number in [1, 51]")
        if scale not in (1, 2, "auto") or isinstance(scale, bool):
            raise InstructionError("scale", scale, '1, 2 or "auto"')
        key = (float(crf), scale)
        with self._lock:
            data = self._mp4.get(key)
            if data is None:
                data = self._encode(*key)
                self._mp4[key] = data
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def _encode(self, crf: float, scale: int | str) -> bytes:
        import av

        n, h, w, _ = self._frames.shape
        scale, ph, pw = _encode_geometry(h, w, scale)
        rate = Fraction(self._fps).limit_denominator(1001)
        # The mp4 muxer's faststart pass reopens the output by name, so it cannot write to
        # a BytesIO: encode into a temporary file and read it back.
        with tempfile.TemporaryDirectory() as tmp:
            name = os.path.join(tmp, "clip.mp4")
            with av.open(name, mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
                out.metadata["comment"] = f"{_TAG_PREFIX} size={w}x{h} scale={scale}"
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
                cc = stream.codec_context
                cc.colorspace = av.video.reformatter.Colorspace.SMPTE170M
                cc.color_range = av.video.reformatter.ColorRange.MPEG
                stream.options = {"crf": f"{crf:g}"}
                for i in range(n):
                    img = self._frames[i]
                    if scale > 1:
                        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
                    img = np.pad(img, ((0, ph - img.shape[0]), (0, pw - img.shape[1]), (0, 0)), mode="edge")
                    y, cb, cr = _rgb_to_yuv420(img)
                    planar = np.concatenate([y.ravel(), cb.ravel(), cr.ravel()]).reshape(ph * 3 // 2, pw)
                    frame = av.VideoFrame.from_ndarray(planar, format="yuv420p")
                    frame.pts = i
                    frame.time_base = 1 / rate
                    out.mux(stream.encode(frame))
                out.mux(stream.encode(None))
            return Path(name).read_bytes()

    @classmethod
    def from_mp4(cls, source: str | os.PathLike | bytes | bytearray | memoryview) -> Video:
        """Decode an mp4 (a path or its bytes) with PyAV.

        Clips written by `to_mp4` come back at their original size (upscale and padding
        undone, colour converted with the same BT.601 matrix); other files decode as they are.
        """
        import av

        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(bytes(source))
        with av.open(source) as container:
            tag = _parse_tag(container.metadata.get("comment", ""))
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or 8
            frames = []
            for frame in container.decode(stream):
                if tag is not None and frame.format.name == "yuv420p":
                    arr = frame.to_ndarray()
                    fh, fw = frame.height, frame.width
                    y = arr[:fh]
                    chroma = arr[fh:].reshape(2, fh // 2, fw // 2)
                    frames.append(_yuv420_to_rgb(y, chroma[0], chroma[1]))
                else:
                    frames.append(frame.to_ndarray(format="rgb24"))
        arr = np.stack(frames)
        if tag is not None:
            w, h, scale = tag
            arr = arr[:, : h * scale, : w * scale]
            if scale > 1:
                blocks = arr.reshape(arr.shape[0], h, scale, w, scale, 3).astype(np.float64)
                arr = np.rint(blocks.mean(axis=(2, 4))).astype(np.uint8)
        fps = float(rate)
        return cls(arr, fps=int(fps) if fps.is_integer() else fps)

    # -- display ---------------------------------------------------------------------------

    def _display_width(self) -> int:
        w = self.size[0]
        return w * max(1, math.ceil(MIN_DISPLAY_WIDTH / w))

    def _repr_html_(self) -> str:
        """An inline autoplaying, looping `<video>` with the mp4 as a base64 data URL.

        Data URLs are what Colab renders; JupyterLab and VS Code play them too. Tiny clips are
        shown at an integer upscale of at least `MIN_DISPLAY_WIDTH` px, pixelated, not blurred.
        """
        data = base64.b64encode(self.to_mp4(scale="auto")).decode("ascii")
        width = self._display_width()
        style = "max-width:100%;height:auto;"
        if width > self.size[0]:
            # crisp-edges first as a fallback; pixelated wins where both are understood.
            style += "image-rendering:crisp-edges;image-rendering:pixelated;"
        return (
            f'<video autoplay loop muted playsinline controls width="{width}" style="{style}" '
            f'src="data:video/mp4;base64,{data}"></video>'
        )

    def grid(self, cols: int | None = None, ax: Any = None, title: str | None = None) -> Any:
        """Show all frames, labelled by index, as a matplotlib Figure.

        Built on `matplotlib.figure.Figure`, not pyplot, so it works headless and in threads;
        Jupyter displays a returned Figure inline. With `ax` (an existing Axes) the frames
        are tiled inside that one Axes and its figure is returned.
        """
        from matplotlib.figure import Figure

        n = self.num_frames
        if cols is None:
            cols = min(n, 8)
        if isinstance(cols, bool) or not isinstance(cols, (int, np.integer)) or cols < 1:
            raise InstructionError("cols", cols, "a positive integer or None")
        cols = min(int(cols), n)
        rows = math.ceil(n / cols)
        w, h = self.size
        if ax is not None:
            gap = max(1, w // 16)
            for i in range(n):
                r, c = divmod(i, cols)
                x0, y0 = c * (w + gap), r * (h + gap)
                ax.imshow(self._frames[i], extent=(x0, x0 + w, y0 + h, y0), interpolation="nearest")
                ax.text(x0 + 1, y0 + 1, str(i), color="white", fontsize=8, va="top", ha="left")
            ax.set_xlim(0, cols * (w + gap) - gap)
            ax.set_ylim(rows * (h + gap) - gap, 0)
            ax.set_axis_off()
            if title is not None:
                ax.set_title(title)
            return ax.figure
        cell = 1.6
        fig = Figure(figsize=(cols * cell, rows * cell * h / w + (0.4 if title else 0.0)))
        axes = fig.subplots(rows, cols, squeeze=False)
        for i, a in enumerate(axes.ravel()):
            a.set_axis_off()
            if i < n:
                a.imshow(self._frames[i], interpolation="nearest")
                a.set_title(str(i), fontsize=8)
        if title is not None:
            fig.suptitle(title)
        fig.tight_layout()
        return fig

    # -- composing -------------------------------------------------------------------------

    @classmethod
    def side_by_side(cls, videos: Any, labels: Any = None, *, gap: int = 2) -> Video:
        """One Video with the clips next to each other, left to right, to compare takes.

        It lasts as long as the longest clip (shorter ones hold their last frame) and plays at
        the first clip's fps; clips of other heights are centred on white. `labels` (one short
        text a clip) are drawn in a band above the clips, so the comparison reads the same in a
        notebook, the docs and an mp4.
        """
        if isinstance(videos, Video) or not isinstance(videos, (list, tuple)) or not videos:
            raise InstructionError("videos", videos, "a non-empty list of Video")
        for i, v in enumerate(videos):
            if not isinstance(v, Video):
                raise InstructionError(f"videos[{i}]", v, "a Video")
        if labels is not None:
            if not isinstance(labels, (list, tuple)) or len(labels) != len(videos):
                raise InstructionError("labels", labels, f"None or a list of {len(videos)} texts, one a video")
            labels = [str(label) for label in labels]
        length = max(v.num_frames for v in videos)
        height = max(v.size[1] for v in videos)
        band = _label_band(height) if labels else 0
        width = sum(v.size[0] for v in videos) + gap * (len(videos) - 1)
        out = np.full((length, band + height, width, 3), 255, np.uint8)
        x = 0
        for v in videos:
            w, h = v.size
            top = band + (height - h) // 2
            held = np.minimum(np.arange(length), v.num_frames - 1)
            out[:, top : top + h, x : x + w] = v.frames[held]
            x += w + gap
        if labels:
            out[:, :band] = _draw_labels(labels, [v.size[0] for v in videos], gap, band, width)
        return cls(out, fps=videos[0].fps)


def _label_band(height: int) -> int:
    """Height of the label band: readable on tiny clips, a small share of big ones."""
    return max(12, min(32, height // 8))


def _draw_labels(labels: list[str], widths: list[int], gap: int, band: int, width: int) -> np.ndarray:
    from PIL import ImageDraw, ImageFont

    canvas = Image.new("RGB", (width, band), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(8, band - 4))
    x = 0
    for label, w in zip(labels, widths, strict=True):
        text = label
        while text and draw.textlength(text, font=font) > w - 2:  # cut to the clip's width
            text = text[:-1]
        draw.text((x + 1, band // 2), text, fill="black", font=font, anchor="lm")
        x += w + gap
    return np.asarray(canvas)
