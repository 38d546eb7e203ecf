"""Table 1 on a feature cache: zero-shot (Eq. 15) of every encoder row, mean ± std over pre-training seeds.

Rows (:func:`table_rows`):

* ``without_pretraining``: CLIP's visual encoder on depth maps (one run: it has no seed),
* one row per pre-training objective, named by its ``ObjectiveInfo.zero_shot_row``
  (:mod:`clip2point.train.objective_info`): ``with_pretraining`` (the intra + cross depth encoder, CLIP2Point,
  Eq. 11), ``cross_only`` (the §5.6 ablation, Eq. 10 only), ``rgb_control`` (CLIP's image encoder trained
  further on RGB only for the same steps, equal-compute control, evaluated on depth);
* ``released-<name>``: the depth encoder of a released CLIP2Point checkpoint (``pretrain.external.<name>``),
  one row per checkpoint that the cache holds (one run: it has no seed).

A row whose encoders are not in the cache is left out (and listed under ``missing_rows``).

View weights (``zeroshot.view_weights``): ``mean`` (Eq. 15, the default) or ``searched`` (PointCLIP's per-view
weights, :func:`clip2point.view_weights.search_view_weights`, one search per encoder run on a stratified
``val_fraction`` of the benchmark's **training** split; the test split is never read by the search). The
details record the rule, the split and the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clip2point.evaluate import evaluate_zero_shot
from clip2point.fewshot import stratified_holdout
from clip2point.train.objective_info import OBJECTIVES
from clip2point.view_weights import DEFAULT_GRID, search_view_weights
from pipeline.feature_store import FeatureStore
from pipeline.findings import correct_by_row, passed, zeroshot_findings
from pipeline.keys import CLIP, CLIP_ROW, RELEASED, EncoderKey, released_keys
from pipeline.results import prediction_rows


def table_rows() -> dict[str, str]:
    """Table 1 rows (and the controls): row name → pretraining variant (``clip``: CLIP's own visual encoder),
    CLIP's row first, then each registered objective's."""
    return {CLIP_ROW: CLIP, **{info.zero_shot_row: name for name, info in OBJECTIVES.items()}}


def row_encoders(store: FeatureStore, variant: str, seeds: Sequence[int]) -> list[EncoderKey]:
    """The encoders of a row that the cache holds (CLIP's one, a released checkpoint's one (``variant`` =
    ``released-<name>``), or one per pre-training seed)."""
    if variant == CLIP:
        keys = [EncoderKey(CLIP)]
    elif variant.startswith(RELEASED + "-"):
        keys = [EncoderKey.parse(variant)]
    else:
        keys = [EncoderKey(variant, s) for s in seeds]
    return [k for k in keys if str(k) in store.encoders]


#: ``zeroshot.view_weights`` choices
VIEW_WEIGHT_RULES = ("mean", "searched")


def searched_weights(store: FeatureStore, encoders: Sequence[EncoderKey], views: str, val_fraction: float,
                     seed: int, grid: Sequence[float] = DEFAULT_GRID) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Per encoder, view weights searched on a held-out part of the *training* split (never the test split),
    and the record of the search (rule, split, fraction, seed, size, each run's validation accuracy)."""
    y = store.labels("train")
    _, val = stratified_holdout(y, val_fraction, seed)
    if len(val) == 0:
        raise ValueError(f"zeroshot.view_weights searched: no validation samples in the training split "
                         f"(val_fraction {val_fraction}, {len(y)} training samples)")
    text = store.text()
    weights: dict[str, list[float]] = {}
    val_acc: dict[str, float] = {}
    for k in encoders:
        w, acc = search_view_weights(store.features(str(k), views, "train")[val], y[val], text, grid)
        weights[str(k)], val_acc[str(k)] = [float(x) for x in w], acc
    record = {"rule": "searched", "split": "train", "val_fraction": val_fraction, "seed": seed, "n_val": len(val),
              "grid": [float(g) for g in grid], "val_acc": val_acc, "weights": weights}
    return weights, record


def released_rows(store: FeatureStore) -> dict[str, str]:
    """Row name → encoder key of every released checkpoint's encoder in the cache (both ``released-<name>``)."""
    return {str(k): str(k) for k in released_keys(store.encoders)}


def zero_shot_table(
    store: FeatureStore, views: str, seeds: Sequence[int], split: str = "test", view_weights: str = "mean",
    val_fraction: float = 0.2, search_seed: int = 0, grid: Sequence[float] = DEFAULT_GRID,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, np.ndarray]]:
    """Metrics dict, prediction rows and summed confusion matrices of every available row."""
    if view_weights not in VIEW_WEIGHT_RULES:
        raise ValueError(f"view_weights must be one of {VIEW_WEIGHT_RULES}, got {view_weights!r}")
    names = store.class_names
    text, labels, ids = store.text(), store.labels(split), store.ids(split)
    dataset = store.meta["dataset"]
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "views": views,
        "n_views": store.meta["view_sets"][views],
        "n": len(labels),
        "chance": 1.0 / len(names),
        "rows": {},
        "missing_rows": [],
        "view_weights": {"rule": "mean"},
    }
    preds: list[dict[str, Any]] = []
    confusions: dict[str, np.ndarray] = {}
    for row, variant in {**table_rows(), **released_rows(store)}.items():
        encs = row_encoders(store, variant, seeds)
        if not encs:
            metrics["missing_rows"].append(row)
            continue
        weights = None
        if view_weights == "searched":
            weights, record = searched_weights(store, encs, views, val_fraction, search_seed, grid)
            found = metrics["view_weights"]
            found.update({k: v for k, v in record.items() if k not in ("weights", "val_acc")})
            found.setdefault("weights", {}).update(record["weights"])
            found.setdefault("val_acc", {}).update(record["val_acc"])
        runs = ((str(k), store.features(str(k), views, split)) for k in encs)
        agg, run_preds, confusions[row] = evaluate_zero_shot(runs, text, labels, names, store.logit_scale,
                                                             weights)
        for k in encs:
            pred, prob = run_preds[str(k)]
            seed = -1 if k.seed is None else k.seed
            preds += prediction_rows(ids, labels, pred, prob, row, seed, str(k), dataset, names)
        metrics["rows"][row] = {"encoder": variant, **agg}
    metrics["findings"] = passed(zeroshot_findings(metrics["rows"], correct_by_row(preds)))
    return metrics, preds, confusions
