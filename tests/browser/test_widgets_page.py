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

from .browser_helpers import SIZE, canvas_pixels, drag, kernel_layer, mount_paint, to_screen

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


# -- PaintCanvas --------------------------------------------------------------------------------
# The kernel half is real: a PaintCanvas on a tiny session behind the page's fake model (KernelLoop).


def assert_view_shows_kernel(page, session, view: int = 0) -> None:
    """The canvas holds the session's paint: alpha within 2 levels, colour wherever it is mostly opaque."""
    shown, kernel = canvas_pixels(page, view).astype(int), kernel_layer(session).astype(int)
    assert np.abs(shown[..., 3] - kernel[..., 3]).max() <= 2
    solid = kernel[..., 3] > 128
    assert np.abs(shown[solid, :3] - kernel[solid, :3]).max() <= 3


def test_paint_stroke_reaches_the_session_where_it_went(harness, session) -> None:
    page = harness
    loop = mount_paint(page, session)
    box = page.locator(".ivw-live").bounding_box()
    assert box["width"] > 4 * SIZE - 2  # CSS scales the native 64x64 backing store up
    live = "document.querySelector('.ivw-live')"
    assert page.evaluate(f"[{live}.width, getComputedStyle({live}).touchAction]") == [64, "none"]
    drag(page, ".ivw-live", [(10, 32), (54, 32)])
    loop.settle(1)
    layer = kernel_layer(session)
    for x in (12, 32, 52):  # along the stroke: opaque red
        assert tuple(layer[32, x]) == (255, 0, 0, 255), x
    assert layer[:26, :, 3].max() == 0 and layer[39:, :, 3].max() == 0  # nothing far from it
    ys, xs = np.nonzero(layer[..., 3])
    assert 5 <= xs.min() <= 8 and 56 <= xs.max() <= 59 and 28 <= ys.min() and ys.max() <= 36
    strokes = loop.widget.strokes
    assert len(strokes) == 1 and strokes[0]["tool"] == "brush" and strokes[0]["size"] == 6
    assert abs(strokes[0]["points"][0][0] - 10) < 0.5 and abs(strokes[0]["points"][-1][0] - 54) < 0.5
    assert_view_shows_kernel(page, session)


def test_paint_undo_redo_clear_eraser_opacity(harness, session) -> None:
    page = harness
    loop = mount_paint(page, session)
    drag(page, ".ivw-live", [(10, 32), (54, 32)])
    loop.settle(1)
    page.click(".ivw-undo")  # undo removes the whole stroke (one batch)
    loop.settle(1)
    assert session.paint_layer is None and loop.widget.strokes == [] and len(loop.widget.undone) == 1
    page.click(".ivw-redo")
    loop.settle(1)
    assert tuple(kernel_layer(session)[32, 32]) == (255, 0, 0, 255)
    page.click(".ivw-eraser")
    drag(page, ".ivw-live", [(32, 10), (32, 54)])
    loop.settle(1)
    layer = kernel_layer(session)
    assert layer[32, 32, 3] == 0 and tuple(layer[32, 14]) == (255, 0, 0, 255)
    assert_view_shows_kernel(page, session)
    page.click(".ivw-clear")
    loop.settle(1)
    assert session.paint_layer is None
    page.click(".ivw-undo")  # clear is undoable too
    loop.settle(1)
    assert kernel_layer(session)[32, 14, 3] == 255
    page.click(".ivw-brush")
    page.evaluate("model.kernel('opacity', 0.5); model.kernel('color', '#0000ff')")
    drag(page, ".ivw-live", [(10, 50), (54, 50)])
    loop.settle(1)
    r, g, b, a = kernel_layer(session)[50, 32]
    assert (r, g, b) == (0, 0, 255) and 120 <= a <= 135  # one stroke composited once at its opacity
    assert_view_shows_kernel(page, session)


def test_paint_same_widget_twice_shares_every_stroke(harness, session) -> None:
    """Two views of one model: strokes from both, sent before the kernel answers, all land in order."""
    page = harness
    loop = mount_paint(page, session, views=2)
    for k in range(6):
        view = f".view-{k % 2} .ivw-live"
        drag(page, view, [(4 + 9 * k, 8), (4 + 9 * k, 56)], steps=3)
    loop.settle(6)
    strokes = loop.widget.strokes
    assert len(strokes) == 6 and len({s["id"] for s in strokes}) == 6
    assert [round(s["points"][0][0]) for s in strokes] == [4 + 9 * k for k in range(6)]  # arrival order
    layer = kernel_layer(session)
    assert all(layer[32, 4 + 9 * k, 3] == 255 for k in range(6))
    for view in (0, 1):
        assert_view_shows_kernel(page, session, view)
    page.click(".view-1 .ivw-undo")  # shared undo: the newest stroke, drawn in view 0... or 1
    loop.settle(1)
    assert len(loop.widget.strokes) == 5 and kernel_layer(session)[32, 49, 3] == 0
    for view in (0, 1):
        assert_view_shows_kernel(page, session, view)


