"""Level 2: the Studio in a real JupyterLab, driven like a user, checked in the kernel.

JupyterLab runs on loopback with an empty token and ``expose_app_in_browser`` (so the test can run
cells through ``window.jupyterapp``). The test draws a stroke, drags a trajectory, types lambda,
clicks Generate, then runs a cell that prints the session's state as JSON and reads it back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .frontends import (
    STUDIO_CHECK,
    STUDIO_SETUP,
    jupyter_lab,
    jupyter_studio_flow,
    notebook,
    require_frontend,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1:<free port> over a temp root holding the test notebook."""
    require_frontend("jupyterlab")
    with jupyter_lab(tmp_path_factory.mktemp("lab"), {"studio.ipynb": notebook(STUDIO_SETUP, STUDIO_CHECK)}) as url:
        yield url


def test_studio_in_jupyterlab(app_page, lab: str) -> None:
    jupyter_studio_flow(app_page, lab + "lab/tree/studio.ipynb")
