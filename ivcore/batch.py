"""Grids of videos rendered by workers: seeds x lambdas x motion texts x trajectory variants.

    from ivcore.batch import run_grid
    index = run_grid(session, {"seed": [0, 1], "lam": [0, 0.5, [0, 1]]}, out="grid")   # -> grid/index.json
    run_grid("saved_session", grid, engine="ray", workers=4, out="grid")               # a Ray cluster

Every worker rebuilds the session from its saved folder (`Session.save` / `Session.load`: JSON,
PNG and safetensors, so a worker on another machine needs only the folder), loads the models
once and renders cell after cell with `Session.generate`, each written with `Video.to_mp4(path)`'s
defaults. A cell's file name is a hash of the session folder and the cell's parameters, written
under a temporary name and renamed when complete, so a rerun skips exactly the cells already
finished. A cell that fails (an exception, or a worker process that dies) is retried on a fresh
worker up to `retries` times; the failures are kept in index.json and `GridError` is raised at the
end, so a cell is never silently dropped. Format of index.json and of `python -m ivcore grid`
spec files (ivcore.cli.grid): docs/batch.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivcore.errors import InstructionError

AXES = ("seed", "lam", "motion", "trajectories")  # grid axes, in the order cells are enumerated
ENGINES = ("local", "ray")
INDEX = "index.json"
SHEET = "contact_sheet.png"
SESSION_DIR = "session"  # where a Session object given to run_grid is saved for the workers
SESSION_FILES = ("session.json", "image.png", "paint.png")  # what identifies a saved session


class GridError(RuntimeError):
    """Some cells failed after all retries; `failed` lists their index entries, `index` the file."""

    def __init__(self, failed: list[dict], index: Path):
        self.failed, self.index = failed, index
        shown = "; ".join(f"{_label(c)}: {c['error']}" for c in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        super().__init__(f"{len(failed)} grid cell(s) failed after retries: {shown}{more}; see {index}")


@dataclass
class Cell:
    """One video of the grid: `params` as index.json shows them, `values` as the session takes them."""

    params: dict[str, Any]
    values: dict[str, Any]
    name: str  # file name in out/, derived from the session and the values
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


def _label(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={params[k]}" for k in AXES if k in params)


# ---------------------------------------------------------------------------------- grid spec
def expand(grid: Mapping[str, Any], size: tuple[int, int], session_key: str = "") -> list[Cell]:
    """Check the grid (InstructionError naming `grid.<axis>[i]`) and list its cells, axis by axis.

    `size` is the session's image size (trajectory points are checked against it); `session_key`
    goes into the file names so that another session never reuses this one's files.
    """
    from ivcore import trajectory as traj
    from ivcore.instructions import check_lam

    if not isinstance(grid, Mapping) or not grid:
        raise InstructionError("grid", grid, f"a non-empty mapping of axes ({', '.join(AXES)}) to lists of values")
    unknown = [k for k in grid if k not in AXES]
    if unknown:
        raise InstructionError(f"grid.{unknown[0]}", grid[unknown[0]], f"one of the axes {', '.join(AXES)}")
    axes: list[tuple[str, list[tuple[Any, Any]]]] = []  # (axis, [(shown in index, given to the session)])
    for axis in (a for a in AXES if a in grid):
        values = grid[axis]
        named = axis == "trajectories" and isinstance(values, Mapping)
        items = list(values.items()) if named else list(enumerate(values)) if _is_list(values) else None
        if not items:
            what = "a mapping of variant names to" if axis == "trajectories" else "a non-empty list of"
            raise InstructionError(f"grid.{axis}", values, f"{what} {_ALLOWED[axis]}")
        checked = []
        for key, value in items:
            where = f"grid.{axis}[{key!r}]" if named else f"grid.{axis}[{key}]"
            try:
                if axis == "seed":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise InstructionError(where, value, _ALLOWED["seed"])
                    checked.append((value, value))
                elif axis == "lam":
                    lam = check_lam(value)
                    checked.append((list(lam) if isinstance(lam, tuple) else lam, lam))
                elif axis == "motion":
                    if not isinstance(value, str):
                        raise InstructionError(where, value, _ALLOWED["motion"])
                    checked.append((value, value))
                else:
                    if not _is_list(value):
                        raise InstructionError(where, value, _ALLOWED["trajectories"])
                    dicts = [t.to_dict() for t in traj.validate_trajectories(list(value), size)]
                    checked.append((key if named else int(key), dicts))
            except InstructionError as exc:
                if exc.field.startswith("grid."):
                    raise
                inner = exc.field.removeprefix(axis)  # "lam" -> "", "lam[1]" -> "[1]", other fields kept
                inner = inner if inner == "" or inner.startswith("[") else f".{exc.field}"
                raise InstructionError(f"{where}{inner}", exc.value, exc.allowed) from None
        axes.append((axis, checked))
    cells = []
    for combo in itertools.product(*(values for _, values in axes)):
        params = {axis: shown for (axis, _), (shown, _) in zip(axes, combo, strict=True)}
        values = {axis: given for (axis, _), (_, given) in zip(axes, combo, strict=True)}
        key = json.dumps([session_key, {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}])
        cells.append(Cell(params, values, f"cell-{hashlib.sha256(key.encode()).hexdigest()[:16]}.mp4"))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        dup = next(c for c in cells if names.count(c.name) > 1)
        raise InstructionError("grid", _label(dup.params), "axes without repeated values (a cell appears twice)")
    return cells


_ALLOWED = {
    "seed": "integers >= 0",
    "lam": "numbers in [0, 1] or per-step lists of them",
    "motion": "strings (motion texts)",
    "trajectories": "lists of trajectories (Trajectory.to_dict() dicts; [] for none)",
}


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) > 0 or value == []


def session_key(folder: Path) -> str:
    """A hash of what defines a saved session (its JSON and pictures), not of its last video."""
    digest = hashlib.sha256()
    for name in SESSION_FILES:
        path = folder / name
        digest.update(name.encode() + (path.read_bytes() if path.is_file() else b"-"))
    return digest.hexdigest()[:16]


def _session_folder(session_or_folder: Any, out: Path) -> Path:
    from ivcore import Session

    if isinstance(session_or_folder, Session):
        return session_or_folder.save(out / SESSION_DIR)
    if not isinstance(session_or_folder, (str, os.PathLike)):
        raise InstructionError("session_or_folder", session_or_folder, "a Session or a folder written by Session.save")
    folder = Path(session_or_folder)
    if not (folder / "session.json").is_file():
        raise InstructionError("session_or_folder", str(folder), "a folder written by Session.save (with session.json)")
    return folder


# ---------------------------------------------------------------------------------- workers
class Renderer:
    """A worker's state: the session loaded once from its folder, then one `render` per cell.

    `fault` is for tests only: {"cell": file name, "kind": "raise"|"exit", "marker": path} makes
    the first attempt at that cell raise or kill the worker process (the marker file records it).
    """

    def __init__(self, folder: str, threads: int | None = None, load_kwargs: dict | None = None):
        import torch

        from ivcore import Session

        if threads:
            torch.set_num_threads(threads)
        self.session = Session.load(folder, **(load_kwargs or {}))

    def render(self, values: dict, out: str, name: str, options: dict, fault: dict | None = None) -> str:
        if fault and fault.get("cell") == name and not os.path.exists(fault["marker"]):
            Path(fault["marker"]).write_text(fault["kind"])
            if fault["kind"] == "exit":
                os._exit(3)
            raise RuntimeError(f"injected fault in {name}")
        s = self.session
        if "motion" in values:
            s.motion = values["motion"]
        if "trajectories" in values:
            s.trajectories = values["trajectories"]
        options = dict(options)
        save_frames = options.pop("save_frames", False)
        video = s.generate(seed=values.get("seed"), lam=values.get("lam"), progress=False, **options)
        stem = Path(out) / name[:-4]
        if save_frames:  # the exact uint8 frames (the mp4 is lossy), written before the mp4 that marks "done"
            import torch
            from safetensors.torch import save_file

            partial = stem.with_name(f".{stem.name}.partial.safetensors")
            save_file({"frames": torch.from_numpy(video.frames.copy())}, str(partial), metadata={"fps": str(video.fps)})
            os.replace(partial, stem.with_suffix(".safetensors"))
        partial = stem.with_name(f".{stem.name}.partial.mp4")
        video.to_mp4(partial)
        os.replace(partial, Path(out) / name)  # complete files only: a rerun may trust what exists
        return name


class _InlinePool:
    """engine="local", workers=1: the renderer in this process (no process start, no pickling)."""

    def __init__(self, make):
        self.make, self.worker, self.done = make, None, deque()

    def size(self) -> int:
        return 1

    def submit(self, slot: int, call: tuple) -> None:
        try:
            self.worker = self.worker or self.make()
            self.done.append((slot, True, self.worker.render(*call)))
        except Exception as exc:  # a failed cell is retried and reported, not fatal to the grid
            self.worker = None  # like a crashed worker: the next attempt starts from a fresh load
            self.done.append((slot, False, f"{type(exc).__name__}: {exc}"))

    def wait(self) -> tuple[int, bool, str]:
        return self.done.popleft()

    def close(self) -> None:
        self.worker = None


def _process_main(conn, args: tuple) -> None:
    """A local worker process: load once, then render what the pipe brings until None."""
    renderer = Renderer(*args)
    conn.send(("ready", True, ""))
    while (call := conn.recv()) is not None:
        try:
            conn.send(("done", True, renderer.render(*call)))
        except Exception as exc:
            conn.send(("done", False, f"{type(exc).__name__}: {exc}"))


class _ProcessPool:
    """engine="local", workers>1: spawned processes, one cell in flight each; a dead one is replaced."""

    def __init__(self, workers: int, args: tuple):
        import multiprocessing as mp

        self.ctx, self.args = mp.get_context("spawn"), args
        self.procs: list[Any] = [None] * workers
        self.conns: list[Any] = [None] * workers
        for slot in range(workers):
            self._start(slot)

    def _start(self, slot: int) -> None:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_process_main, args=(child, self.args), daemon=True)
        proc.start()
        child.close()
        self.procs[slot], self.conns[slot] = proc, parent

    def size(self) -> int:
        return len(self.procs)

    def submit(self, slot: int, call: tuple) -> None:
        self.conns[slot].send(call)

    def wait(self) -> tuple[int, bool, str]:
        from multiprocessing.connection import wait

        while True:
            ready = wait(self.conns + [p.sentinel for p in self.procs])
            for slot, conn in enumerate(self.conns):
                if conn in ready or self.procs[slot].sentinel in ready:
                    try:
                        kind, ok, info = conn.recv()
                    except (EOFError, OSError):  # the process died with a cell in flight
                        self.procs[slot].join()  # reap it first: its exit code is None until then
                        code = self.procs[slot].exitcode
                        self._start(slot)
                        return slot, False, f"worker process died (exit code {code})"
                    if kind == "done":
                        return slot, ok, info

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs, strict=True):
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


class _RayPool:
    """engine="ray": one actor per worker (one GPU each when the cluster has GPUs); a dead actor is replaced."""

    def __init__(self, workers: int, args: tuple):
        import ray

        self.ray = ray
        gpus = ray.cluster_resources().get("GPU", 0)
        self.actor = ray.remote(num_gpus=1 if gpus >= 1 else 0, num_cpus=1)(Renderer)
        self.args = args
        self.actors = [self.actor.remote(*args) for _ in range(workers)]
        self.inflight: dict[Any, int] = {}

    def size(self) -> int:
        return len(self.actors)

    def submit(self, slot: int, call: tuple) -> None:
        self.inflight[self.actors[slot].render.remote(*call)] = slot

    def wait(self) -> tuple[int, bool, str]:
        ray = self.ray
        (ref,), _ = ray.wait(list(self.inflight), num_returns=1)
        slot = self.inflight.pop(ref)
        try:
            return slot, True, ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # render raised: the actor is fine
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return slot, False, f"{type(cause).__name__}: {cause}".splitlines()[0]
        except ray.exceptions.RayError as exc:  # the actor (its process or node) died
            ray.kill(self.actors[slot], no_restart=True)
            self.actors[slot] = self.actor.remote(*self.args)
            return slot, False, f"worker died ({type(exc).__name__})"

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)


def _schedule(pool, cells: list[Cell], call, retries: int, log) -> None:
    """Keep every worker busy with one cell; requeue a failed cell until it has had 1 + retries attempts."""
    queue, idle, inflight = deque(cells), list(range(pool.size())), {}
    while queue or inflight:
        while queue and idle:
            slot, cell = idle.pop(), queue.popleft()
            cell.attempts += 1
            inflight[slot] = cell
            pool.submit(slot, call(cell))
        slot, ok, info = pool.wait()
        cell = inflight.pop(slot, None)
        if cell is None:  # an idle worker died (and was replaced): no cell to blame
            continue
        idle.append(slot)
        if ok:
            log(f"[ivcore] grid: {_label(cell.params)} -> {cell.name} (attempt {cell.attempts})")
            continue
        cell.errors.append(info)
        again = cell.attempts <= retries
        log(f"[ivcore] grid: {_label(cell.params)} failed (attempt {cell.attempts}: {info}){'; retrying' * again}")
        if again:
            queue.append(cell)


# ---------------------------------------------------------------------------------- run_grid
def run_grid(
    session_or_folder: Any,
    grid: Mapping[str, Any],
    engine: str = "local",
    out: str | os.PathLike = "grid",
    *,
    workers: int | None = None,
    retries: int = 1,
    address: str | None = None,
    steps: int | None = None,
    num_frames: int | None = None,
    threads: int | None = None,
    load_kwargs: dict | None = None,
    save_frames: bool = False,
    contact_sheet: bool = True,
    verbose: bool = True,
    _fault: dict | None = None,
) -> Path:
    """Render every cell of `grid` into `out` and write out/index.json (returned) and a contact sheet.

    `grid` maps axes to values: "seed" (ints), "lam" (floats or per-step lists), "motion" (texts),
    "trajectories" (a mapping of variant names to trajectory lists, or a list of such lists).
    Cells already written (same session, same values) are skipped. `workers` defaults to 1 for
    "local" (in this process; more start spawned processes) and to the cluster's GPUs (or 1) for
    "ray", where `address` is passed to `ray.init` unless Ray is already initialised. `threads`
    sets torch's CPU threads per worker (on a CPU, results are bitwise those of a one-process
    run with as many threads). `save_frames` also writes each cell's exact uint8 frames as
    cell-<hash>.safetensors (the mp4 is lossy, and x264's output may vary from run to run with
    its threads). Raises GridError after writing the index if cells still fail.
    """
    from PIL import Image

    if engine not in ENGINES:
        raise InstructionError("engine", engine, " or ".join(repr(e) for e in ENGINES))
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InstructionError("workers", workers, "an integer >= 1 (or None for the default)")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InstructionError("retries", retries, "an integer >= 0")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder = _session_folder(session_or_folder, out)
    with Image.open(folder / "image.png") as image:
        size = image.size
    cells = expand(grid, size, session_key(folder))
    todo = [c for c in cells if not _written(c, out, save_frames)]
    log = print if verbose else (lambda *_: None)
    options = {k: v for k, v in (("steps", steps), ("num_frames", num_frames)) if v is not None}
    if save_frames:
        options["save_frames"] = True
    args = (str(folder), threads, load_kwargs)
    start = time.perf_counter()
    if todo:
        pool = _make_pool(engine, workers, args, address, len(todo))
        try:
            _schedule(pool, todo, lambda c: (c.values, str(out), c.name, options, _fault), retries, log)
        finally:
            pool.close()
    index = out / INDEX
    entries = [_entry(c, out, save_frames) for c in cells]
    index.write_text(json.dumps(entries, indent=2))
    if contact_sheet:
        write_contact_sheet(out, entries)
    done = sum(1 for c in todo if _written(c, out, save_frames))
    log(
        f"[ivcore] grid: {len(cells)} cells, {done} rendered, {len(cells) - len(todo)} already there, "
        f"{sum(1 for e in entries if e['path'] is None)} failed ({time.perf_counter() - start:.1f}s) -> {index}"
    )
    failed = [e for e in entries if e["path"] is None]
    if failed:
        raise GridError(failed, index)
    return index


def _make_pool(engine: str, workers: int | None, args: tuple, address: str | None, cells: int):
    if engine == "ray":
        try:
            import ray
        except ImportError:
            raise InstructionError("engine", "ray", "'local', or install the extra: pip install '.[ray]'") from None
        if not ray.is_initialized():
            ray.init(address=address)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        return _RayPool(min(workers or max(gpus, 1), cells), args)
    n = min(workers or 1, cells)
    return _InlinePool(lambda: Renderer(*args)) if n == 1 else _ProcessPool(n, args)


def _written(cell: Cell, out: Path, save_frames: bool) -> bool:
    frames = out / cell.name.replace(".mp4", ".safetensors")
    return (out / cell.name).is_file() and (not save_frames or frames.is_file())


def _entry(cell: Cell, out: Path, save_frames: bool) -> dict:
    written = _written(cell, out, save_frames)
    entry = {**cell.params, "path": cell.name if written else None, "attempts": cell.attempts}
    if save_frames and written:
        entry["frames"] = cell.name.replace(".mp4", ".safetensors")
    if cell.errors:
        entry["errors"] = cell.errors
    if not written:
        entry["error"] = cell.errors[-1] if cell.errors else "not rendered"
    return entry


def write_contact_sheet(out: Path, entries: list[dict], frames: int = 8, thumb: int = 64) -> Path:
    """One row per cell: its parameters, then up to `frames` frames from first to last (or its error)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ivcore.video import Video

    videos = [Video.from_mp4(out / e["path"]) if e["path"] is not None else None for e in entries]
    cols = min(frames, max((v.num_frames for v in videos if v is not None), default=1))
    label_w, pad = 200, 4
    sheet = Image.new("RGB", (label_w + cols * (thumb + pad), len(entries) * (thumb + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, (entry, video) in enumerate(zip(entries, videos, strict=True)):
        y = pad + row * (thumb + pad)
        text = "\n".join(f"{k}: {str(entry[k])[:28]}" for k in AXES if k in entry)
        draw.multiline_text((pad, y), text, fill=(0, 0, 0))
        if video is None:
            draw.text((label_w, y + thumb // 2), f"FAILED: {entry['error']}"[:60], fill=(200, 0, 0))
            continue
        picks = np.unique(np.linspace(0, video.num_frames - 1, min(cols, video.num_frames)).round().astype(int))
        for col, i in enumerate(picks):
            tile = Image.fromarray(video.frames[i])
            tile.thumbnail((thumb, thumb))
            sheet.paste(tile, (label_w + col * (thumb + pad), y))
    path = out / SHEET
    sheet.save(path)
    return path


__all__ = ["GridError", "run_grid", "expand", "session_key", "write_contact_sheet", "AXES"]
