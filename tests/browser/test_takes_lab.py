"""Takes and stories in a real JupyterLab: the Studio's takes strip and story strip, driven like a user.

- ``test_studio_controls_are_readable``: ``Studio(Session.shapes())`` at its default width: no
  control's text is cut (every label, button, toggle and caption shows in full), the lambda slider
  starts at 0 and the schedule plot draws the schedule and says what it is.
- ``test_takes_compare_and_story``: two generations at lambda 0.3 and 0.7; select both in the
  strip (click, then Ctrl-click): the player plays them side by side (twice as wide) and lists their
  differences; Continue from the last frame, Generate: the story strip plays 2 segments with the
  seam frame once (2 F - 1 frames); Continue keeps it, Undo segment drops it.

JupyterLab runs on loopback with an empty token (see frontends.py); the kernel's state is read back
by running a cell that prints JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from .frontends import (
    OUTPUT_TEXT,
    jupyter_lab,
    kernel_state,
    notebook,
    open_notebook,
    require_frontend,
    run_cell,
    set_studio_lambda,
    wait_js,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FRAMES = 4
TAKES_SETUP = f"""\
from ivcore import Session
from ivwidgets import Studio
s = Session.tiny(seed=0)
st = Studio(s, scrub_lams=None)
st.steps.value = 3
st.frames.value = {FRAMES}
st"""

TAKES_CHECK = """\
import json
assert st.wait(300)
print("RESULT" + json.dumps({
    "takes": [[t.id, t.lam] for t in s.takes],
    "selected": st.takes_strip.selected,
    "player": list(st.player.video.frames.shape),
    "single": list(s.takes[0].video.frames.shape),
    "diff": st.takes_strip.diff,
    "story": [t.id for t in s.story.segments],
    "story_frames": s.story.num_frames,
    "strip_segments": [t.id for t in st.story_segments],
    "strip_frames": st.story_player.num_frames,
    "strip_is_story": len(s.story) > 0 and st.story_player.video.frames.shape == s.story.video.frames.shape
    and bool((st.story_player.video.frames == s.story.video.frames).all()),
    "status": st.status.value,
    "error": st.error.value,
}))"""

SHAPES_SETUP = """\
from ivcore import Session
from ivwidgets import Studio
s = Session.shapes(seed=0)
st = Studio(s)
st"""

SHAPES_CHECK = """\
import json
print("RESULT" + json.dumps({"lam": s.lam, "slider": st.lam.value, "mode": st.lam_schedule.mode.value,
                             "steps": st.steps.value, "error": st.error.value}))"""

# Every visible element of the app that holds text of its own, and whether that text is cut: wider
# than its box (what CSS ellipsis or a fixed button width does), or an SVG text past its picture.
CUT_TEXT = """(root) => {
  const cut = [];
  const boxes = new Set();
  for (const e of root.querySelectorAll('*')) {
    const own = [...e.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
    if (!own || !e.getClientRects().length) continue;
    if (e instanceof SVGElement) {
      if (e instanceof SVGTextElement) {
        const width = e.ownerSVGElement.viewBox.baseVal.width;
        const right = e.getBBox().x + e.getComputedTextLength();
        if (right > width + 0.5) cut.push([own, 'svg text', right, width]);
      }
      continue;
    }
    let box = e;  // inline text (a <small>, a <b>) is cut by the box around it
    while (box !== root && getComputedStyle(box).display === 'inline') box = box.parentElement;
    boxes.add(box);
  }
  for (const box of boxes) {
    if (getComputedStyle(box).visibility === 'hidden') continue;
    if (box.scrollWidth > box.clientWidth + 1) {
      cut.push([box.textContent.trim().slice(0, 60), String(box.className), box.scrollWidth, box.clientWidth]);
    }
  }
  return cut;
}"""

MAIN_VIDEO = ".ivw-main-player video"
STORY_VIDEO = ".ivw-story-player video"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_frontend("jupyterlab")
    notebooks = {
        "takes.ipynb": notebook(TAKES_SETUP, TAKES_CHECK),
        "shapes.ipynb": notebook(SHAPES_SETUP, SHAPES_CHECK),
    }
    with jupyter_lab(tmp_path_factory.mktemp("takes"), notebooks) as url:
        yield url


def _cut_text(page) -> list:
    return page.locator(".ivw-studio").evaluate(CUT_TEXT)


def _video_width(page, selector: str) -> int:
    return page.locator(selector).evaluate("v => v.videoWidth")


def _generate(page, lam: str, takes: int) -> None:
    """Type lambda, click Generate and wait until the strip holds ``takes`` takes and the player plays."""
    from playwright.sync_api import expect

    set_studio_lambda(page, lam)
    page.locator(".ivw-generate").click()
    expect(page.locator(".ivw-takes .ivw-take")).to_have_count(takes, timeout=300_000)
    expect(page.locator(".ivw-status")).to_contain_text("done", timeout=60_000)
    wait_js(page, MAIN_VIDEO, "v => v.src.startsWith('blob:') && v.readyState >= 2", 60_000)


def test_studio_controls_are_readable(app_page, lab: str) -> None:
    """Item 0 of issue 29: every control's text in full at the default width; lambda 0; a drawn schedule."""
    from playwright.sync_api import expect

    page = app_page
    open_notebook(page, lab + "lab/workspaces/shapes/tree/shapes.ipynb")  # a workspace each: one notebook open
    run_cell(page, 0)
    page.locator(".ivw-studio").wait_for(state="visible", timeout=300_000)
    assert "Error" not in page.evaluate(OUTPUT_TEXT, 0)
    expect(page.locator(".ivw-lam-mode .widget-toggle-button")).to_have_count(3, timeout=60_000)
    labels = page.locator(".ivw-lam-mode .widget-toggle-button").all_inner_texts()
    assert labels == ["constant", "ramp up", "ramp down"]
    expect(page.locator(".ivw-lam .widget-readout")).to_have_text("0.00")  # the engine's default lambda
    assert _cut_text(page) == []
    page.set_viewport_size({"width": 1100, "height": 1000})  # a laptop's browser: still nothing cut
    page.wait_for_timeout(300)
    assert _cut_text(page) == []

    plot = page.locator("svg.ivw-lam-plot")
    box = plot.locator("polyline").bounding_box()
    assert box is not None and box["width"] > 100  # a line across the steps, inside the picture
    caption = plot.locator("text.ivw-lam-caption")
    assert caption.text_content() == "\u03bb 0.00 at all 20 steps"

    page.locator(".ivw-lam-mode .widget-toggle-button", has_text="ramp up").click()  # the plot follows
    set_studio_lambda(page, "0.5")
    expect(caption).to_have_text("\u03bb 0.00 \u2192 1.00 in 20 steps, mean 0.50", timeout=30_000)
    assert _cut_text(page) == []
    result = kernel_state(page, 1)
    assert result["error"] == "" and result["mode"] == "ramp up" and result["slider"] == 0.5
    assert result["lam"][0] == 0.0 and result["lam"][-1] == 1.0 and len(result["lam"]) == result["steps"]


def test_takes_compare_and_story(app_page, lab: str) -> None:
    from playwright.sync_api import expect

    page = app_page
    open_notebook(page, lab + "lab/workspaces/takes/tree/takes.ipynb")
    run_cell(page, 0)
    page.locator(".ivw-studio").wait_for(state="visible", timeout=180_000)
    assert "Error" not in page.evaluate(OUTPUT_TEXT, 0)
    expect(page.locator(".ivw-takes .ivw-empty")).to_be_visible()

    # 1. two generations at different lambdas: two tiles, newest first, each a looping thumbnail
    _generate(page, "0.3", 1)
    single = _video_width(page, MAIN_VIDEO)
    _generate(page, "0.7", 2)
    tiles = page.locator(".ivw-takes .ivw-take")
    assert tiles.nth(0).get_attribute("title").startswith("take-2\nlambda 0.7\nseed 0")
    assert "lambda 0.3" in tiles.nth(1).get_attribute("title")
    assert tiles.nth(1).locator("img").evaluate("i => i.complete && i.naturalWidth > 0 && i.src.startsWith('data:')")
    expect(tiles.nth(0)).to_have_class(re.compile(r"\bivw-selected\b"))  # the take on screen

    # 2. select both: click the older, Ctrl-click the newer; the player plays them side by side
    tiles.nth(1).click()
    expect(page.locator(".ivw-showing")).to_have_text("take-1", timeout=30_000)
    tiles.nth(0).click(modifiers=["Control"])
    expect(page.locator(".ivw-showing")).to_have_text("take-1 | take-2 side by side", timeout=30_000)
    wait_js(page, MAIN_VIDEO, f"v => v.readyState >= 2 && v.videoWidth > 1.9 * {single}", 60_000)
    shown = page.locator(MAIN_VIDEO).bounding_box()
    assert shown["width"] > 1.5 * shown["height"]  # on the page too: wider than high
    diff = page.locator(".ivw-takes-diff")
    expect(diff).to_have_value("take-1 \u2192 take-2: 1 difference\nlam: 0.3 \u2192 0.7", timeout=30_000)
    expect(page.locator(".ivw-restore")).to_be_disabled()  # Restore takes one
    result = kernel_state(page, 1)
    assert result["error"] == "" and result["selected"] == ["take-1", "take-2"]
    f, h, w, _ = result["single"]
    assert result["player"][0] == f == FRAMES and result["player"][2] == 2 * w + 2  # the pair, side by side

    # 3. continue from the last frame (the last take), generate the next segment: the story strip plays both
    page.locator(".ivw-continue").click()
    status = page.locator(".ivw-story-status")
    expect(status).to_contain_text("1 segment,", timeout=120_000)
    page.locator(".ivw-generate").click()
    expect(status).to_contain_text("2 segments", timeout=300_000)
    expect(status).to_contain_text(f"{2 * FRAMES - 1} frames")
    wait_js(page, STORY_VIDEO, "v => v.src.startsWith('blob:') && v.readyState >= 2 && !v.paused", 60_000)
    duration = page.locator(STORY_VIDEO).evaluate("v => v.duration")
    assert duration == pytest.approx((2 * FRAMES - 1) / 8, abs=0.13)  # the seam frame once, at 8 fps
    result = kernel_state(page, 1)
    assert result["error"] == "" and result["story"] == ["take-2"]
    assert result["strip_segments"] == ["take-2", "take-3"] and result["strip_frames"] == 2 * FRAMES - 1

    # 4. Continue keeps the segment: the story itself has 2 segments, 2 F - 1 frames, as the strip plays
    page.locator(".ivw-continue").click()
    expect(page.locator(".ivw-status")).to_contain_text("is segment 2", timeout=120_000)
    expect(status).not_to_contain_text("on trial", timeout=30_000)
    result = kernel_state(page, 1)
    assert result["story"] == ["take-2", "take-3"] and result["story_frames"] == 2 * FRAMES - 1
    assert result["strip_is_story"] and result["strip_frames"] == 2 * FRAMES - 1
    assert _cut_text(page) == []  # the strips and their buttons read in full too

    # 5. Undo segment: one segment again
    page.locator(".ivw-undo-segment").click()
    expect(status).to_contain_text("1 segment,", timeout=120_000)
    result = kernel_state(page, 1)
    assert result["story"] == ["take-2"] and result["strip_frames"] == FRAMES and result["error"] == ""
