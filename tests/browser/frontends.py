"""Helpers for the front-end tests (JupyterLab, Notebook 7, Voila, marimo): a server on loopback,
Jupyter cells run from the page, and the Studio flow (paint, drag, Generate, play) as a user does it.

The page steps use Playwright locators (which pierce open shadow roots), not ``document.querySelector``,
so the same steps drive the widgets inside marimo's custom elements and inside Jupyter's output area.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .browser_helpers import SIZE, drag, free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")


def require_frontend(module: str) -> None:
    """Skip (with the reason) when the front end's package or the browser is missing."""
    pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


def notebook(*sources: str) -> dict:
    """An nbformat 4 notebook (as a dict) with one code cell per source."""
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


def server_env(root: Path) -> dict[str, str]:
    """The environment of a server and its kernels: this checkout importable, Jupyter state in ``root``.

    One torch thread: the tests run pinned to one core beside other work, where OpenMP threads only spin.
    """
    return {
        **os.environ,
        # the kernel imports ivcore/ivwidgets from this checkout, installed or not
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(root / ".config"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"),
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
    }


@contextlib.contextmanager
def serve(
    argv: list[str], *, root: Path, port: int, ready: str, env: dict[str, str] | None = None, timeout_s: float = 120
) -> Iterator[str]:
    """Run a server (``argv``, listening on 127.0.0.1:``port``) until the block ends; yields its URL.

    Ready when ``ready`` (a path) answers any HTTP status. The server runs in its own process group,
    so the teardown also ends the kernels it started, even when it dies without shutting them down.
    Its log is ``root/server.log``; set IVW_KEEP_SERVER_LOG=1 to print its tail at teardown.
    """
    log_path = root / "server.log"
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=root, env=env or server_env(root), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    with urllib.request.urlopen(url + ready, timeout=2):
                        break
                except urllib.error.HTTPError:
                    break  # it answers: up
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"{argv[:4]} did not start:\n" + log_path.read_text(errors="replace")[-3000:])
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # kernels left behind by the server (its group)
            if os.environ.get("IVW_KEEP_SERVER_LOG"):
                log.flush()
                print(log_path.read_text(errors="replace")[-5000:])


def jupyter_server(app: str, root: Path, *options: str) -> contextlib.AbstractContextManager[str]:
    """``jupyter <app>`` (lab, notebook) on a free loopback port, no token, no browser, over ``root``."""
    import sys

    port = free_port()
    argv = [
        sys.executable, "-m", "jupyter", app, "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--IdentityProvider.token=", f"--ServerApp.root_dir={root}", *options,
    ]  # fmt: skip
    return serve(argv, root=root, port=port, ready="api/status")


def quiet_lab_settings(root: Path) -> None:
    """No news and no update check: their notification would cover the bottom of the page."""
    folder = root / ".settings" / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8"
    )


@contextlib.contextmanager
def jupyter_lab(root: Path, notebooks: dict[str, dict]) -> Iterator[str]:
    """JupyterLab over ``root`` holding ``notebooks`` (name -> notebook dict); yields its URL.

    ``expose_app_in_browser`` puts the app on ``window.jupyterapp`` (the tests run cells through it);
    no news and no update check, whose notifications would cover the bottom of the page.
    """
    for name, content in notebooks.items():
        (root / name).write_text(json.dumps(content), encoding="utf-8")
    quiet_lab_settings(root)
    options = (
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    )
    with jupyter_server("lab", root, *options) as url:
        yield url


# -- cells of a notebook open in JupyterLab or Notebook 7 (both expose window.jupyterapp) ------------

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
    """Open a notebook page and wait for its kernel to be idle and connected."""
    page.goto(url)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=90_000)
    page.wait_for_function(KERNEL_READY, timeout=90_000)


def run_cell(page, index: int) -> None:
    page.evaluate(RUN_CELL, index)


def cell_output(page, index: int, marker: str, timeout_s: float = 300) -> str:
    """The text output of cell ``index`` once it holds ``marker`` (or an error)."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = page.evaluate(OUTPUT_TEXT, index)
        if marker in text or "Error" in text:
            return text
        time.sleep(0.5)
    raise AssertionError(f"no {marker!r} in the output of cell {index}: {text!r}")


def kernel_state(page, cell: int) -> dict:
    """Run cell ``cell`` (it prints RESULT{json}) from ``page`` and return what the kernel printed."""
    run_cell(page, cell)
    text = cell_output(page, cell, "RESULT")
    assert "RESULT" in text, text
    return json.loads(text.split("RESULT", 1)[1])


# -- the Studio in a Jupyter kernel ----------------------------------------------------------------

STUDIO_SETUP = """\
from ivcore import Session
from ivwidgets import Studio
s = Session.tiny(seed=0)
st = Studio(s)
st.steps.value = 3
st.frames.value = 4
st"""

# Run in the kernel after the flow; prints RESULT{json} for assert_session_state.
STUDIO_CHECK = """\
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

STROKE = [(12, 32), (52, 32)]  # native pixels: across the middle of x, through (32, 32)
TRAJECTORY = [(20, 20), (44, 36)]


def wait_js(page, selector: str, predicate: str, timeout: float = 60_000) -> None:
    """Wait until ``predicate`` (a JS function of the element) holds for the element at ``selector``."""
    handle = page.locator(selector).element_handle(timeout=timeout)
    page.wait_for_function(predicate, arg=handle, timeout=timeout)


