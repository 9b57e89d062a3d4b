"""The Studio in Jupyter Notebook 7, driven like a user, checked in the kernel.

Notebook 7 is built from JupyterLab's components (the same widget manager renders the anywidgets
and ipywidgets), but its shell and page are its own: this runs the JupyterLab test's flow there.
``expose_app_in_browser`` exposes ``window.jupyterapp``, so the test runs cells as in JupyterLab.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .frontends import STUDIO_CHECK, STUDIO_SETUP, jupyter_server, jupyter_studio_flow, notebook, require_frontend

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Jupyter Notebook 7 server on 127.0.0.1:<free port> over a temp root holding the test notebook."""
    require_frontend("notebook")
    import notebook as nb_package

    if int(nb_package.__version__.split(".")[0]) < 7:
        pytest.skip(f"notebook {nb_package.__version__} is not Notebook 7")
    root = tmp_path_factory.mktemp("notebook7")
    (root / "studio.ipynb").write_text(json.dumps(notebook(STUDIO_SETUP, STUDIO_CHECK)), encoding="utf-8")
    with jupyter_server("notebook", root, "--JupyterNotebookApp.expose_app_in_browser=True") as url:
        yield url


def test_studio_in_notebook7(app_page, notebook7: str) -> None:
    page = app_page
    jupyter_studio_flow(page, notebook7 + "notebooks/studio.ipynb")
    # it is Notebook 7's page, not JupyterLab's
    assert page.evaluate("window.jupyterapp.name") == "Jupyter Notebook"
