"""Saving and loading a Session: a folder of JSON, PNG and safetensors, never a pickle.

    session.json            format, models, every field declared `saved="json"`, the weights
                            state (LoRAs, checkpoints, samplers, few-step) and `files`
    image.png, paint.png    the image instruction and the paint layer (RGB, RGBA; the session's size)
    last_video.safetensors  the last video's uint8 frames (F, H, W, 3), fps in the metadata
    last_video.mp4          the same video for people (never read back)
    takes/                  the takes and the story (`ivcore.take_files`)
    align.safetensors       a FrameAlign's weights (when `align` is one)
    loras/<sha256>.safetensors  copies of the loaded local LoRA files (hub LoRAs are referenced by id)

Checkpoints loaded into P_img / P_video are referenced by path or hub id (with the SHA-256 of a
single file, checked on load). `load` reads a folder that may be damaged or hostile: every value
goes through the session's own setters, files are checked (a PNG of the right size, PIL's
decompression-bomb limit kept, frames of the right dtype and shape, LoRA copies inside the folder
with their recorded hash), and any problem is an InstructionError naming the file and the field.
Everything is built on a new session, so a failed load changes nothing of a live one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

from ivcore import take_files
from ivcore.align import FrameAlign
from ivcore.backends.weights import HUB_ID, adapter_sources, file_sha256
from ivcore.errors import InstructionError
from ivcore.fields import Saved, fields_of, json_settings
from ivcore.model_state import backends_of, plain, scheduler_state, weights_state
from ivcore.untrusted import expect, no_constant, read_frames, read_png, reading, write_frames
from ivcore.video import Video

FORMAT = 2  # 1: settings, images and last video only; 2: + LoRAs, checkpoints, samplers, few-step, align weights
SESSION_FILE = "session.json"
LORA_FOLDER = "loras"
_MAX_JSON_BYTES = 64 << 20
_PAIRS = ("image", "video")


# ---------------------------------------------------------------------- what is saved
def session_dict(session) -> dict[str, Any]:
    """What `Session.to_dict` returns: format, models, the saved fields, the weights state."""
    models = plain({k: v for k, v in session.models.items()})
    return {"format": FORMAT, "models": models, **json_settings(session), **weights_state(session)}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save(session, folder: str | os.PathLike) -> Path:
    """Write the folder `load` reads (see the module docstring); session.json is written last."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with session._lock:  # one consistent state, even with a cell or widget setting fields meanwhile
        values, data = session._snapshot(), session_dict(session)
    files: dict[str, Any] = {"loras": [], "checkpoints": []}
    for entry in data["loras"]:
        record = adapter_sources(backends_of(session)[entry["target"]].denoiser).get(entry["name"])
        if record is None:
            raise InstructionError(
                f"loras[{entry['name']}]", entry["target"], "an adapter loaded with load_lora (its source is unknown)"
            )
        if record["file"] is None:
            files["loras"].append(None)
            continue
        relative = f"{LORA_FOLDER}/{entry['sha256']}.safetensors"
        (folder / LORA_FOLDER).mkdir(exist_ok=True)
        if not (folder / relative).is_file() or file_sha256(folder / relative) != entry["sha256"]:
            shutil.copyfile(record["file"], folder / relative)
            if file_sha256(folder / relative) != entry["sha256"]:
                (folder / relative).unlink()
                raise InstructionError(
                    f"loras[{entry['name']}]",
                    record["file"],
                    "the file as it was when loaded (it changed: load it again)",
                )
        files["loras"].append(relative)
    for stale in (folder / LORA_FOLDER).glob("*.safetensors"):
        if f"{LORA_FOLDER}/{stale.name}" not in files["loras"]:
            stale.unlink()  # a copy an earlier save made of a LoRA no longer loaded
    for entry in data["checkpoints"]:
        single = Path(entry["source"]).is_file()
        files["checkpoints"].append(file_sha256(entry["source"]) if single else None)
    values["image"].save(folder / "image.png")
    _replace_or_remove(folder / "paint.png", values["paint_layer"], lambda p, v: v.save(p))
    _replace_or_remove(
        folder / "align.safetensors", values["align"] if isinstance(values["align"], FrameAlign) else None,
        lambda p, v: v.save(p),
    )  # fmt: skip
    video = session.last_video
    _replace_or_remove(folder / "last_video.safetensors", video, write_frames)
    _replace_or_remove(folder / "last_video.mp4", video, lambda p, v: v.to_mp4(p))
    take_files.save(session, folder)
    _write_atomic(folder / SESSION_FILE, json.dumps({**data, "files": files}, indent=2))
    return folder


def _replace_or_remove(path: Path, value: Any, write) -> None:
    """Write `value` to `path`, or remove a stale file of an earlier save when there is nothing."""
    if value is not None:
        write(path, value)
    elif path.exists():
        path.unlink()


