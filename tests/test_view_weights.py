"""PointCLIP's view-weight search on a validation split (clip2point.view_weights)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from clip2point.evaluate import zero_shot_logits
from clip2point.view_weights import search_view_weights


def _problem(seed: int, b: int = 120, v: int = 4, k: int = 5, c: int = 16, noisy: tuple[int, ...] = (2,)):
    """Views that see the class direction plus noise; the ``noisy`` views see noise only."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(k, c, generator=g)
    labels = torch.randint(0, k, (b,), generator=g)
    feats = text[labels][:, None, :].repeat(1, v, 1) + 1.5 * torch.randn(b, v, c, generator=g)
    for i in noisy:
        feats[:, i] = 3.0 * torch.randn(b, c, generator=g)
    return feats, labels.numpy(), text


def view_weighted_logits(feats, text, w, scale: float = 1.0):
    return zero_shot_logits(feats, text, scale, weights=w)


def _acc(feats, labels, text, w) -> float:
    return float((view_weighted_logits(feats, text, w).argmax(-1).numpy() == labels).mean())


def test_equal_weights_are_eq15() -> None:
    feats, _, text = _problem(0)
    v = feats.shape[1]
    torch.testing.assert_close(view_weighted_logits(feats, text, [1 / v] * v, 100.0),
                               zero_shot_logits(feats, text, 100.0))


def test_weighted_logits_transcription() -> None:
    feats, _, text = _problem(1, b=7, v=3)
    w = [0.2, 0.0, 1.5]
    f = feats / feats.norm(dim=-1, keepdim=True)
    t = text / text.norm(dim=-1, keepdim=True)
    want = sum(w[i] * (f[:, i] @ t.T) for i in range(3)) * 10.0 / sum(w)
    torch.testing.assert_close(view_weighted_logits(feats, text, w, 10.0), want)


def test_search_downweights_a_view_that_sees_only_noise() -> None:
    feats, labels, text = _problem(2, b=300, noisy=(2,))
    w, acc = search_view_weights(feats, labels, text)
    assert w[2] < min(np.delete(w, 2)) and acc >= _acc(feats, labels, text, np.ones(4))
    assert acc == pytest.approx(_acc(feats, labels, text, w))


def test_search_never_worse_than_the_mean_and_at_most_the_exhaustive_best() -> None:
    grid = (0.0, 0.5, 1.0)
    for seed in range(3):
        feats, labels, text = _problem(10 + seed, b=80, v=3, noisy=(1,))
        w, acc = search_view_weights(feats, labels, text, grid=grid)
        brute = max(_acc(feats, labels, text, np.array(c)) for c in itertools.product(grid, repeat=3) if sum(c) > 0)
        assert _acc(feats, labels, text, np.ones(3)) <= acc <= brute
        assert set(w.tolist()) <= set(grid)


def test_ties_keep_equal_weights() -> None:
    """Identical views: no single change can be strictly better, so Eq. 15's mean survives."""
    feats, labels, text = _problem(3, v=1, noisy=())
    w, _ = search_view_weights(feats.repeat(1, 3, 1), labels, text)
    assert w.tolist() == [1.0, 1.0, 1.0]


def test_search_reads_only_the_split_it_is_given() -> None:
    """Whatever happens to other samples' labels (a test split), the weights depend only on the val split."""
    feats, labels, text = _problem(4, b=200)
    val = slice(0, 100)
    w1, _ = search_view_weights(feats[val], labels[val], text)
    shuffled = labels.copy()
    shuffled[100:] = np.random.default_rng(0).permutation(shuffled[100:])
    w2, _ = search_view_weights(feats[val], shuffled[val], text)
    assert w1.tolist() == w2.tolist()


@pytest.mark.parametrize("kwargs,match", [({"grid": (-1.0, 1.0)}, "non-negative"), ({"rounds": 0}, "rounds"),
                                          ({"grid": ()}, "grid")])
def test_bad_search_settings(kwargs, match) -> None:
    feats, labels, text = _problem(5, b=10)
    with pytest.raises(ValueError, match=match):
        search_view_weights(feats, labels, text, **kwargs)


def test_label_count_must_match() -> None:
    feats, labels, text = _problem(6, b=10)
    with pytest.raises(ValueError, match="one label per sample"):
        search_view_weights(feats, labels[:5], text)


@pytest.mark.parametrize("w", [[1.0, -1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0]])
def test_bad_weights_are_refused(w) -> None:
    feats, _, text = _problem(7, b=4)
    with pytest.raises(ValueError, match="view weights"):
        zero_shot_logits(feats, text, weights=w)
