"""CLIP2Point image–depth pre-training (paper §3.2.1, Fig. 2): the loop.

One run pre-trains E_d with one objective of :mod:`clip2point.train.objectives` (``PretrainConfig.variant``:
``intra_cross`` = CLIP2Point's Eq. 11, ``cross_only`` = the §5.6 ablation, ``rgb_control`` = an equal-compute
control), selecting its checkpoint with :mod:`clip2point.train.selection` (Eq. 15 zero-shot on the pool's
validation split, never a downstream test split). The run's parts (model, optimizer, schedule, state, resume
checkpoints, progress bar) are in :mod:`clip2point.train.pretrain_run`; the on-the-fly depth renderer is
:class:`clip2point.render.view_depth.ViewDepthRenderer`.

Data: a :class:`~clip2point.train.pretrain_data.PretrainSource` (the pool's shards read on demand,
``ShardPretrainSource``, or a pool held in memory, ``TensorPretrainSource``: one loop for both) fed through a
DataLoader with ``num_workers`` workers by :class:`~clip2point.train.pretrain_data.PretrainBatchSampler` (the order
is a function of the seed, the epoch and the sorted sample ids only).

Determinism: each epoch's order comes from ``seed + epoch`` and each step's views and distances from
``seed, step``, drawn for the *global* batch and then sliced per rank, so one process and many see the same
global batches and a resumed run continues exactly where the interrupted one stopped (bit for bit).

:func:`pretrain` runs named steps: :func:`~clip2point.train.pretrain_run.build_run` (E_d, σ, optimizer,
schedule), :func:`~clip2point.train.pretrain_run.restore` (resume), :func:`_evaluate` (Eq. 15 selection),
:func:`_prepare_batch` (on-the-fly depth), :func:`_optimize` (loss, backward, step), :func:`_flush` (curves,
divergence check), :func:`~clip2point.train.pretrain_run.save_resume` (resume checkpoint) and :func:`_result`
(metrics, timings).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from clip2point.configs import PretrainConfig
from clip2point.render.view_depth import DepthRenderFn
from clip2point.train.distributed import DistInfo, all_reduce_sum, backward_scale
from clip2point.train.objectives import Objective, get_objective, step_loss
from clip2point.train.pretrain_data import PretrainBatchSampler, PretrainSource, StreamingEvalSet, make_loader
from clip2point.train.pretrain_run import (
    ProgressBar,
    Run,
    RunState,
    Schedule,
    TextSide,
    attach_image_features,
    build_run,
    logged_step,
    make_schedule,
    new_history,
    restore,
    save_resume,
)
from clip2point.train.selection import EvalSet, val_accuracy
from clip2point.train.timing import PhaseTimer


class TrainingDiverged(RuntimeError):
    """The loss (or a gradient) became non-finite; ``str()`` is one line naming the step and checkpoint."""


@dataclass
class PretrainResult:
    encoder_state: dict[str, Tensor]
    metrics: dict[str, Any]  # results only (what DVC compares): identical for identical inputs
    history: dict[str, list] = field(default_factory=dict)
    final_state: dict[str, Tensor] = field(default_factory=dict)  # E_d and σ after the last step
    timings: dict[str, Any] = field(default_factory=dict)  # wall times, throughput, data share, resume



def _finite_grads(params: list[Tensor]) -> Tensor:
    """A 0-dim bool tensor on the device: every gradient is finite (never read here: no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.ones((), dtype=torch.bool, device=params[0].device if params else None)
    return torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum())


def _evaluate(run: Run, val: EvalSet | StreamingEvalSet, cfg: PretrainConfig, info: DistInfo, state: RunState,
              step: int, on_eval: Callable[[int, dict[str, float]], None] | None) -> None:
    """Eq. 15 selection accuracy of E_d now; keeps the best trained encoder (never step 0's)."""
    acc = val_accuracy(run.model.encoder, val, run.text_classes, cfg.eval_batch_size, info, cfg.precision)
    state.evals.append({"step": step, "val_zeroshot": acc})
    if step > 0 and acc > state.best["acc"]:
        state.best.update(acc=acc, step=step, encoder={k: v.detach().cpu().clone()
                                                       for k, v in run.model.encoder.state_dict().items()})
    if on_eval is not None:
        on_eval(step, {"val_zeroshot": acc})


