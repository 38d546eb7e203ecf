"""CLIP2Point pre-training losses (paper §3.2.1, Eq. 5–11).

With ``e(a, b) = exp(a·bᵀ/τ)`` on L2-normalised features, both contrastive terms are SimCLR's NT-Xent
between two views ``a``, ``b`` of the same N items:

    l^i(a, b) = -log e(a_i, b_i) / (Σ_k [e(a_i, a_k) + e(a_i, b_k)] - e(a_i, a_i))        (Eq. 5–6, 8–9)
    L = 1/(2N) Σ_i [l^i(a, b) + l^i(b, a)]                                               (Eq. 7, 10)

Intra-modality: ``a, b`` = depth features at distances d1, d2 (Eq. 5–7). Cross-modality: ``a`` = the mean
depth feature F^D_i = (F_{i,d1} + F_{i,d2})/2, ``b`` = the frozen CLIP image feature F^I_i (Eq. 8–10).
The paper does not say whether the mean depth feature is re-normalised; we re-normalise it (the
features enter a cosine similarity everywhere else), see :func:`cross_modality_loss`.
Eq. 11 balances them with a learnable σ: ``L = L_intra/σ² + L_cross + log(σ + 1)``.

Temperature: the paper's text says τ = 0.7, the released code uses 0.07; the pipeline defaults to 0.07
(``pretrain.temperature``).

Distributed: every function takes optional ``*_all`` tensors holding the features of the whole global
batch (gathered across ranks, see :mod:`clip2point.train.distributed`); the local ``a``/``b`` rows are then
the anchors, ``offset`` their first row in the global batch, and the returned loss is this rank's share
``Σ_{local i} [...] / (2 N_global)`` so that the sum over ranks is the single-process loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clip2point.configs import PretrainConfig
from clip2point.precision import full_precision

#: τ of Eq. 5–10: the released code's 0.07 (the paper's text says 0.7), defined once by the config field.
TEMPERATURE: float = PretrainConfig.temperature


def _nt_xent_rows(anchor: Tensor, cands: Tensor, pos_idx: Tensor, self_idx: Tensor, tau: float) -> Tensor:
    """Per-anchor NT-Xent: ``-log softmax`` at ``pos_idx`` over candidates, the anchor itself excluded."""
    logits = anchor @ cands.t() / tau
    rows = torch.arange(anchor.shape[0], device=anchor.device)
    # the anchor itself: a column mask built on the device (no host scalar copied per step)
    is_self = self_idx[:, None] == torch.arange(cands.shape[0], device=anchor.device)[None, :]
    logits = logits.masked_fill(is_self, float("-inf"))
    return -logits.log_softmax(dim=-1)[rows, pos_idx]


def nt_xent(
    a: Tensor,
    b: Tensor,
    temperature: float = TEMPERATURE,
    a_all: Tensor | None = None,
    b_all: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """SimCLR NT-Xent between paired rows of ``a`` and ``b`` (N, C) (Eq. 5–7 and 8–10).

    Features are L2-normalised here. Negatives of anchor ``a_i`` are all other rows of ``a`` and ``b``
    (2N − 2 of them): the denominator is Σ_k e(a_i,a_k) + e(a_i,b_k) minus the self term e(a_i,a_i).
    Returns the mean over both directions, 1/(2N) Σ_i l^i(a,b) + l^i(b,a). Always fp32, autocast off.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(
            f"nt_xent needs two (N, C) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    with full_precision(a):
        return _nt_xent(a, b, temperature, a_all, b_all, offset)


def _nt_xent(a: Tensor, b: Tensor, temperature: float, a_all: Tensor | None, b_all: Tensor | None,
             offset: int) -> Tensor:
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1)
    if a_all is None or b_all is None:
        a_all, b_all, offset = a, b, 0
    else:
        a_all = F.normalize(a_all.float(), dim=-1)
        b_all = F.normalize(b_all.float(), dim=-1)
    n_local, n_global = a.shape[0], a_all.shape[0]
    cands = torch.cat([a_all, b_all])  # (2N, C): rows 0..N-1 are a, N..2N-1 are b
    gi = torch.arange(n_local, device=a.device) + offset  # global indices of the local anchors
    loss_ab = _nt_xent_rows(a, cands, gi + n_global, gi, temperature)  # anchors a_i, positive b_i
    loss_ba = _nt_xent_rows(b, cands, gi, gi + n_global, temperature)  # anchors b_i, positive a_i
    return (loss_ab.sum() + loss_ba.sum()) / (2 * n_global)


