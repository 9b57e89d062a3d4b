"""The same Studio displayed twice in one JupyterLab notebook (no collaboration extension).

Two views of the same kernel-side widgets: 10 strokes drawn alternately in the two views all reach
the session in the order they were drawn, both canvases show the same pixels, an Undo in one view
takes back the newest stroke in both, and a Generate clicked in one view plays the new video in both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .browser_helpers import drag
from .frontends import jupyter_lab, kernel_state, notebook, open_notebook, require_frontend, run_cell, wait_js

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """\
from ivcore import Session
from ivwidgets import Studio
s = Session.tiny(seed=0)
st = Studio(s, scrub_lams=None)
st.steps.value = 2
st.frames.value = 4
st"""
CHECK = """\
import json
assert st.wait(300)
print("RESULT" + json.dumps({
    "starts": [[round(p) for p in stroke["points"][0]] for stroke in st.paint.strokes],
    "ids": len({stroke["id"] for stroke in st.paint.strokes}),
    "frames": None if s.last_video is None else list(s.last_video.frames.shape),
}))"""

LAYER_PIXELS = "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_frontend("jupyterlab")
    with jupyter_lab(tmp_path_factory.mktemp("twice"), {"twice.ipynb": notebook(SETUP, "st", CHECK, CHECK)}) as url:
        yield url


def test_same_studio_twice_shares_strokes_undo_and_video(app_page, lab: str) -> None:
    from playwright.sync_api import expect

    page = app_page
    open_notebook(page, lab + "lab/tree/twice.ipynb")
    run_cell(page, 0)
    run_cell(page, 1)
    expect(page.locator(".ivw-studio")).to_have_count(2, timeout=180_000)
    canvases = page.locator(".ivw-paint .ivw-live")
    layers = page.locator(".ivw-paint .ivw-layer")
    starts = []
    for k in range(10):  # alternately in view 0 and view 1, vertical strokes left to right
        view = canvases.nth(k % 2)
        view.scroll_into_view_if_needed()
        x = 4 + 6 * k
        drag(page, view, [(x, 10), (x, 54)], steps=3)
        starts.append([x, 10])
    # a view shows the other view's strokes only once the kernel holds them: wait for all ten in both
    # (a cell run at once could reach the kernel before the last stroke's message)
    page.wait_for_function(
        "(xs) => [...document.querySelectorAll('.ivw-paint .ivw-layer')].every((c) => xs.every((x) =>"
        " c.getContext('2d').getImageData(x, 32, 1, 1).data[3] === 255))",
        arg=[4 + 6 * k for k in range(10)],
        timeout=60_000,
    )
    state = kernel_state(page, 2)
    assert state["ids"] == 10
    assert len(state["starts"]) == 10 and all(
        abs(s[0] - t[0]) <= 1 and abs(s[1] - t[1]) <= 1 for s, t in zip(state["starts"], starts, strict=True)
    )  # all ten, in the order drawn
    page.wait_for_function(
        "() => { const c = [...document.querySelectorAll('.ivw-paint .ivw-layer')];"
        " const d = c.map((x) => x.getContext('2d').getImageData(0, 0, x.width, x.height).data.join());"
        " return d.length === 2 && d[0] === d[1]; }",
        timeout=30_000,
    )  # both canvases show the same pixels
    first = layers.nth(0).evaluate(LAYER_PIXELS)
    assert sum(1 for a in first[3::4] if a == 255) > 10 * 40  # ten strokes, each some 44 px long

    page.locator(".ivw-paint .ivw-undo").nth(1).click()  # undo in view 1: the newest stroke, in both views
    page.wait_for_function(
        "() => [...document.querySelectorAll('.ivw-paint .ivw-layer')]"
        ".every((c) => c.getContext('2d').getImageData(58, 32, 1, 1).data[3] === 0)",
        timeout=30_000,
    )

    page.locator(".ivw-generate").nth(0).click()  # Generate in view 0: the video plays in both
    for i in range(2):
        player = page.locator(".ivw-main-player video").nth(i)
        player.wait_for(state="attached", timeout=300_000)
        wait_js(page, f".ivw-studio >> nth={i} >> .ivw-main-player video", "v => v.src.startsWith('blob:')", 300_000)
    expect(page.locator(".ivw-status").nth(1)).to_contain_text("done", timeout=60_000)
    state = kernel_state(page, 3)
    assert state["frames"] == [4, 64, 64, 3] and len(state["starts"]) == 9
