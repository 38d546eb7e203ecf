"""Stages ``fewshot`` and ``supervised``: the adapter grid of Tables 2 and 4 (paper §4, §5.4–5.6).

``python -m stages.fewshot --mode fewshot|supervised <dataset>``

Trains the adapters of :mod:`pipeline.adapter_grid` on the cached view features (``features_dir(dataset)``,
view set ``params.adapter.views``; encoders stay frozen) and evaluates them on the test split. ``fewshot``:
``params.adapter.k_shot`` training samples per class; ``supervised``: the whole training split.

Outputs: ``metrics_file("<mode>/<dataset>")`` (headline: each row's accuracy) and in ``results_dir(mode)/<dataset>``:
``details.json`` (per row: seeds, per-class accuracy, notes; the findings), ``predictions.parquet``,
``confusion_dpa.png`` (the DPA, summed over seeds) and ``adapter.pt``: the DPA of the seed with the best
*held-out* accuracy (never test), the dict of a :class:`clip2point.predict.AdapterCheckpoint`; its ``paths``
name the encoders it was trained on (e.g. ``intra_cross-seed2``) and ``encoders`` says how to load each
(``{"variant", "seed"}``): another seed's encoder gives different features.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.adapter_grid import MAIN_ROW, MODES, run_grid
from pipeline.feature_store import FeatureStore
from pipeline.params import load_params
from pipeline.paths import features_dir
from pipeline.results import write_outputs
from pipeline.stage import find_dataset, run_main


def run(mode: str, dataset: str) -> None:
    params = load_params()
    find_dataset(params, dataset)
    store = FeatureStore.open(features_dir(dataset))
    metrics, preds, cms, ckpt = run_grid(store, mode, params.adapter, params.pretrain.seeds)
    figures = {}
    if cms:
        acc = metrics["rows"][MAIN_ROW]["acc"]
        figures["dpa"] = (cms["dpa"], f"{mode} {dataset} · DPA · acc {100 * acc:.1f}% (all seeds)")
    write_outputs(f"{mode}/{dataset}", metrics, preds, figures,
                  store.class_names, {"adapter.pt": ckpt.to_dict()} if ckpt is not None else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.fewshot", description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=MODES, required=True, help="k-shot (fewshot) or full training split")
    ap.add_argument("dataset", help="a downstream dataset name (params.yaml data.benchmarks)")
    args = ap.parse_args(argv)
    return run_main(args.mode, lambda: run(args.mode, args.dataset))


if __name__ == "__main__":
    sys.exit(main())
