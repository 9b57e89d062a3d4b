"""The declared session fields: one declaration drives setters, to_dict, observe, repr and the docs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ivcore import InstructionError, Session
from ivcore.fields import Saved, Setting, fields_of, markdown_table, widget_hints

ROOT = Path(__file__).resolve().parents[1]
PLAIN = {name: spec for name, spec in fields_of(Session).items() if spec.kind != "custom"}


@pytest.fixture(scope="module")
def tiny():
    return Session.tiny(seed=0)


def test_the_api_table_is_generated_from_the_declarations():
    text = (ROOT / "docs" / "api.md").read_text()
    start, end = text.index("<!-- fields:start -->\n"), text.index("<!-- fields:end -->")
    assert text[start + len("<!-- fields:start -->\n") : end].strip() == markdown_table(Session)


def test_every_setting_is_declared_and_public():
    names = list(Session.fields)
    assert names[:6] == ["size", "fit", "image", "content", "content_strength", "paint_layer"]
    expected = {"size", "fit", "image", "content", "content_strength", "paint_layer", "motion", "negative_prompt",
                "motion_scale", "trajectories", "trajectory_mode", "trajectory_strength", "lam", "align", "seed",
                "num_frames", "steps", "guidance", "image_steps", "image_guidance", "fps", "preview_decoder",
                "keep_takes"}  # fmt: skip
    assert set(names) == expected
    assert all(isinstance(getattr(Session, n), Setting) for n in names)
    assert Session.fields["preview_decoder"].saved == Saved.NO and not Session.fields["preview_decoder"].cache_key


def test_to_dict_holds_exactly_the_json_fields(tiny):
    data = tiny.to_dict()
    saved = {n for n, s in Session.fields.items() if s.saved == Saved.JSON}
    weights = {"loras", "checkpoints", "schedulers", "few_step"}
    assert set(data) == {"format", "models"} | saved | weights


def _bad_values(spec: Setting, session: Session) -> list:
    low = spec.low(session) if callable(spec.low) else spec.low
    high = spec.high(session) if callable(spec.high) else spec.high
    bad = ["text" if spec.kind != "str" else 3, None, True]
    if spec.kind in ("int", "float"):
        bad += [low - 1, math.nan if spec.kind == "float" else 2.5]
        if high is not None:
            bad.append(high + 1)
    if spec.kind == "choice":
        bad.append("nonsense")
    return bad


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_each_plain_setting_validates_keeps_state_and_notifies(tiny, name):
    spec = Session.fields[name]
    heard: list[str] = []
    stop = tiny.observe(heard.append)
    try:
        before = tiny.to_dict()
        for value in _bad_values(spec, tiny):
            with pytest.raises(InstructionError) as err:
                setattr(tiny, name, value)
            assert err.value.field == name
        assert tiny.to_dict() == before and heard == []
        current = getattr(tiny, name)
        setattr(tiny, name, current)
        assert heard == [name] and getattr(tiny, name) == current
    finally:
        stop()


def test_custom_fields_notify_their_declared_names(tiny):
    heard: list[str] = []
    stop = tiny.observe(heard.append)
    try:
        tiny.image = tiny.image
        tiny.paint(np.zeros((64, 64, 4), np.uint8))
        tiny.trajectories = []
        tiny.lam = 1.0
        tiny.align = None
        tiny.preview_decoder = None
    finally:
        stop()
    assert heard == ["image", "paint", "trajectories", "lam", "align", "preview_decoder"]
    with pytest.raises(AttributeError, match="paint"):
        tiny.paint_layer = None


def test_repr_shows_every_field(tiny):
    text = repr(tiny)
    assert all(f"{name}=" in text for name in Session.fields if name != "image")


def test_widget_hints_give_bounds_and_choices(tiny):
    hints = widget_hints(Session)
    assert hints["trajectory_mode"]["choices"] == ("path", "endpoint")
    assert hints["content_strength"]["low"] == 0.0 and hints["content_strength"]["high"] == 1.0
    assert hints["num_frames"]["high"](tiny) == tiny.video_backend.max_frames
    resolved = widget_hints(tiny)
    assert resolved["num_frames"]["high"] == tiny.video_backend.max_frames
    assert resolved["num_frames"]["default"] == tiny.video_backend.num_frames
    assert "image" not in hints and "lam" not in hints  # custom fields have their own widgets


class Extended(Session):
    """A new setting is one line: it is validated, saved, loaded, announced and shown."""

    sharpness = Setting("float", 0.5, low=0.0, high=2.0, type="float in [0, 2]", doc="Unused test setting.")


def test_a_new_setting_is_one_line(tmp_path):
    s = Extended.tiny(seed=0)
    assert s.sharpness == 0.5 and "sharpness=0.5" in repr(s)
    with pytest.raises(InstructionError, match="sharpness"):
        s.sharpness = 3
    s.sharpness = 1.25
    assert s.to_dict()["sharpness"] == 1.25
    loaded = Extended.load(s.save(tmp_path / "x"))
    assert loaded.sharpness == 1.25 and loaded.to_dict() == s.to_dict()
    assert "`sharpness`" in markdown_table(Extended)
    assert "sharpness" in Extended.fields and "sharpness" in s.fields and "sharpness" not in Session.fields


def test_modules_stay_small():
    for name in ("session", "fields", "persistence", "stages/pipeline", "takes", "story", "take_files", "presets"):
        lines = (ROOT / "ivcore" / f"{name}.py").read_text().count("\n")
        assert lines <= 500, (name, lines)
