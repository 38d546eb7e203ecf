"""Losses vs direct, loop-by-loop transcriptions of the paper's Eq. 5–11."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clip2point.losses import (
    balanced_loss,
    cross_modality_loss,
    intra_modality_loss,
    mean_depth_feature,
    multi_positive_contrastive,
    nt_xent,
)


def _e(a: torch.Tensor, b: torch.Tensor, tau: float) -> float:
    """e(a, b) = exp(a · bᵀ / τ) (after Eq. 7)."""
    return math.exp(float(a.double() @ b.double()) / tau)


def _eq5_7(f1: torch.Tensor, f2: torch.Tensor, tau: float) -> float:
    """L_intra transcribed: s^i (Eq. 5), l^i (Eq. 6), 1/(2N) Σ_i l^i(d1,d2) + l^i(d2,d1) (Eq. 7)."""
    n = f1.shape[0]

    def l_i(i: int, x: torch.Tensor, y: torch.Tensor) -> float:
        s = 0.0
        for k in range(n):
            s += _e(x[i], x[k], tau) + _e(x[i], y[k], tau)  # Eq. 5
        return -math.log(_e(x[i], y[i], tau) / (s - _e(x[i], x[i], tau)))  # Eq. 6

    return sum(l_i(i, f1, f2) + l_i(i, f2, f1) for i in range(n)) / (2 * n)  # Eq. 7


def _eq8_10(fd: torch.Tensor, fi: torch.Tensor, tau: float) -> float:
    """L_cross transcribed: s^i(D,I) (Eq. 8), l^i(D,I) (Eq. 9), symmetric mean (Eq. 10)."""
    n = fd.shape[0]
    total = 0.0
    for i in range(n):
        s_di = sum(_e(fd[i], fd[k], tau) + _e(fd[i], fi[k], tau) for k in range(n))  # Eq. 8
        l_di = -math.log(_e(fd[i], fi[i], tau) / (s_di - _e(fd[i], fd[i], tau)))  # Eq. 9
        s_id = sum(_e(fi[i], fi[k], tau) + _e(fi[i], fd[k], tau) for k in range(n))
        l_id = -math.log(_e(fi[i], fd[i], tau) / (s_id - _e(fi[i], fi[i], tau)))
        total += l_di + l_id
    return total / (2 * n)  # Eq. 10


def _unit(n: int, c: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, c, generator=g, dtype=torch.float64), dim=-1).float()


@pytest.mark.parametrize("tau", [0.07, 0.7, 1.0])
@pytest.mark.parametrize("n", [2, 5, 8])
def test_intra_matches_eq5_7(tau: float, n: int) -> None:
    f1, f2 = _unit(n, 6, 1), _unit(n, 6, 2)
    got = intra_modality_loss(f1, f2, tau).item()
    assert got == pytest.approx(_eq5_7(f1, f2, tau), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("tau", [0.07, 0.7])
def test_cross_matches_eq8_10(tau: float) -> None:
    f1, f2, fi = _unit(6, 8, 3), _unit(6, 8, 4), _unit(6, 8, 5)
    fd = mean_depth_feature(f1, f2)
    # F^D_i is the mean of F_{i,d1}, F_{i,d2}, re-normalised
    direct = F.normalize((f1 + f2) / 2, dim=-1)
    assert torch.allclose(fd, direct, atol=1e-6)
    got = cross_modality_loss(fd, fi, tau).item()
    assert got == pytest.approx(_eq8_10(direct, fi, tau), rel=1e-5, abs=1e-5)


def test_nt_xent_normalises_and_is_symmetric() -> None:
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    assert nt_xent(a, b, 0.5).item() == pytest.approx(nt_xent(b, a, 0.5).item(), rel=1e-6)
    assert nt_xent(3 * a, b, 0.5).item() == pytest.approx(nt_xent(a, b, 0.5).item(), rel=1e-5)
    # perfectly aligned, well separated pairs → small loss; swapped pairs → large loss
    eye = torch.eye(4)
    assert nt_xent(eye, eye, 0.07).item() < 1e-3
    assert nt_xent(eye, eye.roll(1, 0), 0.07).item() > 5


def test_shares_over_ranks_sum_to_global_loss() -> None:
    a, b = _unit(8, 6, 7), _unit(8, 6, 8)
    full = nt_xent(a, b, 0.1)
    parts = [nt_xent(a[i : i + 3], b[i : i + 3], 0.1, a, b, offset=i) for i in (0, 3)]
    parts.append(nt_xent(a[6:], b[6:], 0.1, a, b, offset=6))
    assert torch.allclose(sum(parts), full, atol=1e-6)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_balanced_matches_eq11(sigma: float) -> None:
    li, lc = torch.tensor(1.7), torch.tensor(2.9)
    s = torch.tensor(sigma, requires_grad=True)
    got = balanced_loss(li, lc, s)
    assert got.item() == pytest.approx(1.7 / sigma**2 + 2.9 + math.log(sigma + 1), rel=1e-6)
    got.backward()
    # dL/dσ = -2 L_intra / σ³ + 1 / (σ + 1)
    assert s.grad.item() == pytest.approx(-2 * 1.7 / sigma**3 + 1 / (sigma + 1), rel=1e-5)


def test_multi_positive_treats_same_class_as_positive() -> None:
    text = torch.eye(3)
    labels_t = torch.arange(3)
    img = torch.eye(3)[[0, 0, 1, 2]]
    lab = torch.tensor([0, 0, 1, 2])
    good = multi_positive_contrastive(img, text, lab, labels_t, 20.0)
    bad = multi_positive_contrastive(img, text, torch.tensor([1, 2, 0, 0]), labels_t, 20.0)
    assert good.item() < 0.2 < 1.0 < bad.item()
    # a caption's two same-class images are both targets (uniform): the t2i loss for class 0 is log 2
    t2i_only = multi_positive_contrastive(img, text, lab, labels_t, 1e4)
    assert t2i_only.item() == pytest.approx(math.log(2) / 3 / 2, rel=1e-3)
