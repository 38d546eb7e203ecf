"""CLIP2Point image–depth pre-training (paper §3.2.1, Fig. 2) and its two controls.

Objectives are a registry (:data:`OBJECTIVES`, :func:`register_objective`); ``PretrainConfig.variant``
names one. Each declares what its batches must hold (depth maps rendered from the points and at which
distances, RGB, labels, caption features), whether it learns Eq. 11's σ, its loss and its log keys:

- ``intra_cross`` (CLIP2Point): E_d initialised from CLIP's visual encoder E_i, E_i frozen. Each sample
  is one random view of the training view set, its RGB render I_i (→ frozen E_i) and two depth maps
  D_{i,d1}, D_{i,d2} rendered on the fly from the points at independently jittered distances (→ E_d).
  Loss Eq. 11: L_intra (Eq. 5–7) / σ² + L_cross (Eq. 8–10, mean depth feature vs image feature) +
  log(σ + 1).
- ``cross_only`` (§5.6 ablation): one depth map at the base distance, loss Eq. 10 only.
- ``rgb_control`` (equal-compute control, not in the paper): CLIP's image encoder trained further on the
  same RGB renders with the bootstrap's image–text objective (class-aware contrastive against the frozen
  caption features), same steps and batch; then evaluated zero-shot on depth like the others.

Data: a :class:`~clip2point.train.pretrain_data.PretrainSource` (the pool's shards read on demand, or
:class:`PretrainData` in memory) fed through a DataLoader with ``num_workers`` workers by
:class:`~clip2point.train.pretrain_data.PretrainBatchSampler` (see :mod:`clip2point.train.pretrain_data`
for the order, a function of the seed, the epoch and the sorted sample ids only).

Selection: zero-shot accuracy (Eq. 15) on depth maps of the *pre-training pool's validation split*
(6 zero-shot views), in memory (:class:`EvalSet`) or streamed (:class:`StreamingEvalSet`). Never a
downstream test split. The step-0 accuracy (CLIP's encoder, no pre-training) is recorded as the baseline;
the selected checkpoint is the best trained one.

Determinism: each epoch's order comes from ``seed + epoch`` and each step's views and distances from
``seed, step``, drawn for the *global* batch and then sliced per rank, so one process and many see the same
global batches and a resumed run continues exactly where the interrupted one stopped (bit for bit: the
resume checkpoint holds model, optimizer, scheduler, RNG states, curves and the best-so-far encoder).

:func:`pretrain` runs named steps: :func:`_build_run` (E_d, σ, optimizer, schedule), :func:`_restore`
(resume), :func:`_evaluate` (Eq. 15 selection), :func:`_prepare_batch` (on-the-fly depth),
:func:`_optimize` (loss, backward, step), :func:`_record` (curves, progress), :func:`_save` (resume
checkpoint) and :func:`_result` (metrics, timings).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from clip2point.configs import PretrainConfig  # noqa: F401 - re-exported (the config lives in clip2point.configs)
from clip2point.evaluate import zero_shot_logits
from clip2point.losses import (
    balanced_loss,
    cross_modality_loss,
    intra_modality_loss,
    mean_depth_feature,
    multi_positive_contrastive,
)
from clip2point.models.clip import depth_to_clip_input, encode_views, image_size, rgb_to_clip_input
from clip2point.precision import encoder_precision
from clip2point.train import checkpoint as ckpt
from clip2point.train.distributed import (
    DistInfo,
    all_reduce_sum,
    backward_scale,
    gather_with_grad,
)
from clip2point.train.optim import build_optimizer, build_schedule, param_groups, released_param_groups
from clip2point.train.pretrain_data import (
    PretrainBatchSampler,
    PretrainSource,
    StreamingEvalSet,
    TensorPretrainSource,
    jitter_distances,
    make_loader,
    step_generator,
)
from clip2point.train.timing import PhaseTimer

log = logging.getLogger(__name__)

# older names of the step draws (kept for callers such as benchmarks/bench_pretrain.py)
_step_generator = step_generator
_jitter = jitter_distances


class TrainingDiverged(RuntimeError):
    """The loss (or a gradient) became non-finite; ``str()`` is one line naming the step and checkpoint."""


class DepthRenderFn(Protocol):
    def __call__(self, points: Tensor, view_idx: Tensor, distance: Tensor) -> Tensor:
        """points (B,N,3), view index (B,) into the training view set, distance (B,) → depth (B,H,W)."""
        ...


#: Config fields that do not change a run's results: a checkpoint written under other values still resumes.
RESULT_NEUTRAL_FIELDS = ("num_workers", "ckpt_every", "log_every")


@dataclass
class PretrainData:
    """Training split of the pre-training pool, in memory (tests and small pools; row i = sample index i)."""

    points: Tensor  # (M, N, 3) float32
    rgb: Tensor  # (M, V, H, W, 3) uint8, the training view set's renders
    labels: Tensor  # (M,) int64 (used by rgb_control only; the paper's objective is label-free)


@dataclass
class EvalSet:
    """Depth maps of the selection split, rendered once: (M, V_eval, H, W) and labels (M,)."""

    depth: Tensor
    labels: Tensor


@dataclass
class TextSide:
    """Frozen text features: ``classes`` (K,C) for zero-shot, ``captions`` (T,C) + labels for rgb_control."""

    classes: Tensor
    logit_scale: float = 100.0
    captions: Tensor | None = None
    caption_labels: Tensor | None = None


@dataclass
class PretrainResult:
    encoder_state: dict[str, Tensor]
    metrics: dict[str, Any]  # results only (what DVC compares): identical for identical inputs
    history: dict[str, list] = field(default_factory=dict)
    final_state: dict[str, Tensor] = field(default_factory=dict)  # E_d and σ after the last step
    timings: dict[str, Any] = field(default_factory=dict)  # wall times, throughput, data share, resume


class DepthPretrainModel(nn.Module):
    """The trainable part: E_d (a copy of CLIP's visual encoder) and Eq. 11's σ."""

    def __init__(self, visual: nn.Module, sigma_init: float = 1.0, with_sigma: bool = True) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(visual)
        self.encoder.requires_grad_(True)
        self.sigma = nn.Parameter(torch.tensor(float(sigma_init)), requires_grad=with_sigma)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


# ------------------------------------------------------------------------------------------- objectives


@dataclass
class LossInputs:
    """What an objective's loss sees: E_d (possibly DDP-wrapped), frozen E_i, σ, this rank's batch rows."""

    encoder: nn.Module
    frozen: nn.Module
    sigma: Tensor
    batch: dict[str, Tensor]
    info: DistInfo
    size: int
    temperature: float
    captions: Tensor | None = None
    caption_labels: Tensor | None = None
    logit_scale: float = 100.0


#: ``loss(inputs) -> (this rank's loss share, {log key: global value as a 0-dim tensor on the device})``
LossFn = Callable[[LossInputs], tuple[Tensor, dict[str, Tensor]]]


@dataclass(frozen=True)
class Objective:
    """One pre-training objective.

    ``depth``: the depth maps a batch needs, as (batch field, distance) with distance ``d1`` / ``d2`` (the
    step's jittered draws) or ``base`` (``PretrainConfig.distance``), rendered on the fly from the points in
    the sample's view; ``needs_captions``: caption features (:class:`TextSide`); ``with_sigma``: σ of Eq. 11
    is learned; ``log_keys``: the loss terms its ``loss`` returns (logged besides ``loss`` and ``lr``).
    ``image_features``: the loss compares E_d's depth features with the frozen E_i's features of the
    sample's RGB view, which a run may read from the frozen-feature cache (``batch["f_img"]``) instead of
    encoding the RGB render every step. ``loss(inputs)`` returns this rank's share of the global batch's
    loss (Σ over ranks = the single-process loss) and the global loss terms, as device tensors (reading them
    is the loop's business, every ``log_every`` steps).
    """

    name: str
    loss: LossFn
    depth: tuple[tuple[str, str], ...] = ()
    needs_rgb: bool = True
    needs_labels: bool = False
    needs_captions: bool = False
    with_sigma: bool = False
    log_keys: tuple[str, ...] = ()
    description: str = ""
    image_features: bool = False

    @property
    def needs_points(self) -> bool:
        return bool(self.depth)


OBJECTIVES: dict[str, Objective] = {}


def register_objective(obj: Objective) -> Objective:
    """Add an objective to :data:`OBJECTIVES` (its name becomes a valid ``PretrainConfig.variant``)."""
    if obj.name in OBJECTIVES:
        raise ValueError(f"pretraining objective '{obj.name}' is already registered")
    bad = [d for _, d in obj.depth if d not in ("d1", "d2", "base")]
    if bad:
        raise ValueError(f"objective '{obj.name}': depth distance must be d1, d2 or base, got {bad}")
    OBJECTIVES[obj.name] = obj
    return obj


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown pretraining variant '{name}' ({' | '.join(OBJECTIVES)})") from None


def frozen_image_features(frozen: nn.Module, rgb: Tensor, size: int) -> Tensor:
    """F^I = E_i(I) of uint8 RGB renders (B, H, W, 3), unnormalised fp32 (E_i frozen: no gradient). The
    one definition, used on the fly and by the frozen-feature cache."""
    with torch.no_grad():
        return frozen(rgb_to_clip_input(rgb, size)).float()


def _image_features(x: LossInputs) -> tuple[Tensor, Tensor, int]:
    """F^I_i of this rank's rows (from the frozen-feature cache when the batch holds ``f_img``, else E_i on
    the RGB renders), of the global batch, and the offset."""
    f_img = x.batch.get("f_img")
    if f_img is None:
        f_img = frozen_image_features(x.frozen, x.batch["rgb"].to(x.info.device, non_blocking=True), x.size)
    f_img_all, off = gather_with_grad(f_img, x.info)
    return f_img, f_img_all, off


def intra_cross_loss(x: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
    """Eq. 11: L_intra (Eq. 5–7, D_{i,d1} vs D_{i,d2}) / σ² + L_cross (Eq. 8–10) + log(σ + 1)."""
    info = x.info
    f_img, f_img_all, off = _image_features(x)
    depth = torch.cat([x.batch["depth1"], x.batch["depth2"]])
    f1, f2 = x.encoder(depth_to_clip_input(depth, x.size)).float().chunk(2)  # F_{i,d1}, F_{i,d2}
    f1_all, _ = gather_with_grad(f1, info)
    f2_all, _ = gather_with_grad(f2, info)
    l_intra = intra_modality_loss(f1, f2, x.temperature, f1_all, f2_all, off)  # Eq. 5–7
    fd, fd_all = mean_depth_feature(f1, f2), mean_depth_feature(f1_all, f2_all)
    l_cross = cross_modality_loss(fd, f_img, x.temperature, fd_all, f_img_all, off)  # Eq. 8–10
    loss = balanced_loss(l_intra, l_cross, x.sigma, 1.0 / info.world)  # Eq. 11
    scalars = {"l_intra": all_reduce_sum(l_intra.detach(), info), "l_cross": all_reduce_sum(l_cross.detach(), info)}
    return loss, scalars


def cross_only_loss(x: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
    """Eq. 10 alone (§5.6 ablation): one depth map per sample at the base distance vs its image."""
    info = x.info
    f_img, f_img_all, off = _image_features(x)
    f = x.encoder(depth_to_clip_input(x.batch["depth"], x.size)).float()
    f_all, off = gather_with_grad(f, info)
    l_cross = cross_modality_loss(f, f_img, x.temperature, f_all, f_img_all, off)  # Eq. 10 only
    return l_cross, {"l_cross": all_reduce_sum(l_cross.detach(), info)}


def rgb_control_loss(x: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
    """Image–text control: E_d trained further on (flipped) RGB against frozen caption features."""
    info, dev = x.info, x.info.device
    inp = rgb_to_clip_input(x.batch["rgb"].to(dev, non_blocking=True), x.size)
    inp = torch.where(x.batch["flip"].to(dev, non_blocking=True).view(-1, 1, 1, 1), inp.flip(-1), inp)
    f_all, _ = gather_with_grad(x.encoder(inp).float(), info)
    labels = x.batch["labels"].to(dev, non_blocking=True)
    labels_all = _gather_plain(labels, info) if info.enabled else labels
    # every rank computes the global loss and takes 1/world of it: Σ over ranks = that loss
    full = multi_positive_contrastive(f_all, x.captions, labels_all, x.caption_labels, x.logit_scale)
    return full / info.world, {"l_rgb": full.detach()}


register_objective(Objective(
    "intra_cross", intra_cross_loss, depth=(("depth1", "d1"), ("depth2", "d2")), with_sigma=True,
    log_keys=("l_intra", "l_cross"), description="CLIP2Point (Eq. 11)", image_features=True))
register_objective(Objective(
    "cross_only", cross_only_loss, depth=(("depth", "base"),), log_keys=("l_cross",),
    description="§5.6 ablation (Eq. 10 only)", image_features=True))
register_objective(Objective(
    "rgb_control", rgb_control_loss, needs_labels=True, needs_captions=True, log_keys=("l_rgb",),
    description="equal-compute image–text control on RGB"))

VARIANTS = tuple(OBJECTIVES)


def step_loss(
    variant: str,
    encoder: nn.Module,
    frozen: nn.Module,
    sigma: Tensor,
    batch: dict[str, Tensor],
    info: DistInfo,
    *,
    size: int,
    temperature: float,
    precision: str = "fp32",
    captions: Tensor | None = None,
    caption_labels: Tensor | None = None,
    logit_scale: float = 100.0,
    objective: Objective | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """This rank's share of the loss of one global batch (Σ over ranks = the single-process loss).

    ``batch`` (local rows): ``rgb`` uint8 (b,H,W,3), the depth fields of the objective (``depth1`` /
    ``depth2`` (b,H,W) for ``intra_cross``, ``depth`` for ``cross_only``); ``labels`` and ``flip`` for
    ``rgb_control``; ``f_img`` (b,C) replaces ``rgb`` when read from the frozen-feature cache. ``encoder``
    is E_d (possibly DDP-wrapped, or compiled), ``frozen`` E_i. The encoders run at ``precision``
    (:mod:`clip2point.precision`); the losses always in fp32. Returns the loss share and the global scalars
    (the objective's ``log_keys``) as device tensors.
    """
    obj = objective or get_objective(variant)
    with encoder_precision(info.device, precision):
        return obj.loss(LossInputs(encoder, frozen, sigma, batch, info, size, temperature, captions,
                                   caption_labels, logit_scale))


# ------------------------------------------------------------------------------------------- evaluation


def zero_shot_accuracy(
    encoder: nn.Module, evalset: EvalSet, text: Tensor, batch_size: int = 256
) -> tuple[float, Tensor]:
    """Eq. 15 zero-shot accuracy of multi-view depth maps: argmax of the mean over views of F_v·F_Tᵀ
    (:func:`clip2point.evaluate.zero_shot_logits`, the one implementation)."""
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        feats = encode_views(encoder, evalset.depth, batch_size=batch_size)  # L2-normalised, as the text
        pred = zero_shot_logits(feats, text.to(feats.device), normalize=False).argmax(-1).cpu()
    encoder.train(was_training)
    return float((pred == evalset.labels.cpu()).float().mean()), pred


def streaming_zero_shot_accuracy(encoder: nn.Module, evalset: StreamingEvalSet, text: Tensor,
                                 batch_size: int = 256, info: DistInfo | None = None) -> float:
    """Eq. 15 zero-shot accuracy of a streamed selection split; under DDP each rank takes rows
    ``rank::world`` and the counts are summed, so every rank gets the whole split's accuracy."""
    info = info or DistInfo()
    was_training = encoder.training
    encoder.eval()
    n_views = len(evalset.view_set.elev)
    correct, count = 0, 0
    with torch.no_grad():
        for depth, labels in evalset.batches(max(1, batch_size // n_views), info.rank, info.world,
                                             info.device):
            feats = encode_views(encoder, depth, batch_size=batch_size)  # L2-normalised, as the text
            pred = zero_shot_logits(feats, text.to(feats.device), normalize=False).argmax(-1).cpu()
            correct += int((pred == labels).sum())
            count += len(labels)
    encoder.train(was_training)
    tot = all_reduce_sum(torch.tensor([correct, count], dtype=torch.float64, device=info.device), info)
    correct, count = int(tot[0]), int(tot[1])
    # float32 like zero_shot_accuracy's mean of 0/1 values
    return float(torch.tensor(float(correct), dtype=torch.float32) / count) if count else float("nan")


def _val_accuracy(encoder: nn.Module, val: EvalSet | StreamingEvalSet, text: Tensor, batch_size: int,
                  info: DistInfo, precision: str = "fp32") -> float:
    """Eq. 15 selection accuracy, E_d at the run's ``precision`` (the same setting as the training step)."""
    with encoder_precision(info.device, precision):
        if isinstance(val, EvalSet):
            return zero_shot_accuracy(encoder, val, text, batch_size)[0]
        return streaming_zero_shot_accuracy(encoder, val, text, batch_size, info)


# ----------------------------------------------------------------------------------------- the loop


def _finite_grads(params: list[Tensor]) -> Tensor:
    """A 0-dim bool tensor on the device: every gradient is finite (never read here: no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.ones((), dtype=torch.bool, device=params[0].device if params else None)
    return torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum())


def as_source(data: PretrainData | PretrainSource) -> PretrainSource:
    """The :class:`PretrainSource` of in-memory :class:`PretrainData` (or the source itself)."""
    if isinstance(data, PretrainSource):
        return data
    if isinstance(data, PretrainData):
        return TensorPretrainSource(data.points, data.rgb, data.labels)
    raise TypeError(f"pre-training data must be PretrainData or a PretrainSource, got {type(data).__name__}")


@dataclass
class _Schedule:
    n_train: int
    steps_per_epoch: int
    total: int
    n_epochs: int


@dataclass
class _Run:
    objective: Objective
    model: DepthPretrainModel
    frozen: nn.Module
    ddp: nn.Module  # E_d as the step calls it: DDP-wrapped and/or compiled, else the model itself
    optimizer: torch.optim.Optimizer
    scheduler: Any
    trainable: list[Tensor]
    size: int
    text_classes: Tensor
    captions: Tensor | None
    caption_labels: Tensor | None
    logit_scale: float
    image_features: Tensor | None = None  # (M, V, C) frozen-feature cache on the device, or None


@dataclass
class _State:
    step: int = 0
    history: dict[str, list] = field(default_factory=lambda: {
        "step": [], "loss": [], "l_intra": [], "l_cross": [], "sigma": [], "lr": []})
    evals: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"acc": -1.0, "step": -1, "encoder": None})
    last_saved: int = -1
    resumed_from: int = 0
    resume_note: str = ""
    steps_run: int = 0
    #: steps whose scalars are still on the device: (step, {name: 0-dim tensor}), read at the next flush
    pending: list[tuple[int, dict[str, Tensor]]] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)  # the pending steps' learning rates (host floats)
    t_window: float = 0.0  # host clock at the last flush (samples/s of the window)


def schedule_of(cfg: PretrainConfig, n_train: int) -> tuple[int, int]:
    """(steps per epoch, total steps) of a run on ``n_train`` training samples."""
    sched = _schedule(cfg, n_train, DistInfo())
    return sched.steps_per_epoch, sched.total


def _schedule(cfg: PretrainConfig, n_train: int, info: DistInfo) -> _Schedule:
    if cfg.batch_size % info.world:
        raise ValueError(f"batch_size {cfg.batch_size} does not divide by world size {info.world}")
    steps_per_epoch = n_train // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n_train} training samples")
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    return _Schedule(n_train, steps_per_epoch, total, math.ceil(total / steps_per_epoch))


def _build_run(visual: nn.Module, cfg: PretrainConfig, obj: Objective, text: TextSide, info: DistInfo,
               sched: _Schedule) -> _Run:
    """E_i frozen, E_d (a copy) and σ trainable, optimizer and LR schedule, text features on the device."""
    dev = info.device
    if obj.needs_captions and text.captions is None:
        raise ValueError(f"{obj.name} needs caption features (TextSide.captions)")
    frozen = visual.to(dev).eval().requires_grad_(False)  # E_i: frozen, never receives a gradient
    model = DepthPretrainModel(visual, cfg.sigma_init, with_sigma=obj.with_sigma).to(dev)
    if cfg.param_groups == "single":
        groups = released_param_groups(model, cfg.lr, cfg.weight_decay)
    elif cfg.param_groups == "split":
        groups = param_groups(model.encoder, cfg.lr, cfg.weight_decay)
        if obj.with_sigma:
            groups.append({"params": [model.sigma], "lr": cfg.sigma_lr, "weight_decay": 0.0, "name": "sigma"})
    else:
        raise ValueError(f"param_groups must be 'split' or 'single', not {cfg.param_groups!r}")
    optimizer = build_optimizer(cfg.optimizer, groups, cfg.lr)
    scheduler = build_schedule(cfg.schedule, optimizer, total_steps=sched.total, steps_per_epoch=sched.steps_per_epoch,
                               warmup_steps=cfg.warmup_steps, min_ratio=cfg.min_lr_ratio)
    ddp: nn.Module = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if cfg.compile:
        ddp = torch.compile(ddp)  # state_dicts stay the model's own (no _orig_mod prefix)
    return _Run(
        objective=obj, model=model, frozen=frozen, ddp=ddp, optimizer=optimizer, scheduler=scheduler,
        trainable=[p for g in groups for p in g["params"]], size=image_size(visual),
        text_classes=text.classes.to(dev).float(),
        captions=text.captions.to(dev).float() if text.captions is not None else None,
        caption_labels=text.caption_labels.to(dev) if text.caption_labels is not None else None,
        logit_scale=text.logit_scale,
    )


def _attach_image_features(run: _Run, features: Tensor | None, source: PretrainSource, info: DistInfo) -> None:
    """Put the frozen-feature cache (M, V, C) on the device, after checking it covers the pool."""
    if features is None or not run.objective.image_features:
        return
    want = (len(source), source.n_views)
    if features.dim() != 3 or tuple(features.shape[:2]) != want:
        raise ValueError(f"frozen image features have shape {tuple(features.shape)}, the pool needs "
                         f"({want[0]}, {want[1]}, C): one feature per training sample and RGB view")
    run.image_features = features.to(info.device, torch.float32)


def resume_key(cfg: PretrainConfig, run_tag: str | None = None) -> str:
    """What must match for a checkpoint to be resumed: the result-relevant config and the caller's tag."""
    conf = {k: v for k, v in asdict(cfg).items() if k not in RESULT_NEUTRAL_FIELDS}
    return json.dumps({"config": conf, "run_tag": run_tag}, sort_keys=True)


def _restore(run: _Run, cfg: PretrainConfig, path: Path, run_tag: str | None) -> _State:
    """The state of a resumable checkpoint at ``path``; a fresh state if there is none or it is another
    run's (another config or ``run_tag``: never resumed, noted in ``resume_note``)."""
    state = _State()
    if not path.is_file():
        return state
    saved = ckpt.read_checkpoint(path)
    stored = saved.get("extra", {}).get("resume_key")
    if stored is not None and stored != resume_key(cfg, run_tag):
        state.resume_note = f"checkpoint {path} is from another configuration: not resumed"
        log.warning("%s", state.resume_note)
        return state
    got = ckpt.apply_checkpoint(saved, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler)
    extra = got["extra"]
    state.step = state.last_saved = state.resumed_from = got["step"]
    state.history, state.evals, state.best = extra["history"], extra["evals"], extra["best"]
    return state


def _evaluate(run: _Run, val: EvalSet | StreamingEvalSet, cfg: PretrainConfig, info: DistInfo, state: _State,
              step: int, on_eval: Callable[[int, dict[str, float]], None] | None) -> None:
    """Eq. 15 selection accuracy of E_d now; keeps the best trained encoder (never step 0's)."""
    acc = _val_accuracy(run.model.encoder, val, run.text_classes, cfg.eval_batch_size, info, cfg.precision)
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


def _diverged(what: str, step: int, sched: _Schedule, state: _State, ckpt_path: Path | None) -> TrainingDiverged:
    epoch = step // sched.steps_per_epoch
    where = ckpt_path if state.last_saved >= 0 else "none written"
    return TrainingDiverged(f"{what} at step {step + 1} (epoch {epoch + 1}); stopped — last good checkpoint: "
                            f"{where} (step {max(state.last_saved, 0)})")


def _optimize(run: _Run, cfg: PretrainConfig, batch: dict[str, Tensor], info: DistInfo,
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


class _Bar:
    """One tqdm bar per epoch (main rank only)."""

    def __init__(self, cfg: PretrainConfig, sched: _Schedule, enabled: bool) -> None:
        self.cfg, self.sched, self.enabled, self.bar = cfg, sched, enabled, None

    def start_step(self, step: int) -> None:
        epoch, i = divmod(step, self.sched.steps_per_epoch)
        if self.bar is None or i == 0:
            self.close()
            left = min(self.sched.steps_per_epoch, self.sched.total - epoch * self.sched.steps_per_epoch) - i
            self.bar = tqdm(total=left, desc=f"{self.cfg.variant} epoch {epoch + 1}/{self.sched.n_epochs}",
                            unit="step", disable=not self.enabled, leave=False, dynamic_ncols=True)

    def update(self, obj: Objective, scalars: dict[str, float] | None) -> None:
        """One step done; ``scalars`` (read at a flush) refresh the postfix, else it stays as it was."""
        if self.bar is None:
            return
        if scalars is None:
            self.bar.update(1)
            return
        post = {"loss": f"{scalars['loss']:.3f}"}
        for k, short in (("l_intra", "intra"), ("l_cross", "cross")):
            if k in scalars:
                post[short] = f"{scalars[k]:.3f}"
        if obj.with_sigma:
            post["σ"] = f"{scalars['sigma']:.3f}"
        post["lr"] = f"{scalars['lr']:.2e}"
        post["smp/s"] = f"{scalars['samples_per_s']:.0f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _flush(run: _Run, state: _State, timer: PhaseTimer, cfg: PretrainConfig, sched: _Schedule,
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
        h["l_intra"].append(v.get("l_intra", float("nan")))
        h["l_cross"].append(v.get("l_cross", v.get("l_rgb", float("nan"))))
        h["sigma"].append(v["sigma"])
        h["lr"].append(state.lrs.pop(0))
    now = time.perf_counter()
    dt = now - state.t_window
    state.t_window = now
    last = {k: v for k, v in zip(keys, rows[-1], strict=True) if k != "finite"}
    last.update(lr=state.history["lr"][-1], samples_per_s=cfg.batch_size * len(steps) / dt if dt > 0 else 0.0,
                **{f"{k}_s": v for k, v in window.items()})
    return last


def logged_step(step: int, cfg: PretrainConfig, steps_per_epoch: int, total: int) -> bool:
    """Whether step ``step`` (counted from 1) is one whose scalars are read and logged: every
    ``cfg.log_every`` steps, at each epoch's end and at the last step (a function of the step alone, so a
    resumed run replays the same log rows)."""
    return step % max(1, cfg.log_every) == 0 or step % steps_per_epoch == 0 or step == total


def _save(run: _Run, cfg: PretrainConfig, state: _State, step: int, path: Path | None, info: DistInfo,
          run_tag: str | None) -> None:
    """Write the resume checkpoint (main rank; atomic, byte-reproducible)."""
    if path is None or not info.is_main:
        return
    extra = {"history": state.history, "evals": state.evals, "best": state.best, "config": asdict(cfg),
             "run_tag": run_tag, "resume_key": resume_key(cfg, run_tag)}
    ckpt.save_checkpoint(path, step=step, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                         extra=extra)
    state.last_saved = step


def _train(run: _Run, source: PretrainSource, val: EvalSet | StreamingEvalSet, cfg: PretrainConfig,
           sched: _Schedule, render: DepthRenderFn, info: DistInfo, state: _State, ckpt_path: Path | None,
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
    bar = _Bar(cfg, sched, progress and info.is_main)
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
                _save(run, cfg, state, done, ckpt_path, info, run_tag)
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


def _result(run: _Run, val: EvalSet | StreamingEvalSet, cfg: PretrainConfig, sched: _Schedule, info: DistInfo,
            state: _State, wall: float, timer: PhaseTimer) -> PretrainResult:
    """The selected encoder, the metrics (results only) and the timings (wall times, data share)."""
    best, history, evals = state.best, state.history, state.evals
    if best["encoder"] is None:  # no trained checkpoint evaluated (e.g. zero steps): keep the last weights
        acc = _val_accuracy(run.model.encoder, val, run.text_classes, cfg.eval_batch_size, info, cfg.precision)
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
    data: PretrainData | PretrainSource,
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
    (:class:`PretrainData` in memory or a streaming :class:`PretrainSource`); ``val``: the selection split.
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
    source = as_source(data)
    sched = _schedule(cfg, len(source), info)
    run = _build_run(visual, cfg, obj, text, info, sched)
    _attach_image_features(run, image_features, source, info)
    ckpt_path = Path(checkpoint_path) if checkpoint_path else None
    state = _restore(run, cfg, ckpt_path, run_tag) if resume and ckpt_path is not None else _State()
    if state.resumed_from and on_resume is not None:
        on_resume(state.resumed_from, state.history, state.evals)
    if state.step == 0 and not state.evals:
        _evaluate(run, val, cfg, info, state, 0, on_eval)  # CLIP's visual encoder on depth, no pre-training
    t_start = time.perf_counter()
    timer = _train(run, source, val, cfg, sched, render, info, state, ckpt_path, run_tag, on_step, on_eval,
                   progress)
    return _result(run, val, cfg, sched, info, state, time.perf_counter() - t_start, timer)


class ViewDepthRenderer:
    """:class:`DepthRenderFn` over ``clip2point.render.depth.render_depth``: one view per sample, one call.

    Each cloud is first rotated by its view's world→camera rotation (``view_rotations``), expressed in the
    front view's frame, so that one ``render_depth`` call with the single front view renders every sample
    in its own view (identical maps to rendering that view directly; one call instead of one per view).
    """

    def __init__(self, view_set: Any, depth_cfg: Any) -> None:
        from clip2point.render.views import ViewSet, get_views, view_set_rotations

        self.cfg = depth_cfg
        self.front = ViewSet(elev=(0.0,), azim=(0.0,))
        r_views = view_set_rotations(get_views(view_set))  # (V, 3, 3)
        r_front = view_set_rotations(self.front)[0]
        self.rot = r_front.t() @ r_views  # (V, 3, 3): R_front · (this) = R_v
        self._rot_on: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def __call__(self, points: Tensor, view_idx: Tensor, distance: Tensor) -> Tensor:
        from clip2point.render.depth import render_depth

        key = (points.device, points.dtype)
        if key not in self._rot_on:  # the rotations go to a device once per run, not once per step
            self._rot_on[key] = self.rot.to(points.device, points.dtype)
        rot = self._rot_on[key][view_idx.to(points.device, non_blocking=True)]  # (B, 3, 3)
        with torch.autocast(points.device.type, enabled=False):  # geometry at full precision, always
            rotated = torch.bmm(points.float(), rot.float().transpose(1, 2))
            dist = distance.view(-1, 1).float().to(points.device, non_blocking=True)
            return render_depth(rotated, self.front, dist, self.cfg)[:, 0]


def render_eval_set(points: Tensor, labels: Tensor, view_set: Any, depth_cfg: Any, distance: float,
                    batch_size: int = 64) -> EvalSet:
    """Render the multi-view depth maps of a selection split once (base distance, all views)."""
    from clip2point.render.depth import render_depth

    maps = [render_depth(p, view_set, float(distance), depth_cfg).cpu() for p in points.split(batch_size)]
    return EvalSet(depth=torch.cat(maps), labels=labels)


def _gather_plain(x: Tensor, info: DistInfo) -> Tensor:
    import torch.distributed as dist

    out = [torch.empty_like(x) for _ in range(info.world)]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out)


def _thin(steps: list[int], values: list[float], n: int = 50) -> list[list[float]]:
    """At most ~n (step, value) pairs, always including the first and last."""
    if not steps:
        return []
    every = max(1, len(steps) // n)
    keep = list(range(0, len(steps), every))
    if keep[-1] != len(steps) - 1:
        keep.append(len(steps) - 1)
    return [[steps[k], round(values[k], 5)] for k in keep]