def test_paint_refused_stroke_is_not_left_on_the_canvas(harness, session) -> None:
    """A stroke the kernel refuses (the size changed while it was in flight) leaves view and session as they were."""
    page = harness
    loop = mount_paint(page, session)
    session.size = (32, 32)  # the stroke's 64x64 pixels no longer fit the picture
    try:
        drag(page, ".ivw-live", [(10, 32), (54, 32)])
        loop.settle(1)
        assert loop.widget.strokes == [] and "stroke pixels" in loop.widget.error
        page.wait_for_function("document.querySelector('.ivw-error').textContent.includes('stroke pixels')")
        assert canvas_pixels(page)[..., 3].max() == 0  # the pending stroke is gone
        assert session.paint_layer is None
    finally:
        session.size = (SIZE, SIZE)


def test_paint_swatches_set_the_brush_colour(harness, session) -> None:
    page = harness
    loop = mount_paint(page, session, swatches=["#dc3232", "#f0d23c"], tool="eraser")
    assert page.locator(".ivw-swatch").count() == 2
    page.locator(".ivw-swatch").nth(1).click()  # yellow: the brush, in that colour
    loop.pump()
    drag(page, ".ivw-live", [(10, 32), (54, 32)])
    loop.settle(1)
    assert tuple(kernel_layer(session)[32, 32]) == (0xF0, 0xD2, 0x3C, 255)
    assert page.evaluate("document.querySelector('.ivw-color').value") == "#f0d23c"


def test_paint_shows_edited_image_and_errors(harness, session) -> None:
    page = harness
    mount_paint(page, session)
    assert page.is_hidden(".ivw-error")
    edited = png(Image.new("RGB", (SIZE, SIZE), (0, 200, 0)))
    page.evaluate("(b) => model.kernel('edited', b64ToDataView(b))", b64(edited))
    page.wait_for_function("document.querySelector('.ivw-edited').naturalWidth === 64")
    page.evaluate("model.kernel('error', 'paint layer: got a 32x32 PNG')")
    assert page.is_visible(".ivw-error")
    assert "32x32" in page.inner_text(".ivw-error")


def test_paint_redraws_history_after_reload(harness, session) -> None:
    """A page reload (or a late joiner) re-renders from the traits: the stroke history comes back."""
    page = harness
    stroke = {"id": "a", "tool": "brush", "color": "#00ff00", "size": 8, "opacity": 1, "points": [[5, 5], [60, 60]]}
    mount_paint(page, session, strokes=[stroke])
    assert canvas_pixels(page)[32, 32].tolist() == [0, 255, 0, 255]


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


def test_editor_keeps_another_views_trajectory_that_arrived_during_a_drag(harness) -> None:
    """Two views: while one drags a new trajectory, the other's edit reaches it; both are kept."""
    page = harness
    theirs = {"points": [[8, 56], [20, 50]], "kind": "object", "easing": "linear", "radius": 8, "start": 0,
              "end": 1, "mask": None}  # fmt: skip
    mount_editor(page, live=False)
    to = lambda x, y: to_screen(page, ".ivw-overlay", x, y)  # noqa: E731
    page.mouse.move(*to(16, 16))
    page.mouse.down()
    page.mouse.move(*to(32, 24), steps=4)
    page.evaluate("(t) => model.kernel('trajectories', [t])", theirs)  # the other view's drag lands now
    page.mouse.move(*to(48, 40), steps=4)
    page.mouse.up()
    page.wait_for_function("(saved('trajectories') || []).length === 2")
    kept, mine = saved(page, "trajectories")
    assert kept == theirs and close(mine["points"][1], (48, 40)) and saved(page, "selected") == 1
    drag(page, ".ivw-overlay", [(20, 50), (30, 40)])  # then moving their handle edits theirs in place
    page.wait_for_function("saved('trajectories')[0].points[1][0] > 29")
    assert close(saved(page, "trajectories")[1]["points"][1], (48, 40))


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