def _prepare_batch(obj: Objective, raw: dict[str, Tensor], render: DepthRenderFn, distance: float,
                   device: torch.device, image_features: Tensor | None = None) -> dict[str, Tensor]:
    """The objective's batch on the device: the loader's fields, the frozen image features of each sample's
    view when the run has the cache, and its depth maps, rendered on the fly from the points in each
    sample's view at the step's distances (§3.2.1: D_{i,d1}, D_{i,d2}). Copies are ``non_blocking`` (the
    loader pins its batches on CUDA)."""
    batch = {k: raw[k] for k in ("rgb", "labels", "flip") if k in raw}
    view = raw["view"].to(device, non_blocking=True)
    if image_features is not None:
        batch["f_img"] = image_features[raw["index"].to(device, non_blocking=True), view]
    if obj.depth:
        pts = raw["points"].to(device, non_blocking=True)
        for name, which in obj.depth:
            if which == "base":
                d = torch.full((len(pts),), float(distance), device=device)
            else:
                d = raw[which].to(device, non_blocking=True)
            batch[name] = render(pts, view, d)
    return batch


def _diverged(what: str, step: int, sched: Schedule, state: RunState, ckpt_path: Path | None) -> TrainingDiverged:
    epoch = step // sched.steps_per_epoch
    where = ckpt_path if state.last_saved >= 0 else "none written"
    return TrainingDiverged(f"{what} at step {step + 1} (epoch {epoch + 1}); stopped — last good checkpoint: "
                            f"{where} (step {max(state.last_saved, 0)})")


def _optimize(run: Run, cfg: PretrainConfig, batch: dict[str, Tensor], info: DistInfo,
              timer: PhaseTimer) -> dict[str, Tensor]:
    """Loss of the global batch, backward, optimizer and LR step, σ clamp; returns the step's scalars as
    device tensors (``loss``, the objective's terms, σ and ``finite``: loss and every gradient finite).
    Nothing here waits for the device: the finite check is read with the scalars, at the next flush."""
    loss, scalars = step_loss(run.objective.name, run.ddp, run.frozen, run.model.sigma, batch, info,
                              size=run.size, temperature=cfg.temperature, precision=cfg.precision,
                              captions=run.captions, caption_labels=run.caption_labels,
                              logit_scale=run.logit_scale, objective=run.objective)
    loss_global = all_reduce_sum(loss.detach(), info)
    run.optimizer.zero_grad(set_to_none=True)
    (loss * backward_scale(info)).backward()
    finite = torch.isfinite(loss_global) & _finite_grads(run.trainable)
    timer.mark()  # forward + backward
    run.optimizer.step()
    run.scheduler.step()
    if run.objective.with_sigma:
        with torch.no_grad():
            run.model.sigma.clamp_(min=1e-3)
    timer.mark()  # optimizer
    return {**scalars, "loss": loss_global, "sigma": run.model.sigma.detach().clone(), "finite": finite}


def _flush(run: Run, state: RunState, timer: PhaseTimer, cfg: PretrainConfig, sched: Schedule,
           ckpt_path: Path | None) -> dict[str, float] | None:
    """Read the pending steps' scalars (one device→host copy), append them to the curves, and raise
    :class:`TrainingDiverged` naming the first step whose loss or gradient was not finite. Returns the last
    step's scalars (floats, for the progress bar and the logger) or None when nothing was pending."""
    if not state.pending:
        return None
    keys = ["loss", "sigma", "finite", *run.objective.log_keys]
    rows = torch.stack([torch.stack([sc[k].float() for k in keys]) for _, sc in state.pending]).cpu().tolist()
    steps = [s for s, _ in state.pending]
    state.pending = []
    window = timer.flush()
    for step, row in zip(steps, rows, strict=True):
        v = dict(zip(keys, row, strict=True))
        if not v["finite"]:
            what = f"loss became {v['loss']}" if not math.isfinite(v["loss"]) else "non-finite gradient"
            raise _diverged(what, step - 1, sched, state, ckpt_path)
        h = state.history
        h["step"].append(step)
        h["loss"].append(v["loss"])
        for k in run.objective.log_keys:
            h[k].append(v[k])
        h["sigma"].append(v["sigma"])
        h["lr"].append(state.lrs.pop(0))
    now = time.perf_counter()
    dt = now - state.t_window
    state.t_window = now
    last = {k: v for k, v in zip(keys, rows[-1], strict=True) if k != "finite"}
    last.update(lr=state.history["lr"][-1], samples_per_s=cfg.batch_size * len(steps) / dt if dt > 0 else 0.0,
                **{f"{k}_s": v for k, v in window.items()})
    return last

