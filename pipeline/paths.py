"""Artifact layout: every path the DAG reads or writes is named here, once (``dvc.yaml`` mirrors them).

The data root is read when a path is asked for, not at import: :func:`data_root` is ``$CLIP2POINT_DATA``
(default ``data``). Tests and tools that need another root set the variable (``monkeypatch.setenv``,
:func:`using_data_root`); nothing here knows about tests.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.keys import EncoderKey

DATA_ENV = "CLIP2POINT_DATA"


def data_root() -> Path:
    """``$CLIP2POINT_DATA`` (default ``data``), read now."""
    return Path(os.environ.get(DATA_ENV, "data"))


@contextlib.contextmanager
def using_data_root(root: str | os.PathLike) -> Iterator[Path]:
    """Every path of this module under ``root`` inside the block (``$CLIP2POINT_DATA`` set, then restored)."""
    old = os.environ.get(DATA_ENV)
    os.environ[DATA_ENV] = str(root)
    try:
        yield Path(root)
    finally:
        if old is None:
            os.environ.pop(DATA_ENV, None)
        else:
            os.environ[DATA_ENV] = old


def study_summary() -> Path:
    """The learning-curve study's committed summary (``make study``; ``learning_curve.png`` beside it): a
    measured document in the repository, not a DVC output, that the report quotes."""
    return Path("docs") / "results" / "study.json"


def synth_root(pool: str) -> Path:
    """Meshes of a synthetic pool (``pretrain`` or ``benchmark``) in ModelNet's folder layout."""
    return data_root() / "synth" / pool


def points_table(dataset: str) -> Path:
    """FPS-sampled points of one dataset, all splits: Parquet (schema in clip2point.schema)."""
    return data_root() / "points" / f"{dataset}.parquet"


def rejected_table(dataset: str) -> Path:
    return data_root() / "points" / f"{dataset}.rejected.parquet"


def shards_dir(dataset: str) -> Path:
    """WebDataset shards of one dataset plus ``manifest.json``."""
    return data_root() / "shards" / dataset


def manifest(dataset: str) -> Path:
    return shards_dir(dataset) / "manifest.json"


def contact_sheet() -> Path:
    return data_root() / "figures" / "contact_sheet.png"


def clip_dir() -> Path:
    """The CLIP of the run: the bootstrapped miniature, or a pointer to real weights."""
    return data_root() / "models" / "clip"


def pretrain_root() -> Path:
    """The pre-trained depth encoders, one folder per run (:func:`pretrain_dir`)."""
    return data_root() / "models" / "pretrain"


def pretrain_dir(variant: str, seed: int) -> Path:
    """One pretraining run: ``intra_cross`` (CLIP2Point), ``cross_only`` (ablation), ``rgb_control``."""
    return pretrain_root() / str(EncoderKey(variant, seed))


def external_dir(name: str) -> Path:
    """The depth encoder of the released checkpoint ``pretrain.external.<name>``, checked against the run's
    CLIP and stored like a pre-training run's (stage ``external_encoder@<name>``)."""
    return data_root() / "models" / "external" / name


def pretrain_key(variant: str, seed: int) -> str:
    """The metrics / plots key of one pre-training run: ``pretrain/<variant>-seed<seed>``."""
    return f"pretrain/{EncoderKey(variant, seed)}"


def checkpoint_dir(variant: str, seed: int) -> Path:
    """Resume checkpoint and write temporaries of one pre-training run: not a DVC output (``dvc repro``
    deletes a stage's outputs before running it), git-ignored under the data root."""
    return data_root() / "checkpoints" / pretrain_key(variant, seed)


def checkpoint_file(variant: str, seed: int) -> Path:
    """The resume checkpoint of one pre-training run."""
    return checkpoint_dir(variant, seed) / "last.pt"


def stage_timings_file(key: str) -> Path:
    """Wall times (and other facts of how a run went, not what it found) of the stage whose metrics key is
    ``key``: not a DVC output and never in the metrics, so the metrics are the same bytes on every run and
    ``dvc metrics diff`` compares results only."""
    return data_root() / "timings" / f"{key}.json"


def timings_file(variant: str, seed: int) -> Path:
    """Wall times, throughput, data share, resume facts of one pre-training run (:func:`stage_timings_file`)."""
    return stage_timings_file(pretrain_key(variant, seed))


def image_features_dir(pool: str) -> Path:
    """The frozen-image-feature cache of a pre-training pool: E_i's features of every (training sample, RGB
    view), shared by every run and seed of the objectives that compare with E_i."""
    return data_root() / "image_features" / pool


def features_dir(dataset: str) -> Path:
    """Cached per-view encoder features of a downstream dataset (for the adapters)."""
    return data_root() / "features" / dataset


def results_dir(stage: str) -> Path:
    """Metrics JSON, predictions Parquet, confusion matrices of an evaluation stage."""
    return data_root() / "results" / stage


def report_dir() -> Path:
    return data_root() / "report"


def metrics_file(key: str) -> Path:
    """The headline numbers of one stage instance, outside its output dir (``dvc metrics``), e.g.
    ``metrics_file("pretrain/intra_cross-seed0")``; the details are in :func:`details_file`."""
    return data_root() / "metrics" / f"{key}.json"


def details_file(key: str) -> Path:
    """Everything one stage instance measured (per class, per seed, curves, settings; the superset of its
    :func:`metrics_file`), a plain DVC output, e.g. ``data/results/zeroshot/<dataset>/details.json``."""
    return data_root() / "results" / key / "details.json"


def plots_dir(key: str) -> Path:
    """dvclive directory of one training stage instance (``dvc plots``)."""
    return data_root() / "plots" / key


def preflight_file() -> Path:
    """Constant-content marker of the ``preflight`` stage (every expensive stage depends on it)."""
    return data_root() / "preflight.json"
