"""The precision switch: the losses stay fp32 under autocast, the encoders follow the setting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clip2point.losses import balanced_loss, mean_depth_feature, multi_positive_contrastive, nt_xent
from clip2point.precision import encoder_precision


def _nt_xent_fp32(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 5–7 transcribed, in float64: per anchor, -log e(a_i,b_i) / (Σ_k e(a_i,a_k) + e(a_i,b_k) − e(a_i,a_i))."""
    a, b = F.normalize(a.double(), dim=-1), F.normalize(b.double(), dim=-1)
    total = 0.0
    for x, y in ((a, b), (b, a)):
        for i in range(len(x)):
            num = torch.exp(x[i] @ y[i] / tau)
            den = (torch.exp(x[i] @ x.t() / tau).sum() + torch.exp(x[i] @ y.t() / tau).sum()
                   - torch.exp(x[i] @ x[i] / tau))
            total += -torch.log(num / den)
    return total / (2 * len(a))


def test_nt_xent_under_bf16_autocast_equals_fp32():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    want = _nt_xent_fp32(a, b, 0.07)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = nt_xent(a, b, 0.07)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(want), rel=1e-6)  # bf16 logits at τ = 0.07 miss by ~1e-3


def test_losses_and_sigma_term_are_fp32_under_autocast():
    g = torch.Generator().manual_seed(1)
    f1, f2, img = (torch.randn(8, 16, generator=g) for _ in range(3))
    sigma = torch.tensor(0.7, requires_grad=True)
    ref = balanced_loss(nt_xent(f1, f2), nt_xent(mean_depth_feature(f1, f2), img), sigma)
    labels = torch.arange(8) % 3
    ref_mp = multi_positive_contrastive(f1, img[:3], labels, torch.arange(3), 50.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = balanced_loss(nt_xent(f1, f2), nt_xent(mean_depth_feature(f1, f2), img), sigma)
        got_mp = multi_positive_contrastive(f1, img[:3], labels, torch.arange(3), 50.0)
    assert got.dtype == torch.float32 and got_mp.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_mp, ref_mp, rtol=1e-6, atol=1e-6)


def test_encoder_precision_bf16_runs_the_encoder_in_bf16_and_fp32_tf32_do_not_on_cpu():
    lin = nn.Linear(8, 8)
    x = torch.randn(4, 8)
    with encoder_precision("cpu", "bf16"):
        assert lin(x).dtype == torch.bfloat16
    old = torch.backends.cuda.matmul.allow_tf32
    for p in ("fp32", "tf32"):
        with encoder_precision("cpu", p):
            assert lin(x).dtype == torch.float32
            assert torch.backends.cuda.matmul.allow_tf32 == old  # TF32 is a CUDA-only setting
    with pytest.raises(ValueError, match="precision must be one of fp32 | tf32 | bf16, got 'fp16'"):
        with encoder_precision("cpu", "fp16"):
            pass


def test_pretrain_config_refuses_an_unknown_precision():
    from clip2point.configs import PretrainConfig

    with pytest.raises(ValueError, match="^pretrain: 'precision' must be one of fp32, tf32, bf16; got 'half'$"):
        PretrainConfig(precision="half")
