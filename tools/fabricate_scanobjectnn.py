"""ScanObjectNN's HDF5 files, fabricated (:mod:`tools.fabricate` writes them with the other datasets).

``h5_files/main_split{,_nobg}/`` for ``OBJ_ONLY``, ``OBJ_BG`` and ``PB_T50_RS``: datasets ``data`` (float32
``N×2048×3``), ``label`` (``N``, int64) and ``mask`` (``N×2048``, int64; ``-1`` marks background points).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from clip2point.datasets import SCANOBJECTNN_CLASSES, SCANOBJECTNN_VARIANTS
from tools.fabricate import _generators, _rng, _shape, _surface

SCANOBJECTNN_POINTS = 2048
SCANOBJECTNN_PERTURBED = 2


def _unit(points: np.ndarray) -> np.ndarray:
    points = points - points.mean(axis=0)
    return points / np.linalg.norm(points, axis=1).max()


def _scan(obj: np.ndarray, rng: np.random.Generator, background: bool) -> tuple[np.ndarray, np.ndarray]:
    """2048 points of one scanned object (y-up, unit sphere) and its mask (-1: background)."""
    n = SCANOBJECTNN_POINTS
    n_bg = int(n * rng.uniform(0.2, 0.4)) if background else 0
    pts = obj[rng.choice(len(obj), n - n_bg, replace=False)]
    mask = np.ones(n, dtype=np.int64)
    if n_bg:
        floor_y = pts[:, 1].min()
        n_floor = n_bg // 2
        floor = np.column_stack(
            [rng.uniform(-1.2, 1.2, n_floor), np.full(n_floor, floor_y), rng.uniform(-1.2, 1.2, n_floor)]
        )
        n_wall = n_bg - n_floor
        wall = np.column_stack(
            [rng.uniform(-1.2, 1.2, n_wall), rng.uniform(floor_y, floor_y + 2.0, n_wall), np.full(n_wall, -1.1)]
        )
        pts = np.vstack([pts, floor, wall])
        mask[n - n_bg :] = -1
    pts = pts + rng.normal(0, 0.005, pts.shape)  # scanner noise
    order = rng.permutation(n)
    return pts[order].astype(np.float32), mask[order]


def _perturb(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PB_T50_RS-style: a rotation about the up axis, a scale around 0.75–1, a shift of up to 0.5."""
    a = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    out = (points @ rot.T) * rng.uniform(0.75, 1.0) + rng.uniform(-0.5, 0.5, 3) * [1, 0.2, 1]
    return out.astype(np.float32)


def _write_h5(path: Path, data: list[np.ndarray], labels: list[int], masks: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.stack(data).astype(np.float32))
        f.create_dataset("label", data=np.asarray(labels, dtype=np.int64))
        f.create_dataset("mask", data=np.stack(masks).astype(np.int64))


def fabricate_scanobjectnn(root: Path, per_class: int, seed: int, test_per_class: int | None = None,
                           ) -> dict[str, dict[str, Any]]:
    """ScanObjectNN's ``h5_files`` under ``root``; returns one ``expected.json`` entry per variant."""
    gens = _generators(SCANOBJECTNN_CLASSES)
    rows: dict[str, dict[str, list]] = {}  # variant/split -> data, labels, masks
    for variant in SCANOBJECTNN_VARIANTS:
        for split in ("train", "test"):
            rows[f"{variant}/{split}"] = {"data": [], "labels": [], "masks": []}
    n_split = {"train": per_class, "test": per_class if test_per_class is None else test_per_class}
    for label, name in enumerate(SCANOBJECTNN_CLASSES):
        index = 0
        for split in ("train", "test"):
            for _ in range(n_split[split]):
                index += 1
                mesh = _shape(gens[name], seed, "scanobjectnn", name, index)
                rng = _rng(seed, "scanobjectnn", name, index)
                obj = _unit(_surface(mesh, 4 * SCANOBJECTNN_POINTS, rng))
                for variant, background in (("OBJ_ONLY", False), ("OBJ_BG", True)):
                    pts, mask = _scan(obj, rng, background)
                    bucket = rows[f"{variant}/{split}"]
                    bucket["data"].append(pts)
                    bucket["labels"].append(label)
                    bucket["masks"].append(mask)
                for _ in range(SCANOBJECTNN_PERTURBED):
                    pts, mask = _scan(obj, rng, True)
                    bucket = rows[f"PB_T50_RS/{split}"]
                    bucket["data"].append(_perturb(pts, rng))
                    bucket["labels"].append(label)
                    bucket["masks"].append(mask)
    shuffle = _rng(seed, "scanobjectnn-order")
    expected = {}
    for variant, files in SCANOBJECTNN_VARIANTS.items():
        counts, class_counts = {}, {}
        for split, rel in zip(("train", "test"), files, strict=True):
            bucket = rows[f"{variant}/{split}"]
            order = shuffle.permutation(len(bucket["labels"]))
            _write_h5(
                root / rel,
                [bucket["data"][i] for i in order],
                [bucket["labels"][i] for i in order],
                [bucket["masks"][i] for i in order],
            )
            counts[split] = len(order)
            class_counts[split] = {
                SCANOBJECTNN_CLASSES[lab]: n for lab, n in sorted(Counter(bucket["labels"]).items())
            }
        expected[f"scanobjectnn_{variant.lower()}"] = {
            "kind": "scanobjectnn",
            "root": root.name,
            "variant": variant,
            "up_axis": "y",
            "classes": list(SCANOBJECTNN_CLASSES),
            "counts": counts,
            "class_counts": class_counts,
        }
    return expected
