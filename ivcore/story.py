"""Stories: takes joined into a longer video, each segment steered with its own paint, drags and motion text.

`Session.continue_from(take)` appends a take to `s.story` and makes its last frame the image of
the next segment (as SVD users do by hand, but with the paper's instructions for every
segment). `s.story.video` joins the segments, leaving out each later segment's first frame,
which repeats the seam.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from ivcore.errors import InstructionError
from ivcore.fields import fields_of, set_many
from ivcore.takes import Take
from ivcore.video import Video

# what continuing resets, and what `pop` gives back: the instructions of the segment to come
SEGMENT_FIELDS = ("image", "content_strength", "paint_layer", "trajectories", "motion")


class Story:
    """The segments (takes) of a session's story, in order; their videos stay in memory."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._segments: list[Take] = []

    @property
    def segments(self) -> list[Take]:
        return list(self._segments)

    def append(self, take: Take) -> None:
        """Add a segment (a take with its video, e.g. from `s.takes`)."""
        if not isinstance(take, Take):
            raise InstructionError("take", take, "a Take (from s.takes)")
        if take.video is None:
            raise InstructionError("take", take.id, "a take with its video in memory (restore it first)")
        self._segments.append(take)

    def pop(self) -> Take:
        """Drop the last segment and set back the instructions it was made from, to make it again."""
        if not self._segments:
            raise InstructionError("story", "no segments", "a story with at least one segment to pop")
        from ivcore.fields import set_many
        from ivcore.takes import values_of

        take = self._segments[-1]
        values = values_of(self._session, take)
        set_many(self._session, {k: values[k] for k in SEGMENT_FIELDS if k in values})
        self._segments.pop()
        self._session._notify("story")
        return take

    def clear(self) -> None:
        self._segments.clear()
        self._session._notify("story")

    @property
    def pinned(self) -> set[str]:
        """Ids of the takes whose videos the story needs (never evicted)."""
        return {t.id for t in self._segments}

    @property
    def video(self) -> Video:
        """The segments joined; every later segment's first frame, the seam, is left out."""
        if not self._segments:
            raise InstructionError("story", "no segments", "continue_from(take) first")
        parts = [self._segments[0].video.frames] + [t.video.frames[1:] for t in self._segments[1:]]
        return Video(np.concatenate(parts), fps=self._segments[0].video.fps)

    @property
    def num_frames(self) -> int:
        if not self._segments:
            return 0
        return sum(t.video.num_frames for t in self._segments) - (len(self._segments) - 1)

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self):
        return iter(list(self._segments))

    def __repr__(self) -> str:
        return f"Story({len(self)} segments, {self.num_frames} frames)"

    def _repr_html_(self) -> str:
        return self.video._repr_html_() if self._segments else "<i>an empty story: s.continue_from(take)</i>"


def continue_from(session: Any, take: Take | None) -> Take:
    """`Session.continue_from`: the take joins the story; its last frame is the next segment's image."""
    from ivcore.fields import set_many

    if take is None:
        if not session._takes:
            raise InstructionError("take", None, "a Take; generate first (s.takes is empty)")
        take = session._takes[-1]
    if not isinstance(take, Take):
        raise InstructionError("take", take, "a Take (from s.takes) or None for the last")
    if take.video is None:
        session.restore(take)
    session.story.append(take)
    set_many(session, {"image": take.video.frames[-1], "content_strength": 0.0, "trajectories": []})
    session.clear_paint()
    session._notify("story")
    return take


# what a segment of `render` may set (besides `paint`, a picture painted over the segment's first frame)
SEGMENT_KEYS = ("motion", "trajectories", "lam", "seed", "num_frames", "steps", "guidance", "trajectory_mode",
                "motion_scale", "paint")  # fmt: skip


def render(session: Any, segments: list[dict[str, Any]], progress: bool = False) -> Video:
    """Make a story segment by segment: set each segment's instructions, generate, continue from its last frame.

    `segments`: dicts with any of SEGMENT_KEYS (`paint`: an RGBA layer over the segment's first
    frame; the others as the session's fields, `seed` the generation's). Every segment is
    checked before the first one runs, so a bad one changes nothing; the story's earlier
    segments are kept. Returns `session.story.video`.
    """
    if not isinstance(segments, (list, tuple)) or not segments:
        raise InstructionError("segments", segments, "a non-empty list of segments (dicts)")
    for i, segment in enumerate(segments):
        if not isinstance(segment, dict):
            raise InstructionError(f"segments[{i}]", segment, f"an object with any of {', '.join(SEGMENT_KEYS)}")
        for key, value in segment.items():
            if key not in SEGMENT_KEYS:
                raise InstructionError(f"segments[{i}].{key}", value, f"one of {', '.join(SEGMENT_KEYS)}")
            if value is not None:
                spec = fields_of(type(session))["paint_layer" if key == "paint" else key]
                with _named(i):
                    spec.validate(session, value)
    for i, segment in enumerate(segments):
        with _named(i):
            set_many(session, {k: v for k, v in segment.items() if k not in ("paint", "seed") and v is not None})
            if segment.get("paint") is not None:
                session.paint(segment["paint"])
            session.generate(seed=segment.get("seed"), progress=progress)
        session.continue_from()
    return session.story.video


@contextlib.contextmanager
def _named(i: int):
    """Name the segment in an error: `segments[2].lam: got 7; allowed: ...`."""
    try:
        yield
    except InstructionError as err:
        raise InstructionError(f"segments[{i}].{err.field}", err.value, err.allowed) from err
