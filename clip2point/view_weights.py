"""Per-view weights for zero-shot logits: PointCLIP's view-weight search, done on a validation split.

PointCLIP (and PointCLIP V2) weight each view's logits, ``logits[b, k] = s · Σ_v w_v ⟨F_{b,v}, T_k⟩`` with
L2-normalised features, and choose ``w`` by a grid search that maximises accuracy — on the *test* set in the
released code (V2's ModelNet40 loader sets ``val = test``; its ``best_param.py`` stores ``*_test_weights``).
CLIP2Point's Eq. 15 replaces the searched weights with the mean (equal weights); both are
:func:`clip2point.evaluate.zero_shot_logits` (its ``weights``, normalised by their sum, so argmax and
probabilities of equal weights are Eq. 15's). Here the search is a library function that sees only the split it
is given; the pipeline gives it a validation split carved from the benchmark's training split, never the test
split (``zeroshot.view_weights: searched``).

Search (:func:`search_view_weights`): an exhaustive grid over 10 views (``G¹⁰`` settings) is out of reach,
so the search is coordinate ascent over the same grid: start from equal weights (Eq. 15), then, view by view,
try every grid value for that view's weight with the others fixed and keep the value with the highest
accuracy, a tie keeping the current value (so equal weights survive unless a change is strictly better);
repeat until a full round changes nothing or ``rounds`` rounds have run. Settings with every weight zero are
skipped. Deterministic: no randomness, views visited in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def per_view_cosines(view_feats: Tensor, text: Tensor) -> Tensor:
    """``(B, V, C), (K, C) → (B, V, K)`` cosine similarities of every view with every class prompt."""
    if view_feats.ndim != 3 or text.ndim != 2 or text.shape[1] != view_feats.shape[2]:
        raise ValueError(f"need view features (B, V, C) and text (K, C); got {tuple(view_feats.shape)}, "
                         f"{tuple(text.shape)}")
    return torch.einsum("bvc,kc->bvk", F.normalize(view_feats.float(), dim=-1), F.normalize(text.float(), dim=-1))


def _accuracy(cos: Tensor, labels: Tensor, w: Tensor) -> float:
    return int((torch.einsum("bvk,v->bk", cos, w).argmax(-1) == labels).sum()) / len(labels)


def search_view_weights(view_feats: Tensor, labels: np.ndarray | Tensor, text: Tensor,
                        grid: Sequence[float] = DEFAULT_GRID, rounds: int = 3) -> tuple[np.ndarray, float]:
    """Coordinate-ascent search of per-view weights on the split given (see the module docstring).

    Returns the weights ``(V,)`` and their accuracy on that split. ``labels``: ``(B,)`` class indices.
    """
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if y.ndim != 1 or len(y) != view_feats.shape[0] or len(y) == 0:
        raise ValueError(f"need one label per sample ({view_feats.shape[0]}, at least one), got {tuple(y.shape)}")
    values = sorted({float(g) for g in grid})
    if not values or min(values) < 0 or not all(np.isfinite(values)):
        raise ValueError(f"view-weight grid must be finite, non-negative values; got {list(grid)}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    with torch.no_grad():
        cos = per_view_cosines(view_feats, text)
        v = cos.shape[1]
        w = torch.ones(v)
        best = _accuracy(cos, y, w)
        for _ in range(rounds):
            changed = False
            for i in range(v):
                for g in values:
                    if g == float(w[i]):
                        continue
                    trial = w.clone()
                    trial[i] = g
                    if float(trial.sum()) == 0.0:
                        continue
                    acc = _accuracy(cos, y, trial)
                    if acc > best:
                        best, w, changed = acc, trial, True
            if not changed:
                break
    return w.numpy(), best
