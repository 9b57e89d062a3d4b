"""The session's fields, declared once.

Every instruction and setting of a `Session` is one `Setting` line in the class body: its type,
default, validation, whether `save` writes it, whether it enters the stage cache keys and what
`observe` callbacks hear when it changes. The descriptor is the property (getter and validating
setter), and the declaration is what `to_dict`, `Session.load`, `__repr__`, the API table of
docs/api.md (`markdown_table`, checked by a test) and UIs read, so a new setting is one line and
nothing that copies settings can forget it.

Values live in `session._values` (a dict), written under `session._lock`; setters validate
before touching anything, so a refused value leaves the session as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from ivcore.errors import InstructionError
from ivcore.instructions import check_choice, check_float, check_int, check_prompt

Bound = float | int | Callable[[Any], float | int] | None


def _bound(bound: Bound, session: Any) -> Any:
    return bound(session) if callable(bound) else bound


class Saved:
    """How `save` stores a field: in session.json ("json"), as a file of its own, or not at all."""

    JSON = "json"
    FILE = "file"
    NO = "no"


class Setting:
    """A declared session field, used as a class attribute of `Session` (a data descriptor).

    kind: "str", "int", "float", "choice" (with `choices`) or "custom" (with `check`).
    default: a value or a function of the session (for backend-dependent defaults).
    low / high: bounds for int and float (a function of the session when it depends on models).
    step: ints allowed only in steps of it from `low` (num_frames: 4k+1 where a VAE compresses time 4x).
    check(session, value) -> value: validation of a custom field (raise InstructionError).
    saved: "json" (in session.json through `to_json` / `from_json`), "file" (persistence writes
    it beside session.json) or "no". cache_key: whether a change can change a stage's cache key
    (and so a generated video). notify: the name `observe` callbacks get (None: silent).
    apply(session, value): stores a checked value (default: `_values[name]`), for fields whose
    change resets others. copy(value): what the getter returns (default: the stored value).
    readonly: no attribute assignment (the field is set through a method, e.g. `paint`).
    type: the type column of the API table; doc: the getter's docstring (first paragraph: the table);
    shown_default: the default column when the default is computed (e.g. "grey, the model's size").
    first: declared before the fields checked against it (the size); `set_many` checks and stores it first.
    """

    def __init__(
        self,
        kind: str,
        default: Any,
        *,
        type: str,
        doc: str,
        low: Bound = None,
        high: Bound = None,
        step: Bound = None,
        choices: tuple[str, ...] = (),
        check: Callable[[Any, Any], Any] | None = None,
        saved: str = Saved.JSON,
        cache_key: bool = True,
        notify: str | None | bool = True,
        to_json: Callable[[Any], Any] | None = None,
        from_json: Callable[[Any], Any] | None = None,
        apply: Callable[[Any, Any], None] | None = None,
        copy: Callable[[Any], Any] | None = None,
        readonly: bool = False,
        shown_default: str | None = None,
        first: bool = False,
    ):
        if kind not in ("str", "int", "float", "choice", "custom"):
            raise ValueError(f"unknown kind {kind!r}")
        if kind == "custom" and check is None:
            raise ValueError("a custom Setting needs check=")
        self.kind, self.default, self.type = kind, default, type
        self.low, self.high, self.step, self.choices, self._check = low, high, step, tuple(choices), check
        self.saved, self.cache_key, self._notify = saved, cache_key, notify
        self._to_json, self._from_json, self._apply, self._copy = to_json, from_json, apply, copy
        self.readonly, self.shown_default, self.first = readonly, shown_default, first
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        if self._notify is True:
            self._notify = name

    @property
    def notify(self) -> str | None:
        """The field name `observe` callbacks receive after a change (None: not announced)."""
        return self._notify or None

    @property
    def summary(self) -> str:
        """The first paragraph of the doc, on one line (the API table's meaning column)."""
        return " ".join((self.__doc__ or "").strip().split("\n\n")[0].split())

    # ---------------------------------------------------------------- values
    def initial(self, session: Any) -> Any:
        """The value a new session starts with (already valid: defaults are not re-checked)."""
        return self.default(session) if callable(self.default) else self.default

    def validate(self, session: Any, value: Any) -> Any:
        """The checked, normalized value; raises InstructionError naming this field."""
        if self.kind == "str":
            return check_prompt(value, self.name)
        if self.kind == "int":
            low, step = _bound(self.low, session), _bound(self.step, session) or 1
            checked = check_int(value, self.name, low, _bound(self.high, session))
            if (checked - low) % step:
                near = (low + step * ((checked - low) // step), low + step * ((checked - low) // step + 1))
                allowed = f"{step}k+{low} (steps of {step} from {low}), e.g. {near[0]} or {near[1]}"
                raise InstructionError(self.name, value, allowed)
            return checked
        if self.kind == "float":
            return check_float(value, self.name, _bound(self.low, session), _bound(self.high, session))
        if self.kind == "choice":
            return check_choice(value, self.name, self.choices)
        return self._check(session, value)

    def set(self, session: Any, value: Any) -> None:
        """Validate, store under the session's lock, then notify (outside the lock)."""
        checked = self.validate(session, value)
        with session._lock:
            if self._apply is not None:
                self._apply(session, checked)
            else:
                session._values[self.name] = checked
        if self.notify:
            session._notify(self.notify)

    def to_json(self, value: Any) -> Any:
        return self._to_json(value) if self._to_json is not None else value

    def from_json(self, data: Any) -> Any:
        return self._from_json(data) if self._from_json is not None else data

    # ---------------------------------------------------------------- descriptor protocol
    def __get__(self, session: Any, owner: type | None = None) -> Any:
        if session is None:
            return self
        value = session._values[self.name]
        return self._copy(value) if self._copy is not None else value

    def __set__(self, session: Any, value: Any) -> None:
        if self.readonly:
            raise AttributeError(f"{self.name} is set with a method of the session, not by assignment")
        self.set(session, value)


def fields_of(cls: type) -> dict[str, Setting]:
    """The declared fields of a class (and its bases), in declaration order."""
    found: dict[str, Setting] = {}
    for klass in reversed(cls.__mro__):
        found.update({k: v for k, v in vars(klass).items() if isinstance(v, Setting)})
    return found


class DeclaredFields:
    """`Session.fields` (also on subclasses and instances): {name: Setting}, read-only, for UIs and tools."""

    def __get__(self, obj: Any, owner: type) -> MappingProxyType:
        return MappingProxyType(fields_of(owner))


def init_values(session: Any) -> None:
    """Give a new session its `_values` (every field's default) and its lock."""
    session._lock = threading.RLock()
    session._values = {}
    for name, spec in fields_of(type(session)).items():  # in order: a default may read those declared before it
        session._values[name] = spec.initial(session)


def json_settings(session: Any) -> dict[str, Any]:
    """Every field saved in session.json, as JSON data, in declaration order."""
    specs = fields_of(type(session))
    with session._lock:
        values = dict(session._values)
    return {name: spec.to_json(values[name]) for name, spec in specs.items() if spec.saved == Saved.JSON}


def markdown_table(cls: type) -> str:
    """The API reference table of the declared fields (docs/api.md holds this text verbatim)."""
    rows = ["| name | type | default | saved | cache key | notifies | meaning |", "|---|---|---|---|---|---|---|"]
    for name, spec in fields_of(cls).items():
        shown = f"`{name}` (set: `paint(layer)`)" if name == "paint_layer" else f"`{name}`"
        default = spec.shown_default or ("per model" if callable(spec.default) else f"`{spec.default!r}`")
        saved = {"json": "session.json", "file": "own file", "no": "no"}[spec.saved]
        notes = f"`{spec.notify}`" if spec.notify else "-"
        rows.append(
            f"| {shown} | {spec.type} | {default} | {saved} | {'yes' if spec.cache_key else 'no'} | {notes} | "
            f"{spec.summary} |"
        )
    return "\n".join(rows)


def widget_hints(owner: Any) -> dict[str, dict[str, Any]]:
    """What a UI needs to build a control per plain field: kind, bounds, choices, default, one-line doc.

    Given a session, the model-dependent bounds and defaults are resolved for it (num_frames' max
    is the video model's); given the class, they stay functions of a session.
    """
    session = None if isinstance(owner, type) else owner
    cls = owner if session is None else type(owner)

    def resolve(value: Any) -> Any:
        return value(session) if session is not None and callable(value) else value

    return {
        name: {
            "kind": spec.kind,
            "low": resolve(spec.low),
            "high": resolve(spec.high),
            "step": resolve(spec.step) or 1,
            "choices": spec.choices,
            "default": resolve(spec.default),
            "doc": spec.summary,
        }  # fmt: skip
        for name, spec in fields_of(cls).items()
        if spec.kind != "custom"
    }


__all__ = [
    "Setting",
    "Saved",
    "DeclaredFields",
    "fields_of",
    "init_values",
    "json_settings",
    "markdown_table",
    "widget_hints",
]


def set_many(session: Any, values: dict[str, Any]) -> None:
    """Set several fields at once: all are checked first (one bad value changes nothing), then stored
    under the lock in declaration order (the image before its paint), then announced."""
    specs = fields_of(type(session))
    unknown = [name for name in values if name not in specs]
    if unknown:
        raise InstructionError(unknown[0], values[unknown[0]], "a declared field of the session")
    checked: dict[str, Any] = {}
    with session._lock:
        kept = {}
        try:  # the `first` fields (size, fit) are checked first; the others are checked as if they were set
            for name in [n for n in specs if n in values and specs[n].first]:
                checked[name] = specs[name].validate(session, values[name])
                kept[name], session._values[name] = session._values[name], checked[name]
            checked.update({n: specs[n].validate(session, values[n]) for n in specs if n in values and n not in kept})
        finally:
            session._values.update(kept)
        checked = {name: checked[name] for name in specs if name in checked}
        for name, value in checked.items():
            spec = specs[name]
            if spec._apply is not None:
                spec._apply(session, value)
            else:
                session._values[name] = value
    for name in checked:
        if specs[name].notify:
            session._notify(specs[name].notify)
