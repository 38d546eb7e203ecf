"""The adapter grid of Tables 2 and 4 (paper §4, §5.4–5.6) on a feature cache.

Adapters train on cached view features (encoders stay frozen) and are evaluated on the test split.
``fewshot``: ``k_shot`` training samples per class drawn with each adapter seed; ``supervised``: the whole
training split. Training: :func:`clip2point.fewshot.fit_adapter` (AdamW), the number of epochs chosen on a
held-out ``val_fraction`` of the *training* samples, then a refit on all of them; the test split is only
ever used for the reported numbers (unless ``adapter.protocol: released_best_test``, labelled as such).

Grid (:class:`pipeline.keys.RowKey` ``<adapter>@<paths>``; ``intra_cross`` = the CLIP2Point encoder):

==========================================  ==============================================================
``global_view@clip``                        single path on CLIP, no pretraining (Table 2 "w/o Pre.")
``inter_view@clip``                         PointCLIP's inter-view adapter on CLIP (Eq. 2–4)
``inter_view@intra_cross``                  Table 4: single path, inter-view
``global_view@intra_cross``                 Table 4: single path, global-view
``dual_path_inter_view@clip+intra_cross``   Table 4: dual path, inter-view
``dual_path@clip+intra_cross``              Table 4: dual path, global-view = DPA (Eq. 16–19), the main model
``dual_path@clip+clip``                     §5.6: DPA with both paths on CLIP (parameters, not knowledge)
``dual_path@clip+cross_only``               §5.6 ablation encoder in the DPA
``dual_path@clip+rgb_control``              equal-compute control: the second path trained on RGB only
==========================================  ==============================================================

The last two are the objectives' rows (``ObjectiveInfo.adapter_row``, :func:`objective_rows`): an objective
registered in :mod:`clip2point.train.objective_info` with an adapter row gets one here.

Each released checkpoint in the cache (encoder ``released-<name>``, ``pretrain.external``) adds two rows
(:func:`released_grid`): ``global_view@released-<name>`` (single path) and ``dual_path@clip+released-<name>``
(the DPA with the released encoder as its pre-trained path).

Each row runs over the adapter seeds; adapter seed number ``i`` uses the pretrained encoder of
``pretrain_seeds[i % n]``, so the spread covers both. Rows whose encoders are not cached are skipped (listed
under ``missing_rows``). Adapter logits are cosine similarities times a learnable scale, initialised at the
run's CLIP logit scale (``adapter.logit_scale`` when non-zero). The DPA of the seed with the best *held-out*
accuracy is returned as a :class:`clip2point.predict.AdapterCheckpoint`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clip2point.configs import TrainConfig, config_from
from clip2point.evaluate import aggregate_seeds, classification_metrics, confusion_matrix
from clip2point.fewshot import fit_adapter, fit_adapter_best_test, predict_logits, sample_k_shot
from clip2point.models.adapters import adapter_spec, adapter_state, create_adapter
from clip2point.predict import AdapterCheckpoint
from clip2point.train.objective_info import METHOD, OBJECTIVES
from pipeline.feature_store import FeatureStore
from pipeline.findings import adapter_findings, correct_by_row, passed
from pipeline.keys import CLIP, DPA, RELEASED, EncoderKey, RowKey, released_keys
from pipeline.params import AdapterParams
from pipeline.results import prediction_rows
from pipeline.stage import StageError

MODES = ("fewshot", "supervised")
MAIN_ROW = str(DPA)
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
        return str(RowKey(self.adapter, self.paths))


#: The grid's fixed rows: CLIP alone, the method's (Table 4), both paths on CLIP (§5.6).
METHOD_ROWS: tuple[Row, ...] = (
    Row("global_view", (CLIP,), "Table 2 w/o Pre.: single path on CLIP"),
    Row("inter_view", (CLIP,), "PointCLIP inter-view adapter on CLIP"),
    Row("inter_view", (METHOD,), "Table 4: single path, inter-view"),
    Row("global_view", (METHOD,), "Table 4: single path, global-view"),
    Row("dual_path_inter_view", (CLIP, METHOD), "Table 4: dual path, inter-view"),
    Row("dual_path", (CLIP, METHOD), "Table 4: dual path, global-view (DPA)"),
    Row("dual_path", (CLIP, CLIP), "5.6: DPA with both paths on CLIP"),
)


def objective_rows() -> tuple[Row, ...]:
    """One DPA row per registered objective that declares one (``ObjectiveInfo.adapter_row``): its encoder as
    the second path beside CLIP, in registration order."""
    return tuple(Row("dual_path", (CLIP, name), info.adapter_row) for name, info in OBJECTIVES.items()
                 if info.adapter_row is not None)


#: The default grid: the fixed rows, then the objectives' rows.
GRID: tuple[Row, ...] = (*METHOD_ROWS, *objective_rows())


def released_grid(store: FeatureStore) -> tuple[Row, ...]:
    """The rows of every released checkpoint's encoder in the cache: single path and DPA (second path)."""
    rows: list[Row] = []
    for key in released_keys(store.encoders):
        enc = str(key)
        rows += [Row("global_view", (enc,), f"released checkpoint ({key.name}): single path, global-view"),
                 Row("dual_path", (CLIP, enc), f"released checkpoint ({key.name}) as the DPA's pre-trained path")]
    return tuple(rows)


