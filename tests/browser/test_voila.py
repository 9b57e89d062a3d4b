"""The Studio as a Voila teaching app: ``voila notebooks/studio_app.ipynb`` shows it without code.

Voila runs the committed notebook (tiny models, IVCORE_TINY=1) on loopback and serves only its
outputs and text. The test checks that no code reaches the page, then paints, drags, types lambda
and clicks Generate like a user, waits for the new video to play, and reads the session's state
from Voila's own kernel: a second client connects through the kernel's connection file (Voila
writes it under ``--Voila.connection_dir_root``) and runs STUDIO_CHECK there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .browser_helpers import free_port
from .frontends import (
    REPO,
    STUDIO_CHECK,
    assert_session_state,
    drag_trajectory,
    paint_stroke,
    require_frontend,
    serve,
    server_env,
    set_studio_lambda,
    video_duration,
    wait_video_playing,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

APP = REPO / "notebooks" / "studio_app.ipynb"


@pytest.fixture(scope="module")
def voila_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Voila serving the app on 127.0.0.1:<free port>; yields its URL and the folder of its kernel files."""
    require_frontend("voila")
    root = tmp_path_factory.mktemp("voila")
    port = free_port()
    argv = [
        sys.executable, "-m", "voila", str(APP), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
        "--show_tracebacks=True", f"--Voila.connection_dir_root={root}",
    ]  # fmt: skip
    env = {**server_env(root), "IVCORE_TINY": "1"}
    # any path answers once the server is up; "/" itself would start a kernel and run the notebook
    with serve(argv, root=root, port=port, ready="voila/ready-probe", env=env) as url:
        yield url, root


def run_in_kernel(root: Path, code: str, timeout_s: float = 300) -> str:
    """Run ``code`` in the kernel Voila started for the page; returns what it printed."""
    from jupyter_client import BlockingKernelClient

    (connection,) = root.glob("voila_*/kernel-*.json")  # one page, one kernel
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    printed: list[str] = []

    def collect(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            printed.append("\n".join(msg["content"]["traceback"]))

    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(code, timeout=timeout_s, output_hook=collect)
        assert reply["content"]["status"] == "ok", "".join(printed)
    finally:
        client.stop_channels()
    return "".join(printed)


def test_studio_in_voila(app_page, voila_app: tuple[str, Path]) -> None:
    page = app_page
    url, root = voila_app
    page.goto(url, timeout=180_000)
    page.locator(".ivw-studio").wait_for(state="visible", timeout=240_000)
    # a teaching app: the text and the Studio, no code
    assert "InteractiveVideo Studio" in page.inner_text("body")
    source = "".join(json.loads(APP.read_text())["cells"][1]["source"])
    assert "tiny_requested()" in source and "tiny_requested()" not in page.content()  # not even hidden
    assert page.locator(".jp-CodeMirrorEditor, .cm-editor, .jp-InputPrompt").count() == 0

    paint_stroke(page)
    drag_trajectory(page)
    set_studio_lambda(page, "0.3")
    page.locator(".ivw-generate").click()
    wait_video_playing(page)

    # Voila's kernel holds the paint, the trajectory, lambda and the new video (8 frames: the defaults)
    text = run_in_kernel(root, "st = studio\n" + STUDIO_CHECK)
    assert "RESULT" in text, text
    result = json.loads(text.split("RESULT", 1)[1])
    assert_session_state(result, lam=0.3, frames=8)
    assert result["paint_at_stroke"] == [255, 0, 0, 255]  # the tiny session's default red brush
    assert result["status"].startswith("done")
    assert video_duration(page) == pytest.approx(8 / 8, abs=0.13)  # 8 frames at 8 fps
