"""Kernel-side tests of the widgets: trait round trips, memoryview payloads, malformed payloads.

Front-end messages are simulated the way ipykernel delivers them: an ``update`` comm message whose
binary values travel as separate buffers and arrive as ``memoryview`` objects.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from typing import Any

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers
from PIL import Image

from ivcore import Session, Trajectory, Video
from ivwidgets import (
    PaintCanvas,
    Studio,
    TrajectoryEditor,
    VideoPlayer,
    latents_to_rgb,
    parse_trajectories,
    rasterize_mask,
    rle_encode,
    trajectory_to_data,
)
from ivwidgets._common import asset, decode_png


def png(image: Image.Image | np.ndarray) -> bytes:
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def from_frontend(widget: Any, **state: Any) -> None:
    """Deliver ``state`` to ``widget`` as an ipykernel comm message (binary values as memoryviews)."""
    state, buffer_paths, buffers = _remove_buffers(state)
    msg = {
        "content": {"data": {"method": "update", "state": state, "buffer_paths": buffer_paths}},
        "buffers": [memoryview(bytes(b)) for b in buffers],
    }
    widget._handle_msg(msg)


def to_frontend(widget: Any, name: str) -> tuple[dict, list[memoryview]]:
    """What the kernel sends for one trait: JSON state plus binary buffers."""
    state, buffer_paths, buffers = _remove_buffers(widget.get_state(name))
    return {"state": state, "buffer_paths": buffer_paths}, [memoryview(bytes(b)) for b in buffers]


def roundtrip(widget: Any, other: Any, name: str, value: Any) -> Any:
    """Set ``name`` in the kernel, serialize it, deliver it back as a front-end update to ``other``."""
    setattr(widget, name, value)
    msg, buffers = to_frontend(widget, name)
    other._handle_msg({"content": {"data": {"method": "update", **msg}}, "buffers": buffers})
    return getattr(other, name)


def layer_png(size=(64, 64), box=(10, 20, 30, 40), color=(255, 0, 0, 255)) -> bytes:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    layer.paste(color, box)
    return png(layer)


@pytest.fixture(scope="module")
def session() -> Session:
    return Session.tiny(seed=0)


@pytest.fixture()
def s(session: Session) -> Session:
    """The shared tiny session, reset to a blank state (building one takes seconds)."""
    session.clear_paint()
    session.trajectories = []
    session.lam = 0.0  # the default: lambda follows the edits
    return session


# -- assets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["paint_canvas.js", "trajectory_editor.js", "video_player.js"])
def test_esm_modules_are_anywidget_modules(name: str) -> None:
    text = asset(name)
    assert "export default { render }" in text
    assert "return () =>" in text  # a cleanup, so re-rendered views do not leak listeners


def test_widgets_use_the_shipped_modules(s: Session) -> None:
    assert PaintCanvas(s, show_edited=False)._esm == asset("paint_canvas.js")
    assert VideoPlayer()._esm == asset("video_player.js")
    assert "touch-action: none" in asset("widgets.css")


# -- PaintCanvas --------------------------------------------------------------------------------


def test_plain_bytes_trait_rejects_memoryview() -> None:
    """Why the widgets use ipywidgets' bytes serialization: memoryview fails plain Bytes."""
    with pytest.raises(traitlets.TraitError):
        traitlets.Bytes().validate(None, memoryview(b"x"))


PAINT_VALUES = {
    "color": "#00ff00",
    "brush_size": 12.5,
    "opacity": 0.4,
    "tool": "eraser",
    "strokes": [{"tool": "brush", "color": "#ff0000", "size": 4.0, "opacity": 1.0, "points": [[1.0, 2.0]]}],
    "undone": [{"tool": "clear"}],
    "busy": True,
    "error": "boom",
    "width": 64,
    "height": 64,
    "image": b"\x89PNG-not-really",
    "edited": b"\x89PNG-edited",
    "show_edited": True,
}


