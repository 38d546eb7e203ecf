"""One registry helper for every "name → entry" table of the library (timm-style), torch-free.

A :class:`Registry` maps names to entries in registration order: ``reg.register(name, entry)``, or
``@reg.register(name)`` as a decorator, or **lazily**, ``reg.lazy(name, "package.module:attribute")``: that
module is imported on the first :meth:`Registry.get` of the name. The helper imports nothing but the standard
library, so a registry lists its names without importing torch: the depth projections and footprints of
:mod:`clip2point.configs` are lazy entries, and the objectives' registry holds torch-free
:class:`~clip2point.train.objective_info.ObjectiveInfo` records, each importing its loss on ``load()``.
An unknown name raises the registry's error type with one line naming the kind, the value and the known names;
registering a name twice raises :class:`ValueError`.

Used by the pre-training objectives (:mod:`clip2point.train.objective_info`), the dataset catalogues, real
datasets and layout checks (:mod:`clip2point.datasets.base`), the synthetic classes
(:mod:`clip2point.synth.shapes`), the optimizers and LR schedules (:mod:`clip2point.train.optim`), the adapters
(:mod:`clip2point.models.adapters`) and the depth projections (:mod:`clip2point.render.depth`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")
_NOTHING: Any = object()


def import_target(target: str) -> Any:
    """The object named by ``"package.module:attribute"``, importing its module (the one rule for lazy entries)."""
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise ValueError(f"a lazy registry entry must be 'module:attribute', got {target!r}")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


class _Lazy:
    """A registered ``"module:attribute"``, imported on first use."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
            raise ValueError(f"a lazy registry entry must be 'module:attribute', got {target!r}")
        self.target = target

    def load(self) -> Any:
        return import_target(self.target)


class Registry(Generic[T]):
    """Names → entries, in registration order.

    ``kind`` names what the entries are in error messages ("unknown <kind> 'x' (known: a, b)");
    ``error`` is the exception type of an unknown name (``ValueError`` by default; ``KeyError`` where callers
    catch that); ``normalize`` maps a looked-up name first (e.g. ``str.lower``).
    """

    def __init__(self, kind: str, *, error: type[Exception] = ValueError,
                 normalize: Callable[[str], str] | None = None) -> None:
        self.kind = kind
        self.error = error
        self.normalize = normalize
        self._entries: dict[str, Any] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, entry: T) -> T: ...

    def register(self, name: str, entry: Any = _NOTHING) -> Any:
        """Add ``entry`` under ``name`` (or, without ``entry``, return a decorator that adds what it wraps)."""
        if entry is _NOTHING:
            def deco(obj: T) -> T:
                self._add(name, obj)
                return obj

            return deco
        self._add(name, entry)
        return entry

    def lazy(self, name: str, target: str) -> None:
        """Add ``name`` whose entry is ``target`` (``"module:attribute"``), imported on its first :meth:`get`."""
        self._add(name, _Lazy(target))

    def _add(self, name: str, entry: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry

    def get(self, name: str, default: Any = _NOTHING) -> T:
        """The entry of ``name`` (a lazy one imported now); an unknown name returns ``default`` when one is
        given, else raises ``self.error`` (:meth:`unknown`)."""
        key = self.normalize(name) if self.normalize is not None and isinstance(name, str) else name
        try:
            entry = self._entries[key]
        except (KeyError, TypeError):
            if default is not _NOTHING:
                return default
            raise self.unknown(name) from None
        if isinstance(entry, _Lazy):
            entry = self._entries[key] = entry.load()
        return entry

    def unknown(self, name: Any) -> Exception:
        """The one-line error of an unknown ``name`` (for callers that check a name before using it)."""
        return self.error(f"unknown {self.kind} {name!r} (known: {', '.join(self._entries) or 'none'})")

    def copy(self) -> Registry[T]:
        """A registry of the same kind and entries (to register into without changing this one, e.g. in tests)."""
        new: Registry[T] = Registry(self.kind, error=self.error, normalize=self.normalize)
        new._entries = dict(self._entries)
        return new

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs in registration order."""
        return [(n, self.get(n)) for n in self._entries]

    def values(self) -> list[T]:
        """The entries in registration order."""
        return [self.get(n) for n in self._entries]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
