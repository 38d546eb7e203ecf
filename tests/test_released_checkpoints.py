"""Loading the released CLIP2Point checkpoints: the pre-trained depth encoder and the few-shot DPA head.

Fake checkpoints carry the released key layout (``nn.DataParallel``'s ``module.`` prefix, ``point_model`` /
``image_model`` / ``weights`` / ``selector`` of the pre-training module, ``pre_model`` / ``ori_model`` /
``adapter1`` / ``adapter2`` of the DPA module) around a tiny open_clip ViT whose key names are ViT-B-32's.
"""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
import torch.nn.functional as F
from released_support import randomised

import clip2point.models.clip  # noqa: F401 - registers the c2p-tiny config with open_clip
from clip2point.models.adapters import ReleasedDualPathAdapter, SimplifiedAdapter
from clip2point.models.released import (
    ReleasedCheckpointError,
    load_released_depth_encoder,
    load_released_dpa,
    released_encoder_state,
    uses_quick_gelu,
)

V, H = 10, 24


def _tiny_visual(seed: int, quick_gelu: bool = True) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.create_model("c2p-tiny", pretrained=None, force_quick_gelu=quick_gelu).visual.eval()


def _openai_vit_b32_visual_shapes() -> dict[str, tuple[int, ...]]:
    """OpenAI CLIP's ViT-B/32 ``VisionTransformer`` parameters (clip/model.py), written out: width 768,
    12 layers, patch 32, 224 px input (7x7 patches + class token), output dim 512."""
    w, n_tok = 768, 7 * 7 + 1
    shapes: dict[str, tuple[int, ...]] = {
        "conv1.weight": (w, 3, 32, 32), "class_embedding": (w,), "positional_embedding": (n_tok, w),
        "ln_pre.weight": (w,), "ln_pre.bias": (w,), "ln_post.weight": (w,), "ln_post.bias": (w,),
        "proj": (w, 512),
    }
    for i in range(12):
        b = f"transformer.resblocks.{i}."
        shapes.update({
            b + "attn.in_proj_weight": (3 * w, w), b + "attn.in_proj_bias": (3 * w,),
            b + "attn.out_proj.weight": (w, w), b + "attn.out_proj.bias": (w,),
            b + "ln_1.weight": (w,), b + "ln_1.bias": (w,),
            b + "mlp.c_fc.weight": (4 * w, w), b + "mlp.c_fc.bias": (4 * w,),
            b + "mlp.c_proj.weight": (w, 4 * w), b + "mlp.c_proj.bias": (w,),
            b + "ln_2.weight": (w,), b + "ln_2.bias": (w,),
        })
    return shapes


def _selector_buffers(prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}selector.view_selector.views_{n}": torch.zeros(V) for n in ("azim", "elev", "dist")}


def _pretrain_ckpt(point_model: dict, image_model: dict) -> dict[str, torch.Tensor]:
    """The released pre-training save: state_dict() of nn.DataParallel(CLIP2Point)."""
    ckpt = {f"module.point_model.{k}": v.clone() for k, v in point_model.items()}
    ckpt |= {f"module.image_model.{k}": v.clone() for k, v in image_model.items()}
    ckpt["module.weights"] = torch.tensor(1.3)
    return ckpt | _selector_buffers("module.")


def _images(visual: torch.nn.Module) -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))


# ------------------------------------------------------------------ depth encoder


def test_openai_vit_b32_keys_are_open_clip_keys():
    with torch.device("meta"):
        visual = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None, device="meta").visual
    got = {k: tuple(v.shape) for k, v in visual.state_dict().items()}
    assert got == _openai_vit_b32_visual_shapes()
    fake = {k: torch.empty(s, device="meta") for k, s in _openai_vit_b32_visual_shapes().items()}
    ckpt = _pretrain_ckpt(fake, fake)
    assert set(released_encoder_state(ckpt)) == set(got)
    load_released_depth_encoder(visual, ckpt)  # zero missing, zero unexpected, all shapes equal


@pytest.mark.parametrize("as_file", [True, False])
def test_pretrain_checkpoint_loads_exactly(tmp_path, as_file):
    trained, clip_image = _tiny_visual(0), _tiny_visual(1)
    ckpt = _pretrain_ckpt(trained.state_dict(), clip_image.state_dict())
    source = ckpt
    if as_file:
        source = tmp_path / "best_eval.pth"
        torch.save(ckpt, source)
    target = load_released_depth_encoder(_tiny_visual(2), source)
    direct = _tiny_visual(3)
    direct.load_state_dict(trained.state_dict())
    x = _images(target)
    with torch.no_grad():
        assert torch.equal(target(x), direct(x))
        assert not torch.allclose(target(x), clip_image(x))
    for k, v in trained.state_dict().items():
        assert torch.equal(target.state_dict()[k], v)