@pytest.mark.parametrize("name", sorted(PAINT_VALUES))
def test_paint_trait_roundtrip(s: Session, name: str) -> None:
    a, b = PaintCanvas(s, show_edited=False), PaintCanvas(s, show_edited=False)
    assert roundtrip(a, b, name, PAINT_VALUES[name]) == PAINT_VALUES[name]


def send_event(widget: Any, content: dict, pixels: Any = None) -> None:
    """Deliver a front end's custom message (``model.send``) as ipykernel does, the PNG as a buffer."""
    buffers = [] if pixels is None else [pixels if isinstance(pixels, memoryview) else memoryview(pixels)]
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": buffers})


def paint_stroke(widget: Any, pixels: Any = None, **fields: Any) -> str:
    """One stroke as the front end sends it when it ends: plain data plus its own pixels; returns its id."""
    stroke = {"id": uuid.uuid4().hex, "tool": "brush", "color": "#ff0000", "size": 4.0, "opacity": 1.0}
    stroke.update({"points": [[10.0, 20.0], [30.0, 40.0]]}, **fields)
    send_event(widget, {"event": "stroke", "stroke": stroke}, layer_png() if pixels is None else pixels)
    return stroke["id"]


@pytest.mark.parametrize("wrap", [memoryview, bytes], ids=["jupyter-memoryview", "marimo-bytes"])
def test_paint_stroke_becomes_session_paint(s: Session, wrap) -> None:
    w = PaintCanvas(s)
    sid = paint_stroke(w, wrap(layer_png()))
    assert w.error == ""
    assert [st["id"] for st in w.strokes] == [sid] and w.strokes[0]["points"] == [[10.0, 20.0], [30.0, 40.0]]
    painted = np.asarray(s.paint_layer)
    assert painted.shape == (64, 64, 4)
    assert (painted[20:40, 10:30] == [255, 0, 0, 255]).all()
    assert painted[:20].sum() == 0
    assert w.wait(60)
    assert Image.open(io.BytesIO(w.edited)).size == (64, 64)  # x~' shown beside the canvas
    assert not w.busy


def test_paint_history_composites_like_the_canvas(s: Session) -> None:
    """Opacity, eraser, clear, undo and redo: the layer the session gets, stroke by stroke."""
    w = PaintCanvas(s, show_edited=False)
    paint_stroke(w, layer_png(box=(0, 0, 32, 64), color=(0, 0, 255, 255)), color="#0000ff")
    paint_stroke(w, layer_png(box=(16, 0, 48, 64)), opacity=0.5)  # red at half over blue, and over nothing
    layer = np.asarray(s.paint_layer).astype(int)
    assert np.abs(layer[5, 20] - [128, 0, 128, 255]).max() <= 1
    assert np.abs(layer[5, 40] - [255, 0, 0, 128]).max() <= 1 and layer[5, 60, 3] == 0
    paint_stroke(w, layer_png(box=(0, 0, 64, 8), color=(0, 0, 0, 255)), tool="eraser")
    assert np.asarray(s.paint_layer)[:8, :, 3].max() == 0 and np.asarray(s.paint_layer)[8, 5, 3] == 255
    send_event(w, {"event": "clear", "id": "c1"})
    assert s.paint_layer is None and [st["tool"] for st in w.strokes][-1] == "clear"
    send_event(w, {"event": "undo"})
    send_event(w, {"event": "undo"})  # the eraser comes off too
    assert [st["tool"] for st in w.strokes] == ["brush", "brush"] and len(w.undone) == 2
    np.testing.assert_array_equal(np.asarray(s.paint_layer), layer.astype(np.uint8))
    send_event(w, {"event": "redo"})
    assert [st["tool"] for st in w.strokes] == ["brush", "brush", "eraser"] and len(w.undone) == 1
    paint_stroke(w)  # a new stroke drops the redo stack
    assert w.undone == []


