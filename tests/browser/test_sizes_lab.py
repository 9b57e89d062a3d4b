"""The Studio at 96 x 64 in a real JupyterLab: strokes and handles land where the user put them.

- A stroke drawn to the canvas's right edge paints the image's last columns (within 1 px).
- A trajectory handle dragged to x = 80 makes a trajectory ending there.
- The canvases keep the picture's shape (3:2), scaled to the cell's width.
- The Size picker switches to portrait; the canvases follow and the kernel's session has the size.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .browser_helpers import drag
from .frontends import OUTPUT_TEXT, jupyter_lab, kernel_state, notebook, open_notebook, require_frontend, run_cell

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDE = (96, 64)
SETUP = """\
from ivcore import Session
from ivwidgets import Studio
s = Session.tiny(seed=0, size=(96, 64))
st = Studio(s, scrub_lams=None)
st"""
CHECK = """\
import json
import numpy as np
assert st.wait(300)
layer = None if s.paint_layer is None else np.asarray(s.paint_layer)
cols = [] if layer is None else np.nonzero(layer[..., 3].any(axis=0))[0].tolist()
print("RESULT" + json.dumps({
    "size": list(s.size), "cols": cols, "strokes": [st["points"] for st in st.paint.strokes],
    "trajectories": [t.to_dict()["points"] for t in s.trajectories], "error": st.error.value,
}))"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_frontend("jupyterlab")
    with jupyter_lab(tmp_path_factory.mktemp("sizes"), {"wide.ipynb": notebook(SETUP, CHECK, CHECK)}) as url:
        yield url


def aspect(page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    return box["width"] / box["height"]


def test_studio_at_96x64_maps_strokes_and_handles_to_image_pixels(app_page, lab: str) -> None:
    from playwright.sync_api import expect

    page = app_page
    open_notebook(page, lab + "lab/tree/wide.ipynb")
    run_cell(page, 0)
    page.locator(".ivw-studio").wait_for(state="visible", timeout=180_000)
    assert "Error" not in page.evaluate(OUTPUT_TEXT, 0)
    assert aspect(page, ".ivw-paint .ivw-live") == pytest.approx(1.5, abs=0.02)  # shown scaled, shape kept

    # a stroke to the canvas's right edge
    page.locator(".ivw-paint .ivw-live").scroll_into_view_if_needed()
    drag(page, ".ivw-paint .ivw-live", [(60, 32), (95.5, 32)], size=WIDE)
    expect(page.locator(".ivw-paint .ivw-undo")).to_be_enabled(timeout=30_000)
    # a handle dragged to x = 80
    expect(page.locator(".ivw-traj .ivw-base")).to_have_js_property("naturalWidth", 96, timeout=120_000)
    assert aspect(page, ".ivw-traj .ivw-overlay") == pytest.approx(1.5, abs=0.02)
    page.locator(".ivw-traj .ivw-overlay").scroll_into_view_if_needed()
    drag(page, ".ivw-traj .ivw-overlay", [(40, 32), (80, 32)], size=WIDE)
    expect(page.locator(".ivw-traj .ivw-list li")).to_have_count(1, timeout=30_000)

    state = kernel_state(page, 1)
    assert state["error"] == "" and state["size"] == [96, 64]
    ((x_end, y_end),) = [stroke[-1] for stroke in state["strokes"]]
    assert abs(x_end - 95.5) <= 1 and abs(y_end - 32) <= 1
    assert state["cols"][-1] == 95 and abs(state["cols"][0] - (60 - 3)) <= 1  # brush radius 3
    ((start, end),) = state["trajectories"]
    assert abs(start[0] - 40) <= 1 and abs(end[0] - 80) <= 1 and abs(end[1] - 32) <= 1
    shown = page.locator(".ivw-paint .ivw-layer").evaluate(
        "c => [c.width, c.height, c.getContext('2d').getImageData(95, 32, 1, 1).data[3]]"
    )
    assert shown == [96, 64, 255]

    # portrait from the Size picker: the kernel's session and every canvas follow
    page.locator(".ivw-size-picker select").select_option(label="64 \u00d7 96 (portrait 2:3)")
    expect(page.locator(".ivw-paint .ivw-undo")).to_be_disabled(timeout=30_000)  # paint of the old shape cleared
    page.wait_for_function("document.querySelector('.ivw-paint .ivw-layer').height === 96", timeout=30_000)
    assert aspect(page, ".ivw-paint .ivw-live") == pytest.approx(2 / 3, abs=0.02)
    state = kernel_state(page, 2)
    assert state["size"] == [64, 96] and state["cols"] == [] and state["trajectories"] == []
