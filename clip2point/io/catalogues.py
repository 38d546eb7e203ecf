"""Dataset catalogues: which files (or HDF5 rows) make up a dataset, with split and label (§5.1).

``catalogue(kind, root, variant)`` lists :class:`Item` records without reading any shape; ``load_item``
reads one. Each kind is a pair of functions in a small registry (:func:`register_catalogue`); :data:`KINDS`
lists the built-in ones. Kinds and the on-disk layouts they expect:

* ``modelnet40`` / ``modelnet10`` — the aligned ModelNet download,
  ``root/<class>/<train|test>/<class>_0001.off`` (variant ``""`` or ``"off"``); or the resampled
  point-cloud release (variant ``"resampled"``, picked automatically when
  ``modelnet40_shape_names.txt`` is present): ``root/modelnet40_shape_names.txt``,
  ``root/modelnet40_{train,test}.txt`` listing ids such as ``night_stand_0001``, and
  ``root/<class>/<id>.txt`` with ``x,y,z,nx,ny,nz`` rows. ModelNet's aligned models are z-up.
* ``synth`` — the procedural benchmark (``clip2point.synth``): the ModelNet folder layout with any split
  names (``train``/``val``/``test``) and a ``classes.txt`` fixing the label order. y-up.
* ``shapenet55`` — Point-BERT's ShapeNet-55 release (point clouds only, no meshes):
  ``root/shapenet_pc/<synset>-<model>.npy`` with the split lists ``{train,test}.txt`` listing those file
  names either in ``root`` itself or, as Point-BERT's archive ships them, in ``root/ShapeNet-55/`` (so
  ``root`` may be the unpacked ``ShapeNet55-34`` folder). Labels are the synset ids in sorted order, named
  with :data:`SHAPENET_SYNSETS`. y-up.
* ``shapenetcore`` — the ShapeNetCore.v2 meshes (textured OBJ, what the paper renders RGB from):
  ``root/<synset>/<model_id>/models/model_normalized.obj`` next to its ``model_normalized.mtl``. Classes are
  the synset folders (8 digits) holding at least one model, in sorted order; names come from
  :data:`SHAPENET_SYNSETS` (the same names as ``shapenet55``), and for a synset outside that table from the
  first synonym of its ``name`` in ``root/taxonomy.json``, else the synset id. Splits ``train``/``val``:
  see :func:`shapenetcore_split`. Item ids are ``<synset>-<model_id>`` (Point-BERT's naming). y-up.
* ``scanobjectnn`` — ``root/main_split/`` and ``root/main_split_nobg/`` (``root`` may also be their parent
  holding ``h5_files/``); each item is one row of an HDF5 file, see :data:`SCANOBJECTNN_FILES`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import trimesh

from clip2point.io.errors import ReadError
from clip2point.io.meshes import MESH_EXTENSIONS, read_mesh_or_points
from clip2point.io.points import read_h5_labels, read_points

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


# ---------------------------------------------------------------- registry

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


_CATALOGUES: dict[str, CatalogueKind] = {}


def register_catalogue(kind: str, *, names: NamesFn) -> Callable[[ItemsFn], ItemsFn]:
    """Decorator registering ``fn(root, variant) -> list[Item]`` as the catalogue of ``kind``.

    ``names(root, variant)`` gives the class names in label order (``Item.label`` indexes them). Both
    functions receive ``root`` as a :class:`~pathlib.Path` and check it themselves (a kind may accept a
    root that is not a folder). Registering a kind twice is a :class:`ValueError`.
    """

    def add(fn: ItemsFn) -> ItemsFn:
        if kind in _CATALOGUES:
            raise ValueError(f"dataset kind {kind!r} is already registered")
        _CATALOGUES[kind] = CatalogueKind(kind, fn, names)
        return fn

    return add


def _kind(kind: str) -> CatalogueKind:
    try:
        return _CATALOGUES[kind]
    except KeyError:
        raise ValueError(f"unknown dataset kind {kind!r} (expected one of {', '.join(_CATALOGUES)})") from None


def _require_dir(root: Path) -> None:
    if not root.is_dir():
        raise ReadError(root, "dataset root not found (not a directory)")


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise ReadError(path, "split/class list not found")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


# ---------------------------------------------------------------- ModelNet-style folders (synth)


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
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):  # same stem in two splits: qualify ids with the split
        items = [
            Item(f"{it.split}/{it.id}", it.split, it.label, it.label_name, it.source, it.index)
            for it in items
        ]
    return items


def _synth_names(root: Path, variant: str) -> list[str]:
    _require_dir(root)
    return _folder_classes(root)


@register_catalogue("synth", names=_synth_names)
def _synth_items(root: Path, variant: str) -> list[Item]:
    _require_dir(root)
    return _folder_catalogue(root)


# ---------------------------------------------------------------- ModelNet (folders or resampled lists)


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


def _modelnet_names(kind: str, root: Path, variant: str) -> list[str]:
    _require_dir(root)
    if _is_resampled(kind, root, variant):
        return _read_list(root / f"{_resampled_prefix(kind)}_shape_names.txt")
    return _folder_classes(root)


def _modelnet_items(kind: str, root: Path, variant: str) -> list[Item]:
    _require_dir(root)
    if _is_resampled(kind, root, variant):
        return _resampled_catalogue(kind, root)
    return _folder_catalogue(root)


for _modelnet in ("modelnet40", "modelnet10"):
    register_catalogue(_modelnet, names=partial(_modelnet_names, _modelnet))(partial(_modelnet_items, _modelnet))


# ---------------------------------------------------------------- ShapeNet-55 (Point-BERT point clouds)

#: Where Point-BERT's ``ShapeNet55-34`` archive keeps the split lists, relative to the archive folder.
SHAPENET55_LIST_DIR = "ShapeNet-55"


def _shapenet55_files(root: Path) -> dict[str, list[str]]:
    _require_dir(root)
    for folder in (root, root / SHAPENET55_LIST_DIR):
        if all((folder / f"{split}.txt").is_file() for split in ("train", "test")):
            return {split: _read_list(folder / f"{split}.txt") for split in ("train", "test")}
    raise ReadError(
        root, f"split lists train.txt and test.txt not found (looked in the root and in {SHAPENET55_LIST_DIR}/)"
    )


def _shapenet55_synsets(files: dict[str, list[str]]) -> list[str]:
    return sorted({f.split("-", 1)[0] for names in files.values() for f in names})


def _shapenet55_names(root: Path, variant: str) -> list[str]:
    return [SHAPENET_SYNSETS.get(s, s) for s in _shapenet55_synsets(_shapenet55_files(root))]


@register_catalogue("shapenet55", names=_shapenet55_names)
def _shapenet55_items(root: Path, variant: str) -> list[Item]:
    files = _shapenet55_files(root)
    clouds = root / "shapenet_pc"
    if not clouds.is_dir():
        raise ReadError(clouds, "point-cloud folder not found (expected shapenet_pc/<synset>-<model>.npy)")
    index = {s: i for i, s in enumerate(_shapenet55_synsets(files))}
    items = []
    for split, names in files.items():
        for f in names:
            name = f if f.endswith(".npy") else f + ".npy"
            syn = name.split("-", 1)[0]
            items.append(Item(Path(name).stem, split, index[syn], SHAPENET_SYNSETS.get(syn, syn), str(clouds / name)))
    return items


# ---------------------------------------------------------------- ShapeNetCore.v2 (meshes)

#: A model's mesh, relative to ``root/<synset>/<model_id>/`` (its ``.mtl`` lies next to it).
SHAPENETCORE_MODEL = "models/model_normalized.obj"
#: Percentage of models put in ``val`` by :func:`shapenetcore_split` (the paper's split is about 80/20).
SHAPENETCORE_VAL_PERCENT = 20
_SYNSET_DIR = re.compile(r"\d{8}")


def shapenetcore_split(model_id: str) -> str:
    """The split (``"train"`` or ``"val"``) of a ShapeNetCore model that no split list names.

    The rule is stable across runs, machines and Python versions (unlike the salted built-in ``hash()``):
    the first 8 bytes of ``sha256(model_id.encode("utf-8"))``, read as a big-endian integer, modulo 100;
    values below :data:`SHAPENETCORE_VAL_PERCENT` (20) give ``"val"``, the rest ``"train"``. Only the model
    id is hashed, so a model filed under two synsets falls in the same split both times.
    """
    bucket = int.from_bytes(hashlib.sha256(model_id.encode("utf-8")).digest()[:8], "big") % 100
    return "val" if bucket < SHAPENETCORE_VAL_PERCENT else "train"


def _synset_dirs(root: Path) -> list[Path]:
    _require_dir(root)
    return sorted(p for p in root.iterdir() if p.is_dir() and _SYNSET_DIR.fullmatch(p.name))


def _model_ids(synset_dir: Path) -> list[str]:
    return sorted(m.name for m in synset_dir.iterdir() if (m / SHAPENETCORE_MODEL).is_file())


def _has_model(synset_dir: Path) -> bool:
    return any((m / SHAPENETCORE_MODEL).is_file() for m in synset_dir.iterdir())


def _no_models(root: Path) -> ReadError:
    return ReadError(root, f"no ShapeNetCore models found (expected <synset>/<model_id>/{SHAPENETCORE_MODEL})")


def _taxonomy_names(path: Path) -> dict[str, str]:
    """synset id → first synonym of its ``name`` in ShapeNetCore's ``taxonomy.json`` (empty if absent)."""
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
        return {str(e["synsetId"]): str(e["name"]).split(",")[0].strip() for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReadError(path, f"not a ShapeNet taxonomy (a JSON list of {{synsetId, name}}): {e}") from None


def _synset_names(root: Path, synsets: list[str]) -> list[str]:
    unknown = [s for s in synsets if s not in SHAPENET_SYNSETS]
    taxonomy = _taxonomy_names(root / "taxonomy.json") if unknown else {}
    return [SHAPENET_SYNSETS.get(s) or taxonomy.get(s) or s for s in synsets]


def _shapenetcore_names(root: Path, variant: str) -> list[str]:
    synsets = [d.name for d in _synset_dirs(root) if _has_model(d)]
    if not synsets:
        raise _no_models(root)
    return _synset_names(root, synsets)


def _split_lists(root: Path, variant: str) -> dict[str, str] | None:
    """``"<synset>-<model_id>"`` → split from Point-BERT's ``train.txt``/``test.txt`` (test → ``val``), found in
    the folder named by ``variant`` or else in ``root``; ``None`` when ``root`` has neither (hash split)."""
    folder = Path(variant) if variant else root
    if variant and not folder.is_dir():
        raise ReadError(folder, "split-list folder (the dataset's variant) not found")
    lists = {"train": folder / "train.txt", "val": folder / "test.txt"}
    missing = [p for p in lists.values() if not p.is_file()]
    if not variant and len(missing) == len(lists):
        return None
    if missing:
        raise ReadError(missing[0], "split list not found (train.txt and test.txt are used together)")
    split_of: dict[str, str] = {}
    for split, path in lists.items():
        for line in _read_list(path):
            key = line.removesuffix(".npy")
            synset, sep, model = key.partition("-")
            if not (sep and model and _SYNSET_DIR.fullmatch(synset)):
                raise ReadError(path, f"line {line!r} is not <synset>-<model_id>.npy")
            if split_of.setdefault(key, split) != split:
                raise ReadError(path, f"{key} is listed in both train.txt and test.txt")
    return split_of


@register_catalogue("shapenetcore", names=_shapenetcore_names)
def _shapenetcore_items(root: Path, variant: str) -> list[Item]:
    """Split by Point-BERT's lists when present; models on disk that no list names (and every model
    without lists) by :func:`shapenetcore_split`. Listed models absent from disk are skipped."""
    models = {d.name: ids for d in _synset_dirs(root) if (ids := _model_ids(d))}
    if not models:
        raise _no_models(root)
    split_of = _split_lists(root, variant)
    keys = [f"{s}-{m}" for s, ids in models.items() for m in ids]
    if split_of is not None and split_of.keys().isdisjoint(keys):
        where = Path(variant) if variant else root
        raise ReadError(where, f"none of the {len(split_of):,} models in train.txt/test.txt is under {root}")
    names = _synset_names(root, list(models))
    items = []
    for label, (synset, ids) in enumerate(models.items()):
        for model in ids:
            key = f"{synset}-{model}"
            split = (split_of or {}).get(key) or shapenetcore_split(model)
            items.append(Item(key, split, label, names[label], str(root / synset / model / SHAPENETCORE_MODEL)))
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


def _scanobjectnn_names(root: Path, variant: str) -> list[str]:
    return list(SCANOBJECTNN_CLASSES)  # fixed by the HDF5 labels: no download needed


@register_catalogue("scanobjectnn", names=_scanobjectnn_names)
def _scanobjectnn_items(root: Path, variant: str) -> list[Item]:
    items = []
    for split, path in scanobjectnn_files(root, variant).items():
        labels = read_h5_labels(path)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(SCANOBJECTNN_CLASSES)):
            raise ReadError(path, f"labels outside 0..{len(SCANOBJECTNN_CLASSES) - 1}")
        for i, lab in enumerate(labels.tolist()):
            items.append(Item(f"{split}_{i:05d}", split, lab, SCANOBJECTNN_CLASSES[lab], f"{path}:{i}", i))
    return items


# ---------------------------------------------------------------- public API

#: The built-in kinds, in registration order (kinds registered later are known to ``catalogue`` too).
KINDS: tuple[str, ...] = tuple(_CATALOGUES)


def class_names(kind: str, root: str | os.PathLike, variant: str = "") -> list[str]:
    """The class names of a dataset, in label order."""
    return _kind(kind).names(Path(root), variant)


def catalogue(kind: str, root: str | os.PathLike, variant: str = "") -> list[Item]:
    """List the items of a dataset (all splits), in a deterministic order. Reads no shape data."""
    return _kind(kind).items(Path(root), variant)


def load_item(item: Item) -> trimesh.Trimesh | np.ndarray:
    """Read one item: a :class:`trimesh.Trimesh` for mesh files, ``(N, 3) float32`` points for point files."""
    src = item.source
    ext = Path(src.rsplit(":", 1)[0] if item.index is not None else src).suffix.lower()
    if item.index is not None or ext not in MESH_EXTENSIONS:
        return read_points(src)
    return read_mesh_or_points(src)
