"""The Studio and its widgets at non-square sizes: the size and fit pickers, every view following."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_widgets import layer_png, paint_stroke  # as the page sends a stroke

from ivcore import Session
from ivwidgets import Studio
from ivwidgets.studio_size import size_choices


@pytest.fixture(scope="module")
def wide() -> Session:
    return Session.tiny(seed=0, size=(96, 64))


def png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_size_choices_offer_what_the_models_take(wide: Session) -> None:
    choices = dict((size, label) for label, size in size_choices(wide))
    assert list(choices)[0] == (64, 64) and "native" in choices[(64, 64)]
    for size in [(96, 64), (64, 96), (88, 64), (64, 88), (112, 64), (64, 112)]:
        assert size in choices, size
    assert "landscape 3:2" in choices[(96, 64)] and "portrait 2:3" in choices[(64, 96)]
    assert all(w % 8 == 0 and h % 8 == 0 for w, h in choices)  # the tiny models' multiple
    wide.size = (120, 64)  # a size set in code is offered too
    try:
        assert (120, 64) in dict((s, lab) for lab, s in size_choices(wide))
    finally:
        wide.size = (96, 64)


def test_studio_at_96x64_shows_every_view_at_that_size(wide: Session) -> None:
    st = Studio(wide, scrub_lams=None)
    assert st.size_picker.value == (96, 64) and st.fit_picker.value == "crop"
    assert (st.paint.width, st.paint.height) == (96, 64) == png_size(st.paint.image)
    assert (st.editor.width, st.editor.height) == (96, 64)
    assert st.wait(60)
    assert png_size(st.x_tilde.value) == (96, 64) == png_size(st.x_tilde_edited.value)
    # a stroke at the right edge: its pixels land in the image's last columns
    edge = np.zeros((64, 96, 4), np.uint8)
    edge[20:30, 92:96] = (255, 0, 0, 255)
    paint_stroke(st.paint, layer_png(size=(96, 64), box=(92, 20, 96, 30)), points=[[95.0, 25.0]])
    painted = np.asarray(wide.paint_layer)
    np.testing.assert_array_equal(painted, edge)
    st.steps.value, st.frames.value = 2, 4
    assert st.generate() and st.wait(120)
    assert st.error.value == "" and st.status.value.startswith("done")
    assert st.player.video.frames.shape == (4, 64, 96, 3) and st.player.num_frames == 4
    assert st.preview_frames is not None and st.preview_frames.shape[1:] == (64, 96, 3)


def test_size_picker_refits_and_every_view_follows(wide: Session) -> None:
    st = Studio(wide, scrub_lams=None)
    picture = np.zeros((200, 300, 3), np.uint8)
    picture[:, :, 2] = 255
    picture[:, :40] = (255, 0, 0)  # red and green sides: a crop to portrait cuts them, a pad keeps them
    picture[:, -40:] = (0, 255, 0)
    wide.image = picture
    paint_stroke(st.paint, layer_png(size=(96, 64)))
    assert st.paint.strokes
    st.size_picker.value = (64, 96)  # the user picks portrait
    try:
        assert wide.size == (64, 96) and wide.image.size == (64, 96)
        assert (st.paint.width, st.paint.height) == (64, 96) == png_size(st.paint.image)
        assert st.paint.strokes == [] and wide.paint_layer is None  # drawn on the other shape: cleared
        assert (st.editor.width, st.editor.height) == (64, 96)
        assert np.asarray(wide.image)[48, [0, 63]].tolist() == [[0, 0, 255], [0, 0, 255]]  # cropped: no sides
        st.fit_picker.value = "pad"
        assert wide.fit == "pad" and st.fit_picker.value == "pad"
        middle = np.asarray(wide.image)[48]
        assert middle[1].tolist() == [255, 0, 0] and middle[62].tolist() == [0, 255, 0]  # the whole picture
        wide.size = (80, 64)  # in code: the picker follows, with a size it did not offer
        assert st.size_picker.value == (80, 64) and (st.paint.width, st.paint.height) == (80, 64)
        assert st.wait(60)
        assert png_size(st.x_tilde.value) == (80, 64)
    finally:
        wide.fit = "crop"
        wide.size = (96, 64)
    assert st.size_picker.value == (96, 64)
    assert st.wait(60)


def test_paint_set_in_code_shows_on_the_canvas(wide: Session) -> None:
    st = Studio(wide, scrub_lams=None)
    layer = Image.new("RGBA", (96, 64), (0, 0, 0, 0))
    layer.paste((0, 255, 0, 255), (80, 0, 96, 16))
    wide.paint(layer)
    (entry,) = st.paint.strokes
    assert entry["tool"] == "layer"
    paint_stroke(st.paint, layer_png(size=(96, 64), box=(0, 0, 8, 8)))  # a stroke goes over it
    painted = np.asarray(wide.paint_layer)
    assert painted[5, 90].tolist() == [0, 255, 0, 255] and painted[4, 4].tolist() == [255, 0, 0, 255]
    assert len(st.paint.strokes) == 2  # the canvas's own stroke is not taken for a change made in code
    wide.clear_paint()
    assert st.paint.strokes == []
    assert st.wait(60)


def test_a_canvas_alone_drops_strokes_of_the_old_size(wide: Session) -> None:
    """Without a Studio to redraw it, a canvas whose picture changed size starts a new history."""
    from ivwidgets import PaintCanvas

    canvas = PaintCanvas(wide, show_edited=False)
    paint_stroke(canvas, layer_png(size=(96, 64)))
    wide.size = (64, 96)
    try:
        sid = paint_stroke(canvas, layer_png(size=(64, 96)))
        assert [s["id"] for s in canvas.strokes] == [sid] and canvas.error == ""
        canvas.undo()
        assert wide.paint_layer is None and canvas.strokes == []
    finally:
        wide.size = (96, 64)
