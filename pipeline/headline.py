"""Headline metrics and details of every stage instance (issue 22, item 17).

``pipeline.paths.metrics_file(key)`` (declared as DVC metrics, read by ``dvc metrics show/diff`` and
``dvc exp show``) holds only the headline numbers a person compares across experiments (:func:`headline`: each
row's accuracy, a pre-training run's selection accuracy and σ, the CLIP's RGB zero-shot), a few dozen in a
whole run (:data:`HEADLINE_LIMIT`). Everything else a stage measured, per class, per seed, curves and
settings, is its details file ``pipeline.paths.details_file(key)`` (a plain DVC output, the superset of the
metrics), which the report, the findings and ``compare_profiles`` read (:func:`read_details`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline import paths

#: most headline numbers one whole run (every stage instance) declares as metrics (the default run has ~66)
HEADLINE_LIMIT = 80
#: name of a stage's details file (:func:`pipeline.paths.details_file`)
DETAILS = "details.json"


def headline(key: str, details: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers of stage instance ``key`` (``zeroshot/<ds>``, ``fewshot/<ds>``,
    ``supervised/<ds>``, ``pretrain/<run>``, ``clip_bootstrap``) from its details."""
    stage = key.split("/")[0]
    if stage in ("zeroshot", "fewshot", "supervised"):
        return {**{k: details[k] for k in ("n", "n_test", "chance") if k in details},
                "acc": {row: r["acc"] for row, r in details["rows"].items()}}
    if stage == "family":  # per row: zero-shot with and without pre-training
        return {"acc": {row: {col: v["acc"] for col, v in r.items() if isinstance(v, dict) and "acc" in v}
                        for row, r in details["rows"].items()}}
    if stage == "pretrain":
        return {k: details[k] for k in ("val_zeroshot_best", "sigma_final") if k in details}
    if stage == "clip_bootstrap":  # the RGB zero-shot on the pool's val split, as rgb_zeroshot@<ds> writes it
        return {"zeroshot": dict(details.get("zeroshot", {}))}
    raise ValueError(f"no headline defined for stage {stage!r}")


def read_details(key: str) -> dict[str, Any] | None:
    """The details of stage instance ``key`` (None when the stage has not run)."""
    try:
        return json.loads(paths.details_file(key).read_text())
    except FileNotFoundError:
        return None


