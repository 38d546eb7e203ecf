"""The shipped class tables (clip2point/datasets/classes.json) against the datasets' published facts."""

from __future__ import annotations

import pytest

from clip2point.datasets import (
    MODELNET10_CLASSES,
    MODELNET40_CLASSES,
    SCANOBJECTNN_CLASSES,
    SHAPENET_SYNSETS,
    dataset_info,
)
from clip2point.datasets.base import class_table


def test_tables_have_the_published_sizes_and_no_repeats():
    # ModelNet40 / ModelNet10 / ScanObjectNN / ShapeNet-55: 40, 10, 15 and 55 classes
    for table, n in ((MODELNET40_CLASSES, 40), (MODELNET10_CLASSES, 10), (SCANOBJECTNN_CLASSES, 15)):
        assert len(table) == n and len(set(table)) == n
    assert len(SHAPENET_SYNSETS) == 55 and len(set(SHAPENET_SYNSETS.values())) == 55
    assert all(len(s) == 8 and s.isdigit() and s.startswith("0") for s in SHAPENET_SYNSETS)


def test_tables_agree_with_known_entries():
    assert set(MODELNET10_CLASSES) <= set(MODELNET40_CLASSES)  # ModelNet10 is a subset
    assert MODELNET40_CLASSES == tuple(sorted(MODELNET40_CLASSES))  # folder names, listed sorted
    # ScanObjectNN's label order as its HDF5 files store it: 0 bag, 4 chair, 14 toilet
    assert (SCANOBJECTNN_CLASSES[0], SCANOBJECTNN_CLASSES[4], SCANOBJECTNN_CLASSES[14]) == ("bag", "chair", "toilet")
    assert SHAPENET_SYNSETS["02691156"] == "airplane" and SHAPENET_SYNSETS["03001627"] == "chair"
    assert dataset_info("modelnet40").classes == MODELNET40_CLASSES


def test_unknown_table_names_the_file_and_the_known_tables():
    with pytest.raises(KeyError, match=r"no class table 'modelnet41' in .*classes\.json \(known: \['modelnet10'"):
        class_table("modelnet41")
    with pytest.raises(KeyError, match="no class table '_about'"):
        class_table("_about")
