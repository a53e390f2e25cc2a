"""Typed, frozen configs, validated once at the edge.

A config is a frozen dataclass. Each field declares its limits next to it with
``param(default, constraint, ...)``, in the spirit of scikit-learn's
``_parameter_constraints``. ``validate`` checks a whole (nested) config and raises a
``ConfigError`` whose message is one generated line, e.g.::

    The 'task.k' parameter of SparseParityTaskConfig must be an int in [1, n_bits=30]. Got 0.

``apply_overrides`` turns command-line ``key=value`` strings (``model.width=512``) into a
new validated config; ``to_dict`` / ``from_dict`` round-trip a config through JSON.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
import os
import re
import types
import typing
from typing import Any, Literal, Union

from learnlab.errors import ConfigError

__all__ = [
    "ConfigError",
    "Interval",
    "Options",
    "apply_overrides",
    "config_keys",
    "describe",
    "plain_text",
    "from_dict",
    "param",
    "to_dict",
    "validate",
]


class Interval:
    """A numeric range; a bound may be a number, ``None`` (open) or a sibling field's name.

    Parameters
    ----------
    low, high : number, str or None
        Bounds. A string names another field of the same config (e.g. ``"n_bits"``).
    closed : {"both", "left", "right", "neither"}
        Which bounds are included.
    """

    def __init__(self, low=None, high=None, *, closed: str = "both"):
        self.low, self.high, self.closed = low, high, closed

    def _bound(self, bound, siblings: dict[str, Any]):
        if isinstance(bound, str):
            return siblings[bound], f"{bound}={siblings[bound]}"
        return bound, None if bound is None else f"{bound:g}" if isinstance(bound, float) else str(bound)

    def describe(self, siblings: dict[str, Any]) -> str:
        low, low_text = self._bound(self.low, siblings)
        high, high_text = self._bound(self.high, siblings)
        left = "[" if self.closed in ("both", "left") and low is not None else "("
        right = "]" if self.closed in ("both", "right") and high is not None else ")"
        return f"in {left}{low_text if low is not None else '-inf'}, {high_text if high is not None else 'inf'}{right}"

    def holds(self, value, siblings: dict[str, Any]) -> bool:
        low, _ = self._bound(self.low, siblings)
        high, _ = self._bound(self.high, siblings)
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if low is not None and (value < low or (value == low and self.closed in ("right", "neither"))):
            return False
        if high is not None and (value > high or (value == high and self.closed in ("left", "neither"))):
            return False
        return True


class Options:
    """A closed set of allowed values (use ``Literal`` annotations for strings where possible)."""

    def __init__(self, *values):
        self.values = values

    def describe(self, siblings: dict[str, Any]) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def holds(self, value, siblings: dict[str, Any]) -> bool:
        return value in self.values


def param(default, *constraints, help: str = ""):
    """A dataclass field with its constraints and a one-line help text."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("config defaults must be immutable; use a tuple")
    return dataclasses.field(default=default, metadata={"constraints": constraints, "help": help})


# ----------------------------------------------------------------------------- types


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _type_name(tp) -> str:
    optional, inner = _is_optional(tp)
    if optional:
        return f"{_type_name(inner)} or None"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if not (len(args) == 1 or len(args) == 2 and args[1] is Ellipsis):  # fixed length
            return "a tuple (" + ", ".join(_type_name(a).removeprefix("an ").removeprefix("a ") for a in args) + ")"
        item = _type_name(args[0]).removeprefix("an ").removeprefix("a ")
        return f"a tuple of {item.removeprefix('tuple ') + ' tuples' if item.startswith('tuple (') else item + 's'}"
    return {int: "an int", float: "a float", bool: "a bool", str: "a str"}.get(tp, getattr(tp, "__name__", str(tp)))


def _type_ok(value, tp) -> bool:
    optional, inner = _is_optional(tp)
    if optional:
        return value is None or _type_ok(value, inner)
    if typing.get_origin(tp) is Literal:
        return value in typing.get_args(tp)
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis or len(args) == 1:
            return isinstance(value, tuple) and all(_type_ok(v, args[0]) for v in value)
        return isinstance(value, tuple) and len(value) == len(args) and all(map(_type_ok, value, args))
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, tp)
    return isinstance(value, tp)


# ----------------------------------------------------------------------------- validate


def validate(cfg, _prefix: str = ""):
    """Check every field of ``cfg`` (recursively); return ``cfg`` or raise ``ConfigError``."""
    hints = _hints(type(cfg))
    siblings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    for f in dataclasses.fields(cfg):
        value, tp, key = siblings[f.name], hints[f.name], _prefix + f.name
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, tp):
                raise ConfigError(f"The '{key}' parameter of {type(cfg).__name__} must be a {tp.__name__}. Got {value!r}.")
            validate(value, key + ".")
            continue
        constraints = f.metadata.get("constraints", ())
        if not _type_ok(value, tp):
            raise ConfigError(_message(cfg, key, tp, constraints, siblings, value))
        if value is None:
            continue
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if not all(c.holds(item, siblings) for c in constraints):
                raise ConfigError(_message(cfg, key, tp, constraints, siblings, value))
    check = getattr(cfg, "check", None)  # cross-field rules a config may add
    if check is not None:
        problem = check()
        if problem:
            raise ConfigError(f"{type(cfg).__name__}{' (' + _prefix.rstrip('.') + ')' if _prefix else ''}: {problem}")
    return cfg