def test_paint_strokes_from_several_views_keep_arrival_order_and_none_doubles(s: Session) -> None:
    w = PaintCanvas(s, show_edited=False)
    ids = [paint_stroke(w, points=[[float(k), 1.0]]) for k in range(20)]
    assert [st["id"] for st in w.strokes] == ids
    stroke = {**w.strokes[3]}
    send_event(w, {"event": "stroke", "stroke": stroke}, layer_png())  # the same stroke delivered again
    assert [st["id"] for st in w.strokes] == ids and w.error == ""


def test_paint_transparent_stroke_undo_and_clear_leave_no_paint(s: Session) -> None:
    w = PaintCanvas(s, show_edited=False)
    paint_stroke(w)
    assert s.paint_layer is not None
    send_event(w, {"event": "undo"})  # the only stroke
    assert s.paint_layer is None and w.strokes == []
    paint_stroke(w, png(Image.new("RGBA", (64, 64))))  # a stroke that covers nothing
    assert s.paint_layer is None
    paint_stroke(w)
    w.clear()
    assert s.paint_layer is None and w.strokes == [] and w.undone == []


def _huge_png() -> bytes:
    rng = np.random.default_rng(0)
    return png(rng.integers(0, 255, (1100, 1100, 4), dtype=np.uint8))


MALFORMED = {
    "not a png": b"GIF89a" + b"\x00" * 100,
    "jpeg": b"\xff\xd8\xff\xe0" + b"\x00" * 100,
    "truncated png": layer_png()[:60],
    "wrong size": layer_png(size=(32, 32), box=(0, 0, 8, 8)),
    "16-bit png": png(Image.fromarray(np.zeros((64, 64), dtype=np.uint16))),
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(MALFORMED) + ["huge"])
def test_paint_malformed_pixels_set_error_and_keep_session(s: Session, case: str) -> None:
    w = PaintCanvas(s, show_edited=False)
    w.send = lambda content, buffers=None: sent.append(content)
    sent: list[dict] = []
    paint_stroke(w, layer_png(box=(0, 0, 5, 5)))
    before, history = np.asarray(s.paint_layer).copy(), list(w.strokes)
    sid = paint_stroke(w, _huge_png() if case == "huge" else MALFORMED[case])
    assert "stroke pixels" in w.error, case
    assert sent == [{"refused": sid}]  # the sending view drops the stroke it showed as pending
    np.testing.assert_array_equal(np.asarray(s.paint_layer), before)
    assert w.strokes == history
    paint_stroke(w)  # the next good stroke clears the error
    assert w.error == ""


BAD_STROKES = {
    "stroke.tool": {"tool": "spray"},
    "stroke.color": {"color": "red"},
    "stroke.points": {"points": []},
    "stroke.points[1]": {"points": [[1, 2], [3]]},
    "stroke.size": {"size": float("nan")},
    "stroke.opacity": {"opacity": 2},
    "stroke.id": {"id": ""},
}


@pytest.mark.parametrize("field", sorted(BAD_STROKES))
def test_paint_bad_stroke_names_the_field(s: Session, field: str) -> None:
    w = PaintCanvas(s, show_edited=False)
    paint_stroke(w, **BAD_STROKES[field])
    assert w.error.startswith(field) and w.strokes == [] and s.paint_layer is None
    send_event(w, {"event": "spray"})
    assert "paint event" in w.error


def test_decode_png_checks_size_before_decoding() -> None:
    with pytest.raises(ValueError, match="at most 100 bytes"):
        decode_png(layer_png(), field="f", size=(64, 64), max_bytes=100)
    with pytest.raises(ValueError, match="64x64"):
        decode_png(layer_png(size=(4096, 1)), field="f", size=(64, 64), max_bytes=10**7)


# -- TrajectoryEditor ---------------------------------------------------------------------------


TRAJ = {
    "points": [[16.0, 16.0], [30.0, 20.0], [48.0, 40.0]],
    "kind": "object",
    "easing": "ease-in-out",
    "radius": 10.0,
    "start": 0.0,
    "end": 1.0,
    "mask": None,
}

