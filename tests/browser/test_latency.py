"""Time to feedback in a real JupyterLab: the Studio with ``Session.shapes()`` on the CPU.

A user's view of how fast the app answers, measured from the page (Playwright in Chromium): the
clock starts when the test's click, key press or mouse-up returns and stops when the page shows
the answer (polled each animation frame, so a few ms of polling are included):

- click Generate -> the first preview drawn (the preview caption names a step);
- click Generate -> the new video playing;
- lambda released at a swept value -> the player shows the sweep's video (target < 300 ms);
- lambda released at another value -> the exact video playing;
- paint stroke end -> x~' updated beside x~ (target < 300 ms);
- trajectory drag end -> the motion preview looping with the new trajectory (target < 300 ms).

The numbers go to stdout (``-s``) as a markdown table; benchmarks/RESULTS.md keeps a measured copy.
Slow (a sweep of the shapes models on a shared CPU): marked ``slow``; run it alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from .browser_helpers import drag
from .frontends import (
    OUTPUT_TEXT,
    STROKE,
    cell_output,
    jupyter_lab,
    notebook,
    open_notebook,
    require_frontend,
    run_cell,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """\
from ivcore import Session
from ivwidgets import Studio
s = Session.shapes(seed=0)
st = Studio(s)
st.editor.live = False  # the trajectory syncs on mouse-up only, so the drag's latency is that of its end
st"""

CHECK = """\
import json
assert st.wait(600)
print("RESULT" + json.dumps({"lam": s.lam, "status": st.status.value, "error": st.error.value,
                             "showing": st.showing.value, "misses": s.stats["denoise"]["misses"]}))"""

TARGET_S = 0.3
PLAYER = ".ivw-studio .ivw-player video"
NEW_VIDEO = "([v, old]) => v.src !== old && v.src.startsWith('blob:') && v.readyState >= 2"
PLAYING = "([v, old]) => v.src !== old && v.src.startsWith('blob:') && v.readyState >= 2 && !v.paused"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_frontend("jupyterlab")
    with jupyter_lab(tmp_path_factory.mktemp("latency"), {"latency.ipynb": notebook(SETUP, CHECK)}) as url:
        yield url


def _attr(page, selector: str, prop: str) -> str:
    return page.locator(selector).first.evaluate(f"e => e.{prop}")


def _until(page, selector: str, predicate: str, old: str, timeout_s: float) -> float:
    """Seconds until ``predicate([element, old])`` holds (polled each animation frame)."""
    handle = page.locator(selector).first.element_handle(timeout=timeout_s * 1000)
    page.wait_for_function(predicate, arg=[handle, old], polling="raf", timeout=timeout_s * 1000)
    return time.perf_counter()


def _timed(action: Callable[[], None]) -> float:
    action()
    return time.perf_counter()


def release_lambda(page, text: str) -> float:
    """Type ``text`` into the lambda readout; the clock starts at Enter (the release)."""
    readout = page.locator(".ivw-lam .widget-readout")
    readout.scroll_into_view_if_needed()
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    return _timed(lambda: page.keyboard.press("Enter"))


def test_time_to_feedback(app_page, lab: str) -> None:
    page = app_page
    open_notebook(page, lab + "lab/tree/latency.ipynb")
    run_cell(page, 0)
    page.locator(".ivw-studio").wait_for(state="visible", timeout=300_000)
    assert "Error" not in page.evaluate(OUTPUT_TEXT, 0)
    page.locator(".ivw-traj .ivw-base").first.wait_for(state="visible", timeout=300_000)
    times: dict[str, float] = {}

    # 1. paint stroke end: x~' beside x~ is recomputed
    page.locator(".ivw-x-edited").first.wait_for(state="visible", timeout=300_000)
    old = _attr(page, ".ivw-x-edited", "src")
    start = _timed(lambda: drag(page, ".ivw-paint .ivw-live", STROKE))
    changed = "([e, old]) => e.src !== old && e.complete && e.naturalWidth > 0"
    times["paint stroke end -> x~' updated"] = _until(page, ".ivw-x-edited", changed, old, 120) - start

    # 2. trajectory drag end: the motion preview loops with it
    preview = ".ivw-traj video.ivw-preview"
    old = _attr(page, preview, "src")
    start = _timed(lambda: drag(page, ".ivw-traj .ivw-overlay", [(20, 40), (44, 20)]))
    looping = "([v, old]) => v.src !== old && v.readyState >= 2 && !v.paused"
    times["trajectory drag end -> motion preview looping"] = _until(page, preview, looping, old, 120) - start

    # 3-4. Generate: the first clean-video preview, then the video playing
    old = _attr(page, PLAYER, "src") if page.locator(PLAYER).count() else ""
    start = _timed(lambda: page.locator(".ivw-generate").click())
    caption = ".ivw-preview-caption"
    times["click Generate -> first preview drawn"] = (
        _until(page, caption, "([e, old]) => e.textContent.includes('at step')", "", 600) - start
    )
    times["click Generate -> video playing"] = _until(page, PLAYER, PLAYING, old, 600) - start
    page.locator(".ivw-status").filter(has_text="ready to scrub").wait_for(timeout=900_000)

    # 5. lambda released at a swept value: the sweep's video at once
    old = _attr(page, PLAYER, "src")
    start = release_lambda(page, "0.25")
    times["lambda release at a swept value -> player shows it"] = _until(page, PLAYER, NEW_VIDEO, old, 60) - start
    page.locator(".ivw-showing").filter(has_text="from the sweep").wait_for(timeout=30_000)

    # 6. lambda released between swept values: the nearest at once, then the exact video
    old = _attr(page, PLAYER, "src")
    start = release_lambda(page, "0.6")
    nearest = _until(page, PLAYER, NEW_VIDEO, old, 60)
    old = _attr(page, PLAYER, "src")
    times["lambda release at another value -> exact video playing"] = _until(page, PLAYER, PLAYING, old, 600) - start
    times["(the same release -> the nearest swept video shown)"] = nearest - start

    run_cell(page, 1)
    text = cell_output(page, 1, "RESULT", timeout_s=900)
    result = json.loads(text.split("RESULT", 1)[1])
    assert result["error"] == "", result["error"]

    rows = ["| interaction | seconds | target |", "|---|---:|---|"]
    targets = {k for k in times if k.startswith(("lambda release at a swept", "paint", "trajectory"))}
    rows += [f"| {k} | {v:.3f} | {'< 0.3 s' if k in targets else ''} |" for k, v in times.items()]
    print("\n" + "\n".join(rows))
    # the sweep's video is shown without denoising; the targets are checked loosely here (a shared
    # CPU), their measured values go to benchmarks/RESULTS.md
    assert times["lambda release at a swept value -> player shows it"] < 10 * TARGET_S
