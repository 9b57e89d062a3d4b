"""Takes: every successful `generate` kept with the settings that made it, to compare and go back.

A `Take` holds the generated video, the session's fields as plain data (as `to_dict` writes
them), the seed, the models and LoRAs it was made with, timings and the time it was made.
Pictures (the image, the paint layer) are kept once, by content hash, in the session's
`ImageStore` as PNG bytes, so a take costs little memory when only lambda changed. Only the
newest `keep_takes` takes keep their video in memory; older ones keep their settings and a small
looping thumbnail, and a restore regenerates them (`Session.restore`). Stories (`ivcore.story`)
pin the takes they are made of.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ivcore.errors import InstructionError
from ivcore.fields import Saved, fields_of, set_many
from ivcore.video import Video

THUMB_SIDE = 48  # the longest side of a take's thumbnail, in pixels
_IMAGE_REF = "sha256:"


class ImageStore:
    """Pictures by content hash, as PNG bytes (lossless): shared by all the takes of a session."""

    def __init__(self) -> None:
        self._png: dict[str, bytes] = {}

    def put(self, image: Image.Image) -> str:
        raw = image.tobytes()
        digest = hashlib.sha256(f"{image.mode}{image.size}".encode() + raw).hexdigest()
        ref = _IMAGE_REF + digest
        if ref not in self._png:
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            self._png[ref] = buf.getvalue()
        return ref

    def get(self, ref: str) -> Image.Image:
        if ref not in self._png:
            raise InstructionError("image", ref, "a picture this session's takes hold")
        image = Image.open(io.BytesIO(self._png[ref]))
        image.load()
        return image

    def png(self, ref: str) -> bytes:
        return self._png[ref]

    def add_png(self, ref: str, data: bytes) -> None:
        self._png[ref] = bytes(data)

    def __contains__(self, ref: object) -> bool:
        return ref in self._png

    @property
    def nbytes(self) -> int:
        return sum(len(v) for v in self._png.values())


def thumbnail(video: Video, side: int = THUMB_SIDE) -> Video:
    """The clip scaled so its longest side is `side` pixels (nearest for tiny clips): the takes strip's loop."""
    w, h = video.size
    scale = min(1.0, side / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return video
    frames = [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR)) for f in video.frames]
    return Video(np.stack(frames), fps=video.fps)


@dataclass(eq=False)
class Take:
    """One generation: its video (None once evicted), settings as plain data, seed, models and times.

    `settings` holds every field that makes the video (the session's declared fields with a
    cache key), as `to_dict` writes them, with pictures as "sha256:..." references into the
    session's image store. `models` is what `restore` checks: the model ids or preset, LoRAs,
    checkpoints and samplers.
    """

    id: str
    settings: dict[str, Any]
    seed: int
    models: dict[str, Any]
    timings: dict[str, float]
    made: str  # ISO 8601, UTC
    video: Video | None
    thumbnail: Video
    objects: dict[str, Any] = field(default_factory=dict, repr=False)  # values with no JSON form (a FrameAlign)

    @property
    def lam(self) -> Any:
        return self.settings.get("lam")

    @property
    def motion(self) -> str:
        return self.settings.get("motion", "")

    def label(self) -> str:
        """A short line for strips and comparisons: lambda, seed and the motion text."""
        lam = self.lam if not isinstance(self.lam, list) else "schedule"
        return f"{self.id} lam {lam} seed {self.seed}" + (f": {self.motion}" if self.motion else "")

    def diff(self, other: Take) -> dict[str, tuple[Any, Any]]:
        """{field: (this take's value, the other's)} for every setting, the video seed and the models that differ.

        `seed` is the session's (P_img's), `video_seed` the one the video was generated with.
        """
        if not isinstance(other, Take):
            raise InstructionError("other", other, "a Take")
        mine = {**self.settings, "video_seed": self.seed, "models": self.models}
        theirs = {**other.settings, "video_seed": other.seed, "models": other.models}
        return {
            k: (mine.get(k), theirs.get(k)) for k in dict.fromkeys([*mine, *theirs]) if mine.get(k) != theirs.get(k)
        }

    def __repr__(self) -> str:
        kept = "video" if self.video is not None else "thumbnail only"
        return f"Take({self.id!r}, seed={self.seed}, lam={self.lam!r}, motion={self.motion!r}, {kept})"


