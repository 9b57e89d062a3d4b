"""`python -m ivcore generate`: every option runs, bad input exits non-zero with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest
from PIL import Image

from ivcore import Session, Trajectory
from ivcore.cli import main
from ivcore.samples import scene

FAST = ["--model", "tiny", "--steps", "2"]


@pytest.fixture
def files(tmp_path):
    image = tmp_path / "x.png"
    scene().save(image)
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[20:30, 20:40] = (240, 210, 60, 255)
    paint = tmp_path / "paint.png"
    Image.fromarray(layer).save(paint)
    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps([Trajectory(points=[(16, 16), (40, 30)], radius=6).to_dict()]))
    return {"image": image, "paint": paint, "traj": traj, "dir": tmp_path}


def frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def run(args, capsys):
    code = main(["generate", *args])
    return code, capsys.readouterr()


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--paint", "{paint}", "--lam", "0.3"],
        ["--trajectories", "{traj}", "--trajectory-mode", "endpoint", "--lam", "0"],
        ["--lam-schedule", "0,1", "--seed", "3", "--frames", "4", "--content-strength", "0"],
    ],
)
def test_each_option_runs_and_writes_an_mp4(files, extra, capsys):
    out = files["dir"] / "clip.mp4"
    extra = [e.format(paint=files["paint"], traj=files["traj"]) for e in extra]
    code, printed = run(["--image", str(files["image"]), "--content", "a field", "--motion", "sun rises",
                         *FAST, *extra, "--out", str(out)], capsys)  # fmt: skip
    assert code == 0, printed.err
    assert frames(out) == (4 if "--frames" in extra else 8)
    assert "wrote" in printed.out


def test_the_cli_equals_the_python_api(files, capsys):
    out = files["dir"] / "cli.mp4"
    code, _ = run(["--image", str(files["image"]), "--motion", "sun rises", "--paint", str(files["paint"]),
                   "--lam", "0.5", "--seed", "1", *FAST, "--out", str(out)], capsys)  # fmt: skip
    assert code == 0
    s = Session.tiny()
    s.image = Image.open(files["image"]).convert("RGB")
    s.paint(Image.open(files["paint"]).convert("RGBA"))
    s.motion, s.lam, s.steps = "sun rises", 0.5, 2
    expected = files["dir"] / "api.mp4"
    s.generate(seed=1, progress=False).to_mp4(expected)
    assert out.read_bytes() == expected.read_bytes()


def test_a_saved_session_runs_with_overrides(files, capsys):
    s = Session.tiny(steps=2)
    s.image = scene()
    s.motion = "sun rises"
    folder = s.save(files["dir"] / "saved")
    out = files["dir"] / "from_session.mp4"
    code, printed = run(["--session", str(folder), "--lam", "0.5", "--out", str(out)], capsys)
    assert code == 0, printed.err
    assert frames(out) == 8


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--content", "x"], "--image"),
        (["--image", "missing.png"], "--image"),
        (["--image", "{image}", "--trajectories", "{bad_json}"], "--trajectories"),
        (["--image", "{image}", "--lam", "2"], "lam"),
        (["--image", "{image}", "--lam-schedule", "0,a"], "--lam-schedule"),
        (["--image", "{bad_json}"], "--image"),
        (["--session", "no-such-folder"], "--session"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, args, words, capsys):
    bad = files["dir"] / "bad.json"
    bad.write_text("{not json")
    args = [a.format(image=files["image"], bad_json=bad) for a in args]
    code, printed = run([*args, *FAST, "--out", str(files["dir"] / "x.mp4")], capsys)
    assert code == 2
    lines = printed.err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("ivcore generate: error:")
    assert not (files["dir"] / "x.mp4").exists()


@pytest.mark.slow
def test_exit_status_of_the_real_process(files):
    proc = subprocess.run(
        [sys.executable, "-m", "ivcore", "generate", "--image", str(files["image"]), "--lam", "2", *FAST,
         "--out", str(files["dir"] / "y.mp4")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("ivcore generate: error: lam")


def decoded(path) -> np.ndarray:
    """The mp4's frames as (F, H, W, 3) uint8."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_demo_size_renders_the_shapes_scene_at_that_size(tmp_path, capsys):
    from ivcore.shapes import world

    out = tmp_path / "demo.mp4"
    assert main(["demo", "--size", "96x64", "--steps", "6", "--out", str(out)]) == 0
    assert "(96x64)" in capsys.readouterr().out
    video = decoded(out)
    assert video.shape == (8, 64, 96, 3)
    # the scene is laid out at 96 x 64 (a 12 px white square at (72, 32), a 14 px red circle at (21, 14)),
    # not the 64 x 64 scene cropped and enlarged 1.5 times (an 18 px square, the circle at y = 5)
    white, red = world.segment(video[0], "white"), world.segment(video[0], "red")
    x, y = world.centroid(white)
    assert abs(x - 71.5) < 3 and abs(y - 31.5) < 3 and 100 < white.sum() < 200
    assert abs(world.centroid(red)[1] - 13.5) < 3 and red.sum() < 240


def test_demo_size_and_fit_on_the_tiny_preset_and_a_refused_size(tmp_path, capsys):
    out = tmp_path / "tiny.mp4"
    args = ["demo", "--preset", "tiny", "--steps", "2", "--frames", "4", "--out", str(out)]
    assert main([*args, "--size", "64x96", "--fit", "pad"]) == 0
    assert decoded(out).shape == (4, 96, 64, 3) and "image 64x96" in capsys.readouterr().out
    out.unlink()
    for size, words in (("100x64", "multiples of 8"), ("wide", "WIDTHxHEIGHT")):
        assert main([*args, "--size", size]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ivcore demo: error:") and words in lines[0]
        assert not out.exists()
