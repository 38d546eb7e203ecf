"""Pre-training loop on a tiny CLIP: E_i frozen, loss goes down, variants, NaN handling, on-the-fly depth."""

from __future__ import annotations

import math

import pytest
import torch
from pretrain_support import fake_render, make_data, pretrain_cfg

from clip2point.train.pretrain import TrainingDiverged, pretrain

cfg = pretrain_cfg


def test_image_encoder_frozen_and_depth_encoder_trained(tiny) -> None:
    model, text = tiny
    data, val = make_data()
    before = {k: v.clone() for k, v in model.visual.state_dict().items()}
    res = pretrain(model.visual, data, val, text, cfg(max_steps=3), fake_render, progress=False)
    for k, v in model.visual.state_dict().items():
        assert torch.equal(v, before[k]), f"E_i changed: {k}"
    assert all(p.grad is None and not p.requires_grad for p in model.visual.parameters())
    changed = [k for k, v in res.final_state.items() if k.startswith("encoder.")
               and not torch.equal(v, before[k.removeprefix("encoder.")])]
    assert changed, "E_d did not change"
    assert res.metrics["steps"] == 3 and len(res.history["sigma"]) == 3
    assert res.metrics["sigma_final"] != pytest.approx(1.0, abs=1e-6), "σ did not move"


def test_few_steps_lower_the_loss(tiny) -> None:
    model, text = tiny
    data, val = make_data()
    res = pretrain(model.visual, data, val, text, cfg(max_steps=16, lr=2e-3, temperature=0.2),
                   fake_render, progress=False)
    loss = res.history["loss"]
    assert sum(loss[-4:]) / 4 < sum(loss[:4]) / 4 - 0.05, loss
    m = res.metrics
    assert m["val_zeroshot_before"] is not None and 0 <= m["val_zeroshot_best"] <= 1
    assert m["best_step"] > 0  # selection among trained checkpoints, never the untouched encoder


@pytest.mark.parametrize("variant", ["cross_only", "rgb_control"])
def test_variants_run(tiny, variant: str) -> None:
    model, text = tiny
    data, val = make_data()
    res = pretrain(model.visual, data, val, text, cfg(variant=variant, max_steps=3), fake_render,
                   progress=False)
    assert all(math.isfinite(x) for x in res.history["loss"])
    assert res.metrics["sigma_final"] == pytest.approx(1.0)  # σ only exists in Eq. 11


def test_nan_loss_stops_with_message_and_keeps_checkpoint(tiny, tmp_path) -> None:
    model, text = tiny
    data, val = make_data()
    calls = {"n": 0}

    def poisoned(points, view_idx, distance):
        calls["n"] += 1
        out = fake_render(points, view_idx, distance)
        return out * float("nan") if calls["n"] > 8 else out  # 2 renders per step: NaN from step 5 on

    ck = tmp_path / "last.pt"
    with pytest.raises(TrainingDiverged) as e:
        pretrain(model.visual, data, val, text, cfg(max_steps=8, ckpt_every=2), poisoned,
                 checkpoint_path=ck, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "step 5" in msg and str(ck) in msg
    state = torch.load(ck, weights_only=False)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_view_renderer_matches_direct_render() -> None:
    depth = pytest.importorskip("clip2point.render.depth")
    views = pytest.importorskip("clip2point.render.views")
    from clip2point.render.view_depth import ViewDepthRenderer

    vs = views.VIEW_SETS["pretrain10"]
    dcfg = depth.DepthConfig(image_size=24, dilation=2)
    pts = torch.randn(6, 200, 3) * 0.4
    vidx = torch.tensor([0, 3, 9, 4, 4, 7])
    dist = torch.tensor([0.9, 1.0, 1.05, 1.1, 0.95, 1.0])
    got = ViewDepthRenderer(vs, dcfg)(pts, vidx, dist)
    for i in range(6):
        one = views.ViewSet(elev=(vs.elev[vidx[i]],), azim=(vs.azim[vidx[i]],))
        ref = depth.render_depth(pts[i : i + 1], one, dist[i].view(1, 1), dcfg)[0, 0]
        assert torch.allclose(got[i], ref, atol=1e-5)


def test_released_optimizer_schedule_and_single_group(tiny) -> None:
    """``optimizer: lamb_released``, ``schedule: cosine_restarts``, ``param_groups: single`` (docs/parity.md):
    one group holding E_d and σ at the base lr, decayed; the lr follows the warm-restart formula per step."""
    from clip2point.train import pretrain_run as pt
    from clip2point.train.distributed import DistInfo
    from clip2point.train.objectives import get_objective
    from clip2point.train.optim import ReleasedLamb

    model, text = tiny
    c = cfg(optimizer="lamb_released", schedule="cosine_restarts", param_groups="single", lr=6e-3,
            weight_decay=1e-4)
    sched = pt.Schedule(n_train=16, steps_per_epoch=2, total=8, n_epochs=4)
    run = pt.build_run(model.visual, c, get_objective("intra_cross"), text, DistInfo(), sched)
    assert isinstance(run.optimizer, ReleasedLamb) and len(run.optimizer.param_groups) == 1
    group = run.optimizer.param_groups[0]
    assert group["weight_decay"] == 1e-4 and any(p is run.model.sigma for p in group["params"])
    assert len(group["params"]) == len([p for p in run.model.parameters() if p.requires_grad])
    period, eta_min = 2 * sched.steps_per_epoch, 1e-5  # T_0 = 2 epochs, eta_min 1e-5 (pretraining.py:58-64)
    for t in range(9):
        expected = eta_min + (6e-3 - eta_min) * (1 + math.cos(math.pi * (t % period) / period)) / 2
        assert group["lr"] == pytest.approx(expected, rel=1e-9), t
        run.optimizer.step()
        run.scheduler.step()
