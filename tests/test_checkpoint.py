"""Atomic checkpoints and exact resume of an interrupted pre-training run."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
from pretrain_support import fake_render, make_data

from clip2point.configs import PretrainConfig
from clip2point.train import checkpoint as ckpt
from clip2point.train.pretrain import pretrain


class Interrupt(Exception):
    pass


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


def test_resume_is_bit_exact_with_workers(tiny, tmp_path) -> None:
    """Killed after step 3 (exception in on_step) and resumed with 2 DataLoader workers: the same tensors,
    bit for bit, as an uninterrupted run without workers."""
    model, text = tiny
    data, val = make_data()
    full = pretrain(model.visual, data, val, text, _cfg(), fake_render, progress=False)

    def kill_at_3(step: int, _scalars: dict) -> None:
        if step == 3:
            raise Interrupt

    ck = tmp_path / "b.pt"
    with pytest.raises(Interrupt):
        pretrain(model.visual, data, val, text, _cfg(), fake_render, checkpoint_path=ck, on_step=kill_at_3,
                 progress=False)
    seen: list[int] = []
    resumed = pretrain(model.visual, data, val, text, replace(_cfg(), num_workers=2), fake_render,
                       checkpoint_path=ck, resume=True, progress=False,
                       on_resume=lambda step, history, evals: seen.extend([step, len(history["step"])]))
    assert seen == [3, 3] and resumed.timings["resumed_from_step"] == 3 and resumed.timings["steps_run"] == 3
    for k, v in full.final_state.items():
        assert torch.equal(v, resumed.final_state[k]), k
    for k, v in full.encoder_state.items():
        assert torch.equal(v, resumed.encoder_state[k]), k
    assert resumed.history == full.history and resumed.metrics == full.metrics


@pytest.mark.slow
def test_checkpoint_of_another_config_or_tag_is_not_resumed(tiny, tmp_path) -> None:
    model, text = tiny
    data, val = make_data()
    ck = tmp_path / "c.pt"
    pretrain(model.visual, data, val, text, replace(_cfg(), max_steps=3), fake_render, checkpoint_path=ck,
             run_tag="A", progress=False)
    assert torch.load(ck, weights_only=False)["step"] == 3
    other_lr = pretrain(model.visual, data, val, text, replace(_cfg(), lr=1e-3), fake_render,
                        checkpoint_path=ck, resume=True, run_tag="A", progress=False)
    assert other_lr.timings["resumed_from_step"] == 0 and "another configuration" in other_lr.timings["resume_note"]
    assert other_lr.timings["steps_run"] == 6
    pretrain(model.visual, data, val, text, replace(_cfg(), max_steps=3), fake_render, checkpoint_path=ck,
             run_tag="A", progress=False)
    other_tag = pretrain(model.visual, data, val, text, _cfg(), fake_render, checkpoint_path=ck, resume=True,
                         run_tag="B", progress=False)
    assert other_tag.timings["resumed_from_step"] == 0
    # a result-neutral field (ckpt_every, num_workers) does not block resuming
    pretrain(model.visual, data, val, text, replace(_cfg(), max_steps=3), fake_render, checkpoint_path=ck,
             run_tag="A", progress=False)
    same = pretrain(model.visual, data, val, text, replace(_cfg(), max_steps=3, ckpt_every=0), fake_render,
                    checkpoint_path=ck, resume=True, run_tag="A", progress=False)
    assert same.timings["resumed_from_step"] == 3


def test_saves_are_byte_reproducible(tmp_path) -> None:
    torch.manual_seed(0)
    state = torch.nn.Linear(5, 3).state_dict()
    ckpt.save_atomic(state, tmp_path / "a" / "w.pt")
    ckpt.save_atomic(state, tmp_path / "b" / "other-name.pt")
    assert (tmp_path / "a" / "w.pt").read_bytes() == (tmp_path / "b" / "other-name.pt").read_bytes()
    assert ckpt.to_bytes(state) == (tmp_path / "a" / "w.pt").read_bytes()
    # torch.save given a path records the (random) temporary name: what an atomic write by path produced
    torch.save(state, tmp_path / ".w.pt.x1.tmp")
    torch.save(state, tmp_path / ".w.pt.x2.tmp")
    assert (tmp_path / ".w.pt.x1.tmp").read_bytes() != (tmp_path / ".w.pt.x2.tmp").read_bytes()


def test_temporaries_live_in_tmp_dir_and_stale_ones_are_removed(tmp_path, monkeypatch) -> None:
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    renames: list[tuple[str, str]] = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((str(a), str(b))), real(a, b))[1])
    ckpt.save_atomic({"v": 1}, out / "encoder.pt", tmp_dir=scratch)
    monkeypatch.undo()
    (src, dst), = renames
    assert os.path.dirname(src) == str(scratch) and dst == str(out / "encoder.pt")
    assert [p.name for p in out.iterdir()] == ["encoder.pt"] and not list(scratch.iterdir())
    for name in (".encoder.pt.abc.tmp", ".last.pt.k2j.tmp", "keep.tmp", ".keep.json"):
        (out / name).write_bytes(b"x")
    gone = ckpt.remove_stale_temps(out, "last.pt")
    assert [p.name for p in gone] == [".last.pt.k2j.tmp"]
    ckpt.remove_stale_temps(out)
    assert sorted(p.name for p in out.iterdir()) == [".keep.json", "encoder.pt", "keep.tmp"]