EDITOR_VALUES = {
    "trajectories": [TRAJ],
    "selected": 0,
    "tool": "lasso",
    "easing": "ease-in-out",
    "radius": 20.0,
    "mask_size": 4.0,
    "live": False,
    "busy": True,
    "error": "boom",
    "width": 64,
    "height": 64,
    "image": b"\x89PNG-x",
    "preview": b"\x00\x00\x00\x18ftypmp42",
}


@pytest.mark.parametrize("name", sorted(EDITOR_VALUES))
def test_editor_trait_roundtrip(s: Session, name: str) -> None:
    a, b = TrajectoryEditor(s, show_preview=False), TrajectoryEditor(s, show_preview=False)
    assert roundtrip(a, b, name, EDITOR_VALUES[name]) == EDITOR_VALUES[name]
    a.wait(60)
    b.wait(60)


def test_editor_data_becomes_session_trajectories(s: Session) -> None:
    w = TrajectoryEditor(s)
    from_frontend(w, trajectories=[TRAJ, {"points": [[5, 5], [5, 5]], "kind": "anchor"}])
    assert w.error == ""
    assert [tr.points for tr in s.trajectories] == [[(16, 16), (30, 20), (48, 40)], [(5, 5), (5, 5)]]
    assert s.trajectories[0].easing == "ease-in-out" and s.trajectories[1].kind == "anchor"
    assert w.wait(60)
    assert w.preview[4:8] == b"ftyp"  # the motion preview, as mp4
    assert w.image.startswith(b"\x89PNG")  # x~ drawn under the handles


def test_editor_masks_rasterize(s: Session) -> None:
    lasso = {"type": "lasso", "points": [[10, 10], [30, 10], [30, 30], [10, 30]]}
    brush = {"type": "brush", "size": 4, "points": [[50, 50], [60, 50]]}
    w = TrajectoryEditor(s, show_preview=False)
    from_frontend(w, trajectories=[{**TRAJ, "mask": [lasso, brush]}])
    assert w.error == ""
    mask = s.trajectories[0].mask
    assert mask.shape == (64, 64) and mask[20, 20] and mask[50, 55] and not mask[5, 5]
    # and back: a session mask becomes an RLE shape the editor can draw and send back unchanged
    data = trajectory_to_data(s.trajectories[0])
    assert data["mask"][0]["type"] == "rle"
    again = parse_trajectories([data], (64, 64))
    np.testing.assert_array_equal(again[0].mask, mask)
    w2 = TrajectoryEditor(s, show_preview=False)  # picks up the session's trajectories
    assert w2.trajectories == [data]


def test_rle_matches_ivcore_format() -> None:
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3, 2:4] = True
    ours = rle_encode(mask)
    theirs = Trajectory(points=[(0, 0), (1, 1)], mask=mask).to_dict()["mask"]
    assert {k: ours[k] for k in ("shape", "runs")} == theirs
    np.testing.assert_array_equal(rasterize_mask(theirs, (5, 4), "m"), mask)


BAD_TRAJECTORIES = {
    "not a list": {"points": [[1, 2], [3, 4]]},
    "not a dict": [[[1, 2], [3, 4]]],
    "no points": [{"kind": "object"}],
    "one point": [{"points": [[1, 2]]}],
    "points a string": [{"points": "1,2;3,4"}],
    "three coordinates": [{"points": [[1, 2, 3], [4, 5, 6]]}],
    "string coordinates": [{"points": [["1", "2"], ["3", "4"]]}],
    "nan": [{"points": [[float("nan"), 2], [3, 4]]}],
    "bool": [{"points": [[True, 2], [3, 4]]}],
    "outside the image": [{"points": [[1, 2], [300, 4]]}],
    "bad kind": [{"points": [[1, 2], [3, 4]], "kind": "teleport"}],
    "bad easing": [{"points": [[1, 2], [3, 4]], "easing": "bounce"}],
    "bad radius": [{"points": [[1, 2], [3, 4]], "radius": -1}],
    "bad window": [{"points": [[1, 2], [3, 4]], "start": 0.8, "end": 0.2}],
    "bad mask shape": [{"points": [[1, 2], [3, 4]], "mask": [{"type": "star"}]}],
    "bad lasso": [{"points": [[1, 2], [3, 4]], "mask": [{"type": "lasso", "points": [[1, 1]]}]}],
    "bad rle": [{"points": [[1, 2], [3, 4]], "mask": [{"type": "rle", "shape": [64, 64], "runs": [5]}]}],
    "too many points": [{"points": [[1, 1]] * 5000}],
}


