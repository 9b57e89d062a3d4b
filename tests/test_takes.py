"""Takes and stories on the tiny preset: every generate kept, restored bitwise, compared, continued."""

from __future__ import annotations

import resource
import warnings

import numpy as np
import pytest
from conftest import red_stroke

from ivcore import InstructionError, Session, Trajectory, Video
from ivcore.takes import THUMB_SIDE, Take


def _small(seed: int = 0) -> Session:
    s = Session.tiny(seed=seed)
    s.content, s.motion = "a red circle", "the red circle moves right"
    s.num_frames, s.steps, s.image_steps = 3, 2, 2
    return s


def test_lambda_starts_at_zero_and_follows_the_edits():
    s = _small()
    assert s.lam == 0.0
    plain = s.generate(seed=0, progress=False)
    s.lam = 1.0
    assert np.array_equal(s.generate(seed=0, progress=False).frames, plain.frames)  # nothing edited: lam is moot
    s.paint(red_stroke())
    s.lam = 0.0
    edited = s.generate(seed=0, progress=False)
    assert np.abs(edited.frames.astype(int) - plain.frames.astype(int)).max() > 0  # the paint shows at the default


def test_every_generate_is_a_take_with_its_video_settings_seed_and_models():
    s = _small()
    v1 = s.generate(seed=1, progress=False)
    s.lam, s.motion = 0.7, "the red circle moves down"
    v2 = s.generate(seed=2, num_frames=2, progress=False)
    first, second = s.takes
    assert first.video is v1 and second.video is v2 and s.last_video is v2
    assert (first.seed, second.seed) == (1, 2)
    assert first.settings["lam"] == 0.0 and second.settings["lam"] == 0.7
    assert second.settings["num_frames"] == 2  # the per-call override, as the take was made
    assert first.settings["image"].startswith("sha256:") and first.settings["image"] == second.settings["image"]
    assert first.models["models"] == {"preset": "tiny", "seed": 0} and first.id != second.id
    assert set(first.diff(second)) == {"lam", "motion", "num_frames", "video_seed"}
    assert first.diff(first) == {}
    assert first.timings["total"] > 0 and first.made.endswith("+00:00")
    assert max(first.thumbnail.size) <= THUMB_SIDE and first.thumbnail.num_frames == v1.num_frames
    assert "keep_takes" not in first.settings and "preview_decoder" not in first.settings


def test_a_cancelled_or_refused_generate_makes_no_take():
    s = _small()
    with pytest.raises(InstructionError):
        s.generate(steps=0, progress=False)
    s.cancel()  # no run: nothing to cancel, nothing recorded
    assert s.takes == []


def test_restore_then_generate_is_bitwise_and_hits_the_denoise_cache():
    s = _small()
    s.paint(red_stroke())
    s.trajectories = [Trajectory(points=[(20, 20), (40, 30)], radius=6)]
    s.lam = 0.3
    made = s.generate(seed=5, progress=False)
    take = s.takes[-1]
    s.clear_paint()
    s.trajectories, s.lam, s.motion, s.seed = [], 0.9, "nothing moves", 11  # s.seed was 0 (P_img's)
    s.image = np.full((64, 64, 3), 30, np.uint8)
    s.generate(progress=False)
    s.restore(take)
    assert s.lam == 0.3 and s.seed == 0 and len(s.trajectories) == 1 and s.paint_layer is not None
    assert s.last_video is take.video  # the player shows the take
    hits = s.stats["denoise"]["hits"]
    again = s.generate(progress=False)
    assert np.array_equal(again.frames, made.frames)
    assert s.stats["denoise"]["hits"] == hits + 1


def test_restore_repeats_a_take_made_with_another_seed_than_the_sessions():
    """generate(seed=k) with s.seed = 0: P_img used 0, the video k; restore makes the next generate() both."""
    s = _small()
    s.content_strength = 0.6  # P_img really draws from s.seed
    s.paint(red_stroke())
    made = s.generate(seed=7, progress=False)
    take = s.takes[-1]
    assert take.seed == 7 and take.settings["seed"] == 0
    s.generate(seed=8, progress=False)
    s.restore(take)
    assert s.seed == 0 and np.array_equal(s.generate(progress=False).frames, made.frames)
    assert s.takes[-1].seed == 7
    s.restore(take)
    s.seed = 3  # a seed the user sets wins
    s.generate(progress=False)
    assert s.takes[-1].seed == 3


