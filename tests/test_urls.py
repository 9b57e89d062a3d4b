"""Project addresses live in one place, pyproject.toml's [project.urls]; nothing links a made-up one.

Every http(s) address in README, docs/, notebooks/ (and their generator) and the package sources
must either start with a [project.urls] value or point at a well-known external site (the paper,
a library's documentation, the model hub). Links into GitHub or Colab's GitHub loader are project
addresses, so they must come from [project.urls]'s Repository: without one there are none.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(r"https?://[^\s\"'<>()\[\]`\\]+")
# Well-known external sites that are not project addresses: the paper, libraries' documentation,
# the model hub, XML namespaces (not links). Addresses without a host ("https://...") are templates.
EXTERNAL = {"arxiv.org", "anywidget.dev", "huggingface.co", "www.w3.org", "pytorch.org"}
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def project_urls() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})


def documents() -> list[Path]:
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "notebooks").glob("*.ipynb")]
    files += list((ROOT / "js").glob("*.js"))  # notebooks/build_notebooks.py: its output is scanned
    for package in ("ivcore", "ivwidgets"):
        files += [p for p in (ROOT / package).rglob("*") if p.suffix in (".py", ".md", ".js") and p.is_file()]
    return files


def links() -> list[tuple[str, str]]:
    found = []
    for path in documents():
        for url in URL.findall(path.read_text(errors="replace")):
            found.append((path.relative_to(ROOT).as_posix(), url.rstrip(".,;:*")))
    return found


def test_project_urls_are_declared_and_well_formed():
    urls = project_urls()
    assert urls, "[project.urls] is empty"
    for name, url in urls.items():
        parsed = urlparse(url)
        assert parsed.scheme == "https" and parsed.netloc, (name, url)
        assert "OWNER" not in url and "example" not in parsed.netloc, f"{name}: a placeholder address {url}"


def test_every_link_is_a_project_url_or_a_well_known_site():
    urls = list(project_urls().values())
    repository = project_urls().get("Repository", "").rstrip("/")
    colab = "https://colab.research.google.com/github/"
    bad = []
    for where, url in links():
        host = urlparse(url).netloc
        if not host or any(url.startswith(u) for u in urls) or url == BADGE:  # no host: a template
            continue
        if url.startswith(colab):  # opens a notebook of the repository: only the declared one
            if repository.startswith("https://github.com/") and url.startswith(
                colab + repository.removeprefix("https://github.com/") + "/"
            ):
                continue
        elif host in EXTERNAL:
            continue
        bad.append(f"{where}: {url}")
    assert not bad, "addresses not from [project.urls] nor a well-known site:\n" + "\n".join(bad)


def test_colab_badges_only_with_a_repository():
    badges = [where for where, url in links() if url == BADGE]
    if "Repository" not in project_urls():
        assert not badges, f"Colab badges without a repository to open: {badges}"


def test_the_scan_sees_the_documents():
    # guards the test above against a broken pattern: the paper link is in README, docs and a notebook
    where = {w for w, url in links() if url == project_urls()["Paper"]}
    assert {"README.md", "docs/paper.md", "notebooks/quickstart.ipynb"} <= where
    assert URL.findall("see (https://a.org/x/y.ipynb), `https://b.org`") == ["https://a.org/x/y.ipynb", "https://b.org"]
