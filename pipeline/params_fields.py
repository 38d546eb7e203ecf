"""Typed sections from raw params mappings: fields that carry their checks, coercion, one-line errors.

A section is a frozen dataclass whose fields are declared with :func:`_f` (a default plus a range, a set of
choices, or list rules); :func:`_build` turns a raw mapping into the section, coercing each value to its
annotated type and naming the dotted key of the first value that is unknown, missing, of the wrong type or out
of its range. The sections themselves live in :mod:`pipeline.params`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any


class ParamsError(ValueError):
    """A parameter is missing, unknown, of the wrong type or out of its range."""


def _f(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
       lt: float | None = None, choices: tuple[str, ...] | None = None, nonempty: bool = False,
       unique: bool = False, template: bool = False) -> Any:
    """A dataclass field with checks applied at load: a range (``ge``/``gt``/``le``/``lt``) or a set of
    ``choices`` (each item of a list), and for lists ``nonempty`` (at least one item), ``unique`` (no item
    twice) and ``template`` (every item a prompt template: :func:`check_template`)."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices).items() if v is not None}
    meta |= {k: True for k, v in dict(nonempty=nonempty, unique=unique, template=template).items() if v}
    return field(default=default, metadata=meta)


def template_problem(template: str) -> str | None:
    """Why ``template`` is not a prompt template with exactly one ``{}`` (where the class name goes), or
    ``None`` when it is one. ``{{`` and ``}}`` are literal braces; ``{0}``, ``{name}``, ``{:>9}``, ``{!r}``,
    two placeholders or none are refused: each would put the class name nowhere, twice, or fail later."""
    import string

    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]  # fmt: skip
    except ValueError as e:  # an unmatched '{' or '}'
        return f"is not a format string ({e})"
    if not fields:
        return "has no '{}' placeholder (the class name would appear nowhere)"
    if len(fields) > 1:
        return f"has {len(fields)} placeholders; it needs exactly one '{{}}'"
    name, spec, conv = fields[0]
    if name or spec or conv:
        shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        return f"has the placeholder '{shown}'; it needs a plain '{{}}'"
    return None


def check_template(template: str, key: str) -> None:
    """:class:`ParamsError` naming ``key`` and ``template`` unless it holds exactly one ``{}``."""
    problem = template_problem(template)
    if problem is not None:
        raise ParamsError(f"params: '{key}' entry {template!r} {problem}")


def _check_range(value: Any, meta: Any, key: str) -> None:
    if isinstance(value, tuple):
        if meta.get("nonempty") and not value:
            raise ParamsError(f"params: '{key}' is empty; it needs at least one entry")
        if meta.get("unique"):
            twice = sorted({repr(v) for v in value if value.count(v) > 1})
            if twice:
                raise ParamsError(f"params: '{key}' lists {', '.join(twice)} more than once")
        if meta.get("template"):
            for i, t in enumerate(value):
                check_template(t, f"{key}[{i}]")
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if "choices" in meta and v not in meta["choices"]:
            raise ParamsError(f"params: '{key}' must be one of {', '.join(meta['choices'])}; got {v!r}")
        for op, ok, word in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                             ("le", lambda a, b: a <= b, "<="), ("lt", lambda a, b: a < b, "<")):
            if op in meta and not ok(v, meta[op]):
                raise ParamsError(f"params: '{key}' must be {word} {meta[op]}; got {v!r}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ParamsError(f"params: '{key}' must be a mapping, got {value!r}")
        return _build(tp, value, key)
    if origin in (types.UnionType, typing.Union):
        for arm in typing.get_args(tp):
            if arm is type(None) and value is None:
                return None
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(value, arms[0], key)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        if isinstance(value, dict) and dataclasses.is_dataclass(inner) and "name" in {
            f.name for f in dataclasses.fields(inner)
        }:
            # a mapping keyed by name (dvc foreach-friendly: stage names like sample@synth_benchmark)
            value = [{"name": k, **(v or {})} for k, v in value.items()]
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"params: '{key}' must be a list, got {value!r}")
        return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is dict:
        if value is not None and not isinstance(value, dict):
            raise ParamsError(f"params: '{key}' must be a mapping, got {value!r}")
        return dict(value or {})
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"params: '{key}' must be true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"params: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"params: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ParamsError(f"params: '{key}' must be a string, got {value!r}")
        return value
    return value


def _build(cls: type, raw: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise ParamsError(f"params: unknown key(s) {sorted(unknown)} in '{prefix or 'params.yaml'}'")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in raw:
            kwargs[f.name] = _coerce(raw[f.name], hints[f.name], key)
            _check_range(kwargs[f.name], f.metadata, key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamsError(f"params: missing required key '{key}'")
    try:
        return cls(**kwargs)
    except ValueError as e:  # a library config's own checks (e.g. depth.realistic): one line naming the section
        if isinstance(e, ParamsError):
            raise
        raise ParamsError(f"params: '{prefix or 'params.yaml'}': {e}") from None
