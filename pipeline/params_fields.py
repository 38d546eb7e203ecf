"""Typed sections from raw params mappings: coercion, the fields' own checks, one-line errors.

A section is a frozen dataclass whose fields are :func:`clip2point.settings.setting` fields (a default plus a
range, a set of choices, or list rules), most of them derived from a library config (:func:`derived_from`, so
the rules are written once, on the config); :func:`_build` turns a raw mapping into the section, coercing each
value to its annotated type and naming the dotted key of the first value that is unknown, missing, of the wrong
type or out of its range. The sections themselves live in :mod:`pipeline.params`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from clip2point.settings import setting_problems


class ParamsError(ValueError):
    """A parameter is missing, unknown, of the wrong type or out of its range."""


def derived_from(config: type, *, drop: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Class decorator: a frozen params section holding every field of the library ``config`` (its type,
    default and :func:`~clip2point.settings.setting` rules, in the config's order) except ``drop``, followed by
    the fields the decorated class declares itself (the section's own: seeds, lists, pipeline-only switches).
    The decorated class's methods (``__post_init__``) and docstring are kept. So a range or a default is written
    once, on the config, and the params file and the library agree by construction."""

    def deco(cls: type) -> type:
        own = dataclasses.dataclass(frozen=True)(cls)
        own_names = {f.name for f in dataclasses.fields(own)}
        unknown = set(drop) - {f.name for f in dataclasses.fields(config)}
        if unknown:
            raise TypeError(f"{cls.__name__}: drop names {sorted(unknown)}, not fields of {config.__name__}")
        specs = [(f.name, t, _copy(f)) for f, t in _fields_with_types(config)
                 if f.name not in drop and f.name not in own_names]
        specs += [(f.name, t, _copy(f)) for f, t in _fields_with_types(own)]
        ns = {k: v for k, v in vars(cls).items()
              if callable(v) and not k.startswith("__") or k in ("__post_init__", "__doc__")}
        new = dataclasses.make_dataclass(cls.__name__, specs, frozen=True, namespace=ns)
        new.__module__, new.__qualname__ = cls.__module__, cls.__qualname__
        return new

    return deco


def copied(config: type, name: str) -> Any:
    """A field that is ``config``'s field ``name`` (default and rules), for a section that takes one field of
    another config (``depth.distance`` and ``depth.jitter`` are :class:`~clip2point.configs.PretrainConfig`'s)."""
    (f,) = [f for f in dataclasses.fields(config) if f.name == name]
    return _copy(f)


def _copy(f: dataclasses.Field) -> Any:
    return dataclasses.field(default=f.default, default_factory=f.default_factory, metadata=f.metadata)


def _fields_with_types(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _check_range(value: Any, meta: Any, key: str) -> None:
    for suffix, text in setting_problems(value, meta):
        raise ParamsError(f"params: '{key}{suffix}' {text}")


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
