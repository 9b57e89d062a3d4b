"""Level 1: each ES module rendered in real Chromium with a fake model, driven by real pointer events.

These prove the front-end halves on their own: what a stroke, a drag or playback writes into the
model is exactly what the kernel-side tests (tests/test_widgets.py) feed to the widgets.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from .browser_helpers import SIZE, drag

pytestmark = pytest.mark.browser


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


GRAY = png(Image.new("RGB", (SIZE, SIZE), (128, 128, 128)))


def saved(page, name: str):
    return page.evaluate("(n) => saved(n)", name)


def saved_png(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(saved(page, "layer")))).convert("RGBA"))


# -- PaintCanvas --------------------------------------------------------------------------------


def mount_paint(page, **overrides) -> None:
    state = {
        "image": b64(GRAY),
        "width": SIZE,
        "height": SIZE,
        "color": "#ff0000",
        "brush_size": 6.0,
        "opacity": 1.0,
        "tool": "brush",
        "strokes": [],
        "undone": [],
        "layer": "",
        "edited": "",
        "busy": False,
        "error": "",
        **overrides,
    }
    page.evaluate("([s, b]) => mount('paint_canvas', s, b)", [state, ["image", "layer", "edited"]])
    page.wait_for_function("document.querySelector('.ivw-base').naturalWidth === 64")


def test_paint_stroke_sends_png_painted_where_the_stroke_went(harness) -> None:
    page = harness
    mount_paint(page)
    box = page.locator(".ivw-live").bounding_box()
    assert box["width"] > 4 * SIZE - 2  # CSS scales the native 64x64 backing store up
    live = "document.querySelector('.ivw-live')"
    assert page.evaluate(f"[{live}.width, getComputedStyle({live}).touchAction]") == [64, "none"]
    drag(page, ".ivw-live", [(10, 32), (54, 32)])
    page.wait_for_function("savesOf('layer') === 1")
    layer = saved_png(page)
    assert layer.shape == (SIZE, SIZE, 4)
    for x in (12, 32, 52):  # along the stroke: opaque red
        assert tuple(layer[32, x]) == (255, 0, 0, 255), x
    assert layer[:26, :, 3].max() == 0 and layer[39:, :, 3].max() == 0  # nothing far from it
    ys, xs = np.nonzero(layer[..., 3])
    assert 5 <= xs.min() <= 8 and 56 <= xs.max() <= 59 and 28 <= ys.min() and ys.max() <= 36
    strokes = saved(page, "strokes")
    assert len(strokes) == 1 and strokes[0]["tool"] == "brush" and strokes[0]["size"] == 6
    assert abs(strokes[0]["points"][0][0] - 10) < 0.5 and abs(strokes[0]["points"][-1][0] - 54) < 0.5


def test_paint_undo_redo_clear_eraser_opacity(harness) -> None:
    page = harness
    mount_paint(page)
    drag(page, ".ivw-live", [(10, 32), (54, 32)])
    page.wait_for_function("savesOf('layer') === 1")
    page.click(".ivw-undo")  # undo removes the whole stroke (one batch)
    page.wait_for_function("savesOf('layer') === 2")
    assert saved_png(page)[..., 3].max() == 0
    assert saved(page, "strokes") == [] and len(saved(page, "undone")) == 1
    page.click(".ivw-redo")
    page.wait_for_function("savesOf('layer') === 3")
    assert tuple(saved_png(page)[32, 32]) == (255, 0, 0, 255)
    page.click(".ivw-eraser")
    drag(page, ".ivw-live", [(32, 10), (32, 54)])
    page.wait_for_function("savesOf('layer') === 4")
    layer = saved_png(page)
    assert layer[32, 32, 3] == 0 and tuple(layer[32, 14]) == (255, 0, 0, 255)
    page.click(".ivw-clear")
    page.wait_for_function("savesOf('layer') === 5")
    assert saved_png(page)[..., 3].max() == 0
    page.click(".ivw-undo")  # clear is undoable too
    page.wait_for_function("savesOf('layer') === 6")
    assert saved_png(page)[32, 14, 3] == 255
    page.click(".ivw-brush")
    page.evaluate("model.kernel('opacity', 0.5); model.kernel('color', '#0000ff')")
    drag(page, ".ivw-live", [(10, 50), (54, 50)])
    page.wait_for_function("savesOf('layer') === 7")
    r, g, b, a = saved_png(page)[50, 32]
    assert (r, g, b) == (0, 0, 255) and 120 <= a <= 135  # one stroke composited once at its opacity


def test_paint_swatches_set_the_brush_colour(harness) -> None:
    page = harness
    mount_paint(page, swatches=["#dc3232", "#f0d23c"], tool="eraser")
    assert page.locator(".ivw-swatch").count() == 2
    page.locator(".ivw-swatch").nth(1).click()  # yellow: the brush, in that colour
    drag(page, ".ivw-live", [(10, 32), (54, 32)])
    page.wait_for_function("savesOf('layer') === 1")
    assert tuple(saved_png(page)[32, 32]) == (0xF0, 0xD2, 0x3C, 255)
    assert page.evaluate("document.querySelector('.ivw-color').value") == "#f0d23c"


def test_paint_shows_edited_image_and_errors(harness) -> None:
    page = harness
    mount_paint(page)
    assert page.is_hidden(".ivw-error")
    edited = png(Image.new("RGB", (SIZE, SIZE), (0, 200, 0)))
    page.evaluate("(b) => model.kernel('edited', b64ToDataView(b))", b64(edited))
    page.wait_for_function("document.querySelector('.ivw-edited').naturalWidth === 64")
    page.evaluate("model.kernel('error', 'paint layer: got a 32x32 PNG')")
    assert page.is_visible(".ivw-error")
    assert "32x32" in page.inner_text(".ivw-error")


def test_paint_redraws_history_after_reload(harness) -> None:
    """A page reload re-renders from the traits: the stroke history comes back on the canvas."""
    page = harness
    stroke = {"tool": "brush", "color": "#00ff00", "size": 8, "opacity": 1, "points": [[5, 5], [60, 60]]}
    mount_paint(page, strokes=[stroke])
    pixel = page.evaluate(
        "Array.from(document.querySelector('.ivw-layer').getContext('2d').getImageData(32, 32, 1, 1).data)"
    )
    assert pixel == [0, 255, 0, 255]


# -- TrajectoryEditor ---------------------------------------------------------------------------


def mount_editor(page, **overrides) -> None:
    state = {
        "image": b64(GRAY),
        "width": SIZE,
        "height": SIZE,
        "trajectories": [],
        "selected": -1,
        "tool": "drag",
        "easing": "linear",
        "radius": 16.0,
        "mask_size": 8.0,
        "live": True,
        "preview": "",
        "busy": False,
        "error": "",
        **overrides,
    }
    page.evaluate("([s, b]) => mount('trajectory_editor', s, b)", [state, ["image", "preview"]])
    page.wait_for_function("document.querySelector('.ivw-traj .ivw-base').naturalWidth === 64")


def close(a, b, tol: float = 0.5) -> bool:
    return all(abs(float(u) - float(v)) <= tol for u, v in zip(a, b, strict=True))


def test_editor_drag_yields_the_expected_points(harness) -> None:
    from ivwidgets import parse_trajectories

    page = harness
    mount_editor(page)
    drag(page, ".ivw-overlay", [(16, 16), (48, 40)])
    page.wait_for_function("(saved('trajectories') || []).length === 1 && !window.model.get('busy')")
    (traj,) = saved(page, "trajectories")
    assert len(traj["points"]) == 2
    assert close(traj["points"][0], (16, 16)) and close(traj["points"][1], (48, 40))
    assert traj["kind"] == "object" and traj["easing"] == "linear" and traj["radius"] == 16
    assert saved(page, "selected") == 0
    assert page.locator(".ivw-list li").count() == 1

    # press on the target handle and move it: the same trajectory, a new target
    drag(page, ".ivw-overlay", [(48, 40), (40, 52)])
    page.wait_for_function("saved('trajectories').length === 1")
    page.wait_for_function("Math.abs(saved('trajectories')[0].points[1][1] - 52) < 0.6")
    (traj,) = saved(page, "trajectories")
    assert close(traj["points"][0], (16, 16)) and close(traj["points"][1], (40, 52))

    # path tool: a click adds a path point after the target
    page.select_option(".ivw-tool", "path")
    drag(page, ".ivw-overlay", [(56, 56)])
    page.wait_for_function("saved('trajectories')[0].points.length === 3")
    (traj,) = saved(page, "trajectories")
    assert close(traj["points"][2], (56, 56))

    # lasso the region mask of the selected trajectory
    page.select_option(".ivw-tool", "lasso")
    drag(page, ".ivw-overlay", [(8, 8), (28, 8), (28, 28), (8, 28)])
    page.wait_for_function("(saved('trajectories')[0].mask || []).length === 1")
    (traj,) = saved(page, "trajectories")
    assert traj["mask"][0]["type"] == "lasso"
    (parsed,) = parse_trajectories(saved(page, "trajectories"), (SIZE, SIZE))
    assert parsed.mask[18, 18] and not parsed.mask[40, 40]
    assert parsed.points[0] == pytest.approx((16, 16), abs=0.5)

    # an anchor, an easing change from the list, then delete
    page.select_option(".ivw-tool", "anchor")
    drag(page, ".ivw-overlay", [(50, 10)])
    page.wait_for_function("saved('trajectories').length === 2")
    anchor = saved(page, "trajectories")[1]
    assert anchor["kind"] == "anchor" and close(anchor["points"][0], (50, 10))
    page.locator(".ivw-list li").nth(0).locator(".ivw-row-easing").select_option("ease-in-out")
    page.wait_for_function("saved('trajectories')[0].easing === 'ease-in-out'")
    page.locator(".ivw-list li").nth(1).locator(".ivw-delete").click()
    page.wait_for_function("saved('trajectories').length === 1")
    assert page.locator(".ivw-list li").count() == 1


def test_editor_draws_kernel_trajectories_and_preview(harness, tiny_mp4: bytes) -> None:
    page = harness
    mask = {"shape": [64, 64], "runs": [64 * 20, 64 * 10, 64 * 34]}  # ivcore's RLE, as Trajectory.to_dict
    traj = {"points": [[10, 10], [50, 50]], "kind": "object", "easing": "linear", "radius": 8, "mask": mask}
    mount_editor(page, trajectories=[traj])
    assert page.locator(".ivw-overlay circle").count() == 2
    assert page.locator(".ivw-overlay image").count() == 1  # the RLE mask drawn from plain data
    page.evaluate("(b) => model.kernel('preview', b64ToDataView(b))", b64(tiny_mp4))
    page.wait_for_function("document.querySelector('.ivw-preview').readyState >= 2", timeout=10_000)
    assert page.evaluate("document.querySelector('.ivw-preview').loop") is True


# -- VideoPlayer --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_mp4() -> bytes:
    """16 frames of a moving bar, encoded by ivcore (H.264 yuv420p, what the widgets ship)."""
    from ivcore.video import Video

    frames = np.zeros((16, SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(16):
        frames[i, :, 4 * i : 4 * i + 8] = (255, 200, 0)
    data = Video(frames, fps=8).to_mp4()
    assert data[4:8] == b"ftyp"
    return data


def test_player_plays_h264_and_syncs_frame(harness, tiny_mp4: bytes) -> None:
    page = harness
    state = {
        "value": b64(tiny_mp4),
        "fps": 8.0,
        "num_frames": 16,
        "frame": 0,
        "playing": True,
        "loop": True,
        "speed": 1.0,
        "filename": "fox.mp4",
        "error": "",
    }
    page.evaluate("([s, b]) => mount('video_player', s, b)", [state, ["value"]])
    page.wait_for_function("document.querySelector('.ivw-player video').readyState === 4", timeout=15_000)
    assert page.evaluate("document.querySelector('video').canPlayType('video/mp4; codecs=\"avc1.64001e\"')")
    t0 = page.evaluate("document.querySelector('video').currentTime")
    page.wait_for_function(f"document.querySelector('video').currentTime > {t0} + 0.3", timeout=10_000)
    page.wait_for_function("saved('frame') > 0", timeout=10_000)  # the frame index goes to the kernel
    # ivcore may upscale tiny clips for the encoder; the aspect ratio is kept
    width, height = page.evaluate(
        "[document.querySelector('video').videoWidth, document.querySelector('video').videoHeight]"
    )
    assert width >= SIZE and width == height
    assert page.is_hidden(".ivw-player .ivw-error")
    link = page.locator(".ivw-download")
    assert link.get_attribute("download") == "fox.mp4" and link.get_attribute("href").startswith("blob:")

    page.click(".ivw-play")  # pause
    page.wait_for_function("saved('playing') === false && document.querySelector('video').paused")
    page.evaluate("model.kernel('frame', 10)")  # the kernel picks a frame: the player seeks
    page.wait_for_function("Math.abs(document.querySelector('video').currentTime - 10.5 / 8) < 0.05")
    assert page.input_value(".ivw-scrub") == "10"
    page.select_option(".ivw-speed", "2")
    page.wait_for_function("document.querySelector('video').playbackRate === 2 && saved('speed') === 2")
