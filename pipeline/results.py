"""Outputs of the evaluation stages (zero-shot, few-shot, supervised): predictions table, confusion figures,
torch files, the details and the headline metrics JSON (:mod:`pipeline.headline`), written together.

Predictions table: :data:`clip2point.schema.PREDICTION_SCHEMA`, one row per test sample and method run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from clip2point.evaluate import plot_confusion
from clip2point.schema import PREDICTION_SCHEMA
from pipeline import paths
from pipeline.artifacts import atomic_dir, write_json
from pipeline.headline import DETAILS, headline


def prediction_rows(
    ids: Sequence[str],
    labels: np.ndarray,
    pred: np.ndarray,
    prob: np.ndarray,
    method: str,
    seed: int,
    encoder: str,
    dataset: str,
    names: Sequence[str],
) -> list[dict[str, Any]]:
    """One predictions-table row per sample (columns of :data:`~clip2point.schema.PREDICTION_SCHEMA`)."""
    return [
        {"id": i, "label": int(y), "pred": int(p), "prob": float(q), "method": method, "seed": int(seed),
         "encoder": encoder, "dataset": dataset, "label_name": names[y], "pred_name": names[p]}
        for i, y, p, q in zip(ids, labels, pred, prob, strict=True)
    ]


def predictions_table(rows: list[dict[str, Any]]) -> pa.Table:
    cols = {f.name: [r[f.name] for r in rows] for f in PREDICTION_SCHEMA}
    return pa.Table.from_pydict(cols, schema=PREDICTION_SCHEMA)


def write_outputs(
    key: str,
    metrics: dict[str, Any],
    preds: list[dict[str, Any]],
    confusions: Mapping[str, tuple[np.ndarray, str]],
    class_names: Sequence[str],
    torch_files: Mapping[str, Any] | None = None,
) -> None:
    """Into the output folder of stage instance ``key`` (``details_file(key)``'s folder, e.g.
    ``data/results/zeroshot/<ds>``; replaced whole, atomically): ``predictions.parquet``,
    ``confusion_<name>.png`` from ``confusions[name] = (matrix, title)``, ``torch.save``-d ``torch_files`` and
    ``details.json`` (all of ``metrics``); then the headline metrics (:func:`headline`) at ``metrics_file(key)``."""
    out_dir = paths.details_file(key).parent
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / DETAILS, metrics)
        pq.write_table(predictions_table(preds), tmp / "predictions.parquet")
        for name, (cm, title) in confusions.items():
            plot_confusion(cm, class_names, title).savefig(tmp / f"confusion_{name}.png", dpi=110)
        for name, obj in (torch_files or {}).items():
            torch.save(obj, tmp / name)
    write_json(paths.metrics_file(key), headline(key, metrics))