def test_dpa_checkpoint_encoders_load_by_prefix():
    depth, clip_ = _tiny_visual(0), _tiny_visual(1)
    ckpt = {f"pre_model.{k}": v for k, v in depth.state_dict().items()}
    ckpt |= {f"ori_model.{k}": v for k, v in clip_.state_dict().items()} | _selector_buffers("")
    x = _images(depth)
    with torch.no_grad():
        assert torch.equal(load_released_depth_encoder(_tiny_visual(2), ckpt)(x), depth(x))  # auto: pre_model
        assert torch.equal(load_released_depth_encoder(_tiny_visual(2), ckpt, prefix="ori_model.")(x), clip_(x))
        bare = load_released_depth_encoder(_tiny_visual(2), depth.state_dict(), prefix="")
        assert torch.equal(bare(x), depth(x))


def _err(fn) -> str:
    with pytest.raises(ReleasedCheckpointError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_depth_encoder_errors_name_the_keys(tmp_path):
    good = _pretrain_ckpt(_tiny_visual(0).state_dict(), _tiny_visual(1).state_dict())
    extra = dict(good)
    extra["module.point_model.transformer.resblocks.0.attn.extra_weight"] = torch.zeros(3)
    msg = _err(lambda: load_released_depth_encoder(_tiny_visual(2), extra))
    assert "1 unexpected key(s): point_model.transformer.resblocks.0.attn.extra_weight" in msg

    missing = {k: v for k, v in good.items() if k != "module.point_model.proj"}
    assert "1 missing key(s): point_model.proj" in _err(lambda: load_released_depth_encoder(_tiny_visual(2), missing))

    wrong = dict(good)
    wrong["module.point_model.ln_post.bias"] = torch.zeros(7)
    msg = _err(lambda: load_released_depth_encoder(_tiny_visual(2), wrong))
    assert "shape mismatch" in msg and "point_model.ln_post.bias (7,) vs (48,)" in msg

    stray = dict(good)
    stray["module.head.weight"] = torch.zeros(2)
    assert "head.weight" in _err(lambda: load_released_depth_encoder(_tiny_visual(2), stray))

    no_enc = {k: v for k, v in good.items() if "point_model" not in k}
    assert "no depth encoder" in _err(lambda: load_released_depth_encoder(_tiny_visual(2), no_enc))
    assert "unknown encoder prefix" in _err(lambda: load_released_depth_encoder(_tiny_visual(2), good, prefix="x."))
    assert "no 'ori_model.*' keys" in _err(
        lambda: load_released_depth_encoder(_tiny_visual(2), good, prefix="ori_model."))

    gelu = _tiny_visual(2, quick_gelu=False)
    assert not uses_quick_gelu(gelu) and uses_quick_gelu(_tiny_visual(2))
    assert "QuickGELU" in _err(lambda: load_released_depth_encoder(gelu, good))
    load_released_depth_encoder(gelu, good, check_activation=False)

    assert "not found" in _err(lambda: load_released_depth_encoder(_tiny_visual(2), tmp_path / "none.pth"))
    torch.save([1, 2], tmp_path / "list.pth")
    assert "not a state dict" in _err(lambda: load_released_depth_encoder(_tiny_visual(2), tmp_path / "list.pth"))


# ------------------------------------------------------------------ DPA head


def _released_adapters(dim: int) -> tuple[SimplifiedAdapter, SimplifiedAdapter]:
    a1, a2 = SimplifiedAdapter(V, dim, hidden=H), SimplifiedAdapter(V, dim, hidden=H)
    randomised(a1, 11)
    randomised(a2, 12)
    return a1.eval(), a2.eval()


def _dpa_ckpt(a1, a2, encoder) -> dict[str, torch.Tensor]:
    """The released few-shot save: state_dict() of DPA (no DataParallel)."""
    ckpt = {f"adapter1.{k}": v.clone() for k, v in a1.state_dict().items()}
    ckpt |= {f"adapter2.{k}": v.clone() for k, v in a2.state_dict().items()}
    ckpt |= {f"pre_model.{k}": v for k, v in encoder.state_dict().items()}
    ckpt |= {f"ori_model.{k}": v for k, v in encoder.state_dict().items()}
    return ckpt | _selector_buffers("")


def test_dpa_checkpoint_loads_exactly(tmp_path):
    dim = 32
    a1, a2 = _released_adapters(dim)
    ckpt = _dpa_ckpt(a1, a2, _tiny_visual(0))
    torch.save(ckpt, tmp_path / "best_test.pth")
    model = load_released_dpa(tmp_path / "best_test.pth")
    assert isinstance(model, ReleasedDualPathAdapter) and not model.training
    assert model.depth_path.global_f[3].out_features == H and model.depth_path.n_views == V
    g = torch.Generator().manual_seed(3)
    clip_f, depth_f = torch.randn(4, V, dim, generator=g), torch.randn(4, V, dim, generator=g)
    text = F.normalize(torch.randn(6, dim, generator=g), dim=-1)
    with torch.no_grad():
        assert torch.equal(model.depth_path(depth_f), a1(depth_f))  # adapter1 reads the pre-trained encoder
        assert torch.equal(model.clip_path(clip_f), a2(clip_f))  # adapter2 reads CLIP
        feats = (a1(depth_f) + a2(clip_f)) * 0.5  # released models/dpa.py + fewshot.py, by hand
        want = (feats / feats.norm(dim=-1, keepdim=True)) @ text.t()
        assert torch.allclose(model(clip_f, depth_f, text), want, rtol=0, atol=1e-6)
    into = ReleasedDualPathAdapter(V, dim, hidden=H)
    assert load_released_dpa(ckpt, into) is into


def test_dpa_errors_name_the_keys():
    a1, a2 = _released_adapters(32)
    good = _dpa_ckpt(a1, a2, _tiny_visual(0))
    extra = dict(good)
    extra["adapter1.global_f.5.weight"] = torch.zeros(3)
    assert "1 unexpected key(s): adapter1.global_f.5.weight" in _err(lambda: load_released_dpa(extra))
    missing = {k: v for k, v in good.items() if k != "adapter2.fusion_ratio"}
    assert "1 missing key(s): adapter2.fusion_ratio" in _err(lambda: load_released_dpa(missing))
    no_shape = {k: v for k, v in good.items() if k != "adapter1.global_f.7.weight"}
    assert "adapter1.global_f.7.weight" in _err(lambda: load_released_dpa(no_shape))
    assert "adapter1.global_f.3.weight" in _err(lambda: load_released_dpa(good, ReleasedDualPathAdapter(V, 32)))
    no_adapters = {k: v for k, v in good.items() if not k.startswith("adapter")}
    assert "no 'adapter1.*'" in _err(lambda: load_released_dpa(no_adapters))
    stray = dict(good)
    stray["logit_scale"] = torch.tensor(1.0)
    assert "logit_scale" in _err(lambda: load_released_dpa(stray))
    pre_copy = copy.deepcopy(good)
    pre_copy["module.adapter1.fusion_ratio"] = pre_copy.pop("adapter1.fusion_ratio")  # DataParallel prefix: ok
    load_released_dpa(pre_copy)


# ------------------------------------------------------------------ the whole few-shot DPA (issue 12)


def test_dpa_layout_is_recognised():
    from clip2point.models.released import is_released_dpa_state

    a1, a2 = _released_adapters(32)
    good = _dpa_ckpt(a1, a2, _tiny_visual(0))
    assert is_released_dpa_state(good)
    assert is_released_dpa_state({f"module.{k}": v for k, v in good.items()})
    assert is_released_dpa_state({"adapter1.fusion_ratio": torch.ones(V)})  # incomplete: still the layout
    assert not is_released_dpa_state({"adapter": {"x": torch.ones(1)}, "class_names": ["a"]})  # ours
    assert not is_released_dpa_state({"conv1.weight": torch.ones(1)})  # a bare encoder
    assert not is_released_dpa_state({}) and not is_released_dpa_state([torch.ones(1)])


def test_dpa_models_load_each_part_from_its_prefix():
    from clip2point.models.released import load_released_dpa_models

    a1, a2 = _released_adapters(32)
    pre, ori = _tiny_visual(0), _tiny_visual(1)
    ckpt = _dpa_ckpt(a1, a2, pre)
    ckpt |= {f"ori_model.{k}": v for k, v in ori.state_dict().items()}
    clip_visual = _tiny_visual(2)
    before = copy.deepcopy(clip_visual.state_dict())
    depth, clip, adapter = load_released_dpa_models(clip_visual, ckpt)
    assert all(torch.equal(v, before[k]) for k, v in clip_visual.state_dict().items())  # left untouched
    assert all(torch.equal(v, pre.state_dict()[k]) for k, v in depth.state_dict().items())
    assert all(torch.equal(v, ori.state_dict()[k]) for k, v in clip.state_dict().items())
    assert torch.equal(adapter.clip_path.fusion_ratio, a2.fusion_ratio)
    assert not depth.training and not clip.training and not adapter.training
    no_ori = {k: v for k, v in ckpt.items() if not k.startswith("ori_model.")}
    assert "no 'ori_model.*' keys" in _err(lambda: load_released_dpa_models(clip_visual, no_ori))
    assert "QuickGELU" in _err(lambda: load_released_dpa_models(_tiny_visual(2, quick_gelu=False), ckpt))
