"""Zero-shot logits (paper Eq. 15) and classification metrics.

Eq. 15 as printed reads ``logits = (1/N) softmax(Σ_v F_v^D {F_k^T}^T)`` while the text around it says the
paper "calculate[s] the average logits of all the views" and replaces PointCLIP's post-searched view
weights "with the mean of multi-view logits". :func:`zero_shot_logits` implements the text: the mean over
views of the per-view logits ``F_v^D {F_k^T}^T`` (cosine similarities of L2-normalised features), times an
optional logit scale. This is *not* the mean of per-view softmaxes. It has the same arg-max as the
printed formula (the ``1/N`` there is a constant factor outside the softmax), so accuracies agree with
either reading; probabilities are ``softmax(s · mean_v cos)`` with CLIP's logit scale ``s``.

This is the one implementation of Eq. 15: zero-shot evaluation (:func:`evaluate_zero_shot`), prediction
(:mod:`clip2point.predict`) and model selection during training use it.

Metrics take integer predictions and labels (numpy or torch): :func:`accuracy`,
:func:`per_class_accuracy`, :func:`mean_class_accuracy`, :func:`confusion_matrix` (rows = true class,
columns = prediction), :func:`classification_metrics` (a JSON-ready dict), :func:`aggregate_seeds` (mean ±
sample std over seeds) and :func:`plot_confusion`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from clip2point.report import mean_std

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def zero_shot_logits(
    view_feats: Tensor, text: Tensor, logit_scale: float = 1.0, normalize: bool = True,
    weights: Sequence[float] | Tensor | None = None,
) -> Tensor:
    """Eq. 15 (the mean of multi-view logits): ``(B,V,C), (K,C) -> (B,K)``.

    ``logits[b,k] = s · (1/V) Σ_v <F_{b,v}, T_k>``. With ``normalize`` (default) both sides are
    L2-normalised first, so each term is a cosine similarity. ``weights`` (V,), non-negative, not all zero:
    PointCLIP's view-weighted form ``s · Σ_v w_v <F_{b,v}, T_k> / Σ_v w_v`` (the searched weights of
    :mod:`clip2point.view_weights`; equal weights give Eq. 15 exactly).
    """
    if view_feats.ndim != 3:
        raise ValueError(f"view features must be (B, V, C), got shape {tuple(view_feats.shape)}")
    if text.ndim != 2 or text.shape[1] != view_feats.shape[2]:
        raise ValueError(f"text features must be (K, {view_feats.shape[2]}), got {tuple(text.shape)}")
    if normalize:
        view_feats = F.normalize(view_feats.float(), dim=-1)
        text = F.normalize(text.float(), dim=-1)
    per_view = torch.einsum("bvc,kc->bvk", view_feats.float(), text.float())
    if weights is None:
        return logit_scale * per_view.mean(dim=1)
    w = torch.as_tensor(weights, dtype=torch.float32, device=per_view.device)
    if w.ndim != 1 or len(w) != per_view.shape[1] or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"view weights must be {per_view.shape[1]} non-negative numbers, not all zero; got "
                         f"{w.tolist()}")
    return logit_scale * torch.einsum("bvk,v->bk", per_view, w / w.sum())


def zero_shot_probs(view_feats: Tensor, text: Tensor, logit_scale: float = 100.0,
                    weights: Sequence[float] | Tensor | None = None) -> Tensor:
    """Class probabilities ``softmax(s · Eq. 15)``, ``(B,K)``; ``s`` is CLIP's logit scale."""
    return zero_shot_logits(view_feats, text, logit_scale, weights=weights).softmax(dim=-1)


