"""Table 1 on a feature cache: zero-shot (Eq. 15) of every encoder row, mean ± std over pre-training seeds.

Rows (:data:`ROWS`):

* ``without_pretraining``: CLIP's visual encoder on depth maps (one run: it has no seed),
* ``with_pretraining``: the intra + cross pretrained depth encoder (CLIP2Point, Eq. 11),
* ``cross_only``: the §5.6 ablation (cross-modality loss only, Eq. 10),
* ``rgb_control``: CLIP's image encoder trained further on RGB only for the same steps (equal-compute
  control), evaluated on depth.

* ``released-<name>``: the depth encoder of a released CLIP2Point checkpoint (``pretrain.external.<name>``),
  one row per checkpoint that the cache holds (one run: it has no seed).

A row of :data:`ROWS` whose encoders are not in the cache is left out (and listed under ``missing_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clip2point.evaluate import evaluate_zero_shot
from pipeline.feature_store import FeatureStore
from pipeline.findings import passed, zeroshot_findings
from pipeline.keys import CLIP, RELEASED, EncoderKey
from pipeline.results import prediction_rows

#: Table 1 rows (and the controls): row name → pretraining variant (``clip``: CLIP's own visual encoder).
ROWS: dict[str, str] = {
    "without_pretraining": CLIP,
    "with_pretraining": "intra_cross",
    "cross_only": "cross_only",
    "rgb_control": "rgb_control",
}


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


def released_rows(store: FeatureStore) -> dict[str, str]:
    """Row name → encoder key of every released checkpoint's encoder in the cache (both ``released-<name>``)."""
    out = {}
    for enc in store.encoders:
        try:
            key = EncoderKey.parse(enc)
        except ValueError:
            continue
        if key.is_released:
            out[str(key)] = str(key)
    return out


def zero_shot_table(
    store: FeatureStore, views: str, seeds: Sequence[int], split: str = "test"
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, np.ndarray]]:
    """Metrics dict, prediction rows and summed confusion matrices of every available row."""
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
    }
    preds: list[dict[str, Any]] = []
    confusions: dict[str, np.ndarray] = {}
    for row, variant in {**ROWS, **released_rows(store)}.items():
        encs = row_encoders(store, variant, seeds)
        if not encs:
            metrics["missing_rows"].append(row)
            continue
        runs = ((str(k), store.features(str(k), views, split)) for k in encs)
        agg, run_preds, confusions[row] = evaluate_zero_shot(runs, text, labels, names, store.logit_scale)
        for k in encs:
            pred, prob = run_preds[str(k)]
            seed = -1 if k.seed is None else k.seed
            preds += prediction_rows(ids, labels, pred, prob, row, seed, str(k), dataset, names)
        metrics["rows"][row] = {"encoder": variant, **agg}
    metrics["findings"] = passed(zeroshot_findings(metrics["rows"]))
    return metrics, preds, confusions
