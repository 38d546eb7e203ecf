"""Stage ``zeroshot``: Table 1 rows on one downstream dataset's test split (paper §3.3, §5.3, §5.6).

``python -m stages.zeroshot <dataset>``

Reads the feature cache ``features_dir(dataset)`` (view set ``params.zeroshot.views``) and classifies every
test cloud with Eq. 15 (the mean of the multi-view logits against the class text features, no view-weight
search). Rows:

* ``without_pretraining``: CLIP's visual encoder on depth maps (one run: it has no seed),
* ``with_pretraining``: the intra + cross pretrained depth encoder (CLIP2Point), mean ± std over seeds,
* ``cross_only``: the §5.6 ablation (cross-modality loss only), mean ± std over seeds,
* ``rgb_control``: CLIP's image encoder trained further on RGB only for the same steps (equal-compute
  control), evaluated on depth, mean ± std over seeds.

A row whose encoders are not in the cache is left out (and listed under ``missing_rows``).

Outputs: ``metrics_file("zeroshot/<dataset>")`` (metrics JSON), and in ``results_dir("zeroshot")/<dataset>``:
``predictions.parquet`` (id, label, pred, prob, method, seed, encoder, dataset, label_name, pred_name) and
``confusion_<row>.png`` (confusion summed over the row's seeds).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from clip2point.evaluate import classification_metrics, confusion_matrix, plot_confusion, zero_shot_logits
from clip2point.report import mean_std
from stages.features import CLIP_KEY, FeatureStore, encoder_key, run_stage

#: Table 1 rows (and the controls): row name → pretraining variant (None: CLIP's own visual encoder).
ROWS: dict[str, str | None] = {
    "without_pretraining": None,
    "with_pretraining": "intra_cross",
    "cross_only": "cross_only",
    "rgb_control": "rgb_control",
}

PREDICTION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("label", pa.int32()),
        ("pred", pa.int32()),
        ("prob", pa.float32()),
        ("method", pa.string()),
        ("seed", pa.int32()),
        ("encoder", pa.string()),
        ("dataset", pa.string()),
        ("label_name", pa.string()),
        ("pred_name", pa.string()),
    ]
)


def row_encoders(store: FeatureStore, variant: str | None, seeds: Sequence[int]) -> list[tuple[int, str]]:
    """``[(seed, encoder key)]`` of a row that the cache holds (seed -1 for CLIP's encoder)."""
    if variant is None:
        return [(-1, CLIP_KEY)] if CLIP_KEY in store.encoders else []
    return [(s, encoder_key(variant, s)) for s in seeds if encoder_key(variant, s) in store.encoders]


def aggregate(per_seed: Mapping[str, Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Mean ± sample std over seeds of acc and mean-class acc; per-class acc averaged over seeds."""
    accs = [m["acc"] for m in per_seed.values()]
    maccs = [m["mean_class_acc"] for m in per_seed.values()]
    acc, acc_std = mean_std(accs)
    macc, macc_std = mean_std(maccs)
    per_class = {}
    for name in class_names:
        vals = [m["per_class_acc"][name] for m in per_seed.values() if m["per_class_acc"][name] is not None]
        per_class[name] = float(np.mean(vals)) if vals else None
    return {
        "acc": acc,
        "acc_std": acc_std,
        "mean_class_acc": macc,
        "mean_class_acc_std": macc_std,
        "n_seeds": len(per_seed),
        "per_class_acc": per_class,
        "seeds": {k: {"acc": m["acc"], "mean_class_acc": m["mean_class_acc"]} for k, m in per_seed.items()},
    }


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
    """One predictions-table row per sample (columns of :data:`PREDICTION_SCHEMA`)."""
    return [
        {"id": i, "label": int(y), "pred": int(p), "prob": float(q), "method": method, "seed": int(seed),
         "encoder": encoder, "dataset": dataset, "label_name": names[y], "pred_name": names[p]}
        for i, y, p, q in zip(ids, labels, pred, prob, strict=True)
    ]


def predictions_table(rows: list[dict[str, Any]]) -> pa.Table:
    cols = {f.name: [r[f.name] for r in rows] for f in PREDICTION_SCHEMA}
    return pa.Table.from_pydict(cols, schema=PREDICTION_SCHEMA)


def evaluate_zero_shot(
    store: FeatureStore, views: str, seeds: Sequence[int], split: str = "test"
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, np.ndarray]]:
    """Metrics dict, prediction rows and summed confusion matrices of every available row."""
    names = store.class_names
    text, labels, ids = store.text(), store.labels(split), store.ids(split)
    k = len(names)
    metrics: dict[str, Any] = {
        "dataset": store.meta["dataset"],
        "split": split,
        "views": views,
        "n_views": store.meta["view_sets"][views],
        "n": len(labels),
        "chance": 1.0 / k,
        "rows": {},
        "missing_rows": [],
    }
    preds: list[dict[str, Any]] = []
    confusions: dict[str, np.ndarray] = {}
    for row, variant in ROWS.items():
        encs = row_encoders(store, variant, seeds)
        if not encs:
            metrics["missing_rows"].append(row)
            continue
        per_seed, cm = {}, np.zeros((k, k), dtype=np.int64)
        for seed, enc in encs:
            feats = store.features(enc, views, split)
            with torch.no_grad():
                probs = zero_shot_logits(feats, text, store.logit_scale).softmax(-1)  # Eq. 15
            prob, pred = probs.max(-1)
            pred_np = pred.numpy()
            per_seed[enc] = classification_metrics(pred_np, labels, names)
            cm += confusion_matrix(pred_np, labels, k)
            ds = store.meta["dataset"]
            preds += prediction_rows(ids, labels, pred_np, prob.numpy(), row, seed, enc, ds, names)
        metrics["rows"][row] = {"encoder": variant or CLIP_KEY, **aggregate(per_seed, names)}
        confusions[row] = cm
    r = metrics["rows"]
    if "with_pretraining" in r and "without_pretraining" in r:
        metrics["findings"] = {
            "with_above_without": r["with_pretraining"]["acc"] > r["without_pretraining"]["acc"],
            "gain_over_without": r["with_pretraining"]["acc"] - r["without_pretraining"]["acc"],
        }
        for other in ("rgb_control", "cross_only"):
            if other in r:
                metrics["findings"][f"with_above_{other}"] = r["with_pretraining"]["acc"] > r[other]["acc"]
    return metrics, preds, confusions


def write_outputs(
    out_dir: Path,
    metrics_path: Path,
    metrics: dict[str, Any],
    preds: list[dict[str, Any]],
    confusions: Mapping[str, tuple[np.ndarray, str]],
    class_names: Sequence[str],
    torch_files: Mapping[str, Any] | None = None,
) -> None:
    """Into ``out_dir`` (replaced whole, atomically): ``predictions.parquet``, ``confusion_<name>.png`` from
    ``confusions[name] = (matrix, title)``, and ``torch.save``-d ``torch_files``; then the metrics JSON."""
    import pyarrow.parquet as pq

    from pipeline.artifacts import atomic_dir, write_json

    with atomic_dir(out_dir) as tmp:
        pq.write_table(predictions_table(preds), tmp / "predictions.parquet")
        for name, (cm, title) in confusions.items():
            plot_confusion(cm, class_names, title).savefig(tmp / f"confusion_{name}.png", dpi=110)
        for name, obj in (torch_files or {}).items():
            torch.save(obj, tmp / name)
    write_json(metrics_path, metrics)


def run(dataset: str) -> dict[str, Any]:
    from pipeline.params import load_params
    from pipeline.paths import features_dir, metrics_file, results_dir

    params = load_params()
    params.data.benchmark(dataset)  # a clear error for an unknown name
    store = FeatureStore.open(features_dir(dataset))
    metrics, preds, confusions = evaluate_zero_shot(store, params.zeroshot.views, params.pretrain.seeds)
    figures = {
        row: (cm, f"zero-shot {dataset} · {row} · acc {100 * metrics['rows'][row]['acc']:.1f}%")
        for row, cm in confusions.items()
    }
    write_outputs(results_dir("zeroshot") / dataset, metrics_file(f"zeroshot/{dataset}"), metrics, preds,
                  figures, store.class_names)
    for row, m in metrics["rows"].items():
        print(f"zeroshot {dataset} {row:>20}: acc {100 * m['acc']:.2f} ± {100 * m['acc_std']:.2f} "
              f"(mean class {100 * m['mean_class_acc']:.2f}, n_seeds {m['n_seeds']})")
    return metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.zeroshot", description=__doc__.split("\n")[0])
    ap.add_argument("dataset", help="a downstream dataset name (params.yaml data.benchmarks)")
    args = ap.parse_args(argv)
    return run_stage("zeroshot", lambda: run(args.dataset))


if __name__ == "__main__":
    sys.exit(main())
