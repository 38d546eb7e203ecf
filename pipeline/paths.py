"""Artifact layout: every path the DAG reads or writes is named here, once.

``dvc.yaml`` mirrors these names; ``tests/test_dvc_yaml.py`` checks that the two agree.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA = Path(os.environ.get("CLIP2POINT_DATA", "data"))


def synth_root(pool: str) -> Path:
    """Meshes of a synthetic pool (``pretrain`` or ``benchmark``) in ModelNet's folder layout."""
    return DATA / "synth" / pool


def points_table(dataset: str) -> Path:
    """FPS-sampled points of one dataset, all splits: Parquet (schema in clip2point.schema)."""
    return DATA / "points" / f"{dataset}.parquet"


def rejected_table(dataset: str) -> Path:
    return DATA / "points" / f"{dataset}.rejected.parquet"


def shards_dir(dataset: str) -> Path:
    """WebDataset shards of one dataset plus ``manifest.json``."""
    return DATA / "shards" / dataset


def manifest(dataset: str) -> Path:
    return shards_dir(dataset) / "manifest.json"


def contact_sheet() -> Path:
    return DATA / "figures" / "contact_sheet.png"


def clip_dir() -> Path:
    """The CLIP of the run: the bootstrapped miniature, or a pointer to real weights."""
    return DATA / "models" / "clip"


def pretrain_dir(variant: str, seed: int) -> Path:
    """One pretraining run: ``intra_cross`` (CLIP2Point), ``cross_only`` (ablation), ``rgb_control``."""
    return DATA / "models" / "pretrain" / f"{variant}-seed{seed}"


def features_dir(dataset: str) -> Path:
    """Cached per-view encoder features of a downstream dataset (for the adapters)."""
    return DATA / "features" / dataset


def results_dir(stage: str) -> Path:
    """Metrics JSON, predictions Parquet, confusion matrices of an evaluation stage."""
    return DATA / "results" / stage


def report_dir() -> Path:
    return DATA / "report"


def metrics_file(key: str) -> Path:
    """Small metrics JSON of one stage instance, outside its output dir (``dvc metrics``), e.g.
    ``metrics_file("pretrain/intra_cross-seed0")``."""
    return DATA / "metrics" / f"{key}.json"


def plots_dir(key: str) -> Path:
    """dvclive directory of one training stage instance (``dvc plots``)."""
    return DATA / "plots" / key


def preflight_file() -> Path:
    """Constant-content marker of the ``preflight`` stage (every expensive stage depends on it)."""
    return DATA / "preflight.json"