def paint_stroke(page) -> None:
    """Draw STROKE on the paint canvas with the mouse; wait until the stroke is in the history."""
    from playwright.sync_api import expect

    canvas = page.locator(".ivw-paint .ivw-live")
    canvas.scroll_into_view_if_needed()
    drag(page, ".ivw-paint .ivw-live", STROKE)
    expect(page.locator(".ivw-paint .ivw-undo")).to_be_enabled(timeout=30_000)


def drag_trajectory(page) -> None:
    """Drag TRAJECTORY on the editor once x~ is shown; one row appears in its list."""
    from playwright.sync_api import expect

    # x~ arrives from a background job; the editor draws over it
    expect(page.locator(".ivw-traj .ivw-base")).to_have_js_property("naturalWidth", SIZE, timeout=120_000)
    page.locator(".ivw-traj .ivw-overlay").scroll_into_view_if_needed()
    drag(page, ".ivw-traj .ivw-overlay", TRAJECTORY)
    expect(page.locator(".ivw-traj .ivw-list li")).to_have_count(1, timeout=30_000)


def set_studio_lambda(page, text: str) -> None:
    """Type ``text`` into the Studio's lambda readout (an ipywidgets FloatSlider) and press Enter."""
    from playwright.sync_api import expect

    readout = page.locator(".ivw-lam .widget-readout")
    readout.scroll_into_view_if_needed()
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    expect(readout).to_have_text(f"{float(text):.2f}", timeout=30_000)


def wait_video_playing(page, timeout: float = 300_000) -> None:
    """Wait until the player holds a new video (blob: URL, decodable) and its time moves on."""
    selector = ".ivw-player video"
    page.locator(selector).wait_for(state="attached", timeout=timeout)
    wait_js(page, selector, "v => v.src.startsWith('blob:') && v.readyState >= 2", timeout)
    wait_js(page, selector, "v => !v.paused && v.currentTime > 0", 60_000)


def video_duration(page) -> float:
    return page.locator(".ivw-player video").evaluate("v => v.duration")


def assert_session_state(result: dict, *, lam: float, frames: int) -> None:
    """The Python side after the flow: the stroke, the trajectory, lambda and a new video of ``frames``."""
    assert result.get("error", "") == "", result["error"]
    assert result["painted"] > 100 and result["paint_far"][3] == 0
    assert result["paint_at_stroke"][3] == 255  # opaque where the stroke went
    (traj,) = result["trajectories"]
    (x0, y0), (x1, y1) = traj["points"]
    (tx0, ty0), (tx1, ty1) = TRAJECTORY
    assert abs(x0 - tx0) < 0.6 and abs(y0 - ty0) < 0.6 and abs(x1 - tx1) < 0.6 and abs(y1 - ty1) < 0.6
    assert result["lam"] == pytest.approx(lam)
    assert result["frames"] == [frames, SIZE, SIZE, 3]
    assert result["player_frames"] == frames and result["player_bytes"] > 0


def jupyter_studio_flow(page, notebook_url: str) -> dict:
    """The Studio in a Jupyter front end (JupyterLab, Notebook 7), driven like a user, checked in the kernel.

    Opens the notebook written with STUDIO_SETUP and STUDIO_CHECK, draws a stroke, drags a
    trajectory, types lambda 0.3, clicks Generate, waits for the player to play the new video, reads
    the session's state back from the kernel, then reloads the page: the widgets come back from the
    live kernel (their state is in traits). Returns the kernel's state.
    """
    import json

    from playwright.sync_api import expect

    open_notebook(page, notebook_url)
    run_cell(page, 0)
    page.locator(".ivw-studio").wait_for(state="visible", timeout=180_000)
    assert "Error" not in page.evaluate(OUTPUT_TEXT, 0)

    paint_stroke(page)  # 1. paint a stroke across the middle of x
    drag_trajectory(page)  # 2. drag a trajectory on the editor; the motion preview follows
    set_studio_lambda(page, "0.3")  # 3. lambda, typed into the slider's readout
    page.locator(".ivw-generate").click()  # 4. Generate
    wait_video_playing(page)
    expect(page.locator(".ivw-status")).to_contain_text("done", timeout=30_000)
    if os.environ.get("IVW_SCREENSHOTS"):  # for looking at the layout by eye
        from .browser_helpers import ARTIFACTS

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator(".ivw-studio").screenshot(path=str(ARTIFACTS / f"studio-{page.url.split('/')[3]}.png"))

    # the kernel holds the paint, the trajectory, the lambda and the new video
    run_cell(page, 1)
    text = cell_output(page, 1, "RESULT")
    assert "RESULT" in text, text
    result = json.loads(text.split("RESULT", 1)[1])
    assert_session_state(result, lam=0.3, frames=4)
    assert result["paint_at_stroke"] == [255, 0, 0, 255]  # the tiny session's default red brush, opaque
    assert result["status"].startswith("done")
    # the page shows the player with that video: 4 frames at 8 fps
    assert video_duration(page) == pytest.approx(4 / 8, abs=0.13)

    # state lives in traits: after a reload the widgets come back from the kernel (the saved
    # notebook holds only the view's model id; the live kernel holds the state)
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("!window.jupyterapp.shell.currentWidget.context.model.dirty")
    page.reload()
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=90_000)
    page.locator(".ivw-studio").wait_for(state="visible", timeout=90_000)
    wait_js(page, ".ivw-player video", "v => v.readyState >= 2", 60_000)
    expect(page.locator(".ivw-traj .ivw-list li")).to_have_count(1)
    pixel = page.locator(".ivw-paint .ivw-layer").evaluate(
        "c => Array.from(c.getContext('2d').getImageData(32, 32, 1, 1).data)"
    )
    assert pixel == [255, 0, 0, 255]
    return result
