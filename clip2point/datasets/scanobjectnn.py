"""ScanObjectNN (Uy et al. 2019; §5.1 downstream benchmark, real scans): 15 classes, HDF5.

The main split has 2,309 train / 581 test objects in both ``OBJ_ONLY`` (``main_split_nobg``) and ``OBJ_BG``
(``main_split``); the hardest perturbed variant ``PB_T50_RS`` (``*_augmentedrot_scale75.h5``) has five
perturbed copies of each: 11,416 / 2,882. Catalogue kind ``scanobjectnn``: ``root/main_split/`` and
``root/main_split_nobg/`` (``root`` may also be their parent holding ``h5_files/``); each item is one row of
an HDF5 file (:data:`SCANOBJECTNN_FILES`), its label an index into :data:`SCANOBJECTNN_CLASSES`.
"""

from __future__ import annotations

import os
from pathlib import Path

from clip2point.datasets import base
from clip2point.io.errors import ReadError
from clip2point.io.points import read_h5_labels

#: ScanObjectNN class names in the order of the integer labels stored in its HDF5 files.
SCANOBJECTNN_CLASSES: tuple[str, ...] = tuple(base.class_table("scanobjectnn"))

#: variant → (folder, training file, test file), relative to ``h5_files/``.
SCANOBJECTNN_FILES: dict[str, tuple[str, str, str]] = {
    "OBJ_ONLY": ("main_split_nobg", "training_objectdataset.h5", "test_objectdataset.h5"),
    "OBJ_BG": ("main_split", "training_objectdataset.h5", "test_objectdataset.h5"),
    "PB_T50_RS": (
        "main_split",
        "training_objectdataset_augmentedrot_scale75.h5",
        "test_objectdataset_augmentedrot_scale75.h5",
    ),
}
#: variant → (training file, test file) relative to ``h5_files/`` (the same files as :data:`SCANOBJECTNN_FILES`).
SCANOBJECTNN_VARIANTS: dict[str, tuple[str, str]] = {
    v: (f"{folder}/{train}", f"{folder}/{test}") for v, (folder, train, test) in SCANOBJECTNN_FILES.items()
}


def scanobjectnn_files(root: str | os.PathLike, variant: str) -> dict[str, Path]:
    """``{"train": path, "test": path}`` of a ScanObjectNN variant (``OBJ_ONLY | OBJ_BG | PB_T50_RS``)."""
    if variant not in SCANOBJECTNN_FILES:
        raise ValueError(
            f"unknown ScanObjectNN variant {variant!r} (expected one of {sorted(SCANOBJECTNN_FILES)})"
        )
    root = Path(root)
    if (root / "h5_files").is_dir():
        root = root / "h5_files"
    folder, train, test = SCANOBJECTNN_FILES[variant]
    base = root if root.name == folder else root / folder
    return {"train": base / train, "test": base / test}


def _scanobjectnn_names(root: Path, variant: str) -> list[str]:
    return list(SCANOBJECTNN_CLASSES)  # fixed by the HDF5 labels: no download needed


@base.register_catalogue("scanobjectnn", names=_scanobjectnn_names)
def _scanobjectnn_items(root: Path, variant: str) -> list[base.Item]:
    items = []
    for split, path in scanobjectnn_files(root, variant).items():
        labels = read_h5_labels(path)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(SCANOBJECTNN_CLASSES)):
            raise ReadError(path, f"labels outside 0..{len(SCANOBJECTNN_CLASSES) - 1}")
        for i, lab in enumerate(labels.tolist()):
            items.append(base.Item(f"{split}_{i:05d}", split, lab, SCANOBJECTNN_CLASSES[lab], f"{path}:{i}", i))
    return items


base.register_dataset(base.DatasetInfo(
    name="scanobjectnn", kind="scanobjectnn", role="benchmark", up_axis="y", classes=SCANOBJECTNN_CLASSES,
    variant_counts={
        "OBJ_ONLY": {"train": 2309, "test": 581},
        "OBJ_BG": {"train": 2309, "test": 581},
        "PB_T50_RS": {"train": 11416, "test": 2882},
    },
    download=(
        "https://hkust-vgd.github.io/scanobjectnn/ (fill in the terms-of-use form; h5_files.zip, "
        "pass the h5_files folder)"
    ),
    layout="h5_files/{main_split,main_split_nobg}/{training,test}_objectdataset[_augmentedrot_scale75].h5",
))


@base.register_layout_check("scanobjectnn")
def _check_scanobjectnn(info: base.DatasetInfo, root: Path, variant: str, report: base.LayoutReport) -> None:
    root = base.find_root(root, ["h5_files"])
    report.root = root
    for split, rel in zip(("train", "test"), SCANOBJECTNN_VARIANTS[variant], strict=True):
        path = root / rel
        if not path.is_file():
            report.problems.append(f"missing {path} ({variant} {split} split)")
            continue
        try:
            import h5py

            with h5py.File(path, "r") as f:
                if "data" not in f or "label" not in f:
                    report.problems.append(
                        f"{path} has no 'data'/'label' datasets (not a ScanObjectNN file?)"
                    )
                    continue
                report.found[split] = int(f["data"].shape[0])
        except OSError as e:
            report.problems.append(f"cannot read {path}: {' '.join(str(e).split())}")
