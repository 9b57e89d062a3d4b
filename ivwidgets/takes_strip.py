"""TakesStrip: a session's takes as small looping thumbnails, newest first; pick one to show, two to compare.

Every successful ``generate`` keeps a take (``session.takes``, see ``ivcore.takes``). The strip
shows each as an animated GIF of ``take.thumbnail`` (it loops by itself, and dozens of them cost
the page no video decoders) with its lambda under it and its lambda, seed and motion text as the
tooltip. It follows the session (``observe``: a new take appears at once). The selection is the
``selected`` trait (take ids, at most two, in the order picked); the kernel answers it with
``diff``, the selected takes' differences as text. What the selection shows in a player is up to
the app: `selection_video` gives the take's video, or the two side by side.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable
from typing import Any

import anywidget
import traitlets as t
from PIL import Image

from ivcore.video import Video

from ._common import SafeStateMixin, asset

__all__ = ["TakesStrip", "diff_text", "gif_data_url", "short_value", "take_caption", "take_tooltip"]

MAX_SELECTED = 2  # two takes are compared side by side
MAX_TILES = 100  # the newest takes shown (the whole list is synced on each new take); older ones stay in s.takes


def gif_data_url(video: Any) -> str:
    """A looping animated GIF of a (small) Video as a data URL: what a take's tile shows."""
    frames = [Image.fromarray(f) for f in video.frames]
    buf = io.BytesIO()
    duration = max(20, round(1000 / float(video.fps)))  # browsers slow down delays under 20 ms
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode()


def _lam_text(lam: Any) -> str:
    if isinstance(lam, (list, tuple)):
        values = [float(v) for v in lam]
        return f"per step {values[0]:g}\u2192{values[-1]:g}" if values else "per step"
    return "?" if lam is None else f"{float(lam):g}"


def take_caption(take: Any) -> str:
    """The line under a tile: its lambda."""
    return f"\u03bb {_lam_text(take.lam)}"


def take_tooltip(take: Any) -> str:
    """The tile's tooltip: id, lambda, seed and motion text, and whether its video is still in memory."""
    lines = [
        take.id,
        f"lambda {_lam_text(take.lam)}",
        f"seed {take.seed}",
        f"motion: {take.motion}" if take.motion else "motion: (none)",
        f"made {take.made}",
    ]
    if take.video is None:
        lines.append("thumbnail only: Restore makes the video again")
    return "\n".join(lines)