def path_encoder(variant: str, seed_index: int, pretrain_seeds: Sequence[int]) -> str:
    """Encoder key of one path for adapter seed number ``seed_index`` (CLIP and a released checkpoint's
    encoder ``released-<name>`` have no pre-training seed)."""
    if variant == CLIP or variant.startswith(RELEASED + "-"):
        return variant
    return str(EncoderKey(variant, pretrain_seeds[seed_index % len(pretrain_seeds)]))


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
    adapter_params: AdapterParams,
    pretrain_seeds: Sequence[int],
    grid: Sequence[Row] | None = None,
    log: Any = print,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, np.ndarray], AdapterCheckpoint | None]:
    """Train and evaluate every available row × seed; returns metrics, prediction rows, the DPA's summed
    confusion and the checkpoint of the DPA with the best held-out accuracy. ``grid``: default :data:`GRID`
    and the rows of the cache's released checkpoints (:func:`released_grid`)."""
    if mode not in MODES:
        raise StageError(f"--mode must be one of {MODES}, got {mode!r}")
    grid = (*GRID, *released_grid(store)) if grid is None else grid
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

    draw_cache: dict[str, list[torch.Tensor]] = {}

    def draws(encs: list[str], idx: np.ndarray) -> list[list[torch.Tensor]] | None:
        """Per-epoch training inputs (adapter.resample_epochs > 0): draw k's features of every path."""
        if ap.resample_epochs <= 0:
            return None
        for e in encs:
            if e not in draw_cache:
                draw_cache[e] = store.draws(e, views)
        r = len(draw_cache[encs[0]])
        if r < ap.resample_epochs:
            raise StageError(f"{store.root} holds {r} resampled draws, adapter.resample_epochs asks for "
                             f"{ap.resample_epochs}: re-run the features stage")
        return [[draw_cache[e][k][idx] for e in encs] for k in range(ap.resample_epochs)]

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
        **({"resample_epochs": ap.resample_epochs} if ap.resample_epochs > 0 else {}),
        "rows": {},
        "missing_rows": [],
    }
    preds: list[dict[str, Any]] = []
    dpa_cm = np.zeros((k, k), dtype=np.int64)
    best: AdapterCheckpoint | None = None
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
            cfg = config_from(TrainConfig, ap, seed=seed)
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
                                            text, cfg, draws=draws(encs, idx))
            else:
                res = fit_adapter(make, x_train, y_train[idx], text, cfg, draws=draws(encs, idx))
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
                if best is None or val > best.val_acc:
                    best = _checkpoint(store, res, encs, text, views, mode, seed, val)
        agg = aggregate_seeds(per_seed, names)
        for key, m in per_seed.items():
            agg["seeds"][key].update({kk: m[kk] for kk in ("best_epoch", "val_acc", "n_train", "encoders")})
        metrics["rows"][row.key] = {"adapter": row.adapter, "paths": list(row.paths), "note": row.note, **agg}
        log(f"{mode} {store.meta['dataset']} {row.key:>42}: acc {100 * agg['acc']:.2f} ± "
            f"{100 * agg['acc_std']:.2f} (mean class {100 * agg['mean_class_acc']:.2f}) "
            f"[{time.perf_counter() - t0:.1f} s]")
    metrics["findings"] = passed(adapter_findings(mode, metrics, correct_by_row(preds)))
    return metrics, preds, ({"dpa": dpa_cm} if MAIN_ROW in metrics["rows"] else {}), best


def _checkpoint(store: FeatureStore, res: Any, encs: list[str], text: torch.Tensor, views: str, mode: str,
                seed: int, val: float) -> AdapterCheckpoint:
    """The checkpoint of one trained adapter: what :func:`clip2point.predict.bundle_from_checkpoint` needs."""
    depth = dict(store.meta.get("depth", {}))
    return AdapterCheckpoint(
        adapter=adapter_state(res.model), class_names=store.class_names, text=text, views=views,
        distance=float(depth.pop("distance", 1.0)), depth=depth, paths=encs,
        encoders={e: EncoderKey.parse(e).source() for e in encs}, logit_scale=store.logit_scale,
        dataset=store.meta["dataset"], mode=mode, seed=seed, val_acc=val, best_epoch=res.best_epoch,
        up_axis=store.meta.get("up_axis", "y"), clip_model=store.meta.get("clip_model"),
    )
