"""The predict API: top-k names with probabilities, zero-shot (Eq. 15) and adapter bundles, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clip2point.models.adapters import adapter_state, create_adapter
from clip2point.predict import ModelBundle, bundle_from_checkpoint, predict, predict_proba, unit_sphere

NAMES = ["tall", "wide", "deep"]
V, C = 4, 8


def _render(points: torch.Tensor) -> torch.Tensor:
    """Fake renderer: 'depth maps' (B,V,3,1) holding the per-axis extent of the cloud, in every view."""
    extent = points.amax(1) - points.amin(1)  # (B, 3)
    return extent[:, None, :, None].expand(-1, V, -1, -1).contiguous()


def _featurize(depth: torch.Tensor) -> torch.Tensor:
    """Fake encoder: the extent vector, padded to C channels, normalised, plus a small per-view offset."""
    b = depth.shape[0]
    x = torch.zeros(b, V, C)
    x[..., :3] = depth[..., 0]
    x[..., 3] = torch.arange(V, dtype=torch.float32) * 0.01
    return F.normalize(x, dim=-1)


def _text() -> torch.Tensor:
    t = torch.zeros(3, C)
    t[0, 1] = t[1, 0] = t[2, 2] = 1.0  # tall ~ y extent, wide ~ x extent, deep ~ z extent
    return t


def _cloud(axis_scale: tuple[float, float, float], seed: int = 0, n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * np.asarray(axis_scale)).astype(np.float32)


def _bundle(adapter: torch.nn.Module | None = None, paths: int = 1) -> ModelBundle:
    return ModelBundle(list(NAMES), _text(), _render, [_featurize] * paths, adapter, logit_scale=20.0)


def test_zero_shot_top_k_is_sorted_and_sums_to_one():
    bundle = _bundle()
    out = predict(_cloud((0.2, 1.0, 0.2)), bundle, top_k=3)
    assert [n for n, _ in out][0] == "tall"
    probs = [p for _, p in out]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert predict(_cloud((1.0, 0.2, 0.2)), bundle, top_k=1)[0][0] == "wide"
    assert predict(_cloud((0.2, 0.2, 1.0)), bundle, top_k=10)[0][0] == "deep"
    assert len(predict(_cloud((0.2, 0.2, 1.0)), bundle, top_k=10)) == 3


def test_zero_shot_probabilities_follow_eq15():
    bundle = _bundle()
    pts = torch.from_numpy(_cloud((0.3, 0.7, 0.5), seed=3))
    feats = _featurize(_render(unit_sphere(pts[None])))
    ref = (20.0 * torch.einsum("bvc,kc->bvk", feats, F.normalize(_text(), dim=-1)).mean(1)).softmax(-1)
    assert torch.allclose(predict_proba(pts, bundle), ref, atol=1e-6)


def test_points_are_normalised_so_pose_scale_does_not_matter():
    bundle = _bundle()
    pts = _cloud((0.3, 0.7, 0.5), seed=4)
    a = predict_proba(pts, bundle)
    b = predict_proba(pts * 7.5 + np.array([3.0, -2.0, 1.0], dtype=np.float32), bundle)
    assert torch.allclose(a, b, atol=1e-5)
    assert unit_sphere(torch.from_numpy(pts)[None]).norm(dim=-1).max().item() == pytest.approx(1.0)


def test_adapter_bundle_uses_the_adapter():
    torch.manual_seed(0)
    adapter = create_adapter("dual_path", n_views=V, dim=C).eval()
    bundle = _bundle(adapter, paths=2)
    pts = torch.from_numpy(_cloud((0.3, 0.7, 0.5), seed=5))
    feats = _featurize(_render(unit_sphere(pts[None])))
    with torch.no_grad():
        ref = adapter(feats, feats, _text()).softmax(-1)
    assert torch.allclose(predict_proba(pts, bundle), ref, atol=1e-6)
    with pytest.raises(ValueError, match="2 feature path"):
        _bundle(adapter, paths=1)


def test_bad_inputs():
    bundle = _bundle()
    with pytest.raises(ValueError):
        predict(np.zeros((4, 2), np.float32), bundle)
    with pytest.raises(ValueError):
        predict(np.zeros((2, 5, 3), np.float32), bundle)  # predict takes one cloud
    bad = _cloud((1, 1, 1))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict(bad, bundle)
    with pytest.raises(ValueError, match="classes"):
        ModelBundle(["a"], _text(), _render, [_featurize])


def test_bundle_from_checkpoint_with_real_renderer_and_tiny_clip():
    from clip2point.models.clip import create_clip, encode_views
    from clip2point.render.depth import DepthConfig, render_depth

    model, _ = create_clip("c2p-tiny")
    visual = model.visual.eval()
    dim = model.text_projection.shape[1]
    torch.manual_seed(0)
    adapter = create_adapter("global_view", n_views=6, dim=dim)
    text = F.normalize(torch.randn(3, dim), dim=-1)
    depth = {"image_size": 24, "dilation": 2, "mode": "min", "projection": "orthographic"}
    ckpt = {"adapter": adapter_state(adapter), "class_names": NAMES, "text": text, "views": "zeroshot6",
            "distance": 1.0, "depth": depth, "paths": ["intra_cross-seed0"], "logit_scale": 50.0}
    with pytest.raises(KeyError, match="intra_cross-seed0"):
        bundle_from_checkpoint(ckpt, {"clip": visual})
    bundle = bundle_from_checkpoint(ckpt, {"intra_cross-seed0": visual})
    pts = torch.from_numpy(_cloud((0.3, 0.7, 0.5), seed=6))
    with torch.no_grad():
        maps = render_depth(unit_sphere(pts[None]), "zeroshot6", 1.0, DepthConfig(**depth))
        ref = adapter.eval()(encode_views(visual, maps), text).softmax(-1)
    assert torch.allclose(predict_proba(pts, bundle), ref, atol=1e-5)
    top = predict(pts.numpy(), bundle, top_k=2)
    assert len(top) == 2 and top[0][0] in NAMES


def test_adapter_checkpoint_dict_round_trip_keeps_order_and_extras():
    from clip2point.predict import AdapterCheckpoint

    adapter = create_adapter("global_view", n_views=V, dim=C)
    d = {"adapter": adapter_state(adapter), "class_names": NAMES, "text": _text(), "views": "zeroshot6",
         "distance": 1.0, "depth": {"image_size": 24}, "paths": ["clip"], "encoders": {"clip": {"variant": "clip"}},
         "logit_scale": 50.0, "dataset": "ds", "mode": "fewshot", "seed": 1, "val_acc": 0.5, "best_epoch": 3,
         "up_axis": "y", "clip_model": "c2p-tiny", "note": "kept"}
    ckpt = AdapterCheckpoint.from_dict(d)
    assert ckpt.seed == 1 and ckpt.extra == {"note": "kept"}
    assert list(ckpt.to_dict()) == list(d) and ckpt.to_dict()["paths"] == ["clip"]
    with pytest.raises(KeyError, match="paths"):
        AdapterCheckpoint.from_dict({k: v for k, v in d.items() if k != "paths"})


def test_raw_featurizer_and_released_dpa_bundle():
    """The released DPA reads the encoders' raw outputs; ``normalize=False`` gives them (issue 12)."""
    import open_clip

    import clip2point.models.clip  # noqa: F401 - registers c2p-tiny
    from clip2point.models.adapters import ReleasedDualPathAdapter
    from clip2point.predict import released_dpa_bundle, visual_featurizer

    torch.manual_seed(0)
    visual = open_clip.create_model("c2p-tiny", pretrained=None, force_quick_gelu=True).visual.eval()
    depth = torch.rand(2, 10, 24, 24)
    raw = visual_featurizer(visual, normalize=False)(depth)
    normed = visual_featurizer(visual)(depth)
    assert raw.shape == normed.shape == (2, 10, 32)
    assert torch.allclose(F.normalize(raw, dim=-1), normed, atol=1e-6)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(2, 10))
    adapter = ReleasedDualPathAdapter(10, 32).eval()
    text = F.normalize(torch.randn(3, 32), dim=-1)
    cfg = {"image_size": 32, "footprint": "disc", "radius": 0.02}
    bundle = released_dpa_bundle(visual, visual, adapter, text, NAMES, depth_cfg=cfg)
    assert bundle.logit_scale == 1.0 and bundle.up_axis == "z_released" and bundle.adapter is adapter
    probs = predict_proba(_cloud((1.0, 2.0, 0.5)), bundle)
    assert probs.shape == (1, 3) and torch.allclose(probs.sum(), torch.tensor(1.0))
