"""Released few-shot heads (SimplifiedAdapter, DPA composition) against transcriptions on Python floats."""

from __future__ import annotations

import math

import pytest
import torch

from clip2point.models.adapters import (
    RELEASED_DROPOUT,
    ReleasedDualPathAdapter,
    SimplifiedAdapter,
    adapter_from_state,
    adapter_spec,
    adapter_state,
    create_adapter,
)

B, V, C, H, K = 4, 3, 4, 5, 3
BN_EPS = 1e-5

# ------------------------------------------------------------------ slow, obviously-correct transcriptions


def _linear(w: torch.Tensor, b: torch.Tensor, x: list[float]) -> list[float]:
    return [sum(w[j, i].item() * x[i] for i in range(len(x))) + b[j].item() for j in range(w.shape[0])]


def _bn_eval(bn: torch.nn.BatchNorm1d, x: list[float]) -> list[float]:
    return [
        (x[c] - bn.running_mean[c].item()) / math.sqrt(bn.running_var[c].item() + BN_EPS) * bn.weight[c].item()
        + bn.bias[c].item()
        for c in range(len(x))
    ]


def _bn_batch(bn: torch.nn.BatchNorm1d, rows: list[list[float]]) -> list[list[float]]:
    """Training-mode BatchNorm: per-channel mean and biased variance over all ``rows``."""
    n, out = len(rows), [list(r) for r in rows]
    for c in range(len(rows[0])):
        mean = sum(r[c] for r in rows) / n
        var = sum((r[c] - mean) ** 2 for r in rows) / n
        for i in range(n):
            out[i][c] = (rows[i][c] - mean) / math.sqrt(var + BN_EPS) * bn.weight[c].item() + bn.bias[c].item()
    return out


def _adapter_ref(ad: SimplifiedAdapter, feats: torch.Tensor, train: bool) -> list[list[float]]:
    """Released rule, dropout off: scale view v by w_v, view-pooled BN, flatten, f1, BN, ReLU, f2."""
    bn0, f1, bn1, f2 = ad.global_f[0].bn, ad.global_f[3], ad.global_f[4], ad.global_f[7]
    scaled = [[[feats[b, v, c].item() * ad.fusion_ratio[v].item() for c in range(C)] for v in range(V)]
              for b in range(feats.shape[0])]
    if train:  # statistics over all B*V view rows at once
        flat_rows = _bn_batch(bn0, [row for sample in scaled for row in sample])
        normed = [flat_rows[b * V:(b + 1) * V] for b in range(len(scaled))]
    else:
        normed = [[_bn_eval(bn0, row) for row in sample] for sample in scaled]
    hidden = [_linear(f1.weight, f1.bias, [x for row in sample for x in row]) for sample in normed]
    hidden = _bn_batch(bn1, hidden) if train else [_bn_eval(bn1, h) for h in hidden]
    return [_linear(f2.weight, f2.bias, [max(0.0, x) for x in h]) for h in hidden]


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Random weights, fusion ratios and BatchNorm statistics, so every term of the rule matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("num_batches_tracked") or name.startswith("scale."):
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g, dtype=t.dtype))
            else:
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype))


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    fc = 3.0 * torch.randn(B, V, C, generator=g, dtype=torch.float64)  # raw, un-normalised features
    fd = 3.0 * torch.randn(B, V, C, generator=g, dtype=torch.float64)
    text = torch.nn.functional.normalize(torch.randn(K, C, generator=g, dtype=torch.float64), dim=-1)
    return fc, fd, text


def _approx_rows(out: torch.Tensor, ref: list[list[float]]) -> None:
    for b in range(out.shape[0]):
        assert out[b].tolist() == pytest.approx(ref[b], rel=1e-9, abs=1e-10)


def test_simplified_adapter_eval_matches_released_rule(data):
    fc, _, _ = data
    ad = SimplifiedAdapter(V, C, hidden=H).double()
    _randomise(ad, 1)
    ad.eval()
    _approx_rows(ad(fc), _adapter_ref(ad, fc, train=False))


