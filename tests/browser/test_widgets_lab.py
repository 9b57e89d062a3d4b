"""Level 2: the Studio in a real JupyterLab, driven like a user, checked in the kernel.

JupyterLab runs on loopback with an empty token and ``expose_app_in_browser`` (so the test can run
cells through ``window.jupyterapp``). The test draws a stroke, drags a trajectory, types lambda,
clicks Generate, then runs a cell that prints the session's state as JSON and reads it back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .browser_helpers import ARTIFACTS, SIZE, drag, free_port, screenshot_on_failure

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

SETUP = """\
from ivcore import Session
from ivwidgets import Studio
s = Session.tiny(seed=0)
st = Studio(s)
st.steps.value = 3
st.frames.value = 4
st"""

CHECK = """\
import json
import numpy as np
assert st.wait(300)
layer = None if s.paint_layer is None else np.asarray(s.paint_layer)
print("RESULT" + json.dumps({
    "painted": 0 if layer is None else int((layer[..., 3] > 0).sum()),
    "paint_at_stroke": None if layer is None else layer[32, 32].tolist(),
    "paint_far": None if layer is None else layer[5, 5].tolist(),
    "trajectories": [t.to_dict() for t in s.trajectories],
    "lam": s.lam,
    "frames": None if s.last_video is None else list(s.last_video.frames.shape),
    "player_frames": st.player.num_frames,
    "player_bytes": len(st.player.value),
    "status": st.status.value,
    "error": st.error.value,
}))"""


def notebook(*sources: str) -> dict:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src}
        for i, src in enumerate(sources)
    ]
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1:<free port> over a temp root holding the test notebook."""
    pytest.importorskip("jupyterlab")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)")
    root = tmp_path_factory.mktemp("lab")
    (root / "studio.ipynb").write_text(json.dumps(notebook(SETUP, CHECK)), encoding="utf-8")
    env = {
        **os.environ,
        # the kernel imports ivcore/ivwidgets from this checkout, installed or not
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(root / ".config"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"),
    }
    port = free_port()
    log = open(root / "lab.log", "wb")  # noqa: SIM115 - closed in the teardown below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--IdentityProvider.token=",
            "--LabApp.expose_app_in_browser=True",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],  # fmt: skip
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "api/status", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n" + (root / "lab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if os.environ.get("IVW_KEEP_LAB_LOG"):
            print((root / "lab.log").read_text()[-5000:])


@pytest.fixture()
def lab_page(browser, lab: str, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    screenshot_on_failure(request, page)
    context.close()


RUN_CELL = """async (i) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  await panel.sessionContext.ready;
  panel.content.activeCellIndex = i;
  await app.commands.execute('notebook:run-cell');
}"""

OUTPUT_TEXT = """(i) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const outputs = panel.content.widgets[i].model.outputs.toJSON();
  return outputs.map((o) => [].concat(o.text || o.ename || '', o.evalue || '').join('')).join('');
}"""

KERNEL_READY = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
}"""


def open_notebook(page, url: str) -> None:
    page.goto(url + "lab/tree/studio.ipynb")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=90_000)
    page.wait_for_function(KERNEL_READY, timeout=90_000)


def run_cell(page, index: int) -> None:
    page.evaluate(RUN_CELL, index)


def cell_output(page, index: int, marker: str, timeout_s: float = 300) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = page.evaluate(OUTPUT_TEXT, index)
        if marker in text or "Error" in text:
            return text
        time.sleep(0.5)
    raise AssertionError(f"no {marker!r} in the output of cell {index}: {text!r}")


def test_studio_in_jupyterlab(lab_page, lab: str) -> None:
    page = lab_page
    open_notebook(page, lab)
    run_cell(page, 0)
    studio = page.locator(".ivw-studio")
    studio.wait_for(state="visible", timeout=180_000)
    assert page.evaluate(OUTPUT_TEXT, 0) == "" or "Error" not in page.evaluate(OUTPUT_TEXT, 0)
    # x~ arrives from a background job; the editor draws over it
    page.wait_for_function("document.querySelector('.ivw-traj .ivw-base').naturalWidth === 64", timeout=120_000)

    # 1. paint a stroke across the middle of x
    canvas = page.locator(".ivw-paint .ivw-live")
    canvas.scroll_into_view_if_needed()
    drag(page, ".ivw-paint .ivw-live", [(12, 32), (52, 32)])
    page.wait_for_function("!document.querySelector('.ivw-paint .ivw-undo').disabled")

    # 2. drag a trajectory on the editor; the motion preview follows
    drag(page, ".ivw-traj .ivw-overlay", [(20, 20), (44, 36)])
    assert page.locator(".ivw-traj .ivw-list li").count() == 1

    # 3. set lambda by typing into the slider's readout
    readout = page.locator(".ivw-lam .widget-readout")
    readout.scroll_into_view_if_needed()
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("0.3")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('.ivw-lam .widget-readout').textContent.trim() === '0.30'")

    # 4. Generate; a second click while running starts nothing
    button = page.locator(".ivw-generate")
    button.click()
    page.wait_for_function(
        "(() => { const v = document.querySelector('.ivw-player video');"
        " return v && v.src.startsWith('blob:') && v.readyState >= 2 })()",
        timeout=300_000,
    )
    assert "done" in page.inner_text(".ivw-status")
    if os.environ.get("IVW_SCREENSHOTS"):  # for looking at the layout by eye
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator(".ivw-studio").screenshot(path=str(ARTIFACTS / "studio.png"))

    # the kernel holds the paint, the trajectory, the lambda and the new video
    run_cell(page, 1)
    text = cell_output(page, 1, "RESULT")
    assert "RESULT" in text, text
    result = json.loads(text.split("RESULT", 1)[1])
    assert result["error"] == "", result["error"]
    assert result["painted"] > 100 and result["paint_far"][3] == 0
    assert result["paint_at_stroke"] == [255, 0, 0, 255]  # the default red brush, opaque
    (traj,) = result["trajectories"]
    (x0, y0), (x1, y1) = traj["points"]
    assert abs(x0 - 20) < 0.6 and abs(y0 - 20) < 0.6 and abs(x1 - 44) < 0.6 and abs(y1 - 36) < 0.6
    assert result["lam"] == pytest.approx(0.3)
    assert result["frames"] == [4, SIZE, SIZE, 3]
    assert result["player_frames"] == 4 and result["player_bytes"] > 0
    assert result["status"].startswith("done")
    # the page shows the player with that video: 4 frames at 8 fps
    duration = page.evaluate("document.querySelector('.ivw-player video').duration")
    assert duration == pytest.approx(4 / 8, abs=0.13)

    # state lives in traits: after a reload the widgets come back from the kernel (the saved
    # notebook holds only the view's model id; the live kernel holds the state)
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("!window.jupyterapp.shell.currentWidget.context.model.dirty")
    page.reload()
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=90_000)
    page.locator(".ivw-studio").wait_for(state="visible", timeout=90_000)
    page.wait_for_function(
        "(() => { const v = document.querySelector('.ivw-player video'); return v && v.readyState >= 2 })()",
        timeout=60_000,
    )
    assert page.locator(".ivw-traj .ivw-list li").count() == 1
    pixel = page.evaluate(
        "Array.from(document.querySelector('.ivw-paint .ivw-layer').getContext('2d').getImageData(32, 32, 1, 1).data)"
    )
    assert pixel == [255, 0, 0, 255]
