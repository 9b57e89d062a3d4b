"""Kernel-side tests of the Studio's takes strip and story strip (no browser).

The strip gets the messages the page sends (a selection of take ids as an ``update`` comm
message); Restore, Continue and Undo are clicked from Python. One tiny session for the module
(building one takes seconds); each test starts from a blank story and the default instructions.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
import traitlets
from PIL import Image
from test_widgets import from_frontend  # as the page sends a state update

from ivcore import Session, Video
from ivwidgets import Studio, TakesStrip
from ivwidgets._common import asset
from ivwidgets.lam_control import shape_of
from ivwidgets.takes_strip import gif_data_url, short_value

STEPS, FRAMES = 3, 4
TIMEOUT = 300


@pytest.fixture(scope="module")
def session() -> Session:
    return Session.tiny(seed=0)


@pytest.fixture()
def s(session: Session) -> Session:
    """The shared tiny session: an empty story, no edits, the default lambda, seed and settings."""
    session.story.clear()
    session.image = Image.new("RGB", session.size, (90, 120, 200))
    session.trajectories = []
    session.lam = 0.0
    session.motion = ""
    session.seed = 0
    return session


def studio(s: Session, **kwargs: Any) -> Studio:
    app = Studio(s, scrub_lams=kwargs.pop("scrub_lams", None), **kwargs)
    app.steps.value, app.frames.value = STEPS, FRAMES
    return app


def generate(app: Studio, lam: float | None = None) -> Any:
    """Click Generate (at ``lam`` on the slider) and wait; returns the new take."""
    if lam is not None:
        app.lam.value = lam
    n = len(app.session.takes)
    assert app.generate() and app.wait(TIMEOUT), app.status.value
    assert app.error.value == "", app.error.value
    assert len(app.session.takes) == n + 1
    return app.session.takes[-1]


def red_layer(s: Session) -> Image.Image:
    layer = Image.new("RGBA", s.size, (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (10, 20, 30, 40))
    return layer


# -- the strip on its own -------------------------------------------------------------------------


def test_strip_module_is_an_anywidget_module() -> None:
    text = asset("takes_strip.js")
    assert "export default { render }" in text and "return () =>" in text
    assert ".ivw-take" in asset("widgets.css")


def test_strip_shows_each_take_newest_first_with_a_looping_thumbnail(s: Session) -> None:
    strip = TakesStrip(s)
    first = len(strip.items)
    s.motion = "it drifts"
    s.generate(seed=3, num_frames=FRAMES, steps=STEPS, lam=0.25, progress=False)
    s.motion = ""
    s.generate(seed=4, num_frames=FRAMES, steps=STEPS, progress=False)
    older, newer = s.takes[-2:]
    assert len(strip.items) == first + 2  # it follows the session: a new take appears at once
    top, second = strip.items[:2]
    assert (top["id"], second["id"]) == (newer.id, older.id)  # newest first
    assert second["caption"] == "\u03bb 0.25" and top["caption"] == "\u03bb 0"
    for text in ("lambda 0.25", "seed 3", "motion: it drifts"):  # the tooltip
        assert text in second["title"]
    assert second["kept"] is True
    gif = base64.b64decode(second["thumb"].split(",", 1)[1])
    image = Image.open(io.BytesIO(gif))
    assert second["thumb"].startswith("data:image/gif;base64,") and image.format == "GIF"
    assert image.n_frames == FRAMES and image.info.get("loop") == 0  # every frame, looping
    assert image.size == older.thumbnail.size


def test_strip_selection_lists_differences_and_refuses_bad_picks(s: Session) -> None:
    strip = TakesStrip(s)
    s.generate(seed=0, num_frames=FRAMES, steps=STEPS, lam=0.3, progress=False)
    s.generate(seed=1, num_frames=FRAMES, steps=STEPS, lam=0.7, progress=False)
    a, b = s.takes[-2:]
    seen: list[list[Any]] = []
    strip.on_select(seen.append)
    from_frontend(strip, selected=[b.id, a.id])  # picked newest first: still listed oldest first
    assert strip.selected_takes == [a, b] and seen[-1] == [a, b]
    lines = [f"{a.id} \u2192 {b.id}: 2 differences", "lam: 0.3 \u2192 0.7", "video_seed: 0 \u2192 1"]
    assert strip.diff.splitlines() == lines
    video, label = strip.selection_video()
    expected = Video.side_by_side([a.video, b.video], labels=[a.label(), b.label()])
    assert np.array_equal(video.frames, expected.frames) and label == f"{a.id} | {b.id} side by side"
    assert strip.selection_video()[0] is video  # the pair is made once
    from_frontend(strip, selected=[a.id, b.id, s.takes[0].id])  # a third from a broken page
    assert "at most 2" in strip.error and strip.selected == [b.id, a.id]
    from_frontend(strip, selected=["take-999"])
    assert "take-999" in strip.error and strip.selected == [b.id, a.id]
    from_frontend(strip, selected=[a.id])
    assert strip.error == "" and strip.selection_video() == (a.video, a.id)
    assert "seed 0" in strip.diff and "compare" in strip.diff


def test_strip_shows_the_newest_tiles_and_counts_the_older(s: Session) -> None:
    for seed in range(3):
        s.generate(seed=seed, num_frames=1, steps=1, progress=False)
    strip = TakesStrip(s, max_tiles=2)
    assert [item["id"] for item in strip.items] == [t.id for t in s.takes[::-1][:2]]
    assert strip.older == len(s.takes) - 2
    with pytest.raises(traitlets.TraitError):  # no tile, no selection
        strip.selected = [s.takes[0].id]


def test_short_values_and_gif() -> None:
    assert short_value("sha256:0123456789abcdef") == "picture 01234567"
    assert short_value(None) == "none" and short_value([{"points": []}] * 2) == "2 items"
    assert short_value(list(range(20))) == "[0, 1, 2, ...] (20)" and short_value("x" * 80).endswith("...")
    url = gif_data_url(Video(np.zeros((3, 8, 8, 3), np.uint8), fps=8))
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).n_frames >= 1


# -- the strip in the Studio ----------------------------------------------------------------------


def test_a_new_studio_starts_at_lambda_0_and_shows_errors_in_the_app() -> None:
    """Lambda follows the edits from the start (the engine's default); the schedule plot says so."""
    app = Studio(Session.tiny(seed=0), scrub_lams=None)
    assert app.session.lam == 0.0 and app.lam.value == 0.0 and app.lam_schedule.mode.value == "constant"
    assert app.lam_schedule.mode.style.button_width == "auto"  # a fixed width cut "constant" to "const..."
    plot = app.lam_schedule.plot.value
    assert f"\u03bb 0.00 at all {app.steps.value} steps" in plot and "<polyline" in plot
    for button in (app.continue_button, app.undo_segment_button, app.restore_button):
        assert button.layout.width == "auto"  # "Continue from the last frame" in full
    # errors of the story steps are shown in the app, never raised into the kernel's log
    assert app.undo_segment() and app.wait(TIMEOUT)  # no story yet
    assert app.status.value == "story failed" and "story" in app.error.value
    assert app.continue_story() and app.wait(TIMEOUT)  # no take yet
    assert app.status.value == "story failed" and "generate first" in app.error.value
    assert app.restore() is False and "select one take" in app.error.value


def test_clicks_show_one_take_or_two_side_by_side(s: Session) -> None:
    app = studio(s)
    a = generate(app, 0.3)
    assert app.takes_strip.selected == [a.id]  # the strip marks the take on screen
    b = generate(app, 0.7)
    assert app.takes_strip.selected == [b.id] and app.player.video is b.video
    from_frontend(app.takes_strip, selected=[a.id])  # a click on the older take
    assert app.player.video is a.video and app.showing.value == a.id
    assert not app.restore_button.disabled
    from_frontend(app.takes_strip, selected=[a.id, b.id])  # ctrl-click on the newer one
    shown = app.player.video
    assert shown.frames.shape[2] == 2 * a.video.frames.shape[2] + 2  # twice as wide (and a 2-pixel gap)
    assert np.array_equal(shown.frames, Video.side_by_side([a.video, b.video], labels=[a.label(), b.label()]).frames)
    assert app.player.num_frames == FRAMES and "side by side" in app.showing.value
    assert "lam: 0.3 \u2192 0.7" in app.takes_strip.diff
    assert app.restore_button.disabled  # Restore takes one
    assert app.restore() is False and "select one take" in app.error.value
    assert app.wait(TIMEOUT)


def test_restore_sets_everything_back_and_generate_is_bitwise(s: Session) -> None:
    app = studio(s)
    app.paint.add_stroke({"id": "s1", "tool": "brush", "points": [[20, 20]]}, _png(red_layer(s)))  # a stroke's end
    app.editor.trajectories = [{"points": [[20, 20], [44, 36]], "kind": "object"}]
    app.motion.value = "it drifts"
    app.seed.value = 3
    first = generate(app, 0.3)
    app.paint.clear()  # then another take: no paint, no drag, other lambda, seed, steps, motion
    app.editor.trajectories = []
    app.motion.value = "it spins"
    app.seed.value, app.steps.value = 5, STEPS + 1
    generate(app, 0.8)
    assert s.paint_layer is None and s.trajectories == []

    app.takes_strip.select(first)
    assert app.restore() and app.wait(TIMEOUT)
    assert app.error.value == "" and app.status.value.startswith(f"{first.id} restored")
    assert (app.lam.value, app.seed.value, app.steps.value, app.frames.value) == (0.3, 3, STEPS, FRAMES)
    assert app.motion.value == "it drifts" and s.motion == "it drifts"
    assert np.array_equal(np.asarray(s.paint_layer), np.asarray(red_layer(s)))  # the canvas did not clear it
    (entry,) = app.paint.strokes  # the canvas shows the restored paint as one layer entry
    assert entry["tool"] == "layer" and entry["src"].startswith("data:image/png;base64,")
    assert len(app.editor.trajectories) == 1 and len(s.trajectories) == 1
    assert app.player.video is first.video and "restored" in app.showing.value
    misses = s.stats["denoise"]["misses"]
    again = generate(app)  # Generate with the controls as restored
    assert np.array_equal(again.video.frames, first.video.frames)  # bitwise, from the denoise cache
    assert s.stats["denoise"]["misses"] == misses


def test_restore_brings_back_a_ramp(s: Session) -> None:
    app = studio(s)
    app.lam.value = 0.5
    app.lam_schedule.mode.value = "ramp up"
    ramp = generate(app)
    app.lam_schedule.mode.value = "constant"
    generate(app, 0.2)
    assert app.restore(ramp) and app.wait(TIMEOUT)
    assert (app.lam_schedule.mode.value, app.lam.value) == ("ramp up", 0.5)
    assert shape_of([0.0, 0.5, 1.0]) == (0.5, "ramp up") and shape_of([0.1, 0.9, 0.2]) is None
    assert shape_of(0.4) == (0.4, "constant")


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# -- the story strip ------------------------------------------------------------------------------


def test_continue_generate_and_undo_in_the_story_strip(s: Session) -> None:
    app = studio(s)
    assert app.continue_button.disabled == (not s.takes)
    assert app.undo_segment_button.disabled and "none yet" in app.story_status.value
    assert app.story_player not in app._story_box.children  # one player on the page until a story starts
    first = generate(app, 0.3)
    assert app.continue_story() and app.wait(TIMEOUT)
    assert app.error.value == "" and len(s.story) == 1 and s.story.segments == [first]
    assert np.array_equal(np.asarray(s.image), first.video.frames[-1])  # the last frame is the next image
    assert app.story_player.num_frames == FRAMES and "1 segment," in app.story_status.value
    assert app.story_player in app._story_box.children and not app.undo_segment_button.disabled

    second = generate(app)  # the next segment, made from the last frame: on trial in the story strip
    assert [t.id for t in app.story_segments] == [first.id, second.id]
    assert app.story_player.num_frames == 2 * FRAMES - 1  # the seam frame once
    assert "2 segments" in app.story_status.value and "on trial" in app.story_status.value
    assert np.array_equal(app.story_player.video.frames[FRAMES:], second.video.frames[1:])

    assert app.continue_story() and app.wait(TIMEOUT)  # Continue keeps it
    assert s.story.segments == [first, second] and s.story.video.num_frames == 2 * FRAMES - 1
    assert np.array_equal(app.story_player.video.frames, s.story.video.frames)
    assert "2 segments" in app.story_status.value and "on trial" not in app.story_status.value

    assert app.undo_segment() and app.wait(TIMEOUT)  # Undo: the second segment's start comes back
    assert s.story.segments == [first] and app.story_player.num_frames == FRAMES
    assert np.array_equal(np.asarray(s.image), first.video.frames[-1])
    assert "1 segment," in app.story_status.value  # the undone take is no trial: it was made before the undo


def test_continue_from_a_swept_lambda_makes_it_a_take_first(s: Session) -> None:
    app = studio(s, scrub_lams=(0.0, 1.0))
    app.paint.add_stroke({"id": "s1", "tool": "brush", "points": [[20, 20]]}, _png(red_layer(s)))  # an edit
    generate(app, 0.5)
    assert app.wait(TIMEOUT) and len(app._sweep.videos) == 3
    app.lam.value = 1.0  # a swept lambda: its video at once, no take
    swept = app.player.video
    assert app.showing.value == "lambda 1 from the sweep" and app._take_of(swept) is None
    assert app.takes_strip.selected == []  # the strip marks no take
    n = len(s.takes)
    assert app.continue_story() and app.wait(TIMEOUT)
    assert app.error.value == "" and len(s.takes) == n + 1
    (segment,) = s.story.segments
    assert segment is s.takes[-1] and segment.lam == 1.0
    assert np.array_equal(segment.video.frames, swept.frames)  # the swept video, made exactly


def test_generate_waits_for_a_restore_or_story_step(s: Session) -> None:
    from ivwidgets._common import session_lock

    app = studio(s)
    take = generate(app, 0.4)
    with session_lock(s):  # the restore waits for the lock in the worker
        assert app.restore(take) and app.busy
        assert app.generate() is False and app.notice.value.startswith("already running")
        assert app.continue_story() is False and app.undo_segment() is False
        assert app.generate_button.disabled and app.continue_button.disabled
    assert app.wait(TIMEOUT) and not app.busy and not app.generate_button.disabled
    assert app.status.value.startswith(f"{take.id} restored")
