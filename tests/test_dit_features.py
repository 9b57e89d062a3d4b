"""Features of issue 36 item 3 on the DiT families, on tiny folders in their hub layouts: `run_grid`,
`align="stats"` (Eq. 5), the out-of-memory fallback, the CLI with an SDXL image model, and which LTX-Video layouts load.

Wan 2.1 I2V (the image on the channels), LTX-Video 0.9.0 (the image as the first latent frame) and CogVideoX
1.0 I2V (DDIM, v-prediction) run through `Session.from_pretrained(image_model, video_model)`,
the path real weights take.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from family_helpers import family_session, yellow_square
from safetensors.torch import load_file

from ivcore import InstructionError, Session
from ivcore.testing import mirror

FAMILIES = {"wan2.1-i2v": (64, 48), "ltx-video-0.9.0-i2v": (96, 64), "cogvideox-5b-i2v": (64, 48)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dit")
    return {kind: mirror(root / kind, kind) for kind in FAMILIES}


@pytest.fixture(scope="module", params=list(FAMILIES))
def dit(request, tiny_model_dirs, folders):
    """A painted session of one family (2 steps), built once per module and family."""
    kind = request.param
    s = family_session(tiny_model_dirs, folders[kind], FAMILIES[kind])
    s.paint(yellow_square(s.size))
    s.steps = 2
    return kind, s


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------- run_grid
def test_run_grid_cells_equal_the_sessions_own_generates(dit, tmp_path, one_thread):
    from ivcore.batch import run_grid

    kind, s = dit
    saved = s.save(tmp_path / "session")
    index = run_grid(saved, {"seed": [0, 1], "lam": [1.0, 0.5]}, out=tmp_path / "out", threads=1,
                     save_frames=True, contact_sheet=False, verbose=False)  # fmt: skip
    entries = json.loads(index.read_text())
    assert len(entries) == 4 and all(e["attempts"] == 1 and "error" not in e for e in entries)
    reference = Session.load(saved)
    assert type(reference.video_backend).__name__ == type(s.video_backend).__name__
    videos = []
    for e in entries:
        video = reference.generate(seed=e["seed"], lam=e["lam"], progress=False)
        cell = load_file(str(tmp_path / "out" / e["frames"]))["frames"].numpy()
        assert cell.shape == (s.num_frames, s.size[1], s.size[0], 3)
        assert np.array_equal(cell, video.frames), (kind, e)  # bitwise: the same session, one thread
        videos.append(cell)
    # the cells differ from each other (seed and lambda both reach the video)
    assert len({v.tobytes() for v in videos}) == 4


# ------------------------------------------------------------------------------------------------ align stats
def test_align_stats_changes_the_frames_and_a_take_restores_it_bitwise(dit):
    _, s = dit
    s.lam, s.align = 0.5, None
    plain = s.generate(seed=2, progress=False)
    denoised = s.stats["denoise"]["misses"]
    s.align = "stats"
    aligned = s.generate(seed=2, progress=False)
    assert s.stats["denoise"]["misses"] == denoised  # Eq. 5 acts after decoding: no new denoise
    assert aligned.frames.shape == plain.frames.shape
    assert np.abs(aligned.frames.astype(int) - plain.frames).mean() > 0.1
    take = s.takes[-1]
    s.align = None
    s.lam = 0.8
    assert not np.array_equal(s.generate(seed=3, progress=False).frames, aligned.frames)
    s.restore(take)
    assert s.align == "stats" and s.lam == 0.5
    assert np.array_equal(s.generate(progress=False).frames, aligned.frames)
    s.align = None


# ---------------------------------------------------------------------------------------------- out of memory
class RowLimit:
    """A pre-hook that raises OutOfMemoryError when the transformer gets more than `limit` rows."""

    def __init__(self, module: torch.nn.Module, limit: int):
        self.limit, self.calls, self.raised = limit, [], 0
        self.handle = module.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        rows = (args[0] if args else kwargs["hidden_states"]).shape[0]
        self.calls.append(rows)
        if rows > self.limit:
            self.raised += 1
            raise torch.OutOfMemoryError(f"test: {rows} rows > {self.limit}")


def test_out_of_memory_splits_the_transformer_rows_and_keeps_the_frames(dit):
    _, s = dit
    backend = s.video_backend
    s.lam, s.align = 0.5, None
    backend.max_rows = None
    s.generate(seed=5, progress=False)
    latents, frames = s.last_latents.clone(), s.last_video.frames.copy()
    reference = backend.decode(latents)
    s.cache.clear()  # denoise again, the same seed
    hook = RowLimit(backend.transformer, 2)
    try:
        with pytest.warns(RuntimeWarning, match=r"video transformer \(4 rows .*max_rows = 2"):
            s.generate(seed=5, progress=False)
    finally:
        hook.handle.remove()
    assert backend.max_rows == 2
    # x~ and x~' with guidance: 4 rows a step; the first call failed, every later one went in halves
    assert hook.calls[0] == 4 and hook.raised == 1 and max(r for r in hook.calls if r <= 2) == 2
    assert (s.last_latents - latents).abs().max() <= 1e-5 * latents.abs().max()
    assert (backend.decode(s.last_latents) - reference).abs().max() <= 1e-5
    assert np.abs(s.last_video.frames.astype(int) - frames).max() <= 1
    backend.max_rows = None


# ------------------------------------------------------------------------------------------------------- CLI
def mp4_frames(path) -> tuple[int, int, int]:
    import av

    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return len(decoded), decoded[0].shape[1], decoded[0].shape[0]


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    return mirror(tmp_path_factory.mktemp("sdxl") / "sdxl", "sdxl")


@pytest.mark.parametrize("command", ["generate", "demo"])
def test_the_cli_runs_an_sdxl_image_model_with_a_wan_video_model(command, tmp_path, folders, sdxl_folder, capsys):
    from family_helpers import picture

    from ivcore.cli import main

    out = tmp_path / "clip.mp4"
    args = [command, "--image-model", str(sdxl_folder), "--video-model", str(folders["wan2.1-i2v"]),
            "--device", "cpu", "--steps", "2", "--frames", "5", "--out", str(out)]  # fmt: skip
    if command == "generate":
        picture((64, 48)).save(tmp_path / "x.png")
        args += ["--image", str(tmp_path / "x.png"), "--motion", "a fox runs", "--lam", "0.5"]
    assert main(args) == 0, capsys.readouterr().err
    assert out.stat().st_size > 0
    assert mp4_frames(out) == (5, 64, 48)


def test_the_cli_help_names_the_image_and_video_families(capsys):
    from ivcore.cli import main

    for command in ("generate", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "SDXL" in text and "Wan" in text and "LTX" in text, command
        assert "SD1.5-family model id or folder (real weights)" not in text


# ---------------------------------------------------------------------------------------- LTX-Video layouts
def test_ltx_text_to_video_folders_are_refused_by_name_and_condition_folders_are_a_family(
    tmp_path, tiny_model_dirs, folders
):
    """LTX-Video ships three layouts: `LTXImageToVideoPipeline` (0.9.0 / 0.9.1), `LTXConditionPipeline` (0.9.5 and
    later, the -distilled releases: tests/test_ltx_condition.py) and the text-only `LTXPipeline`, which takes no
    image and is refused by name before any model loads, the supported classes listed."""
    import shutil

    folder = tmp_path / "ltx-t2v"
    shutil.copytree(folders["ltx-video-0.9.0-i2v"], folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "LTXPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(InstructionError, match="video_model.*'LTXPipeline'.*LTXConditionPipeline.*LTXImageToVideo"):
        Session.from_pretrained(tiny_model_dirs["image_model"], folder, device="cpu")
    s = Session.from_pretrained(tiny_model_dirs["image_model"], folders["ltx-video-0.9.0-i2v"], device="cpu")
    assert (s.steps, s.guidance) == (4, 3.0)  # the tiny folder's; a real 0.9.x folder gets 50 and 3.0


def test_a_family_refuses_fewer_steps_than_its_schedule_takes(dit):
    """LTX-Video's schedule stretches to a terminal shift: one step would give NaN timesteps (0 / 0), so its
    `min_steps` is 2 and `steps` says so; the other families take one step."""
    kind, s = dit
    low = getattr(s.video_backend, "min_steps", 1)
    assert low == (2 if kind.startswith("ltx") else 1)
    before = s.steps
    if low > 1:
        with pytest.raises(InstructionError, match="steps"):
            s.steps = 1
        with pytest.raises(InstructionError, match="steps"):
            s.generate(steps=1)
        assert s.steps == before
    else:
        s.steps = 1
        s.steps = before
