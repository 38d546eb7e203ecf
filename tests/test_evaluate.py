"""Eq. 15 against an explicit-loop transcription; metrics against hand counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from clip2point.evaluate import (
    accuracy,
    classification_metrics,
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
    plot_confusion,
    zero_shot_logits,
    zero_shot_probs,
)


def _eq15_ref(feats: torch.Tensor, text: torch.Tensor, scale: float) -> list[list[float]]:
    """Mean over views of cosine(F_v, T_k), times scale — written out with loops."""
    out = []
    for b in range(feats.shape[0]):
        row = []
        for k in range(text.shape[0]):
            t = text[k].tolist()
            acc = 0.0
            for v in range(feats.shape[1]):
                f = feats[b, v].tolist()
                dot = sum(x * y for x, y in zip(f, t, strict=True))
                acc += dot / (math.sqrt(sum(x * x for x in f)) * math.sqrt(sum(y * y for y in t)))
            row.append(scale * acc / feats.shape[1])
        out.append(row)
    return out


def test_zero_shot_logits_match_eq15():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 6, 5, generator=g, dtype=torch.float64) * 3  # unnormalised on purpose
    text = torch.randn(4, 5, generator=g, dtype=torch.float64)
    out = zero_shot_logits(feats, text, logit_scale=2.5)
    ref = torch.tensor(_eq15_ref(feats, text, 2.5), dtype=torch.float64)
    assert torch.allclose(out.double(), ref, atol=1e-5)


def test_mean_of_logits_not_mean_of_softmax():
    # two views, one confident for class 0, one mildly for class 1: mean of logits and mean of softmaxes
    # disagree here, and Eq. 15 (as the text defines it) is the mean of logits.
    feats = torch.tensor([[[1.0, 0.0], [0.6, 0.8]]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    logits = zero_shot_logits(feats, text)
    assert torch.allclose(logits, torch.tensor([[0.8, 0.4]]))
    probs = zero_shot_probs(feats, text, logit_scale=10.0)
    assert torch.allclose(probs.sum(-1), torch.ones(1)) and probs[0, 0] > probs[0, 1]
    # same arg-max as the printed formula (1/N) softmax(sum_v ...)
    printed = torch.einsum("bvc,kc->bvk", feats, text).sum(1).softmax(-1) / 2
    assert printed.argmax(-1).item() == logits.argmax(-1).item()


def test_zero_shot_shape_errors():
    with pytest.raises(ValueError):
        zero_shot_logits(torch.zeros(2, 5), torch.zeros(3, 5))
    with pytest.raises(ValueError):
        zero_shot_logits(torch.zeros(2, 3, 5), torch.zeros(3, 4))


def test_metrics_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    assert accuracy(pred, labels) == pytest.approx(4 / 6)
    cm = confusion_matrix(pred, labels, 4)
    expected = np.zeros((4, 4), int)
    for y, p in zip(labels, pred, strict=True):
        expected[y, p] += 1
    assert (cm == expected).all() and cm[0, 1] == 1 and cm[1, 2] == 1
    per = per_class_accuracy(pred, labels, 4)
    assert per[:3] == pytest.approx([2 / 3, 1 / 2, 1.0]) and np.isnan(per[3])
    assert mean_class_accuracy(pred, labels, 4) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    m = classification_metrics(torch.tensor(pred), torch.tensor(labels), ["a", "b", "c", "d"])
    assert m["per_class_acc"]["d"] is None and m["n"] == 6
    assert m["acc"] == pytest.approx(4 / 6)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="differ"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="integers"):
        accuracy(np.array([0.5]), np.array([0]))


def test_plot_confusion_writes_png(tmp_path):
    cm = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    fig = plot_confusion(cm, ["x", "y", "z"], title="t")
    assert isinstance(fig, Figure)
    fig.savefig(tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        plot_confusion(cm, ["x", "y"])


def test_evaluate_zero_shot_aggregates_runs_over_seeds():
    from clip2point.evaluate import aggregate_seeds, evaluate_zero_shot, zero_shot_predict

    g = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1)
    labels = np.array([0, 1, 2, 0, 1, 2])
    runs = {f"r{i}": text[labels][:, None, :] + s * torch.randn(6, 4, 8, generator=g)
            for i, s in enumerate((0.05, 2.0))}
    agg, preds, cm = evaluate_zero_shot(iter(runs.items()), text, labels, ["a", "b", "c"], 50.0)
    per = {k: classification_metrics(zero_shot_predict(f, text, 50.0)[0], labels, ["a", "b", "c"])
           for k, f in runs.items()}
    assert agg == aggregate_seeds(per, ["a", "b", "c"]) and agg["n_seeds"] == 2
    assert agg["seeds"]["r0"]["acc"] == 1.0
    assert agg["acc"] == pytest.approx(np.mean([m["acc"] for m in per.values()]))
    assert agg["acc_std"] == pytest.approx(np.std([m["acc"] for m in per.values()], ddof=1))
    assert cm.sum() == 12 and np.trace(cm) == sum(int((preds[k][0] == labels).sum()) for k in runs)
    pred, prob = preds["r0"]
    assert pred.dtype == np.int64 and prob.dtype == np.float32
    assert np.allclose(prob, zero_shot_probs(runs["r0"], text, 50.0).max(-1).values.numpy())
