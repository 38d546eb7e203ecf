"""open_clip factory: miniature configs, weight sources and errors, CLIP inputs, view encoding, bootstrap."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import open_clip
import pytest
import torch

from clip2point.models.clip import (
    CLIP_MEAN,
    CLIP_STD,
    MINI_CONFIGS,
    ClipWeightsError,
    create_clip,
    depth_to_clip_input,
    encode_views,
    image_size,
    rgb_to_clip_input,
    text_features,
)


def test_mini_configs_registered_with_open_clip() -> None:
    for name, cfg in MINI_CONFIGS.items():
        assert open_clip.get_model_config(name) == cfg
        assert name in open_clip.list_models()


def test_create_mini_clip_is_open_clip_clip_with_the_standard_tokenizer() -> None:
    model, tok = create_clip("c2p-tiny", "")
    assert type(model).__name__ == "CLIP"
    assert image_size(model.visual) == MINI_CONFIGS["c2p-tiny"]["vision_cfg"]["image_size"]
    ref = open_clip.get_tokenizer("ViT-B-32")(["image of a chair."])
    got = tok(["image of a chair."])
    n = got.shape[1]
    assert torch.equal(got, ref[:, :n])  # same BPE ids, shorter context


def test_openai_weights_offline_give_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ClipWeightsError) as e:
        create_clip("ViT-B-32", "openai", cache_dir=str(tmp_path / "empty"))
    msg = str(e.value)
    assert "\n" not in msg and "openai" in msg and "clip.pretrained" in msg


def test_unknown_tag_missing_path_and_unknown_model() -> None:
    with pytest.raises(ClipWeightsError, match="no pretrained tag"):
        create_clip("c2p-tiny", "laion-nonsense")
    with pytest.raises(ClipWeightsError, match="not found"):
        create_clip("c2p-tiny", "/nonexistent/weights.pt")
    with pytest.raises(ClipWeightsError, match="unknown CLIP model"):
        create_clip("no-such-model", "")


@pytest.mark.slow
def test_stage_style_cli_error_is_one_line(tmp_path) -> None:
    code = (
        "import sys\n"
        "from clip2point.models.clip import create_clip, ClipWeightsError\n"
        "try:\n    create_clip('ViT-B-32', 'openai', cache_dir=sys.argv[1])\n"
        "except ClipWeightsError as e:\n    print(e, file=sys.stderr); sys.exit(3)\n"
    )
    env = {"HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "0"}
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 3
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_local_checkpoint_roundtrip(tmp_path) -> None:
    torch.manual_seed(1)
    model, _ = create_clip("c2p-tiny", "")
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    again, _ = create_clip("c2p-tiny", str(path))
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ClipWeightsError) as e:
        create_clip("c2p-tiny", str(bad))
    assert "\n" not in str(e.value)


def test_depth_to_clip_input_expands_resizes_normalises() -> None:
    depth = torch.ones(2, 40, 40)
    depth[:, 10:30, 10:30] = 0.5
    x = depth_to_clip_input(depth, 20)
    assert x.shape == (2, 3, 20, 20)
    for c in range(3):  # background 1.0 → (1 − mean)/std in every channel; centre 0.5 likewise
        assert x[0, c, 0, 0].item() == pytest.approx((1 - CLIP_MEAN[c]) / CLIP_STD[c], rel=1e-5)
        assert x[0, c, 10, 10].item() == pytest.approx((0.5 - CLIP_MEAN[c]) / CLIP_STD[c], rel=1e-4)
    with pytest.raises(ValueError):
        depth_to_clip_input(torch.ones(2, 1, 4, 4), 4)


def test_rgb_to_clip_input() -> None:
    rgb = np.zeros((1, 8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    x = rgb_to_clip_input(rgb, 8)
    assert x.shape == (1, 3, 8, 8)
    assert x[0, 0, 0, 0].item() == pytest.approx((1 - CLIP_MEAN[0]) / CLIP_STD[0], rel=1e-5)
    assert x[0, 1, 0, 0].item() == pytest.approx(-CLIP_MEAN[1] / CLIP_STD[1], rel=1e-5)


def test_encode_views_and_text_features_are_normalised() -> None:
    model, tok = create_clip("c2p-tiny", "")
    feats = encode_views(model.visual, torch.rand(3, 4, 24, 24), batch_size=5)
    assert feats.shape == (3, 4, MINI_CONFIGS["c2p-tiny"]["embed_dim"])
    assert torch.allclose(feats.norm(dim=-1), torch.ones(3, 4), atol=1e-5)
    t1 = text_features(model, tok, ["chair", "table"], ["image of a {}."])
    t2 = text_features(model, tok, ["chair", "table"], ["image of a {}.", "a photo of a {}."])
    assert t1.shape == t2.shape == (2, MINI_CONFIGS["c2p-tiny"]["embed_dim"])
    assert torch.allclose(t2.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(t1, t2)


def test_encode_views_chunking_is_exact() -> None:
    model, _ = create_clip("c2p-tiny", "")
    d = torch.rand(2, 3, 32, 32)
    chunked = encode_views(model.visual, d, batch_size=2)
    assert torch.allclose(chunked, encode_views(model.visual, d), atol=1e-5)


@pytest.mark.slow
def test_bootstrap_learns_colour_classes() -> None:
    """The miniature bootstrap's objective works: 3 colour classes become zero-shot separable."""
    from clip2point.train.bootstrap import BootstrapConfig, RgbSet, bootstrap_clip, rgb_zero_shot

    torch.manual_seed(0)
    model, tok = create_clip("c2p-tiny", "")
    g = torch.Generator().manual_seed(0)

    def make(m: int) -> RgbSet:
        labels = torch.arange(m) % 3
        base = torch.tensor([[220, 30, 30], [30, 200, 30], [30, 30, 220]])[labels]
        rgb = (base[:, None, None, None, :] + torch.randint(-20, 20, (m, 2, 32, 32, 3), generator=g))
        return RgbSet(rgb.clamp(0, 255).to(torch.uint8), labels)

    train, val = make(24), make(9)
    names = ["red", "green", "blue"]
    before = rgb_zero_shot(model.visual, val, text_features(model, tok, names, ["image of a {}."]))
    res = bootstrap_clip(model, tok, train, val, names, ["image of a {}.", "a {} thing."], ["image of a {}."],
                         BootstrapConfig(epochs=8, batch_size=12, lr=3e-3, warmup_steps=2, augment=True),
                         progress=False)
    model.load_state_dict(res.state_dict)
    after = rgb_zero_shot(model.visual, val, text_features(model, tok, names, ["image of a {}."]))
    assert after["per_view"] >= 0.9, (before, after)
    assert res.history["loss"][-1] < res.history["loss"][0]
    assert res.metrics["best_step"] > 0
    assert "train_wall_s" not in res.metrics and res.timings["train_wall_s"] > 0


def test_random_weights_are_seeded_and_leave_the_global_rng_alone():
    from clip2point.models.clip import create_clip

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, _ = create_clip("c2p-tiny", "random")
    assert torch.equal(torch.random.get_rng_state(), before)
    b, _ = create_clip("c2p-tiny", "random:0")
    c, _ = create_clip("c2p-tiny", "random:1")
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize(("name", "pretrained", "needle"), [
    ("ViT-B-32", "random:x", "'random:x'"),
    ("ViT-B-99", "random", "unknown CLIP model 'ViT-B-99'"),
    ("ViT-B-32", "/nonexistent/vit.pt", "CLIP checkpoint not found: /nonexistent/vit.pt"),
    ("ViT-B-32", "no_such_tag", "no pretrained tag 'no_such_tag'"),
])
def test_check_clip_weights_fails_fast_with_one_line(name, pretrained, needle):
    from clip2point.models.clip import ClipWeightsError, check_clip_weights

    with pytest.raises(ClipWeightsError) as e:
        check_clip_weights(name, pretrained)
    assert needle in str(e.value) and "\n" not in str(e.value)