def test_restore_of_a_take_from_other_models_is_refused_naming_what_differs():
    s = _small(seed=0)
    s.generate(progress=False)
    take = s.takes[-1]
    other = _small(seed=1)
    before = other.to_dict()
    with pytest.raises(
        InstructionError, match=r"take: got 'take-1'.*models: the take's \{'preset': 'tiny', 'seed': 0\}"
    ):
        other.restore(take)
    assert other.to_dict() == before
    with pytest.raises(InstructionError, match="take"):
        s.restore("take-1")


def test_old_takes_keep_a_thumbnail_and_a_restore_makes_them_again():
    s = _small()
    s.keep_takes = 2
    first = s.generate(seed=1, progress=False)
    for seed in (2, 3):
        s.generate(seed=seed, progress=False)
    assert [t.video is not None for t in s.takes] == [False, True, True]
    s.restore(s.takes[0])
    assert np.array_equal(s.takes[0].video.frames, first.frames)


@pytest.mark.slow
def test_two_hundred_takes_keep_memory_bounded():
    s = _small()
    s.num_frames, s.steps = 2, 1
    s.keep_takes = 10
    s.generate(seed=0, progress=False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(200):
        s.lam = (i % 11) / 10
        s.generate(seed=i % 7, progress=False)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    kept = [t for t in s.takes if t.video is not None]
    assert len(s.takes) == 201 and len(kept) == 10
    assert s.take_images.nbytes < 20_000  # one picture for all 201 takes: only lambda and seed changed
    print(f"RSS growth over 200 takes: {grown_kib / 1024:.1f} MiB")
    assert grown_kib < 200 * 1024


def test_side_by_side_shapes_and_labels():
    a = Video(np.zeros((4, 64, 64, 3), np.uint8), fps=8)
    b = Video(np.full((6, 32, 48, 3), 200, np.uint8), fps=8)
    plain = Video.side_by_side([a, b])
    assert plain.num_frames == 6 and plain.size == (64 + 2 + 48, 64)
    assert np.array_equal(plain.frames[5, :, :64], a.frames[3])  # the shorter clip holds its last frame
    assert (plain.frames[0, 16:48, 66:] == 200).all() and (plain.frames[0, :16, 66:] == 255).all()
    labelled = Video.side_by_side([a, b], labels=["lam 0.3", "lam 0.7"])
    band = labelled.size[1] - 64
    assert band >= 12 and (labelled.frames[0, :band] < 128).any()  # dark text on the white band
    with pytest.raises(InstructionError, match="labels"):
        Video.side_by_side([a, b], labels=["one"])
    with pytest.raises(InstructionError, match=r"videos\[1\]"):
        Video.side_by_side([a, "b"])
    with pytest.raises(InstructionError, match="videos"):
        Video.side_by_side([])


def test_a_story_joins_segments_with_the_seam_frame_once():
    s = _small()
    s.num_frames = 4
    first = s.generate(seed=0, progress=False)
    s.paint(red_stroke())
    s.trajectories = [Trajectory(points=[(20, 20), (40, 30)], radius=6)]
    taken = s.continue_from()
    assert taken is s.takes[-1] and s.story.segments == [taken]
    assert np.array_equal(np.asarray(s.image), first.frames[-1])
    assert s.content_strength == 0.0 and s.paint_layer is None and s.trajectories == []
    assert s.motion == "the red circle moves right"  # kept
    s.motion = "the red circle moves down"
    second = s.generate(seed=1, progress=False)
    s.continue_from()
    story = s.story.video
    assert story.num_frames == 4 + 4 - 1 == s.story.num_frames
    assert np.array_equal(story.frames[:4], first.frames)
    assert np.array_equal(story.frames[4:], second.frames[1:])


def test_pop_drops_the_last_segment_and_sets_back_what_it_was_made_from():
    s = _small()
    s.generate(seed=0, progress=False)
    s.continue_from()
    seam = np.asarray(s.image).copy()
    s.paint(red_stroke())
    s.generate(seed=1, progress=False)
    s.continue_from()
    assert len(s.story) == 2
    popped = s.story.pop()
    assert popped is s.takes[-1] and len(s.story) == 1
    assert np.array_equal(np.asarray(s.image), seam) and s.paint_layer is not None
    s.story.pop()
    with pytest.raises(InstructionError, match="story"):
        s.story.pop()


def test_story_segments_keep_their_videos_past_keep_takes():
    s = _small()
    s.keep_takes = 1
    s.generate(seed=0, progress=False)
    s.continue_from()
    for seed in (1, 2, 3):
        s.generate(seed=seed, progress=False)
    assert s.takes[0].video is not None and s.story.video.num_frames == 3


def test_continue_needs_a_take():
    s = _small()
    with pytest.raises(InstructionError, match="generate first"):
        s.continue_from()
    with pytest.raises(InstructionError, match="take"):
        s.continue_from("the last one")
    with pytest.raises(InstructionError, match="story"):
        _ = s.story.video


def test_take_repr_and_label_name_lambda_seed_and_motion():
    s = _small()
    s.generate(seed=4, progress=False)
    take = s.takes[0]
    assert isinstance(take, Take)
    assert "lam 0.0" in take.label() and "seed 4" in take.label() and "moves right" in take.label()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "take-1" in repr(take)


def test_save_and_load_keep_the_takes_and_the_story(tmp_path):
    s = _small()
    s.keep_takes = 1  # the newest and the story's take keep their videos
    s.paint(red_stroke())
    s.generate(seed=1, progress=False)
    s.continue_from()
    s.lam = 0.4
    s.generate(seed=2, progress=False)
    s.generate(seed=3, progress=False)
    s.save(tmp_path / "saved")
    files = {p.name for p in (tmp_path / "saved" / "takes").iterdir()}
    assert {"takes.json", "images", "take-1.safetensors", "take-1.mp4", "take-2.thumb.safetensors"} <= files
    assert "take-2.safetensors" not in files  # evicted: settings and thumbnail only
    back = Session.load(tmp_path / "saved")
    assert [t.id for t in back.takes] == ["take-1", "take-2", "take-3"]
    assert [t.video is not None for t in back.takes] == [True, False, True]
    for old, new in zip(s.takes, back.takes, strict=True):
        assert new.settings == old.settings and new.seed == old.seed and new.models == old.models
        assert np.array_equal(new.thumbnail.frames, old.thumbnail.frames)
    assert np.array_equal(back.takes[0].video.frames, s.takes[0].video.frames)
    assert [t.id for t in back.story.segments] == ["take-1"]
    back.restore(back.takes[1])  # regenerated from its settings, equal to its thumbnail (no warning)
    assert back.lam == 0.4 and back.takes[1].video is not None
    back.generate(seed=9, progress=False)
    assert back.takes[-1].id == "take-4"
    s.story.clear()
    s._takes.clear()
    s.save(tmp_path / "saved")
    assert not (tmp_path / "saved" / "takes").exists()  # an earlier save's takes are gone with them


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda d: d.update(takes="x"), r"takes/takes.json:takes"),
        (lambda d: d["takes"][0].update(seed=-1), r"takes\[0\].seed"),
        (lambda d: d["takes"][0].update(id="../x"), r"takes\[0\].id"),
        (lambda d: d["takes"][0]["settings"].update(lam=7), r"takes\[0\].settings.lam"),
        (lambda d: d["takes"][0]["settings"].update(bogus=1), r"takes\[0\].settings.bogus"),
        (lambda d: d["takes"][0]["settings"].update(image="sha256:" + "0" * 64), r"takes\[0\].settings.image"),
        (lambda d: d.update(story=["take-9"]), r"story\[0\]"),
        (lambda d: d.update(next=True), r"next"),
    ],
)
def test_a_damaged_takes_folder_is_refused_naming_the_file(tmp_path, damage, named):
    import json

    s = _small()
    s.generate(seed=1, progress=False)
    s.save(tmp_path / "saved")
    index = tmp_path / "saved" / "takes" / "takes.json"
    data = json.loads(index.read_text())
    damage(data)
    index.write_text(json.dumps(data))
    with pytest.raises(InstructionError, match=named):
        Session.load(tmp_path / "saved")


