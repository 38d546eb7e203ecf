"""Settings that carry their own checks: the one schema of the library configs and the params file.

A config field is declared with :func:`setting`: its default plus a range (``ge`` / ``gt`` / ``le`` / ``lt``),
a set of ``choices`` (of the value, or of each item of a list), and for lists ``nonempty``, ``unique`` and
``template`` (each item a prompt template with one ``{}``). The rules live in the field's metadata, once:

* the library configs (:mod:`clip2point.configs`) call :func:`check_settings` in ``__post_init__``, so a config
  built in code refuses a bad value with one line naming the section and the field;
* the params sections (``pipeline.params``) are derived from those configs' fields, and the params reader checks
  each value with :func:`setting_problems` before it builds anything, naming the dotted key of ``params.yaml``.

Torch-free: ``pipeline.params`` reads params without importing torch.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import string
from collections.abc import Collection, Iterator
from typing import Any

_BOUNDS = (("ge", ">=", lambda a, b: a >= b), ("gt", ">", lambda a, b: a > b),
           ("le", "<=", lambda a, b: a <= b), ("lt", "<", lambda a, b: a < b))


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
            choices: Collection[str] | None = None, nonempty: bool = False, unique: bool = False,
            template: bool = False) -> Any:
    """A dataclass field whose value must lie in a range (``ge``/``gt``/``le``/``lt``) or among ``choices`` (each
    item of a list), and, for lists, be ``nonempty`` / ``unique`` / every item a prompt ``template``. ``choices``
    may be a :class:`~clip2point.registry.Registry`: the names registered when a value is checked."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices).items() if v is not None}
    meta |= {k: True for k, v in dict(nonempty=nonempty, unique=unique, template=template).items() if v}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def template_problem(template: str) -> str | None:
    """Why ``template`` is not a prompt template with exactly one ``{}`` (where the class name goes), or
    ``None`` when it is one. ``{{`` and ``}}`` are literal braces; ``{0}``, ``{name}``, ``{:>9}``, ``{!r}``,
    two placeholders or none are refused: each would put the class name nowhere, twice, or fail later."""
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


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def setting_problems(value: Any, meta: Any) -> Iterator[tuple[str, str]]:
    """The rule violations of ``value`` under a field's metadata, as (key suffix, text) pairs: the suffix is
    ``""`` or a list index ``"[i]"``; the text completes "'<key><suffix>' …" (e.g. ``must be >= 1; got 0``)."""
    if isinstance(value, tuple | list):
        if meta.get("nonempty") and not value:
            yield "", "is empty; it needs at least one entry"
        if meta.get("unique"):
            twice = sorted({repr(v) for v in value if list(value).count(v) > 1})
            if twice:
                yield "", f"lists {', '.join(twice)} more than once"
        if meta.get("template"):
            for i, t in enumerate(value):
                problem = template_problem(t)
                if problem is not None:
                    yield f"[{i}]", f"entry {t!r} {problem}"
    items = value if isinstance(value, tuple | list) else (value,)
    for v in items:
        if v is None:  # a field typed ``X | None``: None means "not set" and has no range
            continue
        if "choices" in meta and v not in meta["choices"]:
            yield "", f"must be one of {', '.join(meta['choices'])}; got {v!r}"
        for op, word, ok in _BOUNDS:
            if op not in meta:
                continue
            if not _is_number(v) or (isinstance(v, float) and math.isnan(v)):
                yield "", f"must be a number {word} {meta[op]}; got {v!r}"
                break
            if not ok(v, meta[op]):
                yield "", f"must be {word} {meta[op]}; got {v!r}"


def check_settings(obj: Any, section: str) -> None:
    """``ValueError`` naming ``section`` and the field of the first value of the dataclass ``obj`` that breaks
    its :func:`setting` rules: ``"depth: 'dilation' must be >= 1; got 0"``."""
    for f in dataclasses.fields(obj):
        for suffix, text in setting_problems(getattr(obj, f.name), f.metadata):
            raise ValueError(f"{section}: '{f.name}{suffix}' {text}")