def short_value(value: Any, limit: int = 48) -> str:
    """A setting's value in a few characters: pictures by their hash, long lists by their length."""
    if value is None:
        return "none"
    if isinstance(value, str) and value.startswith("sha256:"):
        return f"picture {value[7:15]}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        return f"{len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"[{', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in value[:3])}, ...] ({len(value)})"
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def diff_text(a: Any, b: Any) -> str:
    """The differences of two takes as lines ``field: a's -> b's`` (``take.diff``), under a header."""
    rows = a.diff(b)
    count = f"{len(rows)} difference{'s' if len(rows) != 1 else ''}"
    head = f"{a.id} \u2192 {b.id}: " + (count if rows else "the same settings")
    return "\n".join([head] + [f"{k}: {short_value(x)} \u2192 {short_value(y)}" for k, (x, y) in rows.items()])


class TakesStrip(SafeStateMixin, anywidget.AnyWidget):
    """The session's takes, newest first, as looping thumbnails with their lambda; one or two selected.

    Click a take to select it alone; Ctrl-, Cmd- or Shift-click, or tick its box, to add it (a
    third drops the first picked). The newest ``max_tiles`` takes get a tile (the list goes to the
    page whole on each new take); ``older`` counts the rest, which ``session.takes`` keeps.
    ``selected`` holds the ids (kernel and page both set it); ``diff`` lists what differs between
    the two selected takes (or describes the one).
    """

    _esm = asset("takes_strip.js")
    _css = asset("widgets.css")

    items = t.List(t.Dict(), help="newest first: {id, thumb, caption, title, kept}").tag(sync=True)
    older = t.Int(0, help="takes older than the tiles shown (max_tiles)").tag(sync=True)
    selected = t.List(t.Unicode(), help=f"ids of the selected takes (at most {MAX_SELECTED})").tag(sync=True)
    diff = t.Unicode("", help="the selected takes' differences, as text").tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    def __init__(self, session: Any, *, max_tiles: int = MAX_TILES, **kwargs: Any):
        super().__init__(**kwargs)
        self.session = session
        self.max_tiles = max(1, int(max_tiles))
        self._lock = threading.RLock()
        self._thumbs: dict[str, str] = {}  # take id -> GIF data URL (a take's thumbnail never changes)
        self._listeners: list[Callable[[list[Any]], None]] = []
        self._pairs: dict[tuple[str, ...], Video] = {}  # the last side-by-side video, by what it shows
        if hasattr(session, "observe"):
            session.observe(self._on_session)
        self.refresh()

    # -- kernel -> front end -----------------------------------------------------------------------
    def _on_session(self, field: str) -> None:
        if field in ("takes", "restore"):  # a new take; a restore may bring an evicted take's video back
            try:
                self.refresh()
            except Exception as exc:  # shown in the strip, not a warning in the kernel's log
                self.error = f"takes: {type(exc).__name__}: {exc}"

    def refresh(self) -> None:
        """Show the session's takes as they are now (called on each new take)."""
        with self._lock:
            takes = list(getattr(self.session, "takes", []))
            shown = takes[-self.max_tiles :]
            items = []
            for take in reversed(shown):
                if take.id not in self._thumbs:
                    self._thumbs[take.id] = gif_data_url(take.thumbnail)
                items.append({
                    "id": take.id, "thumb": self._thumbs[take.id], "caption": take_caption(take),
                    "title": take_tooltip(take), "kept": take.video is not None,
                })  # fmt: skip
            ids = {item["id"] for item in items}
            self._thumbs = {k: v for k, v in self._thumbs.items() if k in ids}
            with self.hold_sync():
                self.items = items
                self.older = len(takes) - len(shown)
                kept = [i for i in self.selected if i in ids]
                if kept != list(self.selected):
                    self.selected = kept

    # -- the selection -------------------------------------------------------------------------------
    @t.validate("selected")
    def _valid_selected(self, proposal: dict[str, Any]) -> list[str]:
        ids = list(dict.fromkeys(proposal["value"]))  # the order picked, once each
        if len(ids) > MAX_SELECTED:
            raise t.TraitError(f"selected: got {len(ids)} takes; allowed: at most {MAX_SELECTED}")
        known = {item["id"] for item in self.items}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise t.TraitError(f"selected: got {unknown[0]!r}; allowed: the id of a take in the strip")
        return ids

    @t.observe("selected")
    def _on_selected(self, change: dict[str, Any]) -> None:
        takes = self.selected_takes
        try:
            if len(takes) == 2:
                self.diff = diff_text(*takes)
            elif len(takes) == 1:
                self.diff = take_tooltip(takes[0]).replace("\n", " \u00b7 ") + "\n(tick a second take to compare)"
            else:
                self.diff = ""
            self.error = ""
            for callback in list(self._listeners):
                callback(takes)
        except Exception as exc:  # a click from the page never ends in a traceback in the kernel's log
            self.error = f"takes: {type(exc).__name__}: {exc}"

    @property
    def selected_takes(self) -> list[Any]:
        """The selected takes, oldest first (the order of ``session.takes``)."""
        ids = set(self.selected)
        return [take for take in getattr(self.session, "takes", []) if take.id in ids]

    def select(self, *takes: Any) -> None:
        """Select takes (``Take`` objects or ids) from Python, as a click on their tiles does."""
        self.selected = [getattr(take, "id", take) for take in takes]

    def on_select(self, callback: Callable[[list[Any]], None]) -> None:
        """Call ``callback(takes)`` (oldest first) after each change of the selection."""
        self._listeners.append(callback)

    def selection_video(self) -> tuple[Video | None, str]:
        """(what the selection shows, a line naming it): a take's video, or two takes side by side.

        A take whose video was dropped from memory (older than ``session.keep_takes``) shows its
        thumbnail until it is restored.
        """
        takes = self.selected_takes
        if not takes:
            return None, ""
        if len(takes) == 1:
            take = takes[0]
            if take.video is None:
                return take.thumbnail, f"{take.id}: thumbnail only (Restore makes the video again)"
            return take.video, take.id
        key = tuple(f"{take.id}:{take.video is not None}" for take in takes)  # a restore brings a video back
        with self._lock:
            video = self._pairs.get(key)
            if video is None:
                shown = [take.video if take.video is not None else take.thumbnail for take in takes]
                video = Video.side_by_side(shown, labels=[take.label() for take in takes])
                self._pairs = {key: video}  # the last pair only: comparing it again costs nothing
        return video, f"{takes[0].id} | {takes[1].id} side by side"
