"""Studio(Session.shapes()): what a student does in the app shows in the video.

The widgets get the same messages the page sends (a layer PNG on stroke end, trajectories as
plain data, the lambda slider), so this checks the whole Python side of the app with trained
models: the painted square is in the video at lambda 0 and gone at lambda 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from ivcore import Session, Trajectory
from ivcore.shapes import world
from ivcore.shapes.demo import shapes_scene
from ivcore.shapes.evaluate import painted_square

pytestmark = pytest.mark.slow


def yellow_iou(frames: np.ndarray, mask: np.ndarray) -> list[float]:
    out = []
    for frame in frames:
        seg = world.segment(frame, "yellow")
        out.append((seg & mask).sum() / max(1, (seg | mask).sum()))
    return out


def test_paint_drag_and_lambda_in_the_studio():
    from ivwidgets import Studio
    from ivwidgets._common import encode_png
    from ivwidgets.trajectory import trajectory_to_data

    s = Session.shapes(seed=0)
    app = Studio(s, scrub_lams=None)  # this test is about paint, drag and lambda; tests/test_scrub.py has the sweep
    scene = shapes_scene()
    assert np.array_equal(np.asarray(s.image), world.render(scene))  # the app opens on a world scene
    s.content_strength = 0.0
    s.motion = "nothing moves"  # the Studio's motion box follows the session
    layer, mask = painted_square(scene, "yellow")
    app.paint.add_stroke({"id": "s1", "tool": "brush", "points": [[44, 20]]}, encode_png(layer))  # a stroke's end
    drag = Trajectory(points=[(44, 20), (48, 34), (40, 44)], mask=world.shape_mask(scene, 1))
    app.editor.trajectories = [trajectory_to_data(drag)]
    assert app.paint.error == "" and app.editor.error == ""
    assert s.paint_layer is not None and len(s.trajectories) == 1

    app.lam.value = 0.0
    assert app.generate() and app.wait(300)
    at0 = s.last_video.frames
    assert app.player.num_frames == 8 and len(app.player.value) > 1000
    app.lam.value = 1.0
    assert app.generate() and app.wait(300)
    at1 = s.last_video.frames

    assert np.mean(np.array(yellow_iou(at0, mask)) >= 0.5) >= 0.75, yellow_iou(at0, mask)
    assert max((world.segment(f, "yellow") & mask).sum() for f in at1) < 0.1 * mask.sum()
    # the dragged white square ends near the end of its path at lambda 0
    end = world.centroid(world.segment(at0[-1], "white"))
    start = world.centroid(world.segment(world.render(scene), "white"))
    assert end is not None and np.hypot(end[0] - (start[0] - 4), end[1] - (start[1] + 24)) <= 6
