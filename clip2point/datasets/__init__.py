"""The datasets of §5.1 and the procedural benchmark, one module per family: what makes up a dataset (its
catalogue: files or HDF5 rows with split and label), its classes, and for the real downloads the published
split sizes, where to get them and how to check a local copy (:func:`check_layout`, file system only).

* :mod:`~clip2point.datasets.modelnet` — ``modelnet40``, ``modelnet10`` (OFF folders or the resampled release);
* :mod:`~clip2point.datasets.shapenet` — ``shapenet55`` (Point-BERT point clouds), ``shapenetcore`` (meshes);
* :mod:`~clip2point.datasets.scanobjectnn` — ``scanobjectnn`` (HDF5; variants ``OBJ_ONLY | OBJ_BG | PB_T50_RS``);
* :mod:`~clip2point.datasets.synth` — ``synth`` (the procedural benchmark's folders).

``catalogue(kind, root, variant)`` lists :class:`Item` records without reading any shape; :func:`load_item`
reads one. Each kind is a pair of functions in a registry (:func:`register_catalogue`); :data:`KINDS` lists
the built-in ones. :data:`DATASETS` holds the facts of each real download (:class:`DatasetInfo`). This package
knows no paths of the pipeline and no ``params.yaml``; the readers raise :class:`clip2point.io.ReadError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

# the family modules register their kinds and datasets on import, in this order (that of KINDS and DATASETS)
from clip2point.datasets import synth  # isort: skip
from clip2point.datasets import modelnet  # isort: skip
from clip2point.datasets import shapenet  # isort: skip
from clip2point.datasets import scanobjectnn  # isort: skip
from clip2point.datasets.base import (
    DATASETS,
    TOTAL,
    CatalogueKind,
    DatasetInfo,
    Item,
    LayoutReport,
    catalogue_kind,
    check_layout,
    dataset_info,
    register_catalogue,
    registered_kinds,
)
from clip2point.datasets.modelnet import MODELNET10_CLASSES, MODELNET40_CLASSES
from clip2point.datasets.scanobjectnn import (
    SCANOBJECTNN_CLASSES,
    SCANOBJECTNN_FILES,
    SCANOBJECTNN_VARIANTS,
    scanobjectnn_files,
)
from clip2point.datasets.shapenet import (
    SHAPENET55_LIST_DIR,
    SHAPENET_SYNSETS,
    SHAPENETCORE_MODEL,
    SHAPENETCORE_VAL_PERCENT,
    shapenetcore_split,
)
from clip2point.io.meshes import MESH_EXTENSIONS
from clip2point.io.points import read_mesh_or_points, read_points

#: The built-in kinds, in registration order (kinds registered later are known to ``catalogue`` too).
KINDS: tuple[str, ...] = registered_kinds()


def class_names(kind: str, root: str | os.PathLike, variant: str = "") -> list[str]:
    """The class names of a dataset, in label order."""
    return catalogue_kind(kind).names(Path(root), variant)


def catalogue(kind: str, root: str | os.PathLike, variant: str = "") -> list[Item]:
    """List the items of a dataset (all splits), in a deterministic order. Reads no shape data."""
    return catalogue_kind(kind).items(Path(root), variant)


def load_item(item: Item) -> trimesh.Trimesh | np.ndarray:
    """Read one item: a :class:`trimesh.Trimesh` for mesh files, ``(N, 3) float32`` points for point files."""
    src = item.source
    ext = Path(src.rsplit(":", 1)[0] if item.index is not None else src).suffix.lower()
    if item.index is not None or ext not in MESH_EXTENSIONS:
        return read_points(src)
    return read_mesh_or_points(src)


__all__ = [
    "DATASETS",
    "KINDS",
    "MODELNET10_CLASSES",
    "MODELNET40_CLASSES",
    "SCANOBJECTNN_CLASSES",
    "SCANOBJECTNN_FILES",
    "SCANOBJECTNN_VARIANTS",
    "SHAPENET55_LIST_DIR",
    "SHAPENETCORE_MODEL",
    "SHAPENETCORE_VAL_PERCENT",
    "SHAPENET_SYNSETS",
    "TOTAL",
    "CatalogueKind",
    "DatasetInfo",
    "Item",
    "LayoutReport",
    "catalogue",
    "check_layout",
    "class_names",
    "dataset_info",
    "load_item",
    "modelnet",
    "register_catalogue",
    "scanobjectnn",
    "scanobjectnn_files",
    "shapenet",
    "shapenetcore_split",
    "synth",
]
