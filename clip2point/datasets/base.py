"""What every dataset family shares: the item record, the catalogue registry, the facts of a real download
(:class:`DatasetInfo`, :data:`DATASETS`) and the layout-check registry with its report.

A family module (``modelnet``, ``shapenet``, ``scanobjectnn``, ``synth``) registers, per dataset kind, how to
list its items and class names (:func:`register_catalogue`), and for a real dataset its published facts
(:func:`register_dataset`) and how to check a local download against them (:func:`register_layout_check`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from clip2point.io.errors import ReadError
from clip2point.io.meshes import MESH_EXTENSIONS
from clip2point.registry import Registry

#: The class tables of the real datasets, shipped as package data (``clip2point/datasets/classes.json``).
CLASS_TABLES = Path(__file__).with_name("classes.json")


@cache
def _class_tables() -> dict[str, Any]:
    return json.loads(CLASS_TABLES.read_text())


def class_table(name: str) -> Any:
    """One shipped class table: ``modelnet40``/``modelnet10``/``scanobjectnn`` (names in label order) or
    ``shapenet_synsets`` (synset id → category name)."""
    tables = _class_tables()
    if name.startswith("_") or name not in tables:
        raise KeyError(f"no class table {name!r} in {CLASS_TABLES} (known: {sorted(k for k in tables if k[0] != '_')})")
    return tables[name]


#: A ``counts`` key standing for all splits together (datasets whose split is chosen locally).
TOTAL = "all"


@dataclass(frozen=True)
class Item:
    """One shape of a dataset. ``source`` is the file path (``file.h5:INDEX`` for HDF5 rows)."""

    id: str
    split: str
    label: int
    label_name: str
    source: str
    index: int | None = None


# ---------------------------------------------------------------- catalogue registry

#: ``fn(root, variant) -> list[Item]``: every item of a dataset, all splits, in a deterministic order.
ItemsFn = Callable[[Path, str], list[Item]]
#: ``fn(root, variant) -> list[str]``: the class names in label order.
NamesFn = Callable[[Path, str], list[str]]


@dataclass(frozen=True)
class CatalogueKind:
    """A registered dataset kind: how to list its items and its class names from ``(root, variant)``."""

    name: str
    items: ItemsFn
    names: NamesFn


_CATALOGUES: Registry[CatalogueKind] = Registry("dataset kind")


def register_catalogue(kind: str, *, names: NamesFn) -> Callable[[ItemsFn], ItemsFn]:
    """Decorator registering ``fn(root, variant) -> list[Item]`` as the catalogue of ``kind``.

    ``names(root, variant)`` gives the class names in label order (``Item.label`` indexes them). Both
    functions receive ``root`` as a :class:`~pathlib.Path` and check it themselves (a kind may accept a
    root that is not a folder). Registering a kind twice is a :class:`ValueError`.
    """

    def add(fn: ItemsFn) -> ItemsFn:
        _CATALOGUES.register(kind, CatalogueKind(kind, fn, names))
        return fn

    return add


def catalogue_kind(kind: str) -> CatalogueKind:
    """The registered :class:`CatalogueKind` (``ValueError`` listing the registered kinds)."""
    return _CATALOGUES.get(kind)


def registered_kinds() -> tuple[str, ...]:
    return _CATALOGUES.names()


def require_dir(root: Path) -> None:
    if not root.is_dir():
        raise ReadError(root, "dataset root not found (not a directory)")


def read_list(path: Path) -> list[str]:
    """The non-empty lines of a split / class list (``ReadError`` when it is absent)."""
    if not path.is_file():
        raise ReadError(path, "split/class list not found")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


# ---------------------------------------------------------------- ModelNet-style folders (ModelNet, synth)


def folder_classes(root: Path) -> list[str]:
    """``classes.txt`` when present, else the sorted class folders."""
    listed = root / "classes.txt"
    if listed.is_file():
        return read_list(listed)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def folder_catalogue(root: Path) -> list[Item]:
    """``root/<class>/<split>/<id>.<mesh>``: one item per mesh file; ids qualified by the split when a stem
    repeats across splits."""
    items = []
    for label, name in enumerate(folder_classes(root)):
        cdir = root / name
        if not cdir.is_dir():
            raise ReadError(cdir, "class folder listed in classes.txt is missing")
        for sdir in sorted(p for p in cdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for f in sorted(sdir.iterdir()):
                if f.suffix.lower() in MESH_EXTENSIONS and not f.name.startswith("."):
                    items.append(Item(f.stem, sdir.name, label, name, str(f)))
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):  # same stem in two splits: qualify ids with the split
        items = [
            Item(f"{it.split}/{it.id}", it.split, it.label, it.label_name, it.source, it.index)
            for it in items
        ]
    return items


# ---------------------------------------------------------------- real downloads: facts and layout checks


@dataclass(frozen=True)
class DatasetInfo:
    """One real dataset: what ``clip2point prepare NAME`` expects to find under ``--root``."""

    name: str
    kind: str  # the catalogue kind
    role: str  # "benchmark" (data.benchmarks) or "pretrain" (data.pretrain)
    up_axis: str
    classes: tuple[str, ...]
    #: expected items per split; for ScanObjectNN, per variant (``counts_for``)
    counts: dict[str, int] = field(default_factory=dict)
    variant_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    download: str = ""
    layout: str = ""
    #: non-empty when ``--variant`` may name a folder (what it holds); such datasets have no named variants
    variant_path: str = ""

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(self.variant_counts)

    def counts_for(self, variant: str = "") -> dict[str, int]:
        """Expected ``{split: count}`` (the variant's, for datasets that have variants)."""
        if self.variant_counts:
            if variant not in self.variant_counts:
                raise KeyError(
                    f"{self.name}: unknown variant '{variant}' (known: {', '.join(self.variants)})"
                )
            return dict(self.variant_counts[variant])
        return dict(self.counts)


#: The real datasets of §5.1 by name, in registration order.
DATASETS: Registry[DatasetInfo] = Registry("dataset", error=KeyError, normalize=str.lower)


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    return DATASETS.register(info.name, info)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; unknown names list the known ones."""
    return DATASETS.get(name)


@dataclass
class LayoutReport:
    """What :func:`check_layout` found: counts per split and the exact problems (empty when complete)."""

    dataset: str
    root: Path
    variant: str
    expected: dict[str, int]
    found: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: facts worth telling that do not make the download incomplete (e.g. which split rule applies)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(self.found.get(s, 0) == n for s, n in self.expected.items())

    def summary(self) -> str:
        """``train 9,843/9,843, test 2,468/2,468``."""
        return ", ".join(f"{s} {self.found.get(s, 0):,}/{n:,}" for s, n in self.expected.items())


#: ``fn(info, root, variant, report)``: fill ``report.found`` / ``problems`` / ``notes`` (file system only).
LayoutCheck = Callable[[DatasetInfo, Path, str, LayoutReport], None]
_LAYOUT_CHECKS: Registry[LayoutCheck] = Registry("layout check")


def register_layout_check(*kinds: str) -> Callable[[LayoutCheck], LayoutCheck]:
    """Decorator registering the layout check of the dataset kinds ``kinds``."""

    def add(fn: LayoutCheck) -> LayoutCheck:
        for kind in kinds:
            _LAYOUT_CHECKS.register(kind, fn)
        return fn

    return add


def listing(names: Iterable[str], limit: int = 8) -> str:
    """``a, b, c, … (N more)``: the first ``limit`` sorted names."""
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def find_root(root: Path, candidates: Iterable[str]) -> Path:
    """``root`` itself, or the first named child that exists (users pass either level of the archive)."""
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    return root


def check_layout(name: str, root: str | Path, variant: str = "") -> LayoutReport:
    """Check a local download of ``name`` under ``root`` against the expected files and split sizes."""
    info = dataset_info(name)
    root = Path(root).expanduser()
    expected = info.counts_for(variant)
    report = LayoutReport(info.name, root, variant, expected)
    if not root.is_dir():
        report.problems.append(f"{root} is not a directory")
        return report
    check = _LAYOUT_CHECKS.get(info.kind, None)
    if check is not None:
        check(info, root, variant, report)
    for split, n in expected.items():
        got = report.found.get(split, 0)
        if got != n:
            delta = f"{n - got:,} missing" if got < n else f"{got - n:,} more than expected"
            report.problems.append(f"{split}: found {got:,} of {n:,} ({delta})")
    return report