@pytest.mark.parametrize("case", sorted(BAD_TRAJECTORIES))
def test_editor_bad_point_lists_set_error_and_keep_session(s: Session, case: str) -> None:
    w = TrajectoryEditor(s, show_preview=False)
    from_frontend(w, trajectories=[TRAJ])
    before = s.trajectories
    w.error = ""
    state = {"trajectories": BAD_TRAJECTORIES[case]}
    data = {"method": "update", "state": state, "buffer_paths": []}
    w._handle_msg({"content": {"data": data}, "buffers": []})
    assert w.error, case
    assert "trajectories" in w.error
    assert s.trajectories == before


# -- VideoPlayer --------------------------------------------------------------------------------


PLAYER_VALUES = {
    "value": b"\x00\x00\x00\x18ftypmp42",
    "fps": 12.0,
    "num_frames": 16,
    "frame": 3,
    "playing": True,
    "loop": False,
    "speed": 2.0,
    "filename": "fox.mp4",
    "error": "boom",
}


@pytest.mark.parametrize("name", sorted(PLAYER_VALUES))
def test_player_trait_roundtrip(name: str) -> None:
    a, b = VideoPlayer(num_frames=16), VideoPlayer(num_frames=16)
    assert roundtrip(a, b, name, PLAYER_VALUES[name]) == PLAYER_VALUES[name]


def test_player_video_is_the_video_on_screen() -> None:
    video = Video(np.zeros((2, 16, 16, 3), np.uint8), fps=4)
    player = VideoPlayer()
    assert player.video is None
    player.show(video)
    assert player.video is video and player.num_frames == 2
    player.show(video.to_mp4())  # raw bytes: no Video to point at
    assert player.video is None and player.value == video.to_mp4()


def test_player_shows_a_video() -> None:
    frames = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    frames[:, :, :16] = 200
    p = VideoPlayer(Video(frames, fps=10))
    assert p.value[4:8] == b"ftyp" and p.fps == 10 and p.num_frames == 5 and p.playing
    from_frontend(p, frame=4)
    assert p.frame == 4
    with pytest.raises(traitlets.TraitError):
        p.frame = 5


# -- Studio -------------------------------------------------------------------------------------


def test_latents_to_rgb_strip() -> None:
    import torch

    strip = latents_to_rgb(torch.randn(1, 4, 10, 16, 16), max_frames=8, cell=64)
    assert strip.shape == (64, 8 * 64, 3) and strip.dtype == np.uint8


def test_studio_generates_in_background_once(s: Session) -> None:
    st = Studio(s)
    st.steps.value = 4
    st.frames.value = 4
    st.lam.value = 0.25
    assert s.lam == 0.25
    st.motion.value = "it moves"
    assert s.motion == "it moves"
    before = s.last_video
    started = threading.Event()
    original = st._on_step

    def slow_step(step: int, total: int, latents: Any) -> None:
        started.set()
        time.sleep(0.2)
        original(step, total, latents)

    st._on_step = slow_step  # type: ignore[method-assign]
    assert st.generate() is True
    assert started.wait(60)
    assert st.generate() is False  # a second click while running starts nothing
    assert st.notice.value.startswith("already running")
    assert st.generate_button.disabled
    assert st.wait(120)
    assert st.notice.value == ""  # the notice goes when the run it refers to ends
    assert st.error.value == "", st.error.value
    assert s.last_video is not None and s.last_video is not before
    assert s.last_video.frames.shape[0] == 4
    assert st.player.value[4:8] == b"ftyp" and st.player.num_frames == 4
    assert st.progress.value == st.progress.max == 4
    assert st.status.value.startswith("done")
    assert (st.latents.width, st.latents.height) == (4 * 64, 64)
    assert bytes(st.x_tilde.value)[:4] == bytes(st.x_tilde_edited.value)[:4] == b"\x89PNG"
    assert not st.generate_button.disabled and st.cancel_button.disabled