# ---------------------------------------------------------------------- reading a folder we do not trust
def read_json(folder: Path) -> dict[str, Any]:
    path = folder / SESSION_FILE
    if not path.is_file():
        raise InstructionError("folder", str(folder), f"a folder written by Session.save (with {SESSION_FILE})")
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise InstructionError(SESSION_FILE, f"{path.stat().st_size} bytes", f"at most {_MAX_JSON_BYTES} bytes")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"), parse_constant=no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InstructionError(SESSION_FILE, "unreadable JSON", f"the JSON Session.save writes ({err})") from err
    expect(data, dict, SESSION_FILE, "a JSON object")
    version = data.get("format")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT:
        raise InstructionError(
            f"{SESSION_FILE}:format", version,
            f"a format this ivcore reads (1 to {FORMAT}); a newer ivcore wrote this folder: upgrade to load it",
        )  # fmt: skip
    return data


def _inside(folder: Path, relative: Any, where: str) -> Path:
    """A file inside the folder (no absolute path, no '..', no link out), ending in .safetensors."""
    allowed = "a .safetensors file inside the session folder"
    expect(relative, str, where, allowed)
    path = (folder / relative).resolve()
    if Path(relative).is_absolute() or folder.resolve() not in path.parents or path.suffix != ".safetensors":
        raise InstructionError(where, relative, allowed)
    if not path.is_file():
        raise InstructionError(where, relative, f"{allowed} (it is missing)")
    return path


# ---------------------------------------------------------------------- load
def _build(cls, models: Any, model_kwargs: dict[str, Any]):
    where = f"{SESSION_FILE}:models"
    models = dict(expect(models if models is not None else {}, dict, where, "a JSON object"))
    preset = models.pop("preset", None)
    custom = {"image_model", "video_model"} & set(model_kwargs)
    with reading(SESSION_FILE, "models"):
        if preset is not None and not custom:
            from ivcore import presets

            if not isinstance(preset, str) or preset not in presets.names():
                raise InstructionError(f"{where}.preset", preset, f"one of {presets.names()} or no preset (model ids)")
            return cls.preset(preset, **models)
        allowed = {"image_model", "video_model", "motion_adapter"}
        for key, value in models.items():
            if key not in allowed or not isinstance(value, (str, type(None))):
                raise InstructionError(f"{where}.{key}", value, f"model ids or folders under {sorted(allowed)}")
        return cls.from_pretrained(**{**models, **model_kwargs})


