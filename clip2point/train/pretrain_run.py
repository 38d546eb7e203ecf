"""What one pre-training run is made of (paper §3.2.1, §4.2): the trainable model (E_d and Eq. 11's σ), the
frozen text side, the step schedule, optimizer and LR schedule, the run's mutable state, and its resume
checkpoints. The loop that drives them is :mod:`clip2point.train.pretrain`.

Determinism of a resume: the checkpoint holds model, optimizer, scheduler, RNG states, curves and the
best-so-far encoder, and is resumed only by a run of the same result-relevant config and ``run_tag``
(:func:`resume_key`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from clip2point.configs import PretrainConfig
from clip2point.models.clip import image_size
from clip2point.train import checkpoint as ckpt
from clip2point.train.distributed import DistInfo
from clip2point.train.objectives import Objective
from clip2point.train.optim import build_optimizer, build_schedule, param_groups, released_param_groups
from clip2point.train.pretrain_data import PretrainSource

log = logging.getLogger(__name__)

#: Config fields that do not change a run's results: a checkpoint written under other values still resumes.
RESULT_NEUTRAL_FIELDS = ("num_workers", "ckpt_every", "log_every")


@dataclass
class TextSide:
    """Frozen text features: ``classes`` (K,C) for zero-shot, ``captions`` (T,C) + labels for rgb_control."""

    classes: Tensor
    logit_scale: float = 100.0
    captions: Tensor | None = None
    caption_labels: Tensor | None = None


class DepthPretrainModel(nn.Module):
    """The trainable part: E_d (a copy of CLIP's visual encoder) and Eq. 11's σ."""

    def __init__(self, visual: nn.Module, sigma_init: float = 1.0, with_sigma: bool = True) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(visual)
        self.encoder.requires_grad_(True)
        self.sigma = nn.Parameter(torch.tensor(float(sigma_init)), requires_grad=with_sigma)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)



@dataclass
class Schedule:
    n_train: int
    steps_per_epoch: int
    total: int
    n_epochs: int


@dataclass
class Run:
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


def new_history(log_terms: tuple[str, ...]) -> dict[str, list]:
    """An empty per-step history: step, loss, the objective's loss terms (``Objective.log_keys``), σ, lr."""
    return {k: [] for k in ("step", "loss", *log_terms, "sigma", "lr")}


@dataclass
class RunState:
    step: int = 0
    history: dict[str, list] = field(default_factory=dict)  # new_history(objective.log_keys)
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
    sched = make_schedule(cfg, n_train, DistInfo())
    return sched.steps_per_epoch, sched.total


def make_schedule(cfg: PretrainConfig, n_train: int, info: DistInfo) -> Schedule:
    if cfg.batch_size % info.world:
        raise ValueError(f"batch_size {cfg.batch_size} does not divide by world size {info.world}")
    steps_per_epoch = n_train // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n_train} training samples")
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    return Schedule(n_train, steps_per_epoch, total, math.ceil(total / steps_per_epoch))


def build_run(visual: nn.Module, cfg: PretrainConfig, obj: Objective, text: TextSide, info: DistInfo,
               sched: Schedule) -> Run:
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
    scheduler = build_schedule(cfg.schedule, optimizer, total_steps=sched.total,
                               steps_per_epoch=sched.steps_per_epoch, warmup_steps=cfg.warmup_steps,
                               min_ratio=cfg.min_lr_ratio)
    ddp: nn.Module = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if cfg.compile:
        ddp = torch.compile(ddp)  # state_dicts stay the model's own (no _orig_mod prefix)
    return Run(
        objective=obj, model=model, frozen=frozen, ddp=ddp, optimizer=optimizer, scheduler=scheduler,
        trainable=[p for g in groups for p in g["params"]], size=image_size(visual),
        text_classes=text.classes.to(dev).float(),
        captions=text.captions.to(dev).float() if text.captions is not None else None,
        caption_labels=text.caption_labels.to(dev) if text.caption_labels is not None else None,
        logit_scale=text.logit_scale,
    )


def attach_image_features(run: Run, features: Tensor | None, source: PretrainSource, info: DistInfo) -> None:
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


def restore(run: Run, cfg: PretrainConfig, path: Path, run_tag: str | None) -> RunState:
    """The state of a resumable checkpoint at ``path``; a fresh state if there is none or it is another
    run's (another config or ``run_tag``: never resumed, noted in ``resume_note``)."""
    state = RunState(history=new_history(run.objective.log_keys))
    if not path.is_file():
        return state
    saved = ckpt.read_checkpoint(path)
    stored = saved.get("extra", {}).get("resume_key")
    if stored is not None and stored != resume_key(cfg, run_tag):
        state.resume_note = f"checkpoint {path} is from another configuration: not resumed"
        log.warning("%s", state.resume_note)
        return state
    if set(saved.get("extra", {}).get("history", {})) != set(state.history):
        state.resume_note = f"checkpoint {path} holds another history layout (an older release): not resumed"
        log.warning("%s", state.resume_note)
        return state
    got = ckpt.apply_checkpoint(saved, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler)
    extra = got["extra"]
    state.step = state.last_saved = state.resumed_from = got["step"]
    state.history, state.evals, state.best = extra["history"], extra["evals"], extra["best"]
    return state


def logged_step(step: int, cfg: PretrainConfig, steps_per_epoch: int, total: int) -> bool:
    """Whether step ``step`` (counted from 1) is one whose scalars are read and logged: every
    ``cfg.log_every`` steps, at each epoch's end and at the last step (a function of the step alone, so a
    resumed run replays the same log rows)."""
    return step % max(1, cfg.log_every) == 0 or step % steps_per_epoch == 0 or step == total


def save_resume(run: Run, cfg: PretrainConfig, state: RunState, step: int, path: Path | None, info: DistInfo,
          run_tag: str | None) -> None:
    """Write the resume checkpoint (main rank; atomic, byte-reproducible)."""
    if path is None or not info.is_main:
        return
    extra = {"history": state.history, "evals": state.evals, "best": state.best, "config": asdict(cfg),
             "run_tag": run_tag, "resume_key": resume_key(cfg, run_tag)}
    ckpt.save_checkpoint(path, step=step, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                         extra=extra)
    state.last_saved = step


class ProgressBar:
    """One tqdm bar per epoch (main rank only)."""

    def __init__(self, cfg: PretrainConfig, sched: Schedule, enabled: bool) -> None:
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
        for k, short in obj.info.progress:
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
