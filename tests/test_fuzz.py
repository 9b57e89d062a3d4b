"""Fuzzing (hypothesis): arbitrary values into every setter, every `generate` keyword and every
message the widgets take from the page. The only error a user may see is InstructionError, and a
refused value leaves the session exactly as it was (settings, image, paint, last video).
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from ivcore import Cancelled, InstructionError, Session
from ivcore.fields import fields_of

EXAMPLES = 200
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**200),
    st.integers(max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 0.5, 1, 2, 0]),
    st.text(max_size=40),
    st.sampled_from(["path", "endpoint", "stats", "", "a red circle"]),
    st.binary(max_size=64),
    st.complex_numbers(),
)
arrays = hnp.arrays(
    dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes()),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=5),
)
anything = st.one_of(
    scalars,
    arrays,
    st.lists(scalars, max_size=6),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner)),
    st.tuples(scalars, scalars),
)


def _small_session() -> Session:
    s = Session.tiny(seed=0)
    s.content, s.motion = "a red circle", "the red circle moves right"
    s.num_frames, s.steps, s.image_steps = 2, 2, 2
    s.generate(progress=False)
    return s


@pytest.fixture(scope="module")
def fuzz_session() -> Session:
    """Shared by the examples of a module (building one takes a second); setters get their own."""
    return _small_session()


@pytest.fixture(scope="module")
def setter_session() -> Session:
    """The setter fuzz leaves any valid value it drew behind (huge steps, odd fps): a session of its own."""
    return _small_session()


def _state(s: Session) -> tuple:
    """Everything a refused value must leave alone."""
    paint = s.paint_layer
    return (
        s.to_dict(),
        s.image.tobytes(),
        None if paint is None else paint.tobytes(),
        id(s.last_video),
    )


def _refused_or_taken(s: Session, action) -> bool:
    """Run `action`; an InstructionError must leave the state as it was. True if it was taken."""
    before = _state(s)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            action()
    except InstructionError:
        assert _state(s) == before
        return False
    return True


SETTABLE = [name for name, spec in fields_of(Session).items() if not spec.readonly]


# arrays every field meets, whatever hypothesis draws: a numpy comparison of an array with a choice raised
# numpy's own ValueError ("truth value of an array ... is ambiguous") instead of an InstructionError
ARRAYS = [np.zeros((3, 3)), np.zeros(0), np.array("path"), np.array(["path", "endpoint"]), np.ones(2, bool),
          np.array(0.5), np.array([0.5]), np.full((2, 2), "stats")]  # fmt: skip


@pytest.mark.parametrize("name", SETTABLE)
def test_every_field_refuses_arrays_cleanly(setter_session: Session, name: str) -> None:
    for value in ARRAYS:
        _refused_or_taken(setter_session, lambda value=value: setattr(setter_session, name, value))
    if fields_of(Session)[name].kind == "choice":
        with pytest.raises(InstructionError, match=name):
            setattr(setter_session, name, np.zeros((3, 3)))


@FUZZ
@given(name=st.sampled_from(SETTABLE), value=anything)
def test_setters_take_anything_and_refuse_cleanly(setter_session: Session, name: str, value) -> None:
    _refused_or_taken(setter_session, lambda: setattr(setter_session, name, value))


@FUZZ
@given(value=st.one_of(anything, hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=3, max_side=70))))
def test_paint_and_image_take_anything_and_refuse_cleanly(setter_session: Session, value) -> None:
    _refused_or_taken(setter_session, lambda: setter_session.paint(value))
    _refused_or_taken(setter_session, lambda: setattr(setter_session, "image", value))


def test_any_accepted_setting_still_generates_or_refuses(setter_session: Session) -> None:
    """After the setter fuzz, whatever it left set must still give a video or an InstructionError.

    (This is how unbounded `steps` were found: accepted by the setter, then a raw ValueError
    from the scheduler.) Steps stay what the fuzz left only if they are small enough to run here.
    """
    s = setter_session
    for name in ("steps", "image_steps"):
        high = getattr(Session, name).high
        assert high is not None, f"{name} has no upper bound"
    if s.steps > 4 or s.image_steps > 4 or s.num_frames > 2:
        s.steps, s.image_steps, s.num_frames = 2, 2, 2
    if max(s.size) > 128:  # a valid size of up to 8 times the native one: taken, too slow to run here
        s.size = (64, 64)
    _refused_or_taken(s, lambda: s.generate(progress=False))


GENERATE_KEYWORDS = ("seed", "num_frames", "steps", "guidance", "lam")
small_valid = {
    "seed": st.integers(0, 3),
    "num_frames": st.integers(1, 2),
    "steps": st.integers(1, 3),
    "guidance": st.floats(0, 9),
    "lam": st.floats(0, 1),
}


@FUZZ
@given(data=st.data())
def test_generate_keywords_take_anything_and_refuse_cleanly(fuzz_session: Session, data) -> None:
    """Valid values are drawn small so that the runs that do happen stay short; the rest is junk."""
    kwargs = {
        k: data.draw(st.one_of(anything, small_valid[k]), label=k)
        for k in GENERATE_KEYWORDS
        if data.draw(st.booleans(), label=f"pass {k}")
    }

    def run() -> None:
        try:
            fuzz_session.generate(progress=False, **kwargs)
        except Cancelled:  # pragma: no cover - nothing cancels here
            raise AssertionError("no cancel was asked for") from None

    _refused_or_taken(fuzz_session, run)


@FUZZ
@given(seed=st.one_of(anything, st.integers(0, 3)), lams=st.one_of(anything, st.lists(st.floats(0, 1), max_size=3)))
def test_sweep_takes_anything_and_refuses_cleanly(fuzz_session: Session, seed, lams) -> None:
    if isinstance(lams, list) and len(lams) > 3:
        lams = lams[:3]
    _refused_or_taken(fuzz_session, lambda: fuzz_session.sweep(lams, seed=seed, num_frames=1, steps=1, progress=False))


# ---------------------------------------------------------------------------- widget messages


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _payloads(size: int):
    """Bytes the page could send for a layer: junk, truncated PNGs, PNGs of other sizes and modes."""
    good = _png(np.zeros((size, size, 4), np.uint8))
    return st.one_of(
        st.binary(max_size=256),
        st.just(good[: len(good) // 2]),
        st.just(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        st.builds(lambda h, w: _png(np.zeros((h, w, 4), np.uint8)), st.integers(1, 80), st.integers(1, 80)),
        st.builds(lambda h, w: _png(np.zeros((h, w), np.uint8)), st.integers(1, 80), st.integers(1, 80)),
        st.just(b"\x00" * (2 * 1024 * 1024)),
    )


@pytest.fixture(scope="module")
def canvas(fuzz_session: Session):
    from ivwidgets import PaintCanvas

    return PaintCanvas(fuzz_session)


@FUZZ
@given(data=st.data())
def test_paint_messages_are_refused_cleanly(fuzz_session: Session, canvas, data) -> None:
    payload = data.draw(_payloads(fuzz_session.size[0]))
    before = _state(fuzz_session)
    canvas.error = ""
    stroke = {"id": data.draw(st.uuids()).hex, "tool": "brush", "points": [[1.0, 1.0]]}
    # a stroke's pixels arrive from the page as a message buffer (a memoryview)
    canvas._handle_custom_msg({"event": "stroke", "stroke": stroke}, [memoryview(payload)])
    canvas._jobs.wait(30)
    valid = canvas.error == ""
    if not valid:
        assert _state(fuzz_session) == before
        assert canvas.error  # shown in the app


# what a page can send: JSON values (NaN and infinities included: Python's json reads them)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
)
point = st.one_of(
    st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True)),
    st.lists(json_scalars, max_size=3),
    json_scalars,
)
trajectory_message = st.one_of(
    st.dictionaries(
        st.sampled_from(["points", "mask", "kind", "radius", "start", "end", "easing", "x"]), json_values, max_size=4
    ),
    st.fixed_dictionaries({"points": st.lists(point, max_size=6)}),
    st.fixed_dictionaries({"points": st.lists(point, max_size=4), "mask": json_values}),
)


@FUZZ
@given(
    stroke=st.one_of(
        json_values,
        st.dictionaries(st.sampled_from(["id", "tool", "color", "size", "opacity", "points"]), json_values, max_size=6),
    ),
    event=st.sampled_from(["stroke", "clear", "undo", "redo", "x", None]),
)
def test_paint_stroke_data_is_refused_cleanly(fuzz_session: Session, canvas, stroke, event) -> None:
    before = _state(fuzz_session)
    canvas.error = ""
    canvas._handle_custom_msg(
        {"event": event, "stroke": stroke, "id": stroke}, [memoryview(_png(np.zeros((8, 8, 4), np.uint8)))]
    )
    if canvas.error:
        assert _state(fuzz_session) == before


@pytest.fixture(scope="module")
def editor(fuzz_session: Session):
    from ivwidgets import TrajectoryEditor

    return TrajectoryEditor(fuzz_session)


@FUZZ
@given(message=st.one_of(st.lists(trajectory_message, max_size=3), json_values))
def test_trajectory_messages_are_refused_cleanly(fuzz_session: Session, editor, message) -> None:
    before = _state(fuzz_session)
    editor.error = ""
    editor.set_state({"trajectories": message})
    editor._jobs.wait(30)
    if editor.error:
        assert _state(fuzz_session) == before
