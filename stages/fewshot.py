"""Stages ``fewshot`` and ``supervised``: the adapter grid of Tables 2 and 4 (paper §4, §5.4–5.6).

``python -m stages.fewshot --mode fewshot|supervised <dataset>``

Trains adapters on the cached view features (``features_dir(dataset)``, view set ``params.adapter.views``;
encoders stay frozen) and evaluates them on the test split. ``fewshot``: ``params.adapter.k_shot`` training
samples per class drawn with each adapter seed; ``supervised``: the whole training split. Training:
:func:`clip2point.fewshot.fit_adapter` (AdamW, ``params.adapter`` lr / weight decay / batch / epochs), the
number of epochs chosen on a held-out ``params.adapter.val_fraction`` of the *training* samples, then a refit
on all of them. The test split is only ever used for the reported numbers.

Grid (row key ``<adapter>@<paths>``; ``pre`` = the intra + cross pretrained depth encoder):

==========================================  ==============================================================
``global_view@clip``                        single path on CLIP, no pretraining (Table 2 "w/o Pre.")
``inter_view@clip``                         PointCLIP's inter-view adapter on CLIP (Table 2 PointCLIP row)
``inter_view@intra_cross``                  Table 4: single path, inter-view
``global_view@intra_cross``                 Table 4: single path, global-view
``dual_path_inter_view@clip+intra_cross``   Table 4: dual path, inter-view
``dual_path@clip+intra_cross``              Table 4: dual path, global-view = DPA, the main model
``dual_path@clip+clip``                     §5.6: DPA with both paths on CLIP (parameters, not knowledge)
``dual_path@clip+rgb_control``              equal-compute control: the second path trained on RGB only
``dual_path@clip+cross_only``               §5.6 ablation encoder in the DPA
==========================================  ==============================================================

Each row runs over ``params.adapter.seeds`` (k-shot draw, held-out split, init and shuffling); adapter seed
number ``i`` uses the pretrained encoder of ``params.pretrain.seeds[i % n]``, so the spread covers both.
Rows whose encoders are not cached are skipped (listed under ``missing_rows``). Adapter logits are cosine
similarities times a learnable scale (see :mod:`clip2point.models.adapters`), initialised here at the run's
CLIP logit scale (``params.adapter.logit_scale`` when that field exists and is non-zero).

Outputs: ``metrics_file("<mode>/<dataset>")`` and in ``results_dir(mode)/<dataset>``: ``predictions.parquet``,
``confusion_dpa.png`` (the DPA, summed over seeds) and ``adapter.pt``: the DPA of the seed with the best
*held-out* accuracy (never test), with everything :func:`clip2point.predict.bundle_from_checkpoint` needs;
its ``paths`` name the encoders it was trained on (e.g. ``intra_cross-seed2``) and ``encoders`` says how to
load each (``{"variant", "seed"}``): another seed's encoder gives different features.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clip2point.evaluate import classification_metrics, confusion_matrix
from clip2point.fewshot import TrainConfig, fit_adapter, fit_adapter_best_test, predict_logits, sample_k_shot
from clip2point.models.adapters import adapter_spec, adapter_state, create_adapter
from stages.features import CLIP_KEY, FeatureStore, StageError, encoder_key, run_stage
from stages.zeroshot import aggregate, prediction_rows, write_outputs

MODES = ("fewshot", "supervised")
MAIN_ROW = "dual_path@clip+intra_cross"
#: ``adapter.head: released``: the grid's global-view rows use the released SimplifiedAdapter heads
RELEASED_HEADS = {"global_view": "released_global", "dual_path": "released_dual_path"}


@dataclass(frozen=True)
class Row:
    """One grid row: a registered adapter and the variants of its feature paths (``clip`` = CLIP)."""

    adapter: str
    paths: tuple[str, ...]
    note: str

    @property
    def key(self) -> str:
        return f"{self.adapter}@{'+'.join(self.paths)}"


GRID: tuple[Row, ...] = (
    Row("global_view", ("clip",), "Table 2 w/o Pre.: single path on CLIP"),
    Row("inter_view", ("clip",), "PointCLIP inter-view adapter on CLIP"),
    Row("inter_view", ("intra_cross",), "Table 4: single path, inter-view"),
    Row("global_view", ("intra_cross",), "Table 4: single path, global-view"),
    Row("dual_path_inter_view", ("clip", "intra_cross"), "Table 4: dual path, inter-view"),
    Row("dual_path", ("clip", "intra_cross"), "Table 4: dual path, global-view (DPA)"),
    Row("dual_path", ("clip", "clip"), "5.6: DPA with both paths on CLIP"),
    Row("dual_path", ("clip", "rgb_control"), "control: second path pretrained on RGB only"),
    Row("dual_path", ("clip", "cross_only"), "5.6: DPA with the cross-only encoder"),
)


def path_encoder(variant: str, seed_index: int, pretrain_seeds: Sequence[int]) -> str:
    """Encoder key of one path for adapter seed number ``seed_index``."""
    if variant == CLIP_KEY:
        return CLIP_KEY
    return encoder_key(variant, pretrain_seeds[seed_index % len(pretrain_seeds)])


def encoder_source(key: str) -> dict[str, Any]:
    """How to load the encoder of a path key: ``{"variant": "clip"}`` or ``{"variant": v, "seed": s}``
    (``pipeline.models.load_depth_encoder(v, s)``)."""
    if key == CLIP_KEY:
        return {"variant": CLIP_KEY}
    variant, _, seed = key.rpartition("-seed")
    return {"variant": variant, "seed": int(seed)}


def training_indices(
    mode: str, labels: np.ndarray, k: int, seed: int, class_names: Sequence[str]
) -> np.ndarray:
    """Rows of the training split an adapter trains on: a k-shot draw or all of them."""
    if mode == "supervised":
        return np.arange(len(labels))
    return sample_k_shot(labels, k, seed, class_names=class_names)


def run_grid(
    store: FeatureStore,
    mode: str,
    adapter_params: Any,
    pretrain_seeds: Sequence[int],
    grid: Sequence[Row] = GRID,
    log: Any = print,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, np.ndarray], dict[str, Any] | None]:
    """Train and evaluate every available row × seed; returns metrics, prediction rows, the DPA's summed
    confusion and the checkpoint dict of the DPA with the best held-out accuracy."""
    if mode not in MODES:
        raise StageError(f"--mode must be one of {MODES}, got {mode!r}")
    ap = adapter_params
    views = ap.views
    names, text = store.class_names, store.text()
    k = len(names)
    y_train, y_test = store.labels("train"), store.labels("test")
    test_ids = store.ids("test")
    n_views, dim = store.meta["view_sets"][views], store.meta["dim"]
    scale_init = float(ap.logit_scale or store.logit_scale)
    seeds = list(ap.seeds)
    cache: dict[tuple[str, str], torch.Tensor] = {}

    def feats(enc: str, split: str) -> torch.Tensor:
        if (enc, split) not in cache:
            cache[(enc, split)] = store.features(enc, views, split)
        return cache[(enc, split)]

    metrics: dict[str, Any] = {
        "dataset": store.meta["dataset"],
        "mode": mode,
        "views": views,
        "n_views": n_views,
        "k_shot": ap.k_shot if mode == "fewshot" else None,
        "n_test": len(y_test),
        "chance": 1.0 / k,
        "epochs": ap.epochs,
        "head": ap.head,
        "protocol": ap.protocol,
        "rows": {},
        "missing_rows": [],
    }
    preds: list[dict[str, Any]] = []
    dpa_cm = np.zeros((k, k), dtype=np.int64)
    best_ckpt: dict[str, Any] | None = None
    for row in grid:
        encs_per_seed = [[path_encoder(v, i, pretrain_seeds) for v in row.paths] for i in range(len(seeds))]
        if any(e not in store.encoders for encs in encs_per_seed for e in encs):
            metrics["missing_rows"].append(row.key)
            continue
        if adapter_spec(row.adapter).n_paths != len(row.paths):
            raise StageError(f"grid row {row.key}: adapter takes {adapter_spec(row.adapter).n_paths} paths")
        per_seed: dict[str, dict[str, Any]] = {}
        t0 = time.perf_counter()
        for i, seed in enumerate(seeds):
            encs = encs_per_seed[i]
            idx = training_indices(mode, y_train, ap.k_shot, seed, names)
            cfg = TrainConfig(epochs=ap.epochs, lr=ap.lr, weight_decay=ap.weight_decay,
                              batch_size=ap.batch_size, val_fraction=ap.val_fraction, seed=seed,
                              threads=ap.threads, decay=ap.decay)
            name = RELEASED_HEADS.get(row.adapter, row.adapter) if ap.head == "released" else row.adapter
            if name.startswith("released_"):  # plain cosine logits (scale 1), the released dropout
                kwargs = {"n_views": n_views, "dim": dim, "hidden": ap.hidden}
            else:
                kwargs = {"n_views": n_views, "dim": dim, "hidden": ap.hidden, "dropout": ap.dropout,
                          "logit_scale": scale_init}
            make = lambda: create_adapter(name, **kwargs)  # noqa: B023, E731 - called right here
            x_train = [feats(e, "train")[idx] for e in encs]
            if ap.protocol == "released_best_test":
                res = fit_adapter_best_test(make, x_train, y_train[idx], [feats(e, "test") for e in encs], y_test,
                                            text, cfg)
            else:
                res = fit_adapter(make, x_train, y_train[idx], text, cfg)
            probs = predict_logits(res.model, [feats(e, "test") for e in encs], text).softmax(-1)
            prob, pred = probs.max(-1)
            pred_np = pred.numpy()
            m = classification_metrics(pred_np, y_test, names)
            per_seed[f"seed{seed}"] = {**m, "best_epoch": res.best_epoch, "val_acc": res.val_acc,
                                       "n_train": int(len(idx)), "encoders": encs}
            preds += prediction_rows(test_ids, y_test, pred_np, prob.numpy(), row.key, seed, "+".join(encs),
                                     store.meta["dataset"], names)
            if row.key == MAIN_ROW:
                dpa_cm += confusion_matrix(pred_np, y_test, k)
                val = res.val_acc if res.val_acc is not None else -1.0
                if best_ckpt is None or val > best_ckpt["val_acc"]:
                    depth = dict(store.meta.get("depth", {}))
                    best_ckpt = {
                        "adapter": adapter_state(res.model), "class_names": names, "text": text,
                        "views": views, "distance": float(depth.pop("distance", 1.0)), "depth": depth,
                        "paths": encs, "encoders": {e: encoder_source(e) for e in encs},
                        "logit_scale": store.logit_scale, "dataset": store.meta["dataset"],
                        "mode": mode, "seed": seed, "val_acc": val, "best_epoch": res.best_epoch,
                        "up_axis": store.meta.get("up_axis", "y"), "clip_model": store.meta.get("clip_model"),
                    }
        agg = aggregate(per_seed, names)
        for key, m in per_seed.items():
            agg["seeds"][key].update({kk: m[kk] for kk in ("best_epoch", "val_acc", "n_train", "encoders")})
        metrics["rows"][row.key] = {"adapter": row.adapter, "paths": list(row.paths), "note": row.note, **agg}
        log(f"{mode} {store.meta['dataset']} {row.key:>42}: acc {100 * agg['acc']:.2f} ± "
            f"{100 * agg['acc_std']:.2f} (mean class {100 * agg['mean_class_acc']:.2f}) "
            f"[{time.perf_counter() - t0:.1f} s]")
    metrics["findings"] = findings(metrics["rows"])
    return metrics, preds, ({"dpa": dpa_cm} if MAIN_ROW in metrics["rows"] else {}), best_ckpt


def findings(rows: dict[str, Any]) -> dict[str, Any]:
    """The paper's few-shot claims, in direction (means over seeds; test accuracy)."""
    acc = {k: v["acc"] for k, v in rows.items()}
    out: dict[str, Any] = {}
    singles = [acc[k] for k in ("global_view@clip", "global_view@intra_cross") if k in acc]
    if MAIN_ROW in acc and singles:
        out["dpa_ge_best_single_path"] = acc[MAIN_ROW] >= max(singles)
        out["dpa_minus_best_single_path"] = acc[MAIN_ROW] - max(singles)
    pairs = {
        "global_above_inter_single": ("global_view@intra_cross", "inter_view@intra_cross"),
        "global_above_inter_dual": (MAIN_ROW, "dual_path_inter_view@clip+intra_cross"),
        "pretrained_single_above_clip_single": ("global_view@intra_cross", "global_view@clip"),
        "dpa_above_clip_clip": (MAIN_ROW, "dual_path@clip+clip"),
        "dpa_above_rgb_control": (MAIN_ROW, "dual_path@clip+rgb_control"),
    }
    for name, (a, b) in pairs.items():
        if a in acc and b in acc:
            out[name] = acc[a] > acc[b]
    return out


def run(mode: str, dataset: str) -> dict[str, Any]:
    from pipeline.params import load_params
    from pipeline.paths import features_dir, metrics_file, results_dir

    params = load_params()
    params.data.benchmark(dataset)
    store = FeatureStore.open(features_dir(dataset))
    metrics, preds, cms, ckpt = run_grid(store, mode, params.adapter, params.pretrain.seeds)
    figures = {}
    if cms:
        acc = metrics["rows"][MAIN_ROW]["acc"]
        figures["dpa"] = (cms["dpa"], f"{mode} {dataset} · DPA · acc {100 * acc:.1f}% (all seeds)")
    write_outputs(results_dir(mode) / dataset, metrics_file(f"{mode}/{dataset}"), metrics, preds, figures,
                  store.class_names, {"adapter.pt": ckpt} if ckpt is not None else None)
    return metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.fewshot", description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=MODES, required=True, help="k-shot (fewshot) or full training split")
    ap.add_argument("dataset", help="a downstream dataset name (params.yaml data.benchmarks)")
    args = ap.parse_args(argv)
    return run_stage(args.mode, lambda: run(args.mode, args.dataset))


if __name__ == "__main__":
    sys.exit(main())
