"""Readers for the datasets of §5.1 and the synthetic benchmark: meshes and point clouds.

All readers raise :class:`ReadError`, whose ``str()`` is one line naming the file and the reason. Modules:
``errors`` ← ``off`` ← ``meshes`` ← ``points`` (one direction). The catalogues (which files make up a dataset) live in
:mod:`clip2point.datasets`; their public names are importable from here too (resolved on first use, since
:mod:`clip2point.datasets` itself imports these readers).
"""

from __future__ import annotations

from typing import Any

from clip2point.io.errors import ReadError
from clip2point.io.meshes import MESH_EXTENSIONS, read_mesh
from clip2point.io.off import parse_off, write_off
from clip2point.io.points import POINT_EXTENSIONS, read_h5_labels, read_mesh_or_points, read_points

#: names of :mod:`clip2point.datasets` re-exported here
_DATASET_NAMES = (
    "KINDS",
    "SCANOBJECTNN_CLASSES",
    "SCANOBJECTNN_FILES",
    "SHAPENET_SYNSETS",
    "SHAPENETCORE_MODEL",
    "CatalogueKind",
    "Item",
    "catalogue",
    "class_names",
    "load_item",
    "register_catalogue",
    "scanobjectnn_files",
    "shapenetcore_split",
)


def __getattr__(name: str) -> Any:
    if name in _DATASET_NAMES:
        import clip2point.datasets

        return getattr(clip2point.datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MESH_EXTENSIONS",
    "POINT_EXTENSIONS",
    "ReadError",
    "parse_off",
    "read_h5_labels",
    "read_mesh",
    "read_mesh_or_points",
    "read_points",
    "write_off",
    *_DATASET_NAMES,
]
