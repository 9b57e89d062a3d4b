"""benchmarks/family_latency.py (`gpu_latency.py --family`) runs end to end in its CPU tiny mode, as CI runs it.

Timings are not checked: the rows are there, the memory options reach the session, the plan is the
session's own, and a full-size family refuses to start without CUDA (it would not fit a CPU run).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_tiny_mode_reports_every_row_under_the_options_given():
    latency = _load("family_latency")
    args = latency.parse_args(["--family", "ltx-video-0.9", "--tiny", "--steps", "2", "--repeats", "1"])
    args.offload, args.vae_tiling = "model", True
    rows, text = latency.run(args)
    assert [r["label"] for r in rows] == list(latency.ROWS)
    assert all(r["seconds"] > 0 and r["plan"]["total"] > 0 and r["peak"] is None for r in rows)
    # under model offload nothing stays on the device: the plan holds no resident weights
    assert not any(k.startswith("weights:") for k in rows[2]["plan"])
    assert "offload=model" in text and "vae_tiling=True" in text and "| blend (lam 0.5, Eq. 4) |" in text


def test_gpu_latency_hands_families_to_their_script(capsys):
    gpu_latency = _load("gpu_latency")
    text = gpu_latency.main(["--family", "wan2.2-ti2v-5b", "--tiny", "--steps", "2", "--repeats", "1"])
    assert text.startswith("## DiT family latency: wan2.2-ti2v-5b (tiny mirror, CPU)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_full_size_needs_cuda():
    latency = _load("family_latency")
    with pytest.raises(SystemExit):
        latency.parse_args(["--family", "wan2.1-i2v-14b-480p"])