def _train(run: Run, source: PretrainSource, val: EvalSet | StreamingEvalSet, cfg: PretrainConfig,
           sched: Schedule, render: DepthRenderFn, info: DistInfo, state: RunState, ckpt_path: Path | None,
           run_tag: str | None, on_step: Callable[[int, dict[str, float]], None] | None,
           on_eval: Callable[[int, dict[str, float]], None] | None, progress: bool) -> PhaseTimer:
    """Steps ``state.step … total-1``: read, render, optimise, and at logging steps (:func:`logged_step`)
    read the scalars; evaluate at epoch ends, save. No step waits for the device except those reads (and
    the evaluations and checkpoints, which read them first)."""
    obj, dev = run.objective, info.device
    cached = run.image_features is not None
    source.fields = frozenset({"labels"} | ({"points"} if obj.needs_points else set())
                              | (set() if cached or not obj.needs_rgb else {"rgb"}))
    sampler = PretrainBatchSampler(len(source), cfg.batch_size, seed=cfg.seed, n_views=source.n_views,
                                   distance=cfg.distance, jitter=cfg.jitter, total=sched.total,
                                   start=state.step, rank=info.rank, world=info.world,
                                   with_epoch=source.wants_epoch)
    loader = make_loader(source, sampler, cfg.num_workers, pin_memory=dev.type == "cuda")
    bar = ProgressBar(cfg, sched, progress and info.is_main)
    timer = PhaseTimer(dev)
    batches = iter(loader)
    run.model.train()
    state.t_window = time.perf_counter()
    try:
        for step in range(state.step, sched.total):
            bar.start_step(step)
            timer.start()
            raw = next(batches)
            timer.mark()  # data wait
            batch = _prepare_batch(obj, raw, render, cfg.distance, dev, run.image_features)
            timer.mark()  # render
            scalars = _optimize(run, cfg, batch, info, timer)
            done = step + 1
            state.pending.append((done, scalars))
            state.lrs.append(run.optimizer.param_groups[0]["lr"])
            state.steps_run += 1
            state.step = done
            end_of_epoch = done % sched.steps_per_epoch == 0 or done == sched.total
            epoch = step // sched.steps_per_epoch
            evaluate = end_of_epoch and ((epoch + 1) % max(1, cfg.eval_every) == 0 or done == sched.total)
            save = end_of_epoch or bool(cfg.ckpt_every and done % cfg.ckpt_every == 0)
            read = None
            if logged_step(done, cfg, sched.steps_per_epoch, sched.total) or evaluate or save:
                read = _flush(run, state, timer, cfg, sched, ckpt_path)
            if evaluate:
                _evaluate(run, val, cfg, info, state, done, on_eval)
            if save:
                save_resume(run, cfg, state, done, ckpt_path, info, run_tag)
            logged = read if logged_step(done, cfg, sched.steps_per_epoch, sched.total) else None
            bar.update(obj, logged)
            if on_step is not None:
                on_step(done, logged or {})
        _flush(run, state, timer, cfg, sched, ckpt_path)
    finally:
        bar.close()
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
    return timer


def _result(run: Run, val: EvalSet | StreamingEvalSet, cfg: PretrainConfig, sched: Schedule, info: DistInfo,
            state: RunState, wall: float, timer: PhaseTimer) -> PretrainResult:
    """The selected encoder, the metrics (results only) and the timings (wall times, data share)."""
    best, history, evals = state.best, state.history, state.evals
    if best["encoder"] is None:  # no trained checkpoint evaluated (e.g. zero steps): keep the last weights
        acc = val_accuracy(run.model.encoder, val, run.text_classes, cfg.eval_batch_size, info, cfg.precision)
        best.update(acc=acc, step=sched.total, encoder={k: v.detach().cpu().clone()
                                                        for k, v in run.model.encoder.state_dict().items()})
    metrics = {
        "variant": cfg.variant,
        "seed": cfg.seed,
        "steps": sched.total,
        "steps_per_epoch": sched.steps_per_epoch,
        "epochs": sched.n_epochs,
        "batch_size": cfg.batch_size,
        "val_zeroshot_before": evals[0]["val_zeroshot"] if evals else None,
        "val_zeroshot_best": best["acc"],
        "best_step": best["step"],
        "val_zeroshot_curve": evals,
        "sigma_init": cfg.sigma_init,
        "sigma_final": history["sigma"][-1] if history["sigma"] else cfg.sigma_init,
        "sigma_trajectory": _thin(history["step"], history["sigma"]),
        "final_loss": history["loss"][-1] if history["loss"] else None,
    }
    samples = state.steps_run * cfg.batch_size
    phase = timer.totals  # CUDA events on a GPU (device timeline), host clock on a CPU
    step_s = sum(phase.values())
    timings = {
        "train_wall_s": round(wall, 2),
        "samples_per_s": round(samples / wall, 2) if wall > 0 and samples else None,
        "steps_run": state.steps_run,
        "step_s": round(step_s, 3),  # Σ step times (wait for the batch → optimizer step), no evals
        "data_wait_s": round(phase["data"], 3),  # waiting for the DataLoader
        "render_s": round(phase["render"], 3),  # on-the-fly depth maps
        "forward_backward_s": round(phase["forward_backward"], 3),
        "optimizer_s": round(phase["optimizer"], 3),
        "timer": "cuda_events" if timer.cuda else "host_clock",
        # share of step time outside the encoders / loss / optimizer: (data wait + render) / step time
        "data_share": round((phase["data"] + phase["render"]) / step_s, 4) if step_s > 0 else None,
        "resumed_from_step": state.resumed_from,
        "resume_note": state.resume_note,
        "world_size": info.world,
        "num_workers": cfg.num_workers,
        "precision": cfg.precision,
        "image_feature_cache": run.image_features is not None,
    }
    final = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    return PretrainResult(encoder_state=best["encoder"], metrics=metrics, history=history, final_state=final,
                          timings=timings)


