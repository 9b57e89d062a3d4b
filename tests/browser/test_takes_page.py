"""Level 1 for the takes: js/takes_strip.js in a plain page with a fake model, and the paint canvas
drawing a layer the kernel restored (a ``{"tool": "layer"}`` entry of its history).

Real clicks (plain, Ctrl, checkbox) write ``selected`` as tests/test_takes_widgets.py feeds it to
the kernel; the kernel's ``items``, ``selected`` and ``diff`` redraw the tiles.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ivcore import Video
from ivwidgets.takes_strip import gif_data_url

from .browser_helpers import SIZE, canvas_pixels, drag, kernel_layer, mount_paint

pytestmark = pytest.mark.browser


def _item(i: int, lam: float, kept: bool = True) -> dict:
    frames = np.zeros((4, 48, 48, 3), np.uint8)
    frames[:, :, :, i % 3] = 200
    frames[np.arange(4), 10, np.arange(4) * 8] = 255  # a moving dot: an animated GIF
    return {
        "id": f"take-{i}",
        "thumb": gif_data_url(Video(frames, fps=8)),
        "caption": f"\u03bb {lam:g}",
        "title": f"take-{i}\nlambda {lam:g}\nseed {i}\nmotion: it moves",
        "kept": kept,
    }


def mount_strip(page, items: list[dict], selected: list[str] | None = None) -> None:
    state = {"items": items, "selected": selected or [], "diff": "", "error": ""}
    page.evaluate("(s) => mount('takes_strip', s)", state)
    page.wait_for_function(
        "document.querySelectorAll('.ivw-take img').length === 0 || "
        "[...document.querySelectorAll('.ivw-take img')].every((i) => i.complete)"
    )


def test_strip_tiles_tooltips_and_selection(harness) -> None:
    page = harness
    mount_strip(page, [])
    assert page.is_visible(".ivw-takes .ivw-empty") and page.locator(".ivw-take").count() == 0
    page.evaluate("(items) => model.kernel('items', items)", [_item(3, 0.7), _item(2, 0.3), _item(1, 0.0, False)])
    tiles = page.locator(".ivw-take")
    assert tiles.count() == 3 and page.is_hidden(".ivw-takes .ivw-empty")
    assert tiles.nth(0).get_attribute("title") == "take-3\nlambda 0.7\nseed 3\nmotion: it moves"
    assert tiles.all_inner_texts() == ["\u03bb 0.7", "\u03bb 0.3", "\u03bb 0"]
    assert "ivw-evicted" in tiles.nth(2).get_attribute("class")
    assert tiles.nth(0).locator("img").evaluate("i => i.naturalWidth") == 48

    tiles.nth(1).click()  # a click: that take alone
    assert page.evaluate("saved('selected')") == ["take-2"]
    assert "ivw-selected" in tiles.nth(1).get_attribute("class")
    tiles.nth(0).click(modifiers=["Control"])  # Ctrl-click adds it: two to compare
    assert page.evaluate("saved('selected')") == ["take-2", "take-3"]
    tiles.nth(2).locator(".ivw-take-pick").check()  # a third (its box) drops the first picked
    assert page.evaluate("saved('selected')") == ["take-3", "take-1"]
    assert [tiles.nth(i).locator(".ivw-take-pick").is_checked() for i in range(3)] == [True, False, True]
    tiles.nth(0).click(modifiers=["Shift"])  # Shift-click on a selected take drops it
    assert page.evaluate("saved('selected')") == ["take-1"]
    tiles.nth(0).click()
    assert page.evaluate("saved('selected')") == ["take-3"]

    # the kernel's answers: its diff, a new take at the front (the others' tiles and GIFs stay)
    old = tiles.nth(0).element_handle()
    page.evaluate("model.kernel('diff', 'take-2 \u2192 take-3: 1 difference\\nlam: 0.3 \u2192 0.7')")
    assert page.input_value(".ivw-takes-diff").endswith("lam: 0.3 \u2192 0.7")
    page.evaluate("(items) => model.kernel('items', items)", [_item(4, 1.0), _item(3, 0.7), _item(2, 0.3)])
    assert tiles.count() == 3 and tiles.nth(1).element_handle().evaluate("(e, o) => e === o", old)
    page.evaluate("model.kernel('selected', ['take-4'])")
    assert "ivw-selected" in tiles.nth(0).get_attribute("class")
    assert "ivw-selected" not in tiles.nth(1).get_attribute("class")
    page.evaluate("model.kernel('error', 'selected: got 3 takes; allowed: at most 2')")
    assert page.is_visible(".ivw-takes .ivw-error")
    page.evaluate("cleanup()")


def test_paint_canvas_draws_a_restored_layer_and_paints_over_it(harness, session) -> None:
    """The kernel shows the session's paint (a restored take) as one layer entry; strokes go over it."""
    page = harness
    layer = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    layer.paste((0, 0, 255, 255), (4, 4, 20, 20))
    loop = mount_paint(page, session)
    session.paint(layer)
    loop.widget.show_session_paint()
    assert [s["tool"] for s in loop.widget.strokes] == ["layer"]
    loop.pump()
    pixel = (
        "(p) => Array.from(document.querySelector('.ivw-layer').getContext('2d').getImageData(p[0], p[1], 1, 1).data)"
    )
    page.wait_for_function(f"({pixel})([10, 10])[2] === 255")  # the restored layer, drawn once decoded
    drag(page, ".ivw-live", [(10, 40), (54, 40)])  # a stroke goes over it: the session's paint holds both
    loop.settle(1)
    painted = kernel_layer(session)
    assert tuple(painted[10, 10]) == (0, 0, 255, 255) and tuple(painted[40, 32]) == (255, 0, 0, 255)
    page.click(".ivw-undo")
    page.click(".ivw-undo")  # undo removes the restored layer too
    loop.settle(2)
    assert session.paint_layer is None and canvas_pixels(page)[..., 3].max() == 0
