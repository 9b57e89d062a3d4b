"""Build the notebooks' .ipynb files from their jupytext scripts (outputs empty).

    python notebooks/build_notebooks.py          # rewrite the .ipynb files
    python notebooks/build_notebooks.py --check  # exit 1 if a committed notebook differs

The notebooks are edited as scripts, `notebooks/<name>.py` in jupytext's percent format (`# %%` a code
cell, `# %% [markdown]` a text cell, the notebook's metadata in the header); they run with plain
`python` too. jupytext reads them, and this script adds what the .ipynb needs besides:
- cell ids `<name>-<index>`, so rebuilding an unchanged notebook changes nothing;
- the project's addresses, declared once in pyproject.toml's [project.urls]: with a GitHub Repository
  there, the line "On Colab: *File > Upload notebook*, ..." becomes an "Open in Colab" badge and
  colab_gpu's `INSTALL_FROM = ""` installs from it; without one there are no badges (they would open
  a repository that does not exist) and the notebooks say how to upload them instead;
- the wheel's file name of the current version in colab_gpu's example.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jupytext
import nbformat

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
NAMES = ("quickstart", "colab_gpu", "lambda_explained", "trajectories", "stories", "studio_app", "backbones")
PROJECT = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]
REPOSITORY = PROJECT.get("urls", {}).get("Repository", "").rstrip("/")
WHEEL = f"{PROJECT['name']}-{PROJECT['version']}-py3-none-any.whl"
GITHUB = "https://github.com/"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
UPLOAD = "On Colab: *File > Upload notebook*"


def derive(name: str, cell: nbformat.NotebookNode) -> str:
    """The cell's source with the project's addresses and the wheel's name filled in."""
    source = cell.source
    if cell.cell_type == "markdown" and REPOSITORY.startswith(GITHUB):
        colab = f"https://colab.research.google.com/github/{REPOSITORY.removeprefix(GITHUB)}"
        badge = f"[![Open In Colab]({BADGE})]({colab}/blob/main/notebooks/{name}.ipynb)"
        source = re.sub(rf"^{re.escape(UPLOAD)}.*$", lambda _: badge, source, flags=re.M)
    if cell.cell_type == "code":
        if REPOSITORY:
            source = re.sub(r'^INSTALL_FROM = ""$', lambda _: f'INSTALL_FROM = "git+{REPOSITORY}"', source, flags=re.M)
        source = re.sub(rf"{re.escape(PROJECT['name'])}-[\w.+]+-py3-none-any\.whl", lambda _: WHEEL, source)
    return source


def build(name: str) -> nbformat.NotebookNode:
    """The notebook `name` as committed: read from notebooks/<name>.py by jupytext, outputs empty."""
    nb = jupytext.read(HERE / f"{name}.py")
    nb.metadata.pop("jupytext", None)  # how the script is written, not part of the notebook
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name}-{i}"
        cell.source = derive(name, cell)
        cell.metadata.pop("lines_to_next_cell", None)  # blank lines of the script (ruff format's), not the cell's
    nbformat.validate(nb)
    return nb


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NAMES:
        path = HERE / f"{name}.ipynb"
        text = jupytext.writes(build(name), fmt="ipynb").rstrip("\n") + "\n"
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python notebooks/build_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
