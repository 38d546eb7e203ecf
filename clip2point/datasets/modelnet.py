"""ModelNet40 / ModelNet10 (Wu et al. 2015; §5.1 downstream benchmarks): classes, published counts, the
catalogue and the layout check.

* ModelNet40: 12,311 CAD meshes (OFF, z-up), 9,843 train / 2,468 test, 40 classes.
* ModelNet10: the 10-class subset, 3,991 train / 908 test.

Catalogue kinds ``modelnet40`` / ``modelnet10``: the aligned ModelNet download,
``root/<class>/<train|test>/<class>_0001.off`` (variant ``""`` or ``"off"``); or the resampled point-cloud
release (variant ``"resampled"``, picked automatically when ``modelnet40_shape_names.txt`` is present):
``root/modelnet40_shape_names.txt``, ``root/modelnet40_{train,test}.txt`` listing ids such as
``night_stand_0001``, and ``root/<class>/<id>.txt`` with ``x,y,z,nx,ny,nz`` rows. ModelNet's aligned models
are z-up.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from clip2point.datasets import base
from clip2point.io.errors import ReadError

MODELNET40_CLASSES: tuple[str, ...] = tuple(base.class_table("modelnet40"))
MODELNET10_CLASSES: tuple[str, ...] = tuple(base.class_table("modelnet10"))


# ---------------------------------------------------------------- catalogue (folders or resampled lists)


def _resampled_prefix(kind: str) -> str:
    return "modelnet10" if kind == "modelnet10" else "modelnet40"


def _is_resampled(kind: str, root: Path, variant: str) -> bool:
    if variant == "resampled":
        return True
    if variant in ("", "off"):
        return variant == "" and (root / f"{_resampled_prefix(kind)}_shape_names.txt").is_file()
    raise ValueError(f"unknown ModelNet variant {variant!r} (expected '', 'off' or 'resampled')")


def _resampled_catalogue(kind: str, root: Path) -> list[base.Item]:
    prefix = _resampled_prefix(kind)
    names = base.read_list(root / f"{prefix}_shape_names.txt")
    index = {n: i for i, n in enumerate(names)}
    items = []
    for split in ("train", "test"):
        for shape_id in base.read_list(root / f"{prefix}_{split}.txt"):
            cls = shape_id.rsplit("_", 1)[0]
            if cls not in index:
                raise ReadError(
                    root / f"{prefix}_{split}.txt", f"id {shape_id!r} names unknown class {cls!r}"
                )
            items.append(base.Item(shape_id, split, index[cls], cls, str(root / cls / f"{shape_id}.txt")))
    return items


def _modelnet_names(kind: str, root: Path, variant: str) -> list[str]:
    base.require_dir(root)
    if _is_resampled(kind, root, variant):
        return base.read_list(root / f"{_resampled_prefix(kind)}_shape_names.txt")
    return base.folder_classes(root)


def _modelnet_items(kind: str, root: Path, variant: str) -> list[base.Item]:
    base.require_dir(root)
    if _is_resampled(kind, root, variant):
        return _resampled_catalogue(kind, root)
    return base.folder_catalogue(root)


for _modelnet in ("modelnet40", "modelnet10"):
    base.register_catalogue(_modelnet, names=partial(_modelnet_names, _modelnet))(partial(_modelnet_items, _modelnet))


# ---------------------------------------------------------------- the real downloads

base.register_dataset(base.DatasetInfo(
    name="modelnet40", kind="modelnet40", role="benchmark", up_axis="z", classes=MODELNET40_CLASSES,
    counts={"train": 9843, "test": 2468},
    # the released code reads the manually aligned release (datasets/modelnet40_align.py:31); Princeton's
    # original ModelNet40.zip is not consistently aligned, so the fixed views would see other sides
    download=(
        "the manually aligned ModelNet40 (Sedaghat et al., 'Orientation-boosted voxel nets', "
        "https://lmb.informatik.uni-freiburg.de/resources/datasets/ORION/modelnet40_manually_aligned.tar); "
        "pass the unpacked modelnet40_manually_aligned folder"
    ),
    layout="modelnet40_manually_aligned/<class>/{train,test}/<class>_NNNN.off",
))
base.register_dataset(base.DatasetInfo(
    name="modelnet10", kind="modelnet10", role="benchmark", up_axis="z", classes=MODELNET10_CLASSES,
    counts={"train": 3991, "test": 908},
    download="https://modelnet.cs.princeton.edu/ (ModelNet10.zip, ~450 MB; pass the unzipped ModelNet10)",
    layout="ModelNet10/<class>/{train,test}/<class>_NNNN.off",
))


@base.register_layout_check("modelnet40", "modelnet10")
def _check_modelnet(info: base.DatasetInfo, root: Path, variant: str, report: base.LayoutReport) -> None:
    title = "ModelNet40" if info.kind == "modelnet40" else "ModelNet10"
    root = base.find_root(root, [title, title.lower()])
    report.root = root
    if (root / f"{info.kind}_shape_names.txt").is_file():  # PointNet++'s modelnet40_normal_resampled layout
        for split in report.expected:
            lst = root / f"{info.kind}_{split}.txt"
            if not lst.is_file():
                report.problems.append(f"missing split list {lst}")
                continue
            ids = base.read_list(lst)
            missing = [i for i in ids if not (root / i.rsplit("_", 1)[0] / f"{i}.txt").is_file()]
            report.found[split] = len(ids) - len(missing)
            if missing:
                report.problems.append(f"{split}: {len(missing):,} listed files missing: {base.listing(missing)}")
        return
    absent = [c for c in info.classes if not (root / c).is_dir()]
    if absent:
        report.problems.append(f"missing class folders under {root}: {base.listing(absent)}")
    unexpected = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in info.classes)
    if unexpected and len(absent) == len(info.classes):
        report.problems.append(
            f"no {title} class folders here (found: {base.listing(unexpected)}); expected {info.layout}"
        )
    for split in report.expected:
        empty = []
        total = 0
        for c in info.classes:
            d = root / c / split
            n = sum(1 for _ in d.glob("*.off")) if d.is_dir() else 0
            total += n
            if n == 0 and c not in absent:
                empty.append(f"{c}/{split}")
        report.found[split] = total
        if empty:
            report.problems.append(f"no .off files in: {base.listing(empty)}")
