"""Session behaviour: stage caches, errors that keep the last good state, commit, save/load, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import red_stroke, scene
from PIL import Image

from ivcore import Cancelled, InstructionError, Session, Trajectory


def misses(s: Session) -> dict[str, int]:
    return {stage: counts["misses"] for stage, counts in s.stats.items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def test_stats_has_every_stage(session):
    assert set(session.stats) == {"text", "image", "encode", "denoise", "decode"}
    assert all(v == {"hits": 0, "misses": 0} for v in session.stats.values())


def test_changing_only_lam_reruns_only_denoise_and_decode(session):
    session.paint(red_stroke())
    session.lam = 0.5
    session.generate(progress=False)
    before = misses(session)
    session.lam = 0.4
    session.generate(progress=False)
    assert delta(before, misses(session)) == {"text": 0, "image": 0, "encode": 0, "denoise": 1, "decode": 1}


def test_changing_motion_text_reencodes_only_that_text(session):
    session.generate(progress=False)
    before = misses(session)
    session.motion = "the sun sets slowly"
    session.generate(progress=False)
    assert delta(before, misses(session)) == {"text": 1, "image": 0, "encode": 0, "denoise": 1, "decode": 1}


def test_painting_reruns_p_img_for_edited_only(session):
    session.lam = 0.5
    session.generate(progress=False)
    before = misses(session)
    session.paint(red_stroke())
    session.generate(progress=False)
    # x~' is new (one P_img run, one encode); x~ and both texts come from the cache
    assert delta(before, misses(session)) == {"text": 0, "image": 1, "encode": 1, "denoise": 1, "decode": 1}


def test_repeat_generate_is_a_cache_hit(session):
    first = session.generate(progress=False)
    hits = session.stats["denoise"]["hits"]
    again = session.generate(progress=False)
    assert session.stats["denoise"]["hits"] == hits + 1
    assert np.array_equal(first.frames, again.frames)


def test_cache_is_bounded():
    from ivcore.stages.cache import StageCache

    cache = StageCache(max_bytes=1000)
    for i in range(10):
        cache.put("decode", str(i), np.zeros(300, np.uint8))
    assert cache.nbytes <= 1000 and len(cache) == 3
    assert cache.get_or_compute("decode", "9", lambda: None) is not None  # newest kept
    assert cache.get_or_compute("decode", "0", lambda: "recomputed") == "recomputed"  # oldest evicted


def test_content_strength_zero_keeps_image_exactly(session):
    session.content_strength = 0.0
    assert np.array_equal(np.asarray(session.intermediate(edited=False)), np.asarray(session.image))
    session.content_strength = 0.8
    assert not np.array_equal(np.asarray(session.intermediate(edited=False)), np.asarray(session.image))


def test_image_is_fitted_to_model_size(session):
    session.image = np.zeros((30, 90, 3), np.uint8)
    assert session.image.size == session.size


BAD_INPUTS = [
    ("lam", 1.5),
    ("lam", -0.1),
    ("lam", float("nan")),
    ("lam", "half"),
    ("lam", []),
    ("lam", [0.5, 2.0]),
    ("content", 3),
    ("motion", None),
    ("negative_prompt", b"bytes"),
    ("num_frames", 0),
    ("num_frames", 1000),
    ("steps", 0),
    ("steps", 2.5),
    ("seed", -1),
    ("content_strength", 1.5),
    ("guidance", float("inf")),
    ("image", np.zeros((0, 0, 3), np.uint8)),
    ("image", "no/such/file.png"),
    ("image", np.zeros((8, 8, 5), np.uint8)),
    ("image", 42),
    ("trajectory_mode", "teleport"),
    ("motion_scale", 7),
]


@pytest.mark.parametrize(("field", "value"), BAD_INPUTS, ids=[f"{f}={v!r}"[:40] for f, v in BAD_INPUTS])
def test_bad_input_raises_and_keeps_state(session, field, value):
    session.paint(red_stroke())
    session.lam = 0.5
    good = session.generate(progress=False)
    before = session.to_dict()
    with pytest.raises(InstructionError) as err:
        setattr(session, field, value)
    assert isinstance(err.value, ValueError)
    assert err.value.field.split("[")[0] == field
    assert field in str(err.value) and "allowed" in str(err.value)
    assert session.to_dict() == before
    assert session.last_video is good
    again = session.generate(progress=False)
    assert np.array_equal(again.frames, good.frames)


def test_unreadable_image_file(session, tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png at all")
    with pytest.raises(InstructionError, match="image"):
        session.image = path


@pytest.mark.parametrize(
    "layer",
    [
        np.zeros((32, 32, 4), np.uint8),  # wrong size
        np.zeros((64, 64, 3), np.uint8),  # no alpha
        Image.new("RGB", (64, 64)),  # wrong mode
        Image.new("RGBA", (65, 64)),
        "paint.png",
    ],
    ids=["small", "rgb-array", "rgb-image", "odd-size", "string"],
)
def test_bad_paint_layer(session, layer):
    session.paint(red_stroke())
    kept = np.asarray(session.paint_layer)
    with pytest.raises(InstructionError, match="paint"):
        session.paint(layer)
    assert np.array_equal(np.asarray(session.paint_layer), kept)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"num_frames": 0}, "num_frames"), ({"steps": 0}, "steps"), ({"lam": 2}, "lam"), ({"seed": "x"}, "seed")],
)
def test_bad_generate_keywords(session, kwargs, field):
    with pytest.raises(InstructionError, match=field):
        session.generate(progress=False, **kwargs)
    assert session.generate(progress=False).num_frames == 4


def test_cancel_keeps_last_video_and_session_usable(session):
    good = session.generate(progress=False)
    session.lam = 0.3
    session.paint(red_stroke())
    seen = []

    def stop_at_two(step, total, latents):
        seen.append((step, total, tuple(latents.shape)))
        if step == 2:
            session.cancel()

    with pytest.raises(Cancelled):
        session.generate(progress=False, callback=stop_at_two)
    assert [s for s, _, _ in seen] == [1, 2]
    assert seen[0][1] == 4 and seen[0][2] == (1, 4, 4, 16, 16)
    assert session.last_video is good
    assert not session.running
    assert session.generate(progress=False) is session.last_video


def test_second_generate_while_running_is_refused(session):
    started, release = threading.Event(), threading.Event()

    def slow(step, total, latents):
        started.set()
        release.wait(10)

    worker = threading.Thread(target=lambda: session.generate(progress=False, callback=slow))
    worker.start()
    assert started.wait(30)
    assert session.running
    with pytest.raises(RuntimeError, match="already running"):
        session.generate(progress=False)
    release.set()
    worker.join(30)
    assert not session.running and session.last_video is not None


def test_commit_makes_edit_the_new_base(session):
    session.paint(red_stroke())
    edited = np.asarray(session.intermediate(edited=True))
    session.commit()
    assert session.paint_layer is None and session.trajectories == [] and session.content_strength == 0.0
    assert np.array_equal(np.asarray(session.intermediate(edited=False)), edited)
    assert np.array_equal(np.asarray(session.intermediate(edited=True)), edited)


def test_save_load_round_trip(session, tmp_path):
    session.paint(red_stroke())
    session.lam = [1.0, 0.5, 0.5, 0.0]
    session.trajectories = [Trajectory(points=[(20, 20), (40, 30)], radius=6)]
    video = session.generate(progress=False)
    session.save(tmp_path / "saved")
    assert not list((tmp_path / "saved").glob("*.pkl")) and not list((tmp_path / "saved").glob("*.bin"))
    loaded = Session.load(tmp_path / "saved")
    assert loaded.to_dict() == session.to_dict()
    assert np.array_equal(np.asarray(loaded.image), np.asarray(session.image))
    assert np.array_equal(np.asarray(loaded.paint_layer), np.asarray(session.paint_layer))
    assert np.array_equal(loaded.last_video.frames, video.frames)
    assert np.array_equal(loaded.generate(progress=False).frames, video.frames)


def test_load_refuses_other_folders(tmp_path):
    with pytest.raises(InstructionError, match="folder"):
        Session.load(tmp_path)


def test_scene_fixture_is_used(session):
    assert np.array_equal(np.asarray(session.image), np.asarray(scene()))


def test_observers_hear_changes_and_cannot_break_the_session(session):
    heard = []
    unsubscribe = session.observe(heard.append)
    session.observe(lambda field: 1 / 0)  # a broken observer only warns
    with pytest.warns(UserWarning, match="observer"):
        session.content = "snow"
    session.lam = 0.2
    session.paint(red_stroke())
    session.trajectories = [Trajectory(points=[(20, 20), (30, 30)])]
    with pytest.raises(InstructionError):
        session.lam = 3  # refused changes are not announced
    with pytest.warns(UserWarning):
        session.generate(progress=False)
    assert heard == ["content", "lam", "paint", "trajectories", "video", "takes"]
    unsubscribe()
    with pytest.warns(UserWarning):
        session.motion = "x"
    assert heard[-1] == "takes"


def test_lam_one_with_an_edit_reuses_the_plain_video(session):
    """lam = 1 never uses x~': no encode of it, and the plain run's cache entry is reused."""
    session.lam = 1.0
    plain = session.generate(progress=False)
    before = misses(session)
    session.paint(red_stroke())
    assert session.generate(progress=False) is plain
    assert delta(before, misses(session)) == {"text": 0, "image": 1, "encode": 0, "denoise": 0, "decode": 0}


def test_paint_layer_of_the_original_picture_size_is_fitted(session):
    session.image = Image.new("RGB", (200, 100), (10, 10, 10))
    layer = np.zeros((100, 200, 4), np.uint8)
    layer[:, 90:110] = (255, 0, 0, 255)  # a vertical bar in the middle of the given picture
    session.paint(layer)
    fitted = np.asarray(session.paint_layer)
    assert fitted.shape == (64, 64, 4)
    assert fitted[32, 32, 3] == 255 and fitted[32, 2, 3] == 0
    with pytest.raises(InstructionError, match="paint"):
        session.paint(np.zeros((50, 50, 4), np.uint8))
