"""Readers for the datasets of §5.1 and the synthetic benchmark: meshes, point clouds, catalogues.

All readers raise :class:`ReadError`, whose ``str()`` is one line naming the file and the reason.
"""

from clip2point.io.catalogues import (
    KINDS,
    SCANOBJECTNN_CLASSES,
    SCANOBJECTNN_FILES,
    SHAPENET_SYNSETS,
    SHAPENETCORE_MODEL,
    CatalogueKind,
    Item,
    catalogue,
    class_names,
    load_item,
    register_catalogue,
    scanobjectnn_files,
    shapenetcore_split,
)
from clip2point.io.errors import ReadError
from clip2point.io.meshes import MESH_EXTENSIONS, parse_off, read_mesh, read_mesh_or_points, write_off
from clip2point.io.points import POINT_EXTENSIONS, read_h5_labels, read_points

__all__ = [
    "KINDS",
    "MESH_EXTENSIONS",
    "POINT_EXTENSIONS",
    "SCANOBJECTNN_CLASSES",
    "SCANOBJECTNN_FILES",
    "SHAPENET_SYNSETS",
    "SHAPENETCORE_MODEL",
    "CatalogueKind",
    "Item",
    "ReadError",
    "catalogue",
    "class_names",
    "load_item",
    "parse_off",
    "read_h5_labels",
    "read_mesh",
    "read_mesh_or_points",
    "read_points",
    "register_catalogue",
    "scanobjectnn_files",
    "shapenetcore_split",
    "write_off",
]
