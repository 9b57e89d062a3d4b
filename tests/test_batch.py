"""ivcore.batch.run_grid and `python -m ivcore grid`: index.json, files, contact sheet, rerun skips, retries.

A tiny session (2 steps, 4 frames) is saved once; every engine renders from that folder. Cells'
frames (`save_frames=True`) are compared bitwise with a one-process render of the same settings
at one torch thread (on a CPU, float results depend on the thread count, so the workers run with
`threads=1` too). The mp4 bytes are not compared: x264's output was seen to vary between runs
of the same frames on this loaded 2-core machine (its threads), so they are checked by decoding.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ivcore import InstructionError, Session, Trajectory, Video
from ivcore.batch import GridError, expand, run_grid
from ivcore.cli import main
from ivcore.cli.grid import load_spec
from ivcore.video import psnr

GRID = {"seed": [0, 1], "lam": [1.0, [0.0, 1.0]]}
DRAG = [Trajectory(points=[(12, 12), (40, 24)], radius=6).to_dict()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    s = Session.tiny(seed=0)
    s.steps, s.num_frames = 2, 4
    s.content, s.motion = "a red ball", "the ball rolls"
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[8:20, 30:50] = (30, 60, 220, 255)
    s.paint(layer)
    return s.save(tmp_path_factory.mktemp("grid") / "session")


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def frames_of(out) -> dict[str, np.ndarray]:
    return {p.name: load_file(str(p))["frames"].numpy() for p in out.glob("cell-*.safetensors")}


def test_local_grid_writes_index_files_and_sheet_equal_to_one_by_one(folder, tmp_path, one_thread):
    out = tmp_path / "out"
    grid = {**GRID, "motion": ["the ball rolls"]}
    index = run_grid(folder, grid, out=out, threads=1, save_frames=True, verbose=False)
    entries = json.loads(index.read_text())
    assert index == out / "index.json"
    assert [{k: e[k] for k in ("seed", "lam", "motion")} for e in entries] == [
        {"seed": seed, "lam": lam, "motion": "the ball rolls"} for seed in (0, 1) for lam in (1.0, [0.0, 1.0])
    ]
    assert all(e["attempts"] == 1 and "error" not in e for e in entries)
    assert len({e["path"] for e in entries}) == 4
    reference = Session.load(folder)
    for e in entries:
        video = reference.generate(seed=e["seed"], lam=e["lam"], progress=False)
        assert e["frames"] == e["path"].replace(".mp4", ".safetensors")
        assert np.array_equal(load_file(str(out / e["frames"]))["frames"].numpy(), video.frames), e  # bitwise
        # the mp4: Video.to_mp4's defaults, so as close to the frames as the reference's own mp4 is
        decoded, own = Video.from_mp4(out / e["path"]).frames, Video.from_mp4(video.to_mp4()).frames
        assert decoded.shape == (4, 64, 64, 3) and abs(psnr(decoded, video.frames) - psnr(own, video.frames)) < 1
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size == (200 + 4 * 68, 4 * 68 + 4)  # one row per cell, 4 frames of 64 px + 4 px gaps
        # the first thumbnail of row 0 is frame 0 of cell 0 (the thumbnail is the frame itself at 64 px)
        first = Video.from_mp4(out / entries[0]["path"]).frames[0]
        assert np.array_equal(np.asarray(sheet.convert("RGB"))[4:68, 200:264], first)


def test_rerun_skips_written_cells_and_renders_only_new_ones(folder, tmp_path):
    out = tmp_path / "out"
    run_grid(folder, {"seed": [0], "lam": [1.0]}, out=out, verbose=False)
    (path,) = out.glob("cell-*.mp4")
    stamp = path.stat().st_mtime_ns
    index = run_grid(folder, {"seed": [0, 1], "lam": [1.0]}, out=out, verbose=False)
    entries = json.loads(index.read_text())
    assert [e["attempts"] for e in entries] == [0, 1]  # seed 0 already there: not rendered again
    assert entries[0]["path"] == path.name and path.stat().st_mtime_ns == stamp
    start = time.perf_counter()
    entries = json.loads(run_grid(folder, {"seed": [0, 1], "lam": [1.0]}, out=out, verbose=False).read_text())
    assert [e["attempts"] for e in entries] == [0, 0]
    assert time.perf_counter() - start < 5  # no model load when nothing is left to render


def test_another_session_does_not_reuse_the_cells(folder, tmp_path):
    out = tmp_path / "out"
    first = json.loads(run_grid(folder, {"seed": [0]}, out=out, verbose=False).read_text())
    other = Session.load(folder)
    other.motion = "the ball bounces"
    second = json.loads(run_grid(other, {"seed": [0]}, out=out, verbose=False).read_text())
    assert second[0]["attempts"] == 1 and second[0]["path"] != first[0]["path"]


def test_a_failing_cell_is_retried_and_reported(folder, tmp_path):
    out = tmp_path / "out"
    cells = expand({"trajectories": {"none": [], "drag": DRAG}}, (64, 64), _key(folder))
    fault = {"cell": cells[1].name, "kind": "raise", "marker": str(tmp_path / "fault")}
    grid = {"trajectories": {"none": [], "drag": DRAG}}
    with pytest.raises(GridError) as info:  # no retries: the failure is reported, the other cell written
        run_grid(folder, grid, out=out, retries=0, verbose=False, _fault=fault)
    entries = json.loads((out / "index.json").read_text())
    assert info.value.failed == [entries[1]] and "injected fault" in str(info.value)
    assert entries[0]["path"] is not None and entries[1]["path"] is None
    assert entries[1]["attempts"] == 1 and "RuntimeError: injected fault" in entries[1]["error"]
    assert (out / "contact_sheet.png").is_file()

    (tmp_path / "fault").unlink()  # the fault strikes again once; with a retry the cell is written
    entries = json.loads(run_grid(folder, grid, out=out, verbose=False, _fault=fault).read_text())
    assert [e["attempts"] for e in entries] == [0, 2]
    assert entries[1]["path"] == cells[1].name and entries[1]["trajectories"] == "drag"
    assert entries[1]["errors"] == ["RuntimeError: injected fault in " + cells[1].name]


def _key(folder):
    from ivcore.batch import session_key

    return session_key(folder)


@pytest.mark.parametrize(
    ("grid", "field"),
    [
        ({"speed": [1]}, "grid.speed"),
        ({"lam": [0.5, 2]}, "grid.lam[1]"),
        ({"lam": [[0.5, -1]]}, "grid.lam[0][1]"),
        ({"seed": [0, "1"]}, "grid.seed[1]"),
        ({"seed": []}, "grid.seed"),
        ({"motion": ["ok", 3]}, "grid.motion[1]"),
        ({"trajectories": {"far": [{"points": [[0, 0], [999, 0]]}]}}, "grid.trajectories['far']"),
        ({"seed": [0, 0]}, "grid"),
        ([], "grid"),
    ],
)
def test_bad_grids_name_the_field(folder, tmp_path, grid, field):
    with pytest.raises(InstructionError) as info:
        run_grid(folder, grid, out=tmp_path / "out", verbose=False)
    assert info.value.field.startswith(field), info.value
    assert not list((tmp_path / "out").glob("cell-*"))


def test_bad_arguments_name_the_field(folder, tmp_path):
    for kwargs, field in [({"engine": "dask"}, "engine"), ({"workers": 0}, "workers"), ({"retries": -1}, "retries")]:
        with pytest.raises(InstructionError, match=f"^{field}:"):
            run_grid(folder, {"seed": [0]}, out=tmp_path, verbose=False, **kwargs)
    with pytest.raises(InstructionError, match="^session_or_folder:"):
        run_grid(tmp_path / "nothing", {"seed": [0]}, out=tmp_path, verbose=False)


def spec_file(tmp_path, spec) -> str:
    path = tmp_path / "spec.json"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return str(path)


def test_cli_grid_renders_a_spec_with_paths_relative_to_it(folder, tmp_path, capsys):
    spec = {"session": os.path.relpath(folder, tmp_path), "grid": {"seed": [3], "lam": [0.5]}, "out": "result"}
    assert main(["grid", spec_file(tmp_path, spec)]) == 0, capsys.readouterr().err
    entries = json.loads((tmp_path / "result" / "index.json").read_text())
    assert entries == [{"seed": 3, "lam": 0.5, "path": entries[0]["path"], "attempts": 1}]
    assert (tmp_path / "result" / entries[0]["path"]).is_file()
    assert "contact sheet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{not json", "spec: "),
        ({"grid": {"seed": [0]}}, "session: "),
        ({"preset": "huge", "grid": {"seed": [0]}}, "preset: got 'huge'"),
        ({"preset": "tiny", "grid": {"lam": [2]}, "out": "o"}, "grid.lam[0]: got 2"),
        ({"preset": "tiny", "grid": {"seed": [0]}, "colour": 1}, "colour: "),
        ({"session": "missing", "grid": {"seed": [0]}}, "session_or_folder: "),
    ],
)
def test_cli_grid_bad_specs_exit_2_with_one_line(tmp_path, capsys, spec, message):
    assert main(["grid", spec_file(tmp_path, spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ivcore grid: error: ") and message in err and err.count("\n") == 1, err


def test_load_spec_keeps_engine_options(tmp_path):
    spec = load_spec(spec_file(tmp_path, {"preset": "tiny", "grid": {"seed": [0]}, "engine": "ray", "workers": 2}))
    assert spec["engine"] == "ray" and spec["workers"] == 2 and spec["preset"] == "tiny"


@pytest.mark.slow
def test_local_processes_render_the_same_frames_and_replace_a_killed_worker(folder, tmp_path):
    inline = tmp_path / "inline"
    run_grid(folder, GRID, out=inline, threads=1, save_frames=True, verbose=False)
    cells = expand(GRID, (64, 64), _key(folder))
    fault = {"cell": cells[2].name, "kind": "exit", "marker": str(tmp_path / "killed")}
    out = tmp_path / "processes"
    index = run_grid(folder, GRID, out=out, workers=2, threads=1, save_frames=True, verbose=False, _fault=fault)
    entries = json.loads(index.read_text())
    assert [e["attempts"] for e in entries] == [1, 1, 2, 1]
    assert entries[2]["errors"] == ["worker process died (exit code 3)"]
    got, want = frames_of(out), frames_of(inline)
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)


@pytest.mark.slow
def test_ray_engine_renders_the_same_frames_and_retries_a_killed_worker(folder, tmp_path):
    """A local Ray cluster on this CPU (2 workers): measured about 90 s here, most of it Ray's start."""
    ray = pytest.importorskip("ray")
    inline = tmp_path / "inline"
    run_grid(folder, GRID, out=inline, threads=1, save_frames=True, verbose=False)
    cells = expand(GRID, (64, 64), _key(folder))
    fault = {"cell": cells[1].name, "kind": "exit", "marker": str(tmp_path / "killed")}
    out = tmp_path / "ray"
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # Ray's own start (GCS, raylet) timing out on an overloaded machine
        pytest.skip(f"a local Ray cluster did not start here: {str(exc).splitlines()[0]}")
    try:
        kwargs = {"workers": 2, "threads": 1, "save_frames": True, "verbose": False, "_fault": fault}
        entries = json.loads(run_grid(folder, GRID, engine="ray", out=out, **kwargs).read_text())
        again = json.loads(run_grid(folder, GRID, engine="ray", out=out, verbose=False).read_text())
    finally:
        ray.shutdown()
    assert [e["attempts"] for e in entries] == [1, 2, 1, 1]
    assert entries[1]["errors"][0].startswith("worker died")  # the killed actor, replaced
    assert [e["attempts"] for e in again] == [0, 0, 0, 0]  # a rerun skips the finished cells
    got, want = frames_of(out), frames_of(inline)
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