def zero_shot_predict(view_feats: Tensor, text: Tensor, logit_scale: float = 100.0,
                      weights: Sequence[float] | Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 class ``(B,)`` int64 and its probability ``(B,)`` float32 under ``softmax(s · Eq. 15)``."""
    with torch.no_grad():
        probs = zero_shot_probs(view_feats, text, logit_scale, weights)
    prob, pred = probs.max(-1)
    return pred.numpy(), prob.numpy()


def evaluate_zero_shot(
    runs: Iterable[tuple[str, Tensor]],
    text: Tensor,
    labels: np.ndarray,
    class_names: Sequence[str],
    logit_scale: float = 100.0,
    weights: Mapping[str, Sequence[float]] | None = None,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Zero-shot classification (Eq. 15) of one method over its runs (e.g. one encoder per seed).

    ``runs``: ``(name, view features (M,V,C))`` pairs (a generator keeps one run in memory at a time).
    ``weights``: per run name, view weights (searched on a validation split); absent: Eq. 15's mean.
    Returns :func:`aggregate_seeds` of the runs' :func:`classification_metrics`, each run's
    :func:`zero_shot_predict` ``(pred, prob)`` and the ``(K,K)`` confusion matrix summed over the runs.
    """
    k = len(class_names)
    per_run: dict[str, dict[str, Any]] = {}
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    cm = np.zeros((k, k), dtype=np.int64)
    for name, feats in runs:
        pred, prob = zero_shot_predict(feats, text, logit_scale, (weights or {}).get(name))
        per_run[name] = classification_metrics(pred, labels, class_names)
        cm += confusion_matrix(pred, labels, k)
        preds[name] = (pred, prob)
    return aggregate_seeds(per_run, class_names), preds, cm


def _as_int_array(x: Any, what: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _pair(pred: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p, y = _as_int_array(pred, "predictions"), _as_int_array(labels, "labels")
    if p.shape != y.shape:
        raise ValueError(f"predictions {p.shape} and labels {y.shape} differ in length")
    return p, y


def accuracy(pred: Any, labels: Any) -> float:
    """Overall accuracy: the fraction of predictions equal to the label (nan when empty)."""
    p, y = _pair(pred, labels)
    return float((p == y).mean()) if y.size else float("nan")


def confusion_matrix(pred: Any, labels: Any, n_classes: int) -> np.ndarray:
    """``(K,K)`` int64 counts; ``cm[i, j]`` = samples of true class ``i`` predicted as ``j``."""
    p, y = _pair(pred, labels)
    if y.size and (min(p.min(), y.min()) < 0 or max(p.max(), y.max()) >= n_classes):
        raise ValueError(f"class indices must lie in [0, {n_classes})")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def per_class_accuracy(pred: Any, labels: Any, n_classes: int) -> np.ndarray:
    """``(K,)`` recall of each class; nan for a class with no samples."""
    cm = confusion_matrix(pred, labels, n_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def mean_class_accuracy(pred: Any, labels: Any, n_classes: int) -> float:
    """Mean of :func:`per_class_accuracy` over the classes present in ``labels``."""
    acc = per_class_accuracy(pred, labels, n_classes)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def classification_metrics(pred: Any, labels: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """``{"acc", "mean_class_acc", "per_class_acc": {name: acc}, "n"}`` (JSON-ready; absent class: None)."""
    k = len(class_names)
    per = per_class_accuracy(pred, labels, k)
    return {
        "acc": accuracy(pred, labels),
        "mean_class_acc": mean_class_accuracy(pred, labels, k),
        "per_class_acc": {
            n: (None if np.isnan(a) else float(a)) for n, a in zip(class_names, per, strict=True)
        },
        "n": int(_as_int_array(labels, "labels").size),
    }


def aggregate_seeds(per_seed: Mapping[str, Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Mean ± sample std over seeds of acc and mean-class acc; per-class acc averaged over seeds.

    ``per_seed[name]`` is a :func:`classification_metrics` dict; the result keeps each seed's acc and
    mean-class acc under ``seeds``.
    """
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


def plot_confusion(
    cm: np.ndarray, class_names: Sequence[str], title: str = "", normalize: bool = True
) -> Figure:
    """A confusion-matrix figure (rows true, columns predicted), row-normalised by default, with counts."""
    from matplotlib.figure import Figure

    cm = np.asarray(cm)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix {cm.shape} does not match {k} class names")
    rows = cm.sum(axis=1, keepdims=True)
    shown = cm / np.maximum(rows, 1) if normalize else cm
    size = max(4.0, 0.45 * k + 2.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    label = "fraction of true class" if normalize else "count"
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    ax.set_xticks(range(k), labels=list(class_names), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels=list(class_names), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    if k <= 20:
        hi = shown.max() if shown.size else 0
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    color = "white" if shown[i, j] > 0.6 * hi else "black"
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    return fig
