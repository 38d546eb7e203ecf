"""Released LAMB (torch_optimizer.Lamb's rule) and the released cosine-restarts schedule, against direct
per-element transcriptions and the closed-form schedule."""

from __future__ import annotations

import math

import pytest
import torch

from clip2point.train.optim import (
    OPTIMIZERS,
    RELEASED_ETA_MIN,
    ReleasedLamb,
    build_optimizer,
    build_schedule,
    cosine_restarts,
    cosine_with_warmup,
    param_groups,
    released_param_groups,
)

# ------------------------------------------------------------------ slow, obviously-correct transcription


def _norm(xs: list[float]) -> float:
    return math.sqrt(sum(x * x for x in xs))


class _RefLamb:
    """torch_optimizer.Lamb's step written element by element on Python floats (one flat list per tensor)."""

    def __init__(self, values, lr, wd, betas=(0.9, 0.999), eps=1e-6, clamp=10.0, adam=False, debias=False):
        self.w = [list(v) for v in values]
        self.m = [[0.0] * len(v) for v in values]
        self.v = [[0.0] * len(v) for v in values]
        self.t = [0] * len(values)
        self.lr, self.wd, self.betas, self.eps, self.clamp = lr, wd, betas, eps, clamp
        self.adam, self.debias = adam, debias

    def step(self, grads: list[list[float] | None]) -> None:
        b1, b2 = self.betas
        for i, g in enumerate(grads):
            if g is None:
                continue
            self.t[i] += 1
            w, m, v = self.w[i], self.m[i], self.v[i]
            for j in range(len(w)):
                m[j] = b1 * m[j] + (1 - b1) * g[j]
                v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j]
            c = 1.0
            if self.debias:
                c = math.sqrt(1 - b2 ** self.t[i]) / (1 - b1 ** self.t[i])
            w_norm = min(max(_norm(w), 0.0), self.clamp)
            u = [m[j] / (math.sqrt(v[j]) + self.eps) + self.wd * w[j] for j in range(len(w))]
            u_norm = _norm(u)
            r = 1.0 if (w_norm == 0.0 or u_norm == 0.0) else w_norm / u_norm
            if self.adam:
                r = 1.0
            for j in range(len(w)):
                w[j] = w[j] - self.lr * c * r * u[j]


def _params(gen: torch.Generator) -> list[torch.nn.Parameter]:
    return [
        torch.nn.Parameter(torch.randn(3, 4, generator=gen, dtype=torch.float64)),  # ‖w‖ < 10
        torch.nn.Parameter(5.0 * torch.randn(4, 5, generator=gen, dtype=torch.float64)),  # ‖w‖ > 10: clamped
        torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)),  # ‖w‖ = 0 at the first step
        torch.nn.Parameter(torch.zeros(2, dtype=torch.float64)),  # zero weight and zero grad: both norms 0
        torch.nn.Parameter(torch.randn(2, generator=gen, dtype=torch.float64)),  # never gets a gradient
    ]


