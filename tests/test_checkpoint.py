"""Atomic checkpoints and exact resume of an interrupted pre-training run."""

from __future__ import annotations

import pytest
import torch
from test_pretrain import fake_render, make_data

from clip2point.models.clip import create_clip, text_features
from clip2point.train import checkpoint as ckpt
from clip2point.train.pretrain import PretrainConfig, TextSide, pretrain


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, tok = create_clip("c2p-tiny", "")
    text = text_features(model, tok, ["a", "b", "c", "d"], ["image of a {}."])
    return model, TextSide(classes=text)


def _cfg() -> PretrainConfig:
    # 16 samples / batch 8 = 2 steps per epoch, 3 epochs; checkpoints every step and at epoch ends
    return PretrainConfig(epochs=3, batch_size=8, lr=3e-3, warmup_steps=2, temperature=0.1, sigma_lr=0.05,
                          ckpt_every=1, eval_batch_size=64)


def test_killed_mid_epoch_then_resumed_equals_uninterrupted(tiny, tmp_path) -> None:
    model, text = tiny
    data, val = make_data()
    torch.manual_seed(123)
    full = pretrain(model.visual, data, val, text, _cfg(), fake_render,
                    checkpoint_path=tmp_path / "a.pt", progress=False)

    def kill_at_3(step: int, _scalars: dict) -> None:
        if step == 3:  # mid-epoch 2 (steps 3-4), right after step 3's checkpoint
            raise Interrupt

    ck = tmp_path / "b.pt"
    torch.manual_seed(999)  # a different RNG state in the process that dies...
    with pytest.raises(Interrupt):
        pretrain(model.visual, data, val, text, _cfg(), fake_render, checkpoint_path=ck,
                 on_step=kill_at_3, progress=False)
    assert torch.load(ck, weights_only=False)["step"] == 3
    torch.manual_seed(4242)  # ...and in the one that resumes
    resumed = pretrain(model.visual, data, val, text, _cfg(), fake_render, checkpoint_path=ck,
                       resume=True, progress=False)
    for k, v in full.final_state.items():
        assert torch.allclose(v, resumed.final_state[k], atol=1e-6, rtol=1e-5), k
    assert resumed.history["step"] == full.history["step"]
    assert resumed.history["sigma"] == pytest.approx(full.history["sigma"], abs=1e-6)
    assert resumed.metrics["val_zeroshot_curve"] == full.metrics["val_zeroshot_curve"]
    # and the resumed run really resumed (not restarted): a fresh run would take 6 steps from scratch
    assert resumed.metrics["steps"] == 6


def test_atomic_save_keeps_previous_on_failure(tmp_path, monkeypatch) -> None:
    path = tmp_path / "ck.pt"
    ckpt.save_atomic({"v": 1}, path)

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        ckpt.save_atomic({"v": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary left behind


def test_checkpoint_roundtrip_restores_everything(tmp_path) -> None:
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(m.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    m(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched.step()
    torch.manual_seed(5)
    ckpt.save_checkpoint(tmp_path / "c.pt", step=7, model=m, optimizer=opt, scheduler=sched, extra={"x": 1})
    expected_draw = torch.rand(3)
    m2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(m2.parameters(), lr=0.1)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, 1, gamma=0.5)
    got = ckpt.load_checkpoint(tmp_path / "c.pt", model=m2, optimizer=opt2, scheduler=sched2)
    assert got == {"step": 7, "extra": {"x": 1}}
    assert torch.equal(torch.rand(3), expected_draw)  # RNG state restored
    for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.05)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
