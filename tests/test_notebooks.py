"""Every notebook runs top to bottom under IVCORE_TINY=1 (tiny models, CPU) and shows a picture.

The notebooks are edited as jupytext percent-format scripts (notebooks/<name>.py); their .ipynb
files are built from them by notebooks/build_notebooks.py and committed without outputs. Here they
are executed with nbclient in a fresh python3 kernel, in a temporary working directory (they write
an mp4 and a session folder), with the repo on PYTHONPATH and one torch thread.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["quickstart", "colab_gpu", "lambda_explained", "trajectories", "stories", "backbones"]


def _is_picture(output: dict) -> bool:
    data = output.get("data", {})
    return "image/png" in data or "<video" in data.get("text/html", "")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs"


def test_every_notebook_is_built_from_a_script():
    scripts = {p.stem for p in NOTEBOOKS.glob("*.py")} - {"build_notebooks", "studio_marimo"}
    assert scripts == {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    for name in scripts:  # jupytext's percent format: a header, then `# %%` cells
        text = (NOTEBOOKS / f"{name}.py").read_text()
        assert text.startswith("# ---\n# jupyter:\n") and "\n# %%\n" in text, name


def test_notebooks_match_what_jupytext_builds_from_their_scripts():
    pytest.importorskip("jupytext")
    result = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "build_notebooks.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_notebooks_shared_helpers():
    """ivwidgets.notebooks: what lambda_explained and trajectories import instead of pasting it."""
    np = pytest.importorskip("numpy")
    from PIL import Image

    from ivcore.shapes import world
    from ivwidgets.notebooks import to_model

    scene = world.Scene("sky", (world.Shape("circle", "red", 18, 18, 14),))
    picture = to_model(world.render(scene), (128, 96))
    assert isinstance(picture, Image.Image) and picture.size == (128, 96)
    mask = to_model(world.shape_mask(scene, 0), (128, 128))
    assert mask.dtype == bool and mask.shape == (128, 128)
    assert mask.sum() == 4 * world.shape_mask(scene, 0).sum()  # nearest neighbour: every pixel twice a side
    assert np.array_equal(to_model(world.shape_mask(scene, 0), (64, 64)), world.shape_mask(scene, 0))


def test_readme_links_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for name in NAMES:
        assert f"](notebooks/{name}.ipynb)" in readme, name
    # Colab badges only where they open a real repository: tests/test_urls.py


def _execute(nb, tmp_path, monkeypatch, kernel: str = "python3", checkout_on_path: bool = True) -> list[dict]:
    """Run `nb` in a fresh kernel under IVCORE_TINY=1 in `tmp_path`; return its outputs (no errors, a picture)."""
    monkeypatch.setenv("IVCORE_TINY", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if checkout_on_path:
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        monkeypatch.setenv("PYTHONPATH", path)
    else:
        monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    # One torch thread: on a 2-core machine shared with other work, two OpenMP threads spin and
    # run the tiny UNet several times slower (measured 11.5 s vs 1.8 s per generate under load).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name=kernel, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    assert any(_is_picture(o) for o in outputs), "no image/png or <video> output"
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if n != "colab_gpu"])  # colab_gpu: below, from the wheel
def test_notebook_executes(name, tmp_path, monkeypatch):
    start = time.perf_counter()
    outputs = _execute(nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4), tmp_path, monkeypatch)
    pictures = [o for o in outputs if _is_picture(o)]
    print(f"{name}: {time.perf_counter() - start:.1f}s, {len(pictures)} pictures")


# ------------------------------------------------------------------------------ Colab
def _colab_cells():
    """colab_gpu's first code cell (INSTALL_FROM, the one users edit) and its install cell."""
    nb = nbformat.read(NOTEBOOKS / "colab_gpu.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    install = next(c for c in code if "def pip_install_command" in c.source)
    return nb, code[0], install


def test_colab_install_from_is_set_at_the_top():
    _, top, install = _colab_cells()
    assert [line for line in top.source.splitlines() if not line.startswith("#")] == ['INSTALL_FROM = ""']
    assert install.source.count("INSTALL_FROM") >= 1


def test_colab_install_cell_builds_the_exact_pip_command(tmp_path):
    _, _, install = _colab_cells()
    namespace: dict = {}
    exec(install.source.split("\nIN_COLAB =")[0], namespace)  # the imports and pip_install_command only
    command = namespace["pip_install_command"]
    wheel = tmp_path / "interactivevideo-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert command("") is None
    assert command(str(wheel), python="py") == ["py", "-m", "pip", "install", "-q", str(wheel)]
    git = "git+https://example.org/me/interactivevideo"
    assert command(git, python="py") == ["py", "-m", "pip", "install", "-q", f"interactivevideo @ {git}"]
    with pytest.raises(FileNotFoundError, match="INSTALL_FROM: no wheel at"):
        command(str(tmp_path / "missing.whl"))
    with pytest.raises(ValueError, match="INSTALL_FROM: 'interactivevideo'"):
        command("interactivevideo")


def test_colab_install_cell_enables_the_widget_manager_only_on_colab(monkeypatch):
    _, _, install = _colab_cells()
    calls = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("enabled"))
    google = types.ModuleType("google")
    google.colab = colab
    namespace = {"INSTALL_FROM": ""}  # nothing to install: the package is here already
    exec(install.source, namespace)  # outside Colab: no google.colab, nothing enabled, no error
    assert calls == [] and namespace["output"] is None and namespace["IN_COLAB"] is False
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    namespace = {"INSTALL_FROM": ""}
    exec(install.source, namespace)
    assert calls == ["enabled"] and namespace["IN_COLAB"] is True