def test_studio_cancel_keeps_last_video(s: Session) -> None:
    st = Studio(s)
    st.steps.value = 30
    st.frames.value = 2
    previous = st.player.value
    last = s.last_video
    original = st._on_step

    def step(step: int, total: int, latents: Any) -> None:
        original(step, total, latents)
        if step == 1:
            st.cancel()

    st._on_step = step  # type: ignore[method-assign]
    assert st.generate()
    assert st.wait(120)
    assert st.status.value.startswith("cancelled"), st.status.value
    assert st.player.value == previous and s.last_video is last
    assert st.error.value == ""


def test_studio_shows_instruction_errors(s: Session) -> None:
    st = Studio(s)
    st.seed.value = -5
    assert st.generate()
    assert st.wait(60)
    assert "seed" in st.error.value and st.status.value == "failed"
    st.lam.value = 0.5
    assert st.error.value == ""


def _upload(name: str, content: bytes) -> dict[str, Any]:
    return {"name": name, "type": "image/png", "size": len(content), "content": memoryview(content), "last_modified": 0}


def test_studio_upload_sets_the_image(s: Session) -> None:
    st = Studio(s)
    paint_stroke(st.paint)
    assert s.paint_layer is not None
    blue = png(Image.new("RGB", (200, 100), (0, 0, 255)))
    st.upload.set_state({"value": [_upload("b.png", blue)]})
    assert st.error.value == "", st.error.value
    assert np.asarray(s.image)[32, 32].tolist() == [0, 0, 255] and s.image.size == (64, 64)
    assert s.paint_layer is None and st.paint.strokes == []
    assert Image.open(io.BytesIO(st.paint.image)).getpixel((5, 5)) == (0, 0, 255)
    st.upload.set_state({"value": [_upload("x.png", b"abc")]})
    assert "image" in st.error.value
    assert np.asarray(s.image)[32, 32].tolist() == [0, 0, 255]
    assert st.wait(60)


def test_studio_follows_changes_made_in_code(s: Session) -> None:
    """Setting the session from a notebook cell updates the app (Session.observe)."""
    st = Studio(s)
    s.image = Image.new("RGB", (64, 64), (0, 200, 0))
    assert Image.open(io.BytesIO(st.paint.image)).getpixel((5, 5)) == (0, 200, 0)
    s.content = "a green field"
    s.motion = "grass waves"
    s.lam = 0.25
    assert (st.content.value, st.motion.value, st.lam.value) == ("a green field", "grass waves", 0.25)
    assert st.wait(60)
    assert s.content == "a green field" and s.lam == 0.25


def test_studio_controls_follow_the_declared_fields(s: Session) -> None:
    """Bounds, values and tooltips of the Studio's number controls come from ivcore.fields."""
    from ivcore.fields import widget_hints
    from ivwidgets.studio import STEPS_UI_MAX

    s.steps, s.num_frames = 7, 3
    app = Studio(s, scrub_lams=None)
    hints = widget_hints(s)
    assert (app.frames.min, app.frames.max, app.frames.value) == (1, s.video_backend.max_frames, 3)
    assert (app.steps.min, app.steps.max, app.steps.value) == (1, min(hints["steps"]["high"], STEPS_UI_MAX), 7)
    assert app.frames.tooltip == hints["num_frames"]["doc"] and app.seed.tooltip == hints["seed"]["doc"]