@pytest.mark.parametrize(
    "kw",
    [
        {},  # the released configuration: debias=False, adam=False
        {"debias": True},
        {"adam": True},
        {"clamp": 1.5, "betas": (0.8, 0.99), "eps": 1e-3},
    ],
)
def test_released_lamb_matches_transcription(kw):
    gen = torch.Generator().manual_seed(0)
    params = _params(gen)
    assert params[1].norm().item() > 10.0
    lr, wd = 6e-3, 1e-4
    opt_kw = {k: v for k, v in kw.items() if k != "clamp"}
    if "clamp" in kw:
        opt_kw["clamp_value"] = kw["clamp"]
    opt = ReleasedLamb(params, lr=lr, weight_decay=wd, **opt_kw)
    ref = _RefLamb([p.detach().flatten().tolist() for p in params], lr, wd, **kw)
    untouched = params[4].detach().clone()
    for _ in range(6):
        grads = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params[:3]]
        grads.append(torch.zeros(2, dtype=torch.float64))
        for p, g in zip(params, grads, strict=False):
            p.grad = g.clone()
        opt.step()
        ref.step([g.flatten().tolist() for g in grads] + [None])
        for i, p in enumerate(params):
            got = p.detach().flatten().tolist()
            assert got == pytest.approx(ref.w[i], rel=1e-12, abs=1e-15), f"tensor {i}"
    assert torch.equal(params[3].detach(), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(params[4].detach(), untouched) and params[4] not in opt.state


def test_released_lamb_first_step_of_zero_tensor_is_a_plain_adam_step():
    """‖w‖ = 0 gives trust ratio 1: the first update is lr · m/(√v+eps) = lr · 0.1 g / (√0.001 |g| + eps)."""
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    g = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    p.grad = g.clone()
    ReleasedLamb([p], lr=6e-3, weight_decay=1e-4).step()
    want = [-6e-3 * 0.1 * x / (math.sqrt(0.001) * abs(x) + 1e-6) for x in g.tolist()]
    assert p.detach().tolist() == pytest.approx(want, rel=1e-12)


def test_released_lamb_closure_and_validation():
    p = torch.nn.Parameter(torch.ones(2))

    def closure():
        p.grad = torch.ones(2)
        return 3.0

    assert ReleasedLamb([p]).step(closure) == 3.0
    with pytest.raises(ValueError, match="learning rate"):
        ReleasedLamb([p], lr=0.0)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        ReleasedLamb([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="weight_decay"):
        ReleasedLamb([p], weight_decay=-1.0)
    with pytest.raises(ValueError, match="clamp_value"):
        ReleasedLamb([p], clamp_value=-1.0)
    with pytest.raises(ValueError, match="eps"):
        ReleasedLamb([p], eps=-1.0)


def test_build_optimizer_registry_and_released_groups():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    model[1].weight.requires_grad_(False)
    groups = released_param_groups(model, 6e-3, 1e-4)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 1e-4
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.parameters() if p.requires_grad}
    opt = build_optimizer("lamb_released", groups, 6e-3)
    assert isinstance(opt, ReleasedLamb)
    g = opt.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["betas"], g["eps"]) == (6e-3, 1e-4, (0.9, 0.999), 1e-6)
    assert (g["clamp_value"], g["adam"], g["debias"]) == (10.0, False, False)
    assert not isinstance(build_optimizer("lamb", param_groups(model, 1e-3, 1e-4), 1e-3), ReleasedLamb)
    assert {"lamb", "lamb_released", "adamw", "sgd"} <= set(OPTIMIZERS)
    with pytest.raises(ValueError, match="unknown optimizer 'nope'.*lamb_released"):
        build_optimizer("nope", groups, 1e-3)


# ------------------------------------------------------------------ schedule


def _restart_lr(base: float, eta_min: float, period: int, t: int) -> float:
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * (t % period) / period)) / 2


def _run(sched, opt, n):
    lrs = []
    for _ in range(n):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return lrs


def test_cosine_restarts_matches_closed_form():
    p, q = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 6e-3}, {"params": [q], "lr": 1e-3}], lr=6e-3)
    sched = cosine_restarts(opt, period_steps=7)
    for t, lrs in enumerate(_run(sched, opt, 30)):
        assert lrs[0] == pytest.approx(_restart_lr(6e-3, RELEASED_ETA_MIN, 7, t), rel=1e-12)
        assert lrs[1] == pytest.approx(_restart_lr(1e-3, RELEASED_ETA_MIN, 7, t), rel=1e-12)


def test_build_schedule_by_name():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=6e-3)
    sched = build_schedule("cosine_restarts", opt, total_steps=100, steps_per_epoch=5, warmup_steps=20)
    lrs = [x[0] for x in _run(sched, opt, 25)]
    assert lrs[0] == pytest.approx(6e-3)  # no warm-up, whatever warmup_steps says
    assert lrs[10] == pytest.approx(6e-3) and lrs[20] == pytest.approx(6e-3)  # restart every 2 epochs
    assert lrs[5] == pytest.approx(RELEASED_ETA_MIN + (6e-3 - RELEASED_ETA_MIN) / 2)
    assert lrs[9] == pytest.approx(_restart_lr(6e-3, 1e-5, 10, 9), rel=1e-12)

    p2 = torch.nn.Parameter(torch.zeros(1))
    opt_a, opt_b = torch.optim.SGD([p], lr=1.0), torch.optim.SGD([p2], lr=1.0)
    a = build_schedule("warmup_cosine", opt_a, total_steps=30, steps_per_epoch=5, warmup_steps=4, min_ratio=0.1)
    b = cosine_with_warmup(opt_b, 4, 30, 0.1)
    assert _run(a, opt_a, 30) == _run(b, opt_b, 30)
    with pytest.raises(ValueError, match="unknown schedule 'step'.*cosine_restarts"):
        build_schedule("step", opt, total_steps=1, steps_per_epoch=1)
    with pytest.raises(ValueError, match="period_steps must be >= 1"):
        cosine_restarts(opt, 0)
