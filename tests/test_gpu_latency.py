"""benchmarks/gpu_latency.py's CPU small mode runs end to end (as CI runs it, only smaller).

Timings are not checked (they belong in benchmarks/RESULTS.md); the rows are: every Table 2
row is there, each video row makes the UNet calls its lam and sampler imply, and the
RESULTS.md section is replaced in place.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

# builds width-reduced mirrors of every model: slow on a CPU, run by CI
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_latency.py"
KEYS = ["image", "content", "trajectory", "motion", "lam0", "blend", "sweep", "fewstep", "fewstep_blend"]


@pytest.fixture(scope="module")
def gpu_latency():
    spec = importlib.util.spec_from_file_location("gpu_latency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_latency"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measured(gpu_latency):
    argv = ["--device", "cpu", "--width", "0.01", "--size", "64", "--frames", "2", "--steps", "1"]
    args = gpu_latency.parse_args([*argv, "--repeats", "1", "--warmup", "0"])
    return args, gpu_latency.run(args)


def test_every_row_with_the_unet_rows_its_setting_implies(measured):
    args, rows = measured
    assert [r.key for r in rows] == KEYS
    by = {r.key: r for r in rows}
    for r in rows:
        assert math.isfinite(r.median_ms) and r.median_ms > 0 and r.peak_bytes is None
    # guidance 7.5: 2 rows a call for one branch, 4 for the Eq. 4 blend; few-step: guidance 1, 4 steps
    assert (by["motion"].unet_calls, by["motion"].unet_rows) == (args.steps, 2 * args.steps)
    assert (by["lam0"].unet_calls, by["lam0"].unet_rows) == (args.steps, 2 * args.steps)
    assert (by["blend"].unet_calls, by["blend"].unet_rows) == (args.steps, 4 * args.steps)
    assert (by["fewstep"].unet_calls, by["fewstep"].unet_rows) == (4, 4)
    assert (by["fewstep_blend"].unet_calls, by["fewstep_blend"].unet_rows) == (4, 8)
    assert by["sweep"].unet_rows >= 4 * args.steps and by["image"].unet_calls == 0
    assert all(r.plan_bytes > 0 for r in rows if r.key not in ("image", "content", "trajectory", "sweep"))


def test_report_and_results_sections(gpu_latency, measured, tmp_path):
    args, rows = measured
    text = gpu_latency.report(rows, args)
    assert text.startswith(gpu_latency.CPU_SECTION) and "| motion instruction" in text and "| 1.000 |" in text
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## Other\n\nkeep me\n")
    for _ in range(2):  # replacing is idempotent
        gpu_latency.write_section(text, path)
        gpu_latency.write_section(gpu_latency.NO_GPU, path)
    content = path.read_text()
    assert content.count(gpu_latency.CPU_SECTION) == content.count(gpu_latency.GPU_SECTION) == 1
    assert "keep me" in content and "Not yet measured" in content


def test_defaults_follow_the_device(gpu_latency):
    args = gpu_latency.parse_args(["--device", "cpu"])
    assert (args.width, args.size, args.frames, args.steps) == (0.25, 128, 4, 2)
    with pytest.raises(SystemExit):
        gpu_latency.parse_args(["--device", "cpu", "--size", "100"])