def take_fields(session_cls: type) -> dict[str, Any]:
    """The declared fields a take records: those that can change the video (a cache key), saved somewhere."""
    return {n: s for n, s in fields_of(session_cls).items() if s.cache_key and s.saved != Saved.NO}


def models_of(session) -> dict[str, Any]:
    """What a take must have been made with to be restored: models, LoRAs, checkpoints, samplers, step cache."""
    from ivcore.backends.step_cache import describe
    from ivcore.model_state import weights_state

    weights = weights_state(session)
    recorded = {k: weights[k] for k in ("loras", "checkpoints", "schedulers")}
    return {"models": _plain(session.models), **recorded, "step_cache": _plain(describe(session.video_backend))}


def record(session, values: dict[str, Any], seed: int, video: Video, timings: dict[str, float]) -> Take:
    """A Take of `video`, made from the field `values` a generation used (its snapshot)."""
    settings: dict[str, Any] = {}
    objects: dict[str, Any] = {}
    for name, spec in take_fields(type(session)).items():
        value = values[name]
        if isinstance(value, Image.Image):
            settings[name] = session.take_images.put(value)
        elif spec.saved == Saved.FILE and value is None:
            settings[name] = None
        else:
            settings[name] = _plain(spec.to_json(value))
            if not _is_plain(value) and not isinstance(value, (list, tuple)):
                objects[name] = value
    number = next(session._take_numbers)
    made = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Take(
        id=f"take-{number}", settings=settings, seed=seed, models=models_of(session), timings=dict(timings), made=made,
        video=video, thumbnail=thumbnail(video), objects=objects,
    )  # fmt: skip


def values_of(session, take: Take) -> dict[str, Any]:
    """The field values a restore sets: pictures from the store, the rest from the plain settings.

    The image comes first (declaration order), and setting it clears the paint: a take without
    paint leaves none.
    """
    values = {}
    for name, spec in take_fields(type(session)).items():
        if name not in take.settings:
            continue
        data = take.settings[name]
        if data is None and spec.saved == Saved.FILE:
            continue  # no paint: setting the image clears it
        if name in take.objects:
            values[name] = take.objects[name]
        elif isinstance(data, str) and data.startswith(_IMAGE_REF) and spec.saved == Saved.FILE:
            values[name] = session.take_images.get(data)
        else:
            values[name] = spec.from_json(data)
    return values


def keep(session, take: Take) -> None:
    """Add a new take; drop the videos of all but the newest `keep_takes` (a story's takes keep theirs)."""
    session._takes.append(take)
    pinned = session.story.pinned
    for old in session._takes[: max(0, len(session._takes) - session.keep_takes)]:
        if old.id not in pinned:
            old.video = None
    session._notify("takes")


def restore(session, take: Take) -> None:
    """`Session.restore`: refuse a take of other models, set its fields, show (or remake) its video."""
    if not isinstance(take, Take):
        raise InstructionError("take", take, "a Take (from s.takes)")
    now = models_of(session)
    differs = [k for k in dict.fromkeys([*take.models, *now]) if take.models.get(k) != now.get(k)]
    if differs:
        detail = "; ".join(f"{k}: the take's {take.models.get(k)!r}, now {now.get(k)!r}" for k in differs)
        raise InstructionError("take", take.id, f"a take made with this session's models ({detail})")
    set_many(session, values_of(session, take))
    session._next_seed = take.seed  # P_img uses s.seed (set above); the video the take's own seed
    if take.video is None:
        session._recording = False
        try:
            video = session.generate(progress=False)
        finally:
            session._recording = True
        if thumbnail(video).frames.tobytes() != take.thumbnail.frames.tobytes():
            warnings.warn(f"{take.id}: made again, its frames differ from its thumbnail", stacklevel=3)
        take.video = video
        session._next_seed = take.seed  # still the next generate's, as after any restore
    else:
        session.last_video = take.video
        session._notify("video")
    session._notify("restore")


def counter(start: int = 1):
    return itertools.count(start)


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
