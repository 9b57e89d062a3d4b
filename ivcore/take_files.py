"""Saving and loading a session's takes and story, beside session.json (`Session.save` / `Session.load`).

    takes/takes.json               every take (id, settings, seed, models, timings, time made),
                                   the story (take ids in order) and the next take number
    takes/images/<sha256>.png      the takes' pictures, once each, named by their content hash
    takes/<id>.thumb.safetensors   every take's thumbnail frames
    takes/<id>.safetensors         the exact frames of the takes whose video is in memory
    takes/<id>.mp4                 the same video for people (never read back)

A folder is read as untrusted, like session.json: every setting of every take goes through the
session's own checks, pictures must hash to their names, frames must have the right dtype and
shape, and any problem is an InstructionError naming the file and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ivcore.errors import InstructionError
from ivcore.fields import Saved
from ivcore.sizes import check_size
from ivcore.takes import _IMAGE_REF, Take, counter, take_fields, thumbnail
from ivcore.untrusted import expect, read_frames, read_png, reading, write_frames
from ivcore.video import Video

FOLDER = "takes"
INDEX = f"{FOLDER}/takes.json"
_ID = re.compile(r"take-\d{1,9}")
_REF = re.compile(re.escape(_IMAGE_REF) + r"[0-9a-f]{64}")
_MAX_JSON_BYTES = 64 << 20


def save(session, folder: Path) -> None:
    """Write the takes and the story (and remove what an earlier save wrote that is gone now)."""

    takes, story = session.takes, session.story.segments
    root = folder / FOLDER
    if not takes:
        if root.exists():
            for path in sorted(root.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            root.rmdir()
        return
    (root / "images").mkdir(parents=True, exist_ok=True)
    written: set[Path] = {root / "takes.json"}

    def frames_file(path: Path, video: Video) -> None:
        write_frames(path, video)
        written.add(path)

    entries = []
    for take in takes:
        for ref in {v for v in take.settings.values() if isinstance(v, str) and _REF.fullmatch(v)}:
            path = root / "images" / f"{ref[len(_IMAGE_REF) :]}.png"
            path.write_bytes(session.take_images.png(ref))
            written.add(path)
        frames_file(root / f"{take.id}.thumb.safetensors", take.thumbnail)
        if take.video is not None:
            frames_file(root / f"{take.id}.safetensors", take.video)
            take.video.to_mp4(root / f"{take.id}.mp4")
            written.add(root / f"{take.id}.mp4")
        entries.append(
            {"id": take.id, "settings": take.settings, "seed": take.seed, "models": take.models,
             "timings": take.timings, "made": take.made, "video": take.video is not None}
        )  # fmt: skip
    number = int(takes[-1].id.split("-")[1]) + 1
    index = {"takes": entries, "story": [t.id for t in story], "next": number}
    (root / "takes.json").write_text(json.dumps(index, indent=1))
    for path in root.rglob("*"):
        if path.is_file() and path not in written:
            path.unlink()


def load(session, folder: Path) -> None:
    """Read takes/ into a freshly loaded session (nothing when the folder has none)."""
    root = folder / FOLDER
    if not (root / "takes.json").exists():
        return
    with reading(INDEX):
        if (root / "takes.json").stat().st_size > _MAX_JSON_BYTES:
            raise InstructionError(INDEX, "too large", f"at most {_MAX_JSON_BYTES} bytes")
        index = json.loads((root / "takes.json").read_text())
    expect(index, dict, INDEX, "a JSON object with takes, story and next")
    entries = expect(index.get("takes"), list, f"{INDEX}:takes", "a list of takes")
    fields = take_fields(type(session))
    frames_max = session.video_backend.max_frames
    takes: dict[str, Take] = {}
    for i, entry in enumerate(entries):
        where = f"{INDEX}:takes[{i}]"
        expect(entry, dict, where, "a take object")
        take_id = entry.get("id")
        if not isinstance(take_id, str) or not _ID.fullmatch(take_id) or take_id in takes:
            raise InstructionError(f"{where}.id", take_id, "a new id of the form take-<number>")
        settings = expect(entry.get("settings"), dict, f"{where}.settings", "an object of settings")
        with reading(INDEX, f"takes[{i}].settings.size"):  # the take's pictures and frames have its own size
            size = check_size(session, settings["size"]) if "size" in settings else session.size
        for name, value in settings.items():
            spec = fields.get(name)
            if spec is None:
                raise InstructionError(f"{where}.settings.{name}", value, f"one of {sorted(fields)}")
            if spec.saved == Saved.FILE:
                if value is not None:
                    mode = "RGB" if name == "image" else "RGBA"
                    _picture(session, root, value, f"{where}.settings.{name}", mode, size)
            elif not (name == "align" and value == "FrameAlign"):
                with reading(INDEX, f"takes[{i}].settings.{name}"):
                    spec.validate(session, spec.from_json(value))
        seed = entry.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InstructionError(f"{where}.seed", seed, "an integer >= 0")
        timings = expect(entry.get("timings", {}), dict, f"{where}.timings", "an object of seconds")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in timings.values()):
            raise InstructionError(f"{where}.timings", timings, "numbers of seconds")
        models = expect(entry.get("models"), dict, f"{where}.models", "an object (models, loras, ...)")
        made = expect(entry.get("made", ""), str, f"{where}.made", "an ISO 8601 time")
        thumb = read_frames(root / f"{take_id}.thumb.safetensors", _thumb_size(size), frames_max)[0]
        video = None
        if entry.get("video") is True:
            frames, fps = read_frames(root / f"{take_id}.safetensors", size, frames_max)
            video = Video(frames, fps=session.fps if fps is None else fps)
        objects = {"align": session.align} if settings.get("align") == "FrameAlign" else {}
        takes[take_id] = Take(
            id=take_id, settings=settings, seed=seed, models=models, timings=dict(timings), made=made,
            video=video, thumbnail=Video(thumb, fps=video.fps if video else session.fps), objects=objects,
        )  # fmt: skip
    story = expect(index.get("story", []), list, f"{INDEX}:story", "a list of take ids")
    for j, take_id in enumerate(story):
        if take_id not in takes or takes[take_id].video is None:
            raise InstructionError(f"{INDEX}:story[{j}]", take_id, "the id of a take saved with its video")
    number = index.get("next", len(takes) + 1)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise InstructionError(f"{INDEX}:next", number, "an integer >= 1")
    session._takes = list(takes.values())
    session._take_numbers = counter(number)
    for take_id in story:
        session.story.append(takes[take_id])


def _picture(session, root: Path, ref: Any, where: str, mode: str, size: tuple[int, int]) -> None:
    """A take's picture: the PNG named by its hash, of the take's size, whose content has that hash."""
    if not isinstance(ref, str) or not _REF.fullmatch(ref):
        raise InstructionError(where, ref, "a picture reference sha256:<64 hex digits>")
    if ref in session.take_images:
        return
    path = root / "images" / f"{ref[len(_IMAGE_REF) :]}.png"
    if not path.is_file():
        raise InstructionError(where, ref, f"a picture saved in {FOLDER}/images (it is missing)")
    image = read_png(path, mode, size)
    if session.take_images.put(image) != ref:
        raise InstructionError(f"{FOLDER}/images/{path.name}", "changed", "the picture its name is the hash of")


def _thumb_size(size: tuple[int, int]) -> tuple[int, int]:
    blank = Video(np.zeros((1, size[1], size[0], 3), np.uint8))
    return thumbnail(blank).size
