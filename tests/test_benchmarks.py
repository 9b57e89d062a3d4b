"""Smoke tests of benchmarks/blend_cost.py, sweep_cost.py and scrub_cost.py on tiny sizes; quality.py's table.

Only the shape of the report is checked (rows, positive finite numbers, cache hits on a
lam-only rerun, the RESULTS.md section replaced in place), never timings: those belong in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_script(name: str):
    """Import benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def blend_cost():
    return load_script("blend_cost")


@pytest.fixture(scope="module")
def measured(blend_cost):
    config = blend_cost.Config("tiny", blend_cost.tiny_session, num_frames=2, steps=1, label="tiny smoke")
    rows, results = blend_cost.run([config], repeats=1, warmup=0)
    return config, rows, results


def test_table_has_expected_rows_and_positive_finite_numbers(blend_cost, measured):
    _, rows, results = measured
    assert [r.config for r in rows] == ["tiny"] * 7
    names = [r.measurement for r in rows]
    assert names[0].startswith("PIAPipeline") and "own loop plain" in names[1]
    assert any("blend" in n for n in names) and any("rerun" in n for n in names)
    for r in rows:
        assert math.isfinite(r.median_s) and r.median_s > 0
        if r.ratio is not None:
            assert math.isfinite(r.ratio) and r.ratio > 0
            assert r.target and r.passed in (True, False)
    table = blend_cost.format_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| tiny |" in table
    # the own loop computes the same video as PIAPipeline (uint8 rounding at most)
    assert results["tiny"]["pia_max_diff"] <= 1


def test_rerun_after_lam_change_hits_the_cache(measured):
    _, _, results = measured
    hits, misses = results["tiny"]["rerun_hits"], results["tiny"]["rerun_misses"]
    assert hits["text"] > 0 and hits["image"] > 0 and hits["encode"] > 0
    assert misses["denoise"] == 1 and misses["image"] == 0 and misses["encode"] == 0


def test_report_and_results_section(blend_cost, measured, tmp_path):
    config, rows, results = measured
    args = argparse.Namespace(repeats=1, steps=1, threads=1, warmup=0, quick=True)
    text = blend_cost.report(rows, results, [config], args, "0 / 0")
    assert text.startswith(blend_cost.SECTION) and "| tiny | rerun |" in text
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## Other\n\nkeep me\n")
    blend_cost.write_section(text, path)
    blend_cost.write_section(text, path)  # replacing is idempotent
    content = path.read_text()
    assert content.count(blend_cost.SECTION) == 1 and "keep me" in content


def test_parse_args_quick(blend_cost):
    args = blend_cost.parse_args(["--quick", "--repeats", "9", "--steps", "2"])
    assert args.quick and args.repeats == 3 and args.steps == 2


# ---------------------------------------------------------------------- side-by-side scripts
QUICK = ["--repeats", "1", "--frames", "2", "--steps", "1"]


@pytest.mark.parametrize(
    ("name", "ways", "rows"),
    [("sweep_cost", ["one by one", "sweep"], 2), ("scrub_cost", ["generate", "sweep", "one by one"], 4)],
)
def test_side_by_side_quick_run_and_results_section(name, ways, rows, tmp_path, capsys):
    script = load_script(name)
    assert list(script.WAYS) == ways
    text = script.main(script.BENCH, QUICK)
    assert capsys.readouterr().out == text + "\n"
    assert text.startswith("Tiny preset, 64x64, 2 frames, 1 DDIM steps, guidance 7.5, a paint edit.\n\n")
    table = text.split("\n\n", 1)[1].splitlines()
    assert len(table) == 2 + rows and table[2].endswith("| 1.00 |")
    for line in table[2:]:
        seconds = float(line.split("|")[-3])
        assert math.isfinite(seconds) and seconds >= 0
    args = argparse.Namespace(repeats=1, frames=2, steps=1)
    section = script.BENCH.section(text, args)
    assert section.startswith(
        f"{script.BENCH.heading}\n\n`python benchmarks/{name}.py --repeats 1 --frames 2 --steps 1`"
    )
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# Benchmark results\n\n{script.BENCH.heading}\n\nold\n\n## Other\n\nkeep me\n")
    harness = sys.modules["bench_harness"]  # the shared helper the script imported
    harness.write_section(section, path)
    harness.write_section(section, path)  # replacing is idempotent
    content = path.read_text()
    assert content == f"# Benchmark results\n\n{section}\n## Other\n\nkeep me\n"


