"""Typed options: each backend and each query kind declares a dataclass of the options it reads.

A field is declared with `opt(default, "what it does")`; its annotation is its type. `check`
validates a caller's option bag against the union of the option classes of the query kind and
the backends a run actually involves (so an option meant for a portfolio member or for `auto`'s
confirming solver passes through), and raises `UsageError` naming the valid options on an
unknown or ill-typed one. `parse` builds one class's instance from a bag (its own keys only).
"""
from __future__ import annotations

import functools
import types
import typing
from dataclasses import MISSING, dataclass, field, fields

from nnir.errors import UsageError


def opt(default, doc: str):
    """A dataclass field with a default and a one-line description (shown in error hints)."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class NoOptions:
    """A backend or query kind without options."""


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def names(cls) -> tuple[str, ...]:
    """The option names `cls` declares."""
    return tuple(f.name for f in fields(cls))


def prefixes(cls) -> tuple[str, ...]:
    """Name prefixes `cls` passes through unchecked (e.g. HiGHS's own `highs_*` options)."""
    return tuple(getattr(cls, "PREFIXES", ()))


def owns(cls, key: str) -> bool:
    return key in names(cls) or key.startswith(prefixes(cls)) and bool(prefixes(cls))


def describe(cls) -> list[str]:
    """`name: type = default  (doc)` for each field of `cls`."""
    out = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else "(required)"
        doc = f.metadata.get("doc", "")
        out.append(f"{f.name}: {_type_name(_hints(cls)[f.name])} = {default!r}"
                   + (f"  ({doc})" if doc else ""))
    return out


def _type_name(tp) -> str:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(tp, value):
    """`value` as type `tp`, or raise TypeError. ints pass as floats; bools are never numbers."""
    if tp is typing.Any or tp is object:
        return value
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        for a in typing.get_args(tp):
            try:
                return _coerce(a, value)
            except TypeError:
                pass
        raise TypeError
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    return value


def parse(cls, options: dict | None, owner: str = "", strict: bool = False):
    """An instance of `cls` from the keys of `options` it declares, each type-checked.

    Args:
        cls: an options dataclass.
        options: the option bag (other keys are ignored unless `strict`).
        owner: who the options are for, for messages ("backend 'z3'", "bound queries").
        strict: raise on a key `cls` does not declare.
    Raises:
        UsageError: an ill-typed value, or (strict) an unknown key.
    """
    options = options or {}
    if strict:
        bad = sorted(k for k in options if not owns(cls, k))
        if bad:
            raise _unknown(bad, [cls], owner)
    hints = _hints(cls)
    kw = {}
    for f in fields(cls):
        if f.name in options:
            kw[f.name] = _typed(f.name, hints[f.name], options[f.name], owner)
    return cls(**kw)


def _typed(name: str, tp, value, owner: str):
    try:
        return _coerce(tp, value)
    except TypeError:
        raise UsageError(f"option {name}={value!r}{' for ' + owner if owner else ''} must be "
                         f"{_type_name(tp)}, not {type(value).__name__}") from None


def check(options: dict | None, classes, owner: str = "") -> None:
    """Raise `UsageError` unless every key of `options` is declared (with a value of its type)
    by at least one of `classes` (the query kind's and the involved backends' option classes).
    """
    options = options or {}
    classes = list(dict.fromkeys(classes))
    bad = sorted(k for k in options if not any(owns(c, k) for c in classes))
    if bad:
        raise _unknown(bad, classes, owner)
    for k, v in options.items():
        errors = []
        for c in classes:
            if k in names(c):
                try:
                    _typed(k, _hints(c)[k], v, owner)
                    break
                except UsageError as exc:
                    errors.append(exc)
        else:
            if errors:
                raise errors[0]


def valid_names(classes) -> list[str]:
    out = []
    for c in dict.fromkeys(classes):
        out += [n for n in names(c) if n not in out]
        out += [p + "*" for p in prefixes(c) if p + "*" not in out]
    return sorted(out)


def _unknown(bad: list[str], classes, owner: str) -> UsageError:
    valid = valid_names(classes)
    return UsageError(f"unknown option{'s' if len(bad) > 1 else ''} "
                      f"{', '.join(map(repr, bad))}{' for ' + owner if owner else ''}",
                      hint="valid options: " + (", ".join(valid) or "none"))


def pick(cls, options: dict | None) -> dict:
    """The keys of `options` that `cls` declares (to hand one part of a run its options)."""
    return {k: v for k, v in (options or {}).items() if owns(cls, k)}