def intra_modality_loss(
    f_d1: Tensor,
    f_d2: Tensor,
    temperature: float = TEMPERATURE,
    f_d1_all: Tensor | None = None,
    f_d2_all: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """L_intra (Eq. 5–7): NT-Xent between depth features of the same view at distances d1 and d2."""
    return nt_xent(f_d1, f_d2, temperature, f_d1_all, f_d2_all, offset)


def mean_depth_feature(f_d1: Tensor, f_d2: Tensor) -> Tensor:
    """F^D_i, the mean of the two depth features (§3.2.1, after Eq. 7), L2-normalised (fp32)."""
    with full_precision(f_d1):
        return F.normalize((F.normalize(f_d1.float(), dim=-1) + F.normalize(f_d2.float(), dim=-1)) / 2, dim=-1)


def cross_modality_loss(
    f_depth: Tensor,
    f_image: Tensor,
    temperature: float = TEMPERATURE,
    f_depth_all: Tensor | None = None,
    f_image_all: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """L_cross (Eq. 8–10): NT-Xent between depth features F^D and frozen CLIP image features F^I."""
    return nt_xent(f_depth, f_image, temperature, f_depth_all, f_image_all, offset)


def balanced_loss(l_intra: Tensor, l_cross: Tensor, sigma: Tensor, log_term_weight: float = 1.0) -> Tensor:
    """Eq. 11: L = L_intra / σ² + L_cross + log(σ + 1), σ learnable.

    ``log_term_weight`` scales the σ regulariser; ranks of a distributed run each add 1/world of it so
    the sum over ranks is Eq. 11 exactly. fp32, autocast off.
    """
    with full_precision(sigma):
        return l_intra.float() / sigma**2 + l_cross + log_term_weight * torch.log(sigma + 1)


def multi_positive_contrastive(
    image: Tensor, text: Tensor, image_labels: Tensor, text_labels: Tensor, logit_scale: Tensor | float
) -> Tensor:
    """Class-aware CLIP loss for the miniature bootstrap (not in the paper).

    CLIP's symmetric InfoNCE, but every (image, caption) pair of the same class is a positive (targets
    spread uniformly over them) instead of a false negative: with ~10 classes nearly every batch holds
    many same-class pairs. Image→text over all captions; text→image over the batch's images, for the
    captions whose class occurs in the batch.
    """
    with full_precision(image):
        return _multi_positive_contrastive(image, text, image_labels, text_labels, logit_scale)


def _multi_positive_contrastive(image: Tensor, text: Tensor, image_labels: Tensor, text_labels: Tensor,
                                logit_scale: Tensor | float) -> Tensor:
    image = F.normalize(image.float(), dim=-1)
    text = F.normalize(text.float(), dim=-1)
    logits = logit_scale * image @ text.t()  # (B, T)
    pos = (image_labels[:, None] == text_labels[None, :]).float()
    i2t = -(pos / pos.sum(1, keepdim=True).clamp_min(1) * logits.log_softmax(1)).sum(1)
    i2t = i2t[pos.sum(1) > 0].mean()
    has = pos.sum(0) > 0
    lt = logits.t()[has]
    pt = pos.t()[has]
    t2i = -(pt / pt.sum(1, keepdim=True) * lt.log_softmax(1)).sum(1).mean()
    return (i2t + t2i) / 2
