"""The wheel is the product: it carries the widgets' ES modules and the shapes models' weights."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_holds_the_es_modules_and_the_shapes_weights(tmp_path):
    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(tmp_path)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("interactivevideo-*.whl")
    with zipfile.ZipFile(wheel) as z:
        sizes = {info.filename: info.file_size for info in z.infolist()}
    for name in ("paint_canvas.js", "trajectory_editor.js", "video_player.js", "takes_strip.js", "widgets.css"):
        assert f"ivwidgets/js/{name}" in sizes
    shipped = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "ivcore" / "shapes").rglob("*") if p.is_file())
    assert any(p.endswith("unet/diffusion_pytorch_model.safetensors") for p in shipped)
    missing = [p for p in shipped if p not in sizes]
    assert not missing, f"package data left out of the wheel: {missing}"
    weights = sum(size for name, size in sizes.items() if name.startswith("ivcore/shapes/"))
    assert weights < 15 * 2**20, f"shapes models take {weights / 2**20:.1f} MiB in the wheel (limit 15)"