def test_a_changed_take_picture_or_missing_frames_are_refused(tmp_path):
    s = _small()
    s.generate(seed=1, progress=False)
    s.save(tmp_path / "saved")
    (picture,) = (tmp_path / "saved" / "takes" / "images").iterdir()
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(picture)
    with pytest.raises(InstructionError, match=r"takes/images/.*changed"):
        Session.load(tmp_path / "saved")
    s.save(tmp_path / "saved")
    (tmp_path / "saved" / "takes" / "take-1.thumb.safetensors").unlink()
    with pytest.raises(InstructionError, match="take-1.thumb.safetensors"):
        Session.load(tmp_path / "saved")


def test_render_checks_every_segment_before_the_first_runs():
    from ivcore.story import render

    s = _small()
    with pytest.raises(InstructionError, match=r"segments\[1\].lam"):
        render(s, [{"motion": "the red circle moves right"}, {"lam": 7}])
    with pytest.raises(InstructionError, match=r"segments\[0\].colour"):
        render(s, [{"colour": "red"}])
    assert s.takes == [] and len(s.story) == 0 and s.motion == "the red circle moves right"
    video = render(s, [{"seed": 0, "paint": red_stroke()}, {"motion": "the red circle moves down", "seed": 1}])
    assert len(s.story) == 2 and video.num_frames == 2 * 3 - 1