# Run in the kernel's venv at startup (from a .pth file): adds the site dirs of the interpreter running the
# tests, with their .pth files, after the venv's own, but not this project's editable install (the checkout).
_OUTER_SITE = """import os, site, sys
for d in {dirs!r}:
    if os.path.isdir(d) and d not in sys.path:
        sys.path.append(d)
        for name in sorted(os.listdir(d)):
            if name.endswith(".pth") and not name.startswith("__editable__.interactivevideo-"):
                site.addpackage(d, name, None)
"""


def _venv_seeing_this_environment(venv: Path) -> Path:
    """A venv without pip whose python sees the packages of the interpreter running the tests; its python.

    `venv --system-site-packages` is not that: run from inside a venv (README's way) it links the base
    Python's site-packages, not the venv's, and the kernel lacks ipykernel and torch. Here a .pth file
    in the new venv adds the running interpreter's site dirs (site.getsitepackages(), and the user site
    where it is on), so the same works from the system Python and from a venv. What pip installs into
    the new venv comes first on its sys.path.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    dirs = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    (Path(own) / "_ivtest_outer_site.py").write_text(_OUTER_SITE.format(dirs=dirs))
    (Path(own) / "_ivtest_outer_site.pth").write_text("import _ivtest_outer_site\n")
    return python


@pytest.mark.slow
def test_colab_notebook_installs_the_built_wheel_and_runs(tmp_path, monkeypatch):
    """The whole colab_gpu notebook with INSTALL_FROM pointed at a wheel built from this checkout.

    Its kernel runs in a throwaway venv that sees this environment's packages (torch, diffusers,
    ...) but not the checkout: the install cell's pip installs the wheel into the venv (the
    dependencies are already satisfied, nothing is downloaded) and every later cell imports
    ivcore from there. Not exercised: a git+ address (no network here) and Colab itself.
    """
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(dist)], check=True, timeout=300)
    (wheel,) = dist.glob("interactivevideo-*.whl")
    python = _venv_seeing_this_environment(venv)
    spec = tmp_path / "jupyter" / "kernels" / "wheelvenv"
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "wheel venv", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb, top, _ = _colab_cells()
    top.source = f"INSTALL_FROM = {str(wheel)!r}"
    work = tmp_path / "work"
    work.mkdir()
    outputs = _execute(nb, work, monkeypatch, kernel="wheelvenv", checkout_on_path=False)
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert f"-m pip install -q {wheel}" in text
    site = subprocess.run([str(python), "-c", "import ivcore, os; print(os.path.dirname(ivcore.__file__))"],
                          cwd=work, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert site.startswith(str(venv)) and f"from {site}" in text, text  # the notebook ran the installed wheel