def _scheduler(state: Any, where: str):
    """A diffusers scheduler from {"class", "config"}: only SchedulerMixin classes by name, no code."""
    import diffusers
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

    expect(state, dict, where, '{"class": a diffusers scheduler name, "config": {...}}')
    name, config = state.get("class"), state.get("config")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Z]\w*Scheduler", name):
        raise InstructionError(f"{where}.class", name, "the name of a diffusers scheduler class")
    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise InstructionError(f"{where}.class", name, "the name of a diffusers scheduler class")
    expect(config, dict, f"{where}.config", "a JSON object")
    with reading(SESSION_FILE, f"{where.split(':')[-1]}.config"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.from_config(config)


def _apply_weights(session, data: dict[str, Any], folder: Path) -> None:
    """Checkpoints, then LoRAs (same names, order, targets and scales), samplers, few-step state."""
    from ivcore.backends import fewstep

    files = expect(data.get("files", {}), dict, f"{SESSION_FILE}:files", "a JSON object")
    checkpoints = expect(data.get("checkpoints", []), list, f"{SESSION_FILE}:checkpoints", "a list")
    hashes = expect(
        files.get("checkpoints", [None] * len(checkpoints)), list, f"{SESSION_FILE}:files.checkpoints", "a list"
    )
    for i, entry in enumerate(checkpoints):
        where = f"checkpoints[{i}]"
        expect(entry, dict, f"{SESSION_FILE}:{where}", "a JSON object")
        target, source = entry.get("target"), entry.get("source")
        if target not in _PAIRS:
            raise InstructionError(f"{SESSION_FILE}:{where}.target", target, '"image" or "video"')
        expect(source, str, f"{SESSION_FILE}:{where}.source", "a checkpoint path or hub id")
        expected = hashes[i] if i < len(hashes) else None
        if expected is not None and (not Path(source).is_file() or file_sha256(source) != expected):
            raise InstructionError(
                f"{SESSION_FILE}:{where}.source", source, f"the checkpoint file with SHA-256 {expected}"
            )
        with reading(SESSION_FILE, where):
            getattr(session, f"load_{target}_checkpoint")(source)

    loras = expect(data.get("loras", []), list, f"{SESSION_FILE}:loras", "a list")
    copies = expect(files.get("loras", [None] * len(loras)), list, f"{SESSION_FILE}:files.loras", "a list")
    for i, entry in enumerate(loras):
        where = f"loras[{i}]"
        expect(entry, dict, f"{SESSION_FILE}:{where}", "a JSON object")
        name, target, source = entry.get("name"), entry.get("target"), entry.get("source")
        if target not in _PAIRS:
            raise InstructionError(f"{SESSION_FILE}:{where}.target", target, '"image" or "video"')
        expect(source, str, f"{SESSION_FILE}:{where}.source", "the LoRA's path or hub id")
        copy = copies[i] if i < len(copies) else None
        if copy is not None:
            path = _inside(folder, copy, f"{SESSION_FILE}:files.loras[{i}]")
            if file_sha256(path) != entry.get("sha256"):
                raise InstructionError(f"{copy}:sha256", "another file", f"the LoRA with SHA-256 {entry.get('sha256')}")
            location, weight_name = str(path), None
        else:
            if not HUB_ID.match(source) or Path(source).exists():
                raise InstructionError(f"{SESSION_FILE}:{where}.source", source, "a hub id (local LoRAs are copied)")
            location, weight_name = source, entry.get("weight_name")
        with reading(SESSION_FILE, where):
            session.load_lora(location, target=target, scale=entry.get("scale"), adapter_name=name,
                              weight_name=weight_name)  # fmt: skip
        unet = backends_of(session)[target].denoiser
        adapter_sources(unet)[name].update(source=source, weight_name=entry.get("weight_name"))

    few = data.get("few_step")
    if few is not None:
        where = f"{SESSION_FILE}:few_step"
        expect(few, dict, where, "a JSON object or null")
        default = _scheduler(few.get("scheduler"), f"{where}.scheduler")
        with reading(SESSION_FILE, "few_step"):
            from ivcore.instructions import check_float, check_int

            steps, guidance = check_int(few.get("steps"), "steps", 1), check_float(few.get("guidance"), "guidance", 0.0)
        adapter = few.get("adapter")
        if adapter is not None and not any(e.get("name") == adapter and e.get("target") == "video" for e in loras):
            raise InstructionError(f"{where}.adapter", adapter, "null or the name of a loaded video LoRA")
        fewstep._SAVED[session] = fewstep._Saved(default, steps, guidance, adapter)

    schedulers = expect(data.get("schedulers", {}), dict, f"{SESSION_FILE}:schedulers", "a JSON object")
    for label, backend in backends_of(session).items():
        if label in schedulers and schedulers[label] != scheduler_state(backend.scheduler):
            backend.scheduler = _scheduler(schedulers[label], f"{SESSION_FILE}:schedulers.{label}")


def _check_mask_shapes(items: Any, size: tuple[int, int]) -> None:
    """Masks must have the image's shape before they are decoded (a run-length mask can claim any size)."""
    if not isinstance(items, list):
        return
    width, height = size
    for i, item in enumerate(items):
        mask = item.get("mask") if isinstance(item, dict) else None
        if isinstance(mask, dict) and mask.get("shape") != [height, width]:
            raise InstructionError(f"{SESSION_FILE}:trajectories[{i}].mask", mask.get("shape"), f"[{height}, {width}]")


def takes_size(session, size: tuple[int, int]) -> bool:
    """Whether the session takes (W, H): the last video may have been made before a size change."""
    from ivcore.sizes import check_size

    try:
        return check_size(session, size) is not None
    except InstructionError:
        return False


def load(cls, folder: str | os.PathLike, **model_kwargs: Any):
    """Rebuild a saved session (see the module docstring); errors name the file and field."""
    folder = Path(folder)
    data = read_json(folder)
    session = _build(cls, data.get("models"), model_kwargs)
    _apply_weights(session, data, folder)
    specs = fields_of(cls)
    for name in [n for n in specs if specs[n].first and n in data]:  # size and fit: the image is read at them
        with reading(SESSION_FILE, name):
            specs[name].set(session, specs[name].from_json(data[name]))
    session.image = read_png(folder / "image.png", "RGB", session.size)
    if (folder / "paint.png").exists():
        session.paint(read_png(folder / "paint.png", "RGBA", session.size))
    for name, spec in fields_of(cls).items():
        if spec.saved != Saved.JSON or name not in data:
            continue
        value = data[name]
        if name == "trajectories":
            _check_mask_shapes(value, session.size)
        if name == "align" and value == "FrameAlign":
            path = _inside(folder, "align.safetensors", f"{SESSION_FILE}:align")
            with reading("align.safetensors"):
                value = FrameAlign.from_file(path)
        with reading(SESSION_FILE, name):
            spec.set(session, spec.from_json(value))
    video = folder / "last_video.safetensors"
    if video.exists():
        frames, fps = read_frames(video, lambda wh: takes_size(session, wh), session.video_backend.max_frames)
        with reading("last_video.safetensors", "fps"):
            session.last_video = Video(frames, fps=session.fps if fps is None else fps)
    take_files.load(session, folder)
    return session


__all__ = ["FORMAT", "SESSION_FILE", "save", "load", "session_dict", "weights_state", "scheduler_state", "reading"]
