"""Adapters (Eq. 2–4, 16–19) against direct transcriptions with explicit loops on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from clip2point.models.adapters import (
    CLIP_MAX_SCALE,
    DualPathAdapter,
    GlobalViewAdapter,
    InterViewAdapter,
    adapter_from_state,
    adapter_spec,
    adapter_state,
    create_adapter,
    decay_groups,
    list_adapters,
)

B, V, C, H, K = 2, 3, 4, 5, 3


# ------------------------------------------------------------------ slow, obviously-correct transcriptions


def _linear(w: torch.Tensor, b: torch.Tensor, x: list[float]) -> list[float]:
    return [sum(w[j, i].item() * x[i] for i in range(len(x))) + b[j].item() for j in range(w.shape[0])]


def _relu(x: list[float]) -> list[float]:
    return [max(0.0, v) for v in x]


def _global_ref(gf, feats_b: torch.Tensor) -> list[float]:
    """Eq. 2/17/18 for one sample: concat the V view features, f1, ReLU, f2."""
    concat: list[float] = []
    for v in range(feats_b.shape[0]):
        concat += [feats_b[v, c].item() for c in range(feats_b.shape[1])]
    return _linear(gf.f2.weight, gf.f2.bias, _relu(_linear(gf.f1.weight, gf.f1.bias, concat)))


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _inter_ref(branch, feats_b: torch.Tensor) -> list[list[float]]:
    """Eq. 2–3 + residual: A_v = F_v + ReLU(G W_v^T) for every view v."""
    g = _global_ref(branch.global_feature, feats_b)
    out = []
    for v in range(feats_b.shape[0]):
        w = branch.view_weights[v]
        f_hat = _relu([sum(g[i] * w[o, i].item() for i in range(len(g))) for o in range(w.shape[0])])
        out.append([feats_b[v, c].item() + f_hat[c] for c in range(len(f_hat))])
    return out


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    f1 = torch.nn.functional.normalize(torch.randn(B, V, C, generator=g, dtype=torch.float64), dim=-1)
    f2 = torch.nn.functional.normalize(torch.randn(B, V, C, generator=g, dtype=torch.float64), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(K, C, generator=g, dtype=torch.float64), dim=-1)
    return f1, f2, text


def _make(name: str) -> torch.nn.Module:
    torch.manual_seed(1)
    return create_adapter(name, n_views=V, dim=C, hidden=H, logit_scale=7.0).double()


def _logits(name: str, data) -> tuple[torch.nn.Module, float, torch.Tensor]:
    """The adapter ``name`` (:func:`_make`), its logit scale and its logits on ``data`` (the paths it takes)."""
    f1, f2, text = data
    model = _make(name)
    s = model.scale().item()
    return model, s, model(*(f1, f2)[: model.n_paths], text)


def test_global_view_matches_eq16(data):
    f1, _, text = data
    model = _make("global_view")
    s = model.scale().item()
    assert s == pytest.approx(7.0)
    out = model(f1, text)
    assert out.shape == (B, K)
    for b in range(B):
        g = _global_ref(model.global_feature, f1[b])
        for k in range(K):
            assert out[b, k].item() == pytest.approx(s * _cos(g, text[k].tolist()), rel=1e-9, abs=1e-12)


def test_dual_path_matches_eq17_19(data):
    fc, fd, text = data
    model, s, out = _logits("dual_path", data)
    for b in range(B):
        gc = _global_ref(model.clip_path, fc[b])  # Eq. 17
        gd = _global_ref(model.depth_path, fd[b])  # Eq. 18
        g = [0.5 * (x + y) for x, y in zip(gc, gd, strict=True)]  # Eq. 19
        for k in range(K):
            assert out[b, k].item() == pytest.approx(s * _cos(g, text[k].tolist()), rel=1e-9, abs=1e-12)


def test_dual_path_paths_are_not_interchangeable(data):
    fc, fd, text = data
    model = _make("dual_path")
    assert not torch.allclose(model(fc, fd, text), model(fd, fc, text))


def test_inter_view_matches_eq2_4_with_mean_view_logits(data):
    f1, _, text = data
    model, s, out = _logits("inter_view", data)
    for b in range(B):
        a = _inter_ref(model.branch, f1[b])
        for k in range(K):
            ref = sum(s * _cos(a[v], text[k].tolist()) for v in range(V)) / V  # Eq. 4 with α_v = 1/V
            assert out[b, k].item() == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_dual_path_inter_view_matches_transcription(data):
    fc, fd, text = data
    model, s, out = _logits("dual_path_inter_view", data)
    for b in range(B):
        ac, ad = _inter_ref(model.clip_path, fc[b]), _inter_ref(model.depth_path, fd[b])
        for k in range(K):
            ref = 0.0
            for v in range(V):
                a = [0.5 * (x + y) for x, y in zip(ac[v], ad[v], strict=True)]
                ref += s * _cos(a, text[k].tolist()) / V
            assert out[b, k].item() == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_inter_view_residual_keeps_input_when_expansion_is_zero(data):
    f1, _, text = data
    model = _make("inter_view")
    with torch.no_grad():
        model.branch.view_weights.zero_()
    zs = model.scale() * torch.einsum("bvc,kc->bvk", f1, text).mean(1)  # features unit-norm already
    assert torch.allclose(model(f1, text), zs)


def test_registry_and_paths():
    names = list_adapters()
    assert {"global_view", "dual_path", "inter_view", "dual_path_inter_view"} <= set(names)
    assert adapter_spec("dual_path").n_paths == 2 and adapter_spec("global_view").n_paths == 1
    with pytest.raises(KeyError, match="global_view"):
        create_adapter("no_such_adapter", n_views=V, dim=C)


def test_state_roundtrip_reproduces_logits(data):
    fc, fd, text = data
    model = _make("dual_path").float()
    with torch.no_grad():
        model.scale.log_scale.fill_(2.0)
    restored = adapter_from_state(adapter_state(model))
    fc, fd, text = fc.float(), fd.float(), text.float()
    assert torch.equal(model(fc, fd, text), restored(fc, fd, text))
    with pytest.raises(ValueError):
        adapter_state(GlobalViewAdapter(V, C))  # not built through the registry


def test_shape_errors(data):
    f1, _, text = data
    model = _make("global_view")
    with pytest.raises(ValueError, match=r"\(B, 3, 4\)"):
        model(f1[:, :2], text)


def test_logit_scale_fixed_clamped_and_excluded_from_decay():
    fixed = GlobalViewAdapter(V, C, logit_scale=10.0, learn_scale=False)
    assert all("log_scale" not in n for n, _ in fixed.named_parameters())
    big = DualPathAdapter(V, C, logit_scale=1e4)
    assert big.scale().item() == pytest.approx(CLIP_MAX_SCALE)
    model = InterViewAdapter(V, C)
    groups = decay_groups(model, 1e-4)
    decayed = {id(p) for p in groups[0]["params"]}
    assert id(model.scale.log_scale) not in decayed
    assert id(model.branch.view_weights) in decayed and id(model.branch.global_feature.f1.bias) not in decayed
    assert groups[1]["weight_decay"] == 0.0


def test_hidden_zero_means_dim():
    m = GlobalViewAdapter(V, C, hidden=0)
    assert m.global_feature.f1.out_features == C and m.global_feature.f1.in_features == V * C