def test_story_command_writes_the_joined_mp4_and_refuses_bad_specs(tmp_path, capsys):
    import json

    from PIL import Image

    from ivcore.cli import main

    Image.fromarray(red_stroke()).save(tmp_path / "paint.png")
    segments = [
        {
            "motion": "the red circle moves right",
            "lam": 0,
            "seed": 0,
            "num_frames": 3,
            "steps": 2,
            "paint": "paint.png",
        },
        {"motion": "the red circle moves down", "seed": 1, "trajectories": [{"points": [[20, 20], [30, 40]]}]},
    ]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"preset": "tiny", "segments": segments, "save": "saved"}))
    assert main(["story", str(spec), "--out", str(tmp_path / "story.mp4")]) == 0
    assert Video.from_mp4(tmp_path / "story.mp4").num_frames == 5  # 3 + 3 - the seam
    back = Session.load(tmp_path / "saved")
    assert len(back.story) == 2 and back.story.video.num_frames == 5
    spec.write_text(json.dumps([{"motion": "x", "speed": 2}]))
    assert main(["story", str(spec)]) == 2
    assert "segments[0].speed" in capsys.readouterr().err
    spec.write_text(json.dumps({"segments": [{"paint": "missing.png"}]}))
    assert main(["story", str(spec)]) == 2
    assert "segments[0].paint" in capsys.readouterr().err


def test_cancel_during_a_story_segment_leaves_the_story_and_the_takes_as_they_were():
    from ivcore import Cancelled

    s = _small()
    s.steps = 3
    s.generate(seed=0, progress=False)
    s.continue_from()
    seam, takes = np.asarray(s.image).copy(), s.takes
    s.motion = "the red circle moves down"

    def stop(step, total, latents):
        if step == 1:
            s.cancel()

    with pytest.raises(Cancelled):
        s.generate(seed=1, callback=stop, progress=False)
    assert s.takes == takes and len(s.story) == 1 and s.story.video.num_frames == 3
    assert np.array_equal(np.asarray(s.image), seam)  # the next segment still starts at the seam
    s.generate(seed=1, progress=False)
    s.continue_from()
    assert len(s.story) == 2
