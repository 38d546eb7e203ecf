"""The GPU-shaped step: the frozen-feature cache changes nothing but the work, no host sync between logging
steps, the dvclive replay of a resumed run, torch.compile, and the launch process count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pretrain_support import fake_render, make_data, pretrain_cfg, write_pool

from clip2point import shards
from clip2point.configs import PretrainConfig
from clip2point.models.clip import image_size
from clip2point.train.distributed import DistInfo
from clip2point.train.objectives import frozen_image_features, get_objective, step_loss
from clip2point.train.pretrain import pretrain
from clip2point.train.pretrain_data import ShardPointsSource, ShardPretrainSource, StreamingEvalSet
from clip2point.train.pretrain_run import DepthPretrainModel


def _cfg(**kw) -> PretrainConfig:
    return pretrain_cfg(**{"epochs": 1, **kw})


def _cache(visual, rgb: torch.Tensor) -> torch.Tensor:
    """(M, V, C) features of every sample and view, as the image_features stage computes them."""
    m, v = rgb.shape[:2]
    return frozen_image_features(visual.eval(), rgb.reshape(m * v, *rgb.shape[2:]), image_size(visual)).view(m, v, -1)


@pytest.mark.parametrize("variant", ["intra_cross", "cross_only"])
def test_step_with_the_frozen_feature_cache_equals_the_step_on_rgb(tiny, variant):
    model, _ = tiny
    data, _ = make_data()
    visual = model.visual.eval().requires_grad_(False)
    cache = _cache(visual, data.rgb)
    idx, view = torch.tensor([3, 0, 7, 12]), torch.tensor([1, 9, 4, 4])
    depth = fake_render(data.points[idx], view, torch.ones(4))
    base = {"depth1": depth, "depth2": depth.flip(-1), "depth": depth}
    out = []
    for batch in ({**base, "rgb": data.rgb[idx, view]}, {**base, "f_img": cache[idx, view]}):
        torch.manual_seed(0)
        m = DepthPretrainModel(visual, with_sigma=get_objective(variant).with_sigma)
        loss, _ = step_loss(variant, m, visual, m.sigma, batch, DistInfo(), size=image_size(visual),
                            temperature=0.1, precision="fp32")
        loss.backward()
        out.append((loss.detach(), {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}))
    (l_rgb, g_rgb), (l_cache, g_cache) = out
    torch.testing.assert_close(l_cache, l_rgb, rtol=1e-6, atol=1e-6)
    assert g_rgb.keys() == g_cache.keys() and len(g_rgb) > 10
    for k in g_rgb:
        torch.testing.assert_close(g_cache[k], g_rgb[k], rtol=1e-6, atol=1e-6, msg=k)


def test_a_run_with_the_cache_decodes_no_png_and_trains_like_one_without(tiny, tmp_path, monkeypatch):
    model, text = tiny
    manifest = write_pool(tmp_path)
    train_index = shards.index_split(manifest, "train")
    val = StreamingEvalSet(ShardPointsSource(shards.index_split(manifest, "val")), _views(), None, 1.0)
    rgb = torch.from_numpy(np.stack([train_index.sample(i)["rgb"] for i in range(len(train_index))]))
    cache = _cache(model.visual, rgb)
    cfg = _cfg(max_steps=3, log_every=1)
    val.batches = lambda *a, **k: iter(())  # selection is not what this test is about
    decoded = {"n": 0}
    real = shards.decode_png

    def counting(data):
        decoded["n"] += 1
        return real(data)

    # patched where ShardIndex.sample (the reader of ShardPretrainSource) looks it up
    monkeypatch.setattr(shards.index, "decode_png", counting)
    plain = pretrain(model.visual, ShardPretrainSource(train_index), val, text, cfg, fake_render, progress=False)
    assert decoded["n"] > 0  # the count sees the reader's decodes
    decoded["n"] = 0
    cached = pretrain(model.visual, ShardPretrainSource(train_index), val, text, cfg, fake_render, progress=False,
                      image_features=cache)
    assert decoded["n"] == 0
    assert cached.timings["image_feature_cache"] is True and plain.timings["image_feature_cache"] is False
    assert cached.history["loss"] == pytest.approx(plain.history["loss"], rel=1e-5, abs=1e-6)


def test_a_cache_of_the_wrong_shape_is_refused(tiny):
    model, text = tiny
    data, val = make_data()
    msg = r"frozen image features have shape \(16, 9, 4\), the pool needs \(16, 10, C\)"
    with pytest.raises(ValueError, match=msg):
        pretrain(model.visual, data, val, text, _cfg(max_steps=1), fake_render, progress=False,
                 image_features=torch.zeros(16, 9, 4))


def _views():
    from clip2point.render.views import ViewSet

    return ViewSet(elev=(0.0,), azim=(0.0,))


def _count_syncs(run) -> dict[int, int]:
    """Host syncs (``.item()``/``bool()``/``float()`` of a device tensor, data-dependent shapes) per step."""
    from clip2point.train.profiling import DispatchCounter

    counter = DispatchCounter()

    def on_step(step, scalars):
        counter.phase = step

    with counter:
        run(on_step)
    return dict(counter.syncs)


@pytest.mark.parametrize("variant", ["intra_cross", "cross_only", "rgb_control"])
def test_no_host_sync_on_a_step_that_is_not_a_logging_step(tiny, variant):
    model, text = tiny
    data, val = make_data(m=64)
    # 64 samples / batch 8 = 8 steps, one epoch; log_every 4: steps 4 and 8 read the scalars
    cfg = _cfg(variant=variant, log_every=4, eval_every=10)
    syncs = _count_syncs(lambda on_step: pretrain(model.visual, data, val, text, cfg, fake_render, progress=False,
                                                  on_step=on_step))
    # syncs counted while step s+1 runs are filed under s (on_step(s) is the last thing step s does)
    quiet = [s for s in range(1, 8) if (s + 1) % 4 != 0 and s + 1 < 8]
    assert quiet and all(syncs.get(s, 0) == 0 for s in quiet), syncs
    assert sum(syncs.values()) > 0  # the evaluations read their accuracy: the counter does see syncs


def test_pretrain_compiled_encoder_gives_the_same_losses_on_cpu(tiny):
    model, text = tiny
    data, val = make_data()
    plain = pretrain(model.visual, data, val, text, _cfg(max_steps=2, log_every=1), fake_render, progress=False)
    try:
        compiled = pretrain(model.visual, data, val, text, _cfg(max_steps=2, log_every=1, compile=True), fake_render,
                            progress=False)
    except Exception as e:  # noqa: BLE001 - a machine without a working C++ toolchain for inductor
        if "compiler" in str(e).lower() or "InductorError" in type(e).__name__:
            pytest.skip(f"torch.compile unavailable here: {str(e).splitlines()[0][:120]}")
        raise
    assert compiled.history["loss"] == pytest.approx(plain.history["loss"], rel=1e-4, abs=1e-5)
    assert set(compiled.encoder_state) == set(plain.encoder_state)  # no _orig_mod prefix in the weights


def test_launch_auto_is_the_cuda_device_count_and_too_many_processes_fail_in_one_line():
    from pipeline.launch import resolve_nproc

    assert resolve_nproc("auto", 0) == 1 and resolve_nproc("auto", 8) == 8
    assert resolve_nproc(2, 0) == 2  # no CUDA: gloo ranks on the CPU
    assert resolve_nproc(1, 1) == 1
    with pytest.raises(ValueError, match="launch.nproc_per_node is 2 but this machine has 1 CUDA device: ") as e:
        resolve_nproc(2, 1)
    assert "\n" not in str(e.value)


def test_resumed_run_replays_the_logger_in_the_uninterrupted_order():
    from pipeline.pretrain_job import _curve_logger

    calls: list[tuple] = []

    class FakeLive:
        step = 0

        def log_metric(self, k, v):
            calls.append((self.step, k))

    import pipeline.pretrain_job as job

    real = job.live_logger
    job.live_logger = lambda key: FakeLive()
    try:
        live, on_step, on_eval, on_resume = _curve_logger("k", ["loss"], lambda s: s % 2 == 0)
        # an uninterrupted run: eval at 0, steps 1..4 (2 and 4 logged), epoch end at 4 evaluates first
        on_eval(0, {"val_zeroshot": 0.1})
        for s in range(1, 5):
            if s == 4:
                on_eval(4, {"val_zeroshot": 0.2})
            on_step(s, {"loss": 1.0 / s} if s % 2 == 0 else {})
        straight, calls[:] = list(calls), []
        history = {"step": [1, 2, 3, 4], "loss": [1.0, 0.5, 0.33, 0.25]}
        on_resume(4, history, [{"step": 0, "val_zeroshot": 0.1}, {"step": 4, "val_zeroshot": 0.2}])
    finally:
        job.live_logger = real
    assert calls == straight


def test_resumed_run_writes_dvclive_metrics_json_with_the_uninterrupted_key_order(tmp_path, monkeypatch):
    """Issue 22.13: after ``kill -9`` and resume, ``data/plots/pretrain/<run>/metrics.json`` had another key
    order. With the real dvclive: a run killed after step 3 and resumed writes the same bytes (metrics.json
    and every curve) as the uninterrupted run."""
    import pipeline.pretrain_job as job
    from pipeline.stage import live_logger

    dirs = iter(["straight", "killed", "resumed"])
    monkeypatch.setattr(job, "live_logger", lambda key: live_logger(f"{key}/{next(dirs)}"))
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path))
    keys = ["loss", "lr", "sigma"]
    every = 2

    def sc(s):
        return {"loss": 1.0 / s, "lr": 0.1 * s, "sigma": 1.0 + s / 100} if s % every == 0 else {}

    def run(first: int, last: int, on_step, on_eval):
        for s in range(first, last + 1):
            if s == 0 or s % 3 == 0:
                on_eval(s, {"val_zeroshot": s / 10})
            if s:
                on_step(s, sc(s))

    live, on_step, on_eval, _ = job._curve_logger("run", keys, lambda s: s % every == 0)
    run(0, 7, on_step, on_eval)
    live.end()
    live, on_step, on_eval, _ = job._curve_logger("run", keys, lambda s: s % every == 0)
    run(0, 4, on_step, on_eval)  # killed after step 4: its logger never ends
    history = {"step": [1, 2, 3, 4], **{k: [sc(s).get(k, 0.0) for s in (1, 2, 3, 4)] for k in keys}}
    evals = [{"step": s, "val_zeroshot": s / 10} for s in (0, 3)]
    live, on_step, on_eval, on_resume = job._curve_logger("run", keys, lambda s: s % every == 0)
    on_resume(4, history, evals)
    run(5, 7, on_step, on_eval)
    live.end()
    a, b = job.paths.plots_dir("run/straight"), job.paths.plots_dir("run/resumed")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert Path("metrics.json") in files and len(files) >= 4
    assert sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) == files
    for f in files:
        assert (b / f).read_bytes() == (a / f).read_bytes(), f
