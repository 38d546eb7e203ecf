"""The multi-tensor LAMB paths equal their per-tensor twins over several steps (to 1e-6)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clip2point.train.optim import ReleasedLamb, build_optimizer, param_groups, released_param_groups


def _model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(7, 5), nn.LayerNorm(5), nn.Linear(5, 3))
    with torch.no_grad():
        m[1].bias.zero_()  # a zero-norm tensor: trust ratio 1 (degenerate branch)
    return m


def _run(model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 7, generator=g)
        loss = model(x).pow(2).mean() + 0.1 * model(x).sin().sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def _pair(**kw) -> tuple[list[torch.Tensor], list[torch.Tensor], ReleasedLamb, ReleasedLamb]:
    fast_m, slow_m = _model(), _model()
    fast = ReleasedLamb(released_param_groups(fast_m, 6e-3, kw.pop("wd", 1e-4)), lr=6e-3, foreach=True, **kw)
    slow = ReleasedLamb(copy.deepcopy(fast.param_groups), lr=6e-3, foreach=False, **kw)
    slow.param_groups[0]["params"] = list(slow_m.parameters())
    return _run(fast_m, fast, 6), _run(slow_m, slow, 6), fast, slow


@pytest.mark.parametrize("kw", [{}, {"wd": 0.0}, {"debias": True}, {"adam": True}, {"clamp_value": 0.5}])
def test_released_lamb_foreach_equals_per_tensor_loop(kw):
    fast_p, slow_p, fast, slow = _pair(**kw)
    for a, b in zip(fast_p, slow_p, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    moved = sum(float((a - b).abs().sum()) for a, b in zip(fast_p, [p.detach() for p in _model().parameters()],
                                                          strict=True))
    assert moved > 1e-3  # the steps did update the weights (else equality would prove nothing)
    for pf, ps in zip(fast.state.values(), slow.state.values(), strict=True):
        assert pf["step"] == ps["step"] == 6
        for k in ("exp_avg", "exp_avg_sq", "trust_ratio", "weight_norm", "adam_norm"):
            torch.testing.assert_close(pf[k], ps[k], rtol=1e-6, atol=1e-7)


def test_timm_lamb_is_the_foreach_path_and_equals_the_single_tensor_path():
    from timm.optim import Lamb

    fast_m, slow_m = _model(), _model()
    fast = build_optimizer("lamb", param_groups(fast_m, 2e-3, 1e-4), 2e-3)
    assert fast.param_groups[0]["foreach"] is True
    slow = Lamb(param_groups(slow_m, 2e-3, 1e-4), lr=2e-3, foreach=False)
    for a, b in zip(_run(fast_m, fast, 6), _run(slow_m, slow, 6), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_released_lamb_foreach_dispatches_a_few_ops_per_group_not_per_tensor():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    counts = {}
    for foreach in (True, False):
        m = nn.Sequential(*[nn.Linear(4, 4) for _ in range(10)])  # 20 tensors
        opt = ReleasedLamb(m.parameters(), lr=1e-3, weight_decay=1e-4, foreach=foreach)
        m(torch.randn(2, 4)).sum().backward()
        opt.step()  # state initialised
        Count.n = 0
        with Count():
            opt.step()
        counts[foreach] = Count.n
    assert counts[False] >= 15 * 20
    assert counts[True] <= 0.1 * counts[False]
