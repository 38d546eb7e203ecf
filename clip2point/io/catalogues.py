"""Dataset catalogues: which files (or HDF5 rows) make up a dataset, with split and label (§5.1).

``catalogue(kind, root, variant)`` lists :class:`Item` records without reading any shape; ``load_item``
reads one. Kinds and the on-disk layouts they expect:

* ``modelnet40`` / ``modelnet10`` — the aligned ModelNet download,
  ``root/<class>/<train|test>/<class>_0001.off`` (variant ``""`` or ``"off"``); or the resampled
  point-cloud release (variant ``"resampled"``, picked automatically when
  ``modelnet40_shape_names.txt`` is present): ``root/modelnet40_shape_names.txt``,
  ``root/modelnet40_{train,test}.txt`` listing ids such as ``night_stand_0001``, and
  ``root/<class>/<id>.txt`` with ``x,y,z,nx,ny,nz`` rows. ModelNet's aligned models are z-up.
* ``synth`` — the procedural benchmark (``clip2point.synth``): the ModelNet folder layout with any split
  names (``train``/``val``/``test``) and a ``classes.txt`` fixing the label order. y-up.
* ``shapenet55`` — Point-BERT's ShapeNet-55 release: ``root/shapenet_pc/<synset>-<model>.npy`` and
  ``root/{train,test}.txt`` listing those file names. Labels are the synset ids in sorted order, named
  with ShapeNetCore's category names. y-up.
* ``scanobjectnn`` — ``root/main_split/`` and ``root/main_split_nobg/`` (``root`` may also be their parent
  holding ``h5_files/``); each item is one row of an HDF5 file, see :data:`SCANOBJECTNN_FILES`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from clip2point.io.errors import ReadError
from clip2point.io.meshes import MESH_EXTENSIONS, read_mesh_or_points
from clip2point.io.points import read_h5_labels, read_points

KINDS = ("synth", "modelnet40", "modelnet10", "shapenet55", "scanobjectnn")

SCANOBJECTNN_CLASSES = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door",
    "shelf", "table", "bed", "pillow", "sink", "sofa", "toilet",
)  # fmt: skip

#: variant → (folder, training file, test file), relative to ``h5_files/``.
SCANOBJECTNN_FILES = {
    "OBJ_ONLY": ("main_split_nobg", "training_objectdataset.h5", "test_objectdataset.h5"),
    "OBJ_BG": ("main_split", "training_objectdataset.h5", "test_objectdataset.h5"),
    "PB_T50_RS": (
        "main_split",
        "training_objectdataset_augmentedrot_scale75.h5",
        "test_objectdataset_augmentedrot_scale75.h5",
    ),
}

#: ShapeNetCore v2 synset id → category name (the 55 classes of ShapeNet-55).
SHAPENET_SYNSETS = {
    "02691156": "airplane", "02747177": "trash bin", "02773838": "bag", "02801938": "basket",
    "02808440": "bathtub", "02818832": "bed", "02828884": "bench", "02843684": "birdhouse",
    "02871439": "bookshelf", "02876657": "bottle", "02880940": "bowl", "02924116": "bus",
    "02933112": "cabinet", "02942699": "camera", "02946921": "can", "02954340": "cap",
    "02958343": "car", "02992529": "cellphone", "03001627": "chair", "03046257": "clock",
    "03085013": "keyboard", "03207941": "dishwasher", "03211117": "display", "03261776": "earphone",
    "03325088": "faucet", "03337140": "file cabinet", "03467517": "guitar", "03513137": "helmet",
    "03593526": "jar", "03624134": "knife", "03636649": "lamp", "03642806": "laptop",
    "03691459": "loudspeaker", "03710193": "mailbox", "03759954": "microphone", "03761084": "microwave",
    "03790512": "motorbike", "03797390": "mug", "03928116": "piano", "03938244": "pillow",
    "03948459": "pistol", "03991062": "flowerpot", "04004475": "printer", "04074963": "remote control",
    "04090263": "rifle", "04099429": "rocket", "04225987": "skateboard", "04256520": "sofa",
    "04330267": "stove", "04379243": "table", "04401088": "telephone", "04460130": "tower",
    "04468005": "train", "04530566": "watercraft", "04554684": "washer",
}  # fmt: skip


@dataclass(frozen=True)
class Item:
    """One shape of a dataset. ``source`` is the file path (``file.h5:INDEX`` for HDF5 rows)."""

    id: str
    split: str
    label: int
    label_name: str
    source: str
    index: int | None = None


def _require_dir(root: Path) -> None:
    if not root.is_dir():
        raise ReadError(root, "dataset root not found (not a directory)")


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise ReadError(path, "split/class list not found")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


# ---------------------------------------------------------------- ModelNet-style folders (+ synth)


def _folder_classes(root: Path) -> list[str]:
    listed = root / "classes.txt"
    if listed.is_file():
        return _read_list(listed)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_catalogue(root: Path) -> list[Item]:
    items = []
    for label, name in enumerate(_folder_classes(root)):
        cdir = root / name
        if not cdir.is_dir():
            raise ReadError(cdir, "class folder listed in classes.txt is missing")
        for sdir in sorted(p for p in cdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for f in sorted(sdir.iterdir()):
                if f.suffix.lower() in MESH_EXTENSIONS and not f.name.startswith("."):
                    items.append(Item(f.stem, sdir.name, label, name, str(f)))
    return items


def _resampled_prefix(kind: str) -> str:
    return "modelnet10" if kind == "modelnet10" else "modelnet40"


def _is_resampled(kind: str, root: Path, variant: str) -> bool:
    if variant == "resampled":
        return True
    if variant in ("", "off"):
        return variant == "" and (root / f"{_resampled_prefix(kind)}_shape_names.txt").is_file()
    raise ValueError(f"unknown ModelNet variant {variant!r} (expected '', 'off' or 'resampled')")


def _resampled_catalogue(kind: str, root: Path) -> list[Item]:
    prefix = _resampled_prefix(kind)
    names = _read_list(root / f"{prefix}_shape_names.txt")
    index = {n: i for i, n in enumerate(names)}
    items = []
    for split in ("train", "test"):
        for shape_id in _read_list(root / f"{prefix}_{split}.txt"):
            cls = shape_id.rsplit("_", 1)[0]
            if cls not in index:
                raise ReadError(
                    root / f"{prefix}_{split}.txt", f"id {shape_id!r} names unknown class {cls!r}"
                )
            items.append(Item(shape_id, split, index[cls], cls, str(root / cls / f"{shape_id}.txt")))
    return items


# ---------------------------------------------------------------- ShapeNet-55 (Point-BERT)


def _shapenet_files(root: Path) -> dict[str, list[str]]:
    return {split: _read_list(root / f"{split}.txt") for split in ("train", "test")}


def _shapenet_classes(root: Path) -> list[str]:
    synsets = sorted({f.split("-", 1)[0] for files in _shapenet_files(root).values() for f in files})
    return synsets


def _shapenet_catalogue(root: Path) -> list[Item]:
    synsets = _shapenet_classes(root)
    index = {s: i for i, s in enumerate(synsets)}
    items = []
    for split, files in _shapenet_files(root).items():
        for f in files:
            name = f if f.endswith(".npy") else f + ".npy"
            syn = name.split("-", 1)[0]
            items.append(Item(Path(name).stem, split, index[syn], SHAPENET_SYNSETS.get(syn, syn),
                              str(root / "shapenet_pc" / name)))  # fmt: skip
    return items


# ---------------------------------------------------------------- ScanObjectNN


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


def _scanobjectnn_catalogue(root: Path, variant: str) -> list[Item]:
    items = []
    for split, path in scanobjectnn_files(root, variant).items():
        labels = read_h5_labels(path)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(SCANOBJECTNN_CLASSES)):
            raise ReadError(path, f"labels outside 0..{len(SCANOBJECTNN_CLASSES) - 1}")
        for i, lab in enumerate(labels.tolist()):
            items.append(Item(f"{split}_{i:05d}", split, lab, SCANOBJECTNN_CLASSES[lab], f"{path}:{i}", i))
    return items


# ---------------------------------------------------------------- public API


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r} (expected one of {', '.join(KINDS)})")


def class_names(kind: str, root: str | os.PathLike, variant: str = "") -> list[str]:
    """The class names of a dataset, in label order."""
    _check_kind(kind)
    root = Path(root)
    if kind == "scanobjectnn":
        return list(SCANOBJECTNN_CLASSES)
    _require_dir(root)
    if kind == "shapenet55":
        return [SHAPENET_SYNSETS.get(s, s) for s in _shapenet_classes(root)]
    if kind in ("modelnet40", "modelnet10") and _is_resampled(kind, root, variant):
        return _read_list(root / f"{_resampled_prefix(kind)}_shape_names.txt")
    return _folder_classes(root)


def catalogue(kind: str, root: str | os.PathLike, variant: str = "") -> list[Item]:
    """List the items of a dataset (all splits), in a deterministic order. Reads no shape data."""
    _check_kind(kind)
    root = Path(root)
    if kind == "scanobjectnn":
        return _scanobjectnn_catalogue(root, variant)
    _require_dir(root)
    if kind == "shapenet55":
        return _shapenet_catalogue(root)
    if kind in ("modelnet40", "modelnet10") and _is_resampled(kind, root, variant):
        return _resampled_catalogue(kind, root)
    items = _folder_catalogue(root)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):  # same stem in two splits: qualify ids with the split
        items = [
            Item(f"{it.split}/{it.id}", it.split, it.label, it.label_name, it.source, it.index)
            for it in items
        ]
    return items


def load_item(item: Item) -> trimesh.Trimesh | np.ndarray:
    """Read one item: a :class:`trimesh.Trimesh` for mesh files, ``(N, 3) float32`` points for point files."""
    src = item.source
    ext = Path(src.rsplit(":", 1)[0] if item.index is not None else src).suffix.lower()
    if item.index is not None or ext not in MESH_EXTENSIONS:
        return read_points(src)
    return read_mesh_or_points(src)