def pretrain(
    visual: nn.Module,
    data: PretrainSource,
    val: EvalSet | StreamingEvalSet,
    text: TextSide,
    cfg: PretrainConfig,
    render: DepthRenderFn,
    *,
    info: DistInfo | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    run_tag: str | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    on_resume: Callable[[int, dict[str, list], list[dict[str, float]]], None] | None = None,
    progress: bool = True,
    image_features: Tensor | None = None,
) -> PretrainResult:
    """Run one pre-training variant; returns the selected encoder's weights, metrics, curves and timings.

    ``visual`` is CLIP's image encoder E_i (left untouched: E_d is a copy). ``data``: the training split
    (a :class:`PretrainSource`: streamed shards or a pool in memory); ``val``: the selection split.
    ``render`` draws the depth maps on the fly. ``image_features`` (M, V, C): the frozen-feature cache, E_i's
    features of every (training sample, RGB view) in the source's index order (:func:`frozen_image_features`
    per view; the ``image_features`` stage); objectives that compare with E_i then read them instead of
    encoding RGB renders, and no RGB is read. ``on_step(step, scalars)`` is called after every optimizer
    step (``step`` counts from 1; an exception there interrupts the run like a kill); ``scalars`` holds the
    step's values only on logging steps (:func:`logged_step`: every ``log_every`` steps and at epoch ends),
    and is empty on the others, whose values stay on the device until then. ``on_eval(step,
    scalars)`` after each evaluation, ``on_resume(step, history, evals)`` once when a run resumes (to
    replay the curves so far). With ``checkpoint_path``, resume checkpoints are written atomically every
    ``ckpt_every`` steps and at each epoch's end; ``resume=True`` continues from it when present and
    written by a run of the same config and ``run_tag`` (any other checkpoint is ignored and overwritten).
    """
    obj = get_objective(cfg.variant)
    info = info or DistInfo()
    torch.manual_seed(cfg.seed)
    if not isinstance(data, PretrainSource):
        raise TypeError(f"pre-training data must be a PretrainSource, got {type(data).__name__}")
    source = data
    sched = make_schedule(cfg, len(source), info)
    run = build_run(visual, cfg, obj, text, info, sched)
    attach_image_features(run, image_features, source, info)
    ckpt_path = Path(checkpoint_path) if checkpoint_path else None
    fresh = RunState(history=new_history(run.objective.log_keys))
    state = restore(run, cfg, ckpt_path, run_tag) if resume and ckpt_path is not None else fresh
    if state.resumed_from and on_resume is not None:
        on_resume(state.resumed_from, state.history, state.evals)
    if state.step == 0 and not state.evals:
        _evaluate(run, val, cfg, info, state, 0, on_eval)  # CLIP's visual encoder on depth, no pre-training
    t_start = time.perf_counter()
    timer = _train(run, source, val, cfg, sched, render, info, state, ckpt_path, run_tag, on_step, on_eval,
                   progress)
    return _result(run, val, cfg, sched, info, state, time.perf_counter() - t_start, timer)


def _thin(steps: list[int], values: list[float], n: int = 50) -> list[list[float]]:
    """At most ~n (step, value) pairs, always including the first and last."""
    if not steps:
        return []
    every = max(1, len(steps) // n)
    keep = list(range(0, len(steps), every))
    if keep[-1] != len(steps) - 1:
        keep.append(len(steps) - 1)
    return [[steps[k], round(values[k], 5)] for k in keep]
