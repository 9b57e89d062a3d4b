"""The InteractiveVideo loop as a marimo app (notebooks/studio_marimo.py), run by ``marimo run``.

The app runs headless on loopback with the tiny models (IVCORE_TINY=1). The test paints a stroke,
drags a trajectory, types lambda into marimo's slider input and clicks marimo's Generate button,
then checks the page (a new video that plays) and the app's Python side: a cell of the app prints
what the session holds (paint, trajectories, lambda, the last video) into the page as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import pytest

from .browser_helpers import SIZE, free_port
from .frontends import (
    REPO,
    assert_session_state,
    drag_trajectory,
    paint_stroke,
    require_frontend,
    serve,
    server_env,
    video_duration,
    wait_video_playing,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

APP = REPO / "notebooks" / "studio_marimo.py"


@pytest.fixture(scope="module")
def marimo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``marimo run`` of the app on 127.0.0.1:<free port>, headless, no token, tiny models."""
    require_frontend("marimo")
    root = tmp_path_factory.mktemp("marimo")
    port = free_port()
    argv = [
        sys.executable, "-m", "marimo", "run", str(APP), "--headless", "--host", "127.0.0.1",
        "--port", str(port), "--no-token", "--no-sandbox",
    ]  # fmt: skip
    env = {**server_env(root), "IVCORE_TINY": "1", "MARIMO_SKIP_UPDATE_CHECK": "1"}
    with serve(argv, root=root, port=port, ready="health", env=env) as url:
        yield url


def session_state(page, until, timeout_s: float = 120) -> dict:
    """The app's "What the session holds" JSON, once ``until(state)`` holds (the cell reruns on changes)."""
    deadline = time.monotonic() + timeout_s
    state: dict = {}
    while time.monotonic() < deadline:
        text = page.locator(".ivw-session-state pre").text_content() or "{}"
        state = json.loads(text)
        if until(state):
            return state
        time.sleep(0.5)
    raise AssertionError(f"the session state did not get there: {state}")


def test_studio_in_marimo(app_page, marimo_app: str) -> None:
    from playwright.sync_api import expect

    page = app_page
    page.goto(marimo_app, timeout=180_000)
    page.locator(".ivw-paint .ivw-live").wait_for(state="visible", timeout=240_000)
    page.locator(".ivw-session-state").wait_for(state="attached", timeout=240_000)
    assert session_state(page, lambda s: True)["painted"] == 0

    paint_stroke(page)  # 1. a stroke on x: the PaintCanvas anywidget sends its layer to the session
    session_state(page, lambda s: s["painted"] > 0)
    # x~' is drawn by a cell of the app from the session (a 64 x 64 PNG shown at 256 px)
    edited = page.locator("img[alt='edited intermediate']")
    expect(edited).to_have_js_property("naturalWidth", SIZE, timeout=120_000)
    drag_trajectory(page)  # 2. a trajectory on x~ (TrajectoryEditor anywidget)
    session_state(page, lambda s: len(s["trajectories"]) == 1)

    # 3. lambda: typed into marimo's slider input
    lam_input = page.locator("marimo-slider input[aria-label*='\u03bb']")  # a React Aria number field
    lam_input.fill("0.3")
    lam_input.press("Enter")
    session_state(page, lambda s: s["lam"] == pytest.approx(0.3))

    # 4. Generate (marimo's run button): a new video in the player, playing
    page.get_by_role("button", name="Generate").click()
    wait_video_playing(page)
    state = session_state(page, lambda s: s["frames"] is not None, timeout_s=300)
    assert_session_state(state, lam=0.3, frames=8)
    assert state["paint_at_stroke"] == [255, 0, 0, 255]  # the tiny session's default red brush
    assert state["status"].startswith("done")
    assert video_duration(page) == pytest.approx(8 / 8, abs=0.13)  # 8 frames at 8 fps