def test_simplified_adapter_train_mode_pools_views_in_first_batchnorm(data):
    fc, _, _ = data
    ad = SimplifiedAdapter(V, C, hidden=H, dropout=0.0).double()
    _randomise(ad, 2)
    ad.train()
    _approx_rows(ad(fc), _adapter_ref(ad, fc, train=True))


def test_released_dual_path_logits_are_plain_cosines(data):
    fc, fd, text = data
    model = create_adapter("released_dual_path", n_views=V, dim=C, hidden=H).double()
    _randomise(model, 3)
    model.eval()
    assert model.scale().item() == 1.0
    out = model(fc, fd, text)
    gc = _adapter_ref(model.clip_path, fc, train=False)  # released adapter2 on the CLIP encoder
    gd = _adapter_ref(model.depth_path, fd, train=False)  # released adapter1 on the pre-trained encoder
    for b in range(B):
        g = [0.5 * (x + y) for x, y in zip(gd[b], gc[b], strict=True)]  # Eq. 19
        for k in range(K):
            assert out[b, k].item() == pytest.approx(_cos(g, text[k].tolist()), rel=1e-9, abs=1e-12)
    assert not torch.allclose(out, model(fd, fc, text))  # the paths are not interchangeable


def test_released_global_logits(data):
    fc, _, text = data
    model = create_adapter("released_global", n_views=V, dim=C).double()
    _randomise(model, 4)
    model.eval()
    out = model(fc, text)
    g = _adapter_ref(model.adapter, fc, train=False)
    for b in range(B):
        for k in range(K):
            assert out[b, k].item() == pytest.approx(_cos(g[b], text[k].tolist()), rel=1e-9, abs=1e-12)


def test_released_defaults_and_key_layout():
    model = ReleasedDualPathAdapter(10, 8)
    for path in (model.clip_path, model.depth_path):
        assert torch.equal(path.fusion_ratio.detach(), torch.full((10,), 0.5))
        drops = [m.p for m in path.global_f if isinstance(m, torch.nn.Dropout)]
        assert drops == [RELEASED_DROPOUT, RELEASED_DROPOUT] == [0.075, 0.075]
        assert path.global_f[3].in_features == 80 and path.global_f[3].out_features == 8
        assert path.global_f[7].bias is not None and path.global_f[3].bias is not None
    # The released SimplifiedAdapter's state-dict names (models/adapter.py), written out here.
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    released = (["fusion_ratio"] + [f"global_f.0.bn.{n}" for n in bn] + ["global_f.3.weight", "global_f.3.bias"]
                + [f"global_f.4.{n}" for n in bn] + ["global_f.7.weight", "global_f.7.bias"])
    want = {f"{p}.{k}" for p in ("clip_path", "depth_path") for k in released}
    assert set(model.state_dict()) == want  # no logit scale stored: it is a fixed 1


def test_registry_state_roundtrip_and_learnable_scale(data):
    fc, fd, text = (x.float() for x in data)
    assert adapter_spec("released_dual_path").n_paths == 2 and adapter_spec("released_global").n_paths == 1
    model = create_adapter("released_dual_path", n_views=V, dim=C, hidden=0, dropout=0.0, logit_scale=1.0)
    _randomise(model, 5)
    restored = adapter_from_state(adapter_state(model.eval()))
    assert torch.equal(model(fc, fd, text), restored(fc, fd, text))
    learn = create_adapter("released_global", n_views=V, dim=C, logit_scale=7.0, learn_scale=True)
    assert learn.scale().item() == pytest.approx(7.0)
    assert any(n.endswith("log_scale") for n, _ in learn.named_parameters())
    fixed = create_adapter("released_global", n_views=V, dim=C, logit_scale=7.0)
    assert fixed.scale().item() == pytest.approx(7.0) and "scale.value" not in fixed.state_dict()


def test_shape_errors(data):
    fc, _, text = data
    model = create_adapter("released_global", n_views=V, dim=C).double().eval()
    with pytest.raises(ValueError, match=r"\(B, 3, 4\)"):
        model(fc[:, :2], text)
