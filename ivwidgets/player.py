"""VideoPlayer: plays a Video's mp4 bytes with loop, play/pause, scrub, speed and a download link."""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets as t

from ._common import BYTES, SafeStateMixin, asset


class VideoPlayer(SafeStateMixin, anywidget.AnyWidget):
    """An HTML ``<video>`` fed with mp4 bytes (H.264, what Chrome, VS Code and Colab all play).

    ``frame`` follows playback and seeks when set from Python, so a cell can read or pick the frame
    on screen. Everything is a trait, so the player comes back as it was after a page reload.
    """

    _esm = asset("video_player.js")
    _css = asset("widgets.css")

    value = t.Bytes(b"", help="mp4 bytes").tag(**BYTES)
    fps = t.Float(8.0, min=0.1).tag(sync=True)
    num_frames = t.Int(0, min=0).tag(sync=True)
    frame = t.Int(0, min=0).tag(sync=True)
    playing = t.Bool(False).tag(sync=True)
    loop = t.Bool(True).tag(sync=True)
    speed = t.Float(1.0, min=0.0625, max=16.0).tag(sync=True)
    filename = t.Unicode("interactivevideo.mp4").tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    def __init__(self, video: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        #: The ``ivcore.Video`` on screen (None before the first, or after raw bytes): kernel-side only.
        self.video: Any = None
        if video is not None:
            self.show(video)

    def show(self, video: Any, *, play: bool = True) -> None:
        """Show an ``ivcore.Video`` (or raw mp4 bytes, with ``fps``/``num_frames`` set by the caller)."""
        if isinstance(video, (bytes, bytearray, memoryview)):
            data, fps, n = bytes(video), self.fps, self.num_frames
        else:
            data, fps, n = video.to_mp4(scale="auto"), float(video.fps), int(len(video.frames))
        with self.hold_sync():
            self.playing = False
            self.frame = 0
            self.fps = fps
            self.num_frames = n
            self.value = data
            self.error = ""
            self.playing = play
        self.video = None if isinstance(video, (bytes, bytearray, memoryview)) else video

    @t.validate("frame")
    def _valid_frame(self, proposal: dict[str, Any]) -> int:
        frame = int(proposal["value"])
        if self.num_frames and frame >= self.num_frames:
            raise t.TraitError(f"frame {frame} is out of range 0..{self.num_frames - 1}")
        return frame