def test_quality_table_shows_counts_and_wilson_intervals(tmp_path):
    from ivcore.shapes.evaluate import metrics_table, wilson

    low, high = wilson(21, 24)
    assert low == pytest.approx(0.690, abs=1e-3) and high == pytest.approx(0.957, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    for k, n in [(1, 3), (7, 24), (47, 48)]:  # the interval holds the share and narrows with n
        low, high = wilson(k, n)
        assert low < k / n < high
        assert wilson(2 * k, 2 * n)[1] - wilson(2 * k, 2 * n)[0] < high - low
    share = load_script("quality").share_row([True] * 21 + [False] * 3)
    assert share == (87.5, (21, 24))
    rows = [
        dict(metric="pans", target=">= 90 %", value=share[0], passed=False, count=share[1]),
        dict(metric="ObjMC (px)", target="<= 3", value=0.31, passed=True, count=None),
        dict(metric="ObjMC, endpoint (px)", target="(baseline)", value=11.6, passed=True),  # rows of older JSON
    ]
    text = metrics_table(rows)
    assert text.splitlines()[2:] == [
        "| pans | >= 90 % | 87.5 (21/24; 95 % CI 69-96) | **no** |",
        "| ObjMC (px) | <= 3 | 0.31 | yes |",
        "| ObjMC, endpoint (px) | (baseline) | 11.6 | - |",
    ]
    from ivcore.shapes.export import write_card
    from ivcore.shapes.train import TrainConfig

    card = write_card(tmp_path, TrainConfig(), metrics=rows).read_text()  # the model card shows the same table
    assert text in card


def test_quality_measure_counts_every_scored_clip(monkeypatch):
    """measure() with the scores faked: every share row carries its count, pans count all scenes."""
    from types import SimpleNamespace

    from ivcore.shapes import evaluate as ev

    quality = load_script("quality")
    calls, indices = [], set()

    def motion(session, index, kind="move"):
        calls.append(kind)
        indices.add(index)
        ok = not (kind == "pan" and index % 4 == 0)  # every fourth pan fails
        return ev.MotionScore(kind, "", ok, 20.0, 1.0 if ok else 0.5, 30.0)

    paint = {lam: {"present": 1.0, "area": 1.0 - lam} for lam in (0.0, 0.25, 0.5, 0.75, 1.0)}
    monkeypatch.setattr(ev, "vae_psnr", lambda vae, count, offset: 31.0)
    monkeypatch.setattr(ev, "score_motion", motion)
    monkeypatch.setattr(ev, "score_caption", lambda s, i: {"all": i % 2 == 0, "colours": 1.0})
    monkeypatch.setattr(ev, "score_img2img", lambda s, i: 1.0)
    monkeypatch.setattr(ev, "score_paint", lambda s, i: paint)
    monkeypatch.setattr(ev, "score_trajectory", lambda s, i, mode: {"objmc": 0.5, "end": 0.5})
    monkeypatch.setattr(ev, "score_anchor", lambda s, i: 0.2)
    stories = []

    def story(session, index):
        stories.append(index)
        return ev.StoryScore("", "", (True, index != 1), 35.0, index != 2)  # one second segment lost, one seam

    monkeypatch.setattr(ev, "score_story", story)
    session = SimpleNamespace(video_backend=SimpleNamespace(vae=None))
    rows = {r["metric"]: r for r in quality.measure(session, scenes=8, progress=False)}
    assert calls.count("move") == 8 and calls.count("pan") == 8 and calls.count("still") == 4
    pans = rows["camera pans: shapes shift >= 6 px opposite the pan"]
    assert (pans["value"], pans["count"], pans["passed"]) == (75.0, (6, 8), False)
    captions = rows["P_img from caption: all named colours and shapes"]
    assert (captions["value"], captions["count"], captions["passed"]) == (50.0, (4, 8), False)
    consistency = rows["temporal consistency: frames with frame 0's shape colours"]
    assert consistency["value"] == pytest.approx(100 * (20 - 2 * 0.5) / 20) and consistency["count"] is None
    assert rows["Eq. 4: painted square area at lam 1"]["passed"] and len(rows) == 25
    assert stories == [0, 1, 2, 3]  # the stories run on half the scenes, as paint and trajectories
    followed = rows['stories: "moves right", continue, "moves down": both followed']
    assert (followed["value"], followed["count"]) == (75.0, (3, 4))
    assert rows["stories: shapes and colours kept across the seam"]["count"] == (3, 4)
    assert "| camera pans: shapes shift >= 6 px opposite the pan | >= 90 % | 75.0 (6/8; 95 % CI " in (
        ev.metrics_table(list(rows.values()))
    )
    assert indices == set(range(8))
    # --first: the same checks on other held-out scenes (to choose checkpoints on), here 100-107
    calls.clear(), indices.clear()
    rows = {r["metric"]: r for r in quality.measure(session, scenes=8, progress=False, first=100)}
    assert indices == set(range(100, 108)) and calls.count("pan") == 8
    assert rows["camera pans: shapes shift >= 6 px opposite the pan"]["count"] == (6, 8)


@pytest.mark.parametrize(("kind", "a", "adjacent"), [("progressive", 0.8, 0.8), ("mixed", 0.3, 0.3)])
def test_pan_losses_correlated_noise_keeps_unit_variance_and_links_frames(kind, a, adjacent):
    import torch

    pan_losses = load_script("pan_losses")
    draw = pan_losses.correlated(lambda shape, g: torch.randn(shape, generator=g), kind, a)
    noise = draw((1, 4, 8, 64, 64), torch.Generator().manual_seed(0))
    plain = torch.randn((1, 4, 8, 64, 64), generator=torch.Generator().manual_seed(0))
    frames = noise[0].permute(1, 0, 2, 3).reshape(8, -1)
    assert torch.allclose(frames.std(dim=1), torch.ones(8), atol=0.03)  # every frame still unit noise
    correlation = float(torch.corrcoef(frames[4:6])[0, 1])  # frames 4 and 5
    assert abs(correlation - adjacent) < 0.03
    if kind == "progressive":
        assert torch.equal(noise[:, :, 0], plain[:, :, 0])  # frame 0 is the plain draw


def test_take_cost_quick_run_meets_its_target(capsys):
    """benchmarks/take_cost.py on tiny sizes: the rows, and restore + generate far below a cold run."""
    script = load_script("take_cost")
    text = script.main(script.BENCH, QUICK)
    rows = {line.split("|")[1].strip(): float(line.split("|")[-2]) for line in text.splitlines() if "| " in line[:3]
            and line.split("|")[-2].strip().replace(".", "").isdigit()}  # fmt: skip
    assert len(rows) == 3  # each restore was checked bitwise inside the script
    # at these toy sizes a cold run is a fraction of a second, so only "far cheaper" is asserted here;
    # the target (<= 0.05) is measured at the script's default sizes (benchmarks/RESULTS.md)
    assert rows["restore(take) + generate(), video in memory"] <= 0.5


def test_step_cache_quick_run_has_every_cache_and_its_drift(capsys):
    """benchmarks/step_cache.py on one family at toy sizes: a row per (lam, cache), no cache drifts 0 from itself."""
    script = load_script("step_cache")
    text = script.main(["--repeats", "1", "--steps", "3", "--layers", "3", "--kinds", "wan2.1-i2v"])
    assert text in capsys.readouterr().out
    lines = [line.split("|")[1:-1] for line in text.splitlines()[2:]]
    expected = [(lam, name) for lam in ("1", "0.5") for name in script.caches("wan2.1-i2v")]
    assert [(cells[2].strip(), cells[3].strip()) for cells in lines] == expected
    for cells in lines:
        denoise, speedup, psnr, levels = float(cells[4]), float(cells[5]), cells[7].strip(), int(cells[8])
        assert denoise > 0 and math.isfinite(speedup) and speedup > 0 and levels >= 0
        if cells[3].strip() == "none":
            assert psnr == "inf" and levels == 0 and speedup == 1.0


def test_image_families_quick_run_has_sd15_first_and_ratios_to_it(capsys):
    """benchmarks/image_families.py on one family: SD1.5's row is the 1.00 the others are divided by."""
    script = load_script("image_families")
    text = script.main(["--repeats", "1", "--kinds", "flux2-klein"])
    assert text in capsys.readouterr().out
    rows = [line.split("|")[1:-1] for line in text.splitlines()[2:]]
    assert [cells[0].strip() for cells in rows] == ["sd15", "flux2-klein"]
    assert [cells[1].strip() for cells in rows] == ["img2img", "edit"]
    assert [cells[3].strip() for cells in rows] == ["25, 7.5", "4, 1"]  # each family's own defaults
    assert all(cells[c].strip() == "1.00" for cells in rows[:1] for c in (5, 6, 8, 9))
    for cells in rows:
        assert all(math.isfinite(float(cells[c])) and float(cells[c]) > 0 for c in (4, 5, 6, 7, 8, 9))