def _message(cfg, key, tp, constraints, siblings, value) -> str:
    what = _type_name(tp)
    limits = " and ".join(c.describe(siblings) for c in constraints)
    return f"The '{key}' parameter of {type(cfg).__name__} must be {what}{' ' + limits if limits else ''}. Got {value!r}."


# ----------------------------------------------------------------------------- overrides


def config_keys(cfg_or_cls, _prefix: str = "") -> list[str]:
    """Every settable dotted key of a config class, e.g. ``['seed', 'model.width', ...]``."""
    cls = cfg_or_cls if isinstance(cfg_or_cls, type) else type(cfg_or_cls)
    hints = _hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += config_keys(hints[f.name], _prefix + f.name + ".")
        else:
            keys.append(_prefix + f.name)
    return keys


def _parse(text: str, tp, key: str):
    optional, inner = _is_optional(tp)
    if optional and text.lower() in ("none", "null"):
        return None
    tp = inner
    bad = ConfigError(f"The '{key}' parameter must be {_type_name(tp)}. Got {text!r}.")
    if typing.get_origin(tp) is Literal:
        for option in typing.get_args(tp):
            if str(option) == text:
                return option
        raise bad
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        if typing.get_origin(item) is tuple:  # nested: a Python literal, e.g. "((0.5, 50, 5), (0, 16, 3))"
            try:
                return _tuples(ast.literal_eval(text))
            except (ValueError, SyntaxError):
                raise bad from None
        return tuple(_parse(t.strip(), item, key) for t in text.strip("()[]").split(",") if t.strip())
    if tp is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise bad
    try:
        if tp is int:
            number = float(text)  # accept 1e5 for step counts
            if not number.is_integer():
                raise ValueError
            return int(number)
        if tp is float:
            return float(text)
    except ValueError:
        raise bad from None
    return text


def apply_overrides(cfg, overrides: list[str] | dict[str, Any]):
    """Return a validated copy of ``cfg`` with ``key=value`` overrides applied.

    Raises ``ConfigError`` for a malformed override, an unknown key, a value of the
    wrong type or out of range.
    """
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    known = config_keys(cfg)
    for key, value in items:
        if key not in known:
            raise ConfigError(f"Unknown config key '{key}' for {type(cfg).__name__}; {_did_you_mean(key, known)}")
        cfg = _replace_path(cfg, key.split("."), value, key)
    return validate(cfg)


def _did_you_mean(key: str, known: list[str]) -> str:
    """The closest valid keys (by the dotted name and by its last part)."""
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    tails = {k.rsplit(".", 1)[-1]: k for k in known}
    close += [tails[t] for t in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(tails), n=3, cutoff=0.75)
              if tails[t] not in close]
    hint = f"did you mean {' or '.join(repr(k) for k in close[:3])}? " if close else ""
    return hint + "'learnlab config EXPERIMENT' lists every key."


def describe(cfg, _prefix: str = "") -> list[dict[str, Any]]:
    """Every key of ``cfg`` with its value, type, limits and help (``learnlab config``)."""
    hints = _hints(type(cfg))
    siblings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    rows = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            rows += describe(value, _prefix + f.name + ".")
            continue
        constraints = f.metadata.get("constraints", ())
        rows.append({"key": _prefix + f.name, "value": value, "type": _type_name(hints[f.name]),
                     "limits": " and ".join(c.describe(siblings) for c in constraints),
                     "help": plain_text(f.metadata.get("help", ""))})
    return rows


def plain_text(text: str) -> str:
    """Help text for a terminal: reStructuredText literals (``x``) and roles (:class:`X`) unwrapped."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "").replace("`", "")


def _split(override: str) -> tuple[str, str]:
    if "=" not in override:
        raise ConfigError(f"Override {override!r} is not of the form key=value.")
    key, value = override.split("=", 1)
    return key.strip(), value.strip()


def _replace_path(cfg, path: list[str], value, key: str):
    name = path[0]
    if len(path) > 1:
        return dataclasses.replace(cfg, **{name: _replace_path(getattr(cfg, name), path[1:], value, key)})
    if isinstance(value, str):
        value = _parse(value, _hints(type(cfg))[name], key)
    return dataclasses.replace(cfg, **{name: value})


# ----------------------------------------------------------------------------- dicts


def to_dict(cfg) -> dict[str, Any]:
    """A JSON-ready dict (tuples become lists)."""
    return dataclasses.asdict(cfg)


def _tuples(value):
    """Lists (from JSON or a literal) as tuples, at every depth."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def from_dict(cls, data: dict[str, Any], _prefix: str = ""):
    """Rebuild and validate a config of class ``cls``; unknown keys are an error."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"Unknown config key '{_prefix + sorted(unknown)[0]}' for {cls.__name__}.")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        _, inner = _is_optional(tp)
        if dataclasses.is_dataclass(tp):
            value = from_dict(tp, value, _prefix + name + ".")
        elif typing.get_origin(inner) is tuple and isinstance(value, list):
            value = _tuples(value)
        kwargs[name] = value
    cfg = cls(**kwargs)
    return validate(cfg) if not _prefix else cfg


def npz_problem(path: str, required: tuple[str, ...], key: str = "data_path") -> str | None:
    """Why ``path`` is not an .npz holding the ``required`` arrays (one line), or None when it is."""
    import numpy as np

    if not os.path.isfile(path):
        return f"{key} {path!r} is not a file"
    try:
        with np.load(path) as arrays:
            names = set(arrays.files)
    except (OSError, ValueError) as error:
        return f"{key} {path}: not a readable .npz ({error})"
    missing = [n for n in required if n not in names]
    return f"{key} {path}: missing array '{missing[0]}'" if missing else None
