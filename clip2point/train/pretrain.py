"""CLIP2Point image–depth pre-training (paper §3.2.1, Fig. 2) and its two controls.

Variants:

- ``intra_cross`` (CLIP2Point): E_d initialised from CLIP's visual encoder E_i, E_i frozen. Each sample
  is one random view of the 10, its RGB render I_i (→ frozen E_i) and two depth maps D_{i,d1}, D_{i,d2}
  rendered on the fly from the points at independently jittered distances (→ E_d). Loss Eq. 11:
  L_intra (Eq. 5–7) / σ² + L_cross (Eq. 8–10, mean depth feature vs image feature) + log(σ + 1).
- ``cross_only`` (§5.6 ablation): one depth map at the base distance, loss Eq. 10 only.
- ``rgb_control`` (equal-compute control, not in the paper): CLIP's image encoder trained further on the
  same RGB renders with the bootstrap's image–text objective (class-aware contrastive against the frozen
  caption features), same steps and batch; then evaluated zero-shot on depth like the others.

Selection: zero-shot accuracy (Eq. 15) on depth maps of the *pre-training pool's validation split*
(6 zero-shot views). Never a downstream test split. The step-0 accuracy (CLIP's encoder, no
pre-training) is recorded as the baseline; the selected checkpoint is the best trained one.

Determinism: each epoch's order comes from ``seed + epoch`` and each step's views and distances from
``seed, step``, drawn for the *global* batch and then sliced per rank, so one process and many see the same
global batches and a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from clip2point.losses import (
    balanced_loss,
    cross_modality_loss,
    intra_modality_loss,
    mean_depth_feature,
    multi_positive_contrastive,
)
from clip2point.models.clip import depth_to_clip_input, encode_views, image_size, rgb_to_clip_input
from clip2point.train import checkpoint as ckpt
from clip2point.train.distributed import (
    DistInfo,
    all_reduce_sum,
    autocast,
    backward_scale,
    gather_with_grad,
    shard_indices,
)
from clip2point.train.optim import build_optimizer, cosine_with_warmup, param_groups

VARIANTS = ("intra_cross", "cross_only", "rgb_control")


class TrainingDiverged(RuntimeError):
    """The loss (or a gradient) became non-finite; ``str()`` is one line naming the step and checkpoint."""


class DepthRenderFn(Protocol):
    def __call__(self, points: Tensor, view_idx: Tensor, distance: Tensor) -> Tensor:
        """points (B,N,3), view index (B,) into the training view set, distance (B,) → depth (B,H,W)."""
        ...


@dataclass
class PretrainConfig:
    variant: str = "intra_cross"
    epochs: int = 5
    batch_size: int = 64
    lr: float = 6e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    temperature: float = 0.07
    sigma_init: float = 1.0
    sigma_lr: float = 1e-2
    optimizer: str = "lamb"
    eval_every: int = 1  # epochs
    bf16: bool = True
    seed: int = 0
    distance: float = 1.0
    jitter: float = 0.1
    max_steps: int = 0  # 0: epochs × steps per epoch
    ckpt_every: int = 0  # steps between resume checkpoints; 0: end of each epoch only
    eval_batch_size: int = 256
    min_lr_ratio: float = 0.0


@dataclass
class PretrainData:
    """Training split of the pre-training pool, in memory."""

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
    metrics: dict[str, Any]
    history: dict[str, list] = field(default_factory=dict)
    final_state: dict[str, Tensor] = field(default_factory=dict)  # E_d and σ after the last step


class DepthPretrainModel(nn.Module):
    """The trainable part: E_d (a copy of CLIP's visual encoder) and Eq. 11's σ."""

    def __init__(self, visual: nn.Module, sigma_init: float = 1.0, with_sigma: bool = True) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(visual)
        self.encoder.requires_grad_(True)
        self.sigma = nn.Parameter(torch.tensor(float(sigma_init)), requires_grad=with_sigma)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


def zero_shot_accuracy(
    encoder: nn.Module, evalset: EvalSet, text: Tensor, batch_size: int = 256
) -> tuple[float, Tensor]:
    """Eq. 15 zero-shot accuracy of multi-view depth maps: argmax of the mean over views of F_v·F_Tᵀ.

    (Same reading of Eq. 15 as :func:`clip2point.evaluate.zero_shot_logits`: mean of per-view logits.)
    """
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        feats = encode_views(encoder, evalset.depth, batch_size=batch_size)
        logits = torch.einsum("bvc,kc->bk", feats, text.to(feats.device).float()) / feats.shape[1]
        pred = logits.argmax(-1).cpu()
    encoder.train(was_training)
    return float((pred == evalset.labels.cpu()).float().mean()), pred


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step) + 7)


def _jitter(base: float, jitter: float, n: int, g: torch.Generator) -> Tensor:
    """Distances d·(1 + U(−jitter, jitter)) (§5.2: range [0.9, 1.1) for jitter 0.1), one per sample."""
    # the same draw as render.depth.jittered_distances(n, 1, ...)
    return base * (1.0 + (2.0 * torch.rand(n, generator=g) - 1.0) * jitter)


def _check_finite_grads(params: list[Tensor]) -> bool:
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return bool(torch.isfinite(torch.stack(norms).sum())) if norms else True


def pretrain(
    visual: nn.Module,
    data: PretrainData,
    val: EvalSet,
    text: TextSide,
    cfg: PretrainConfig,
    render: DepthRenderFn,
    *,
    info: DistInfo | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
) -> PretrainResult:
    """Run one pre-training variant; returns the selected encoder's weights, metrics and curves.

    ``visual`` is CLIP's image encoder E_i (left untouched: E_d is a copy). ``render`` draws the depth maps
    on the fly. ``on_step(step, scalars)`` is called after every optimizer step (``step`` counts from 1; an
    exception there interrupts the run like a kill), ``on_eval(step, scalars)`` after each evaluation.
    With ``checkpoint_path``, resume checkpoints are written atomically every ``ckpt_every`` steps and at
    each epoch's end; ``resume=True`` continues from it when present.
    """
    if cfg.variant not in VARIANTS:
        raise ValueError(f"unknown pretraining variant '{cfg.variant}' ({' | '.join(VARIANTS)})")
    info = info or DistInfo()
    dev = info.device
    torch.manual_seed(cfg.seed)
    size = image_size(visual)
    n_train = data.points.shape[0]
    if cfg.batch_size % info.world:
        raise ValueError(f"batch_size {cfg.batch_size} does not divide by world size {info.world}")
    steps_per_epoch = n_train // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n_train} training samples")
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    n_epochs = math.ceil(total / steps_per_epoch)
    n_views = data.rgb.shape[1]

    frozen = visual.to(dev).eval().requires_grad_(False)  # E_i: frozen, never receives a gradient
    model = DepthPretrainModel(visual, cfg.sigma_init, with_sigma=cfg.variant == "intra_cross").to(dev)
    groups = param_groups(model.encoder, cfg.lr, cfg.weight_decay)
    if cfg.variant == "intra_cross":
        groups.append({"params": [model.sigma], "lr": cfg.sigma_lr, "weight_decay": 0.0, "name": "sigma"})
    optimizer = build_optimizer(cfg.optimizer, groups, cfg.lr)
    scheduler = cosine_with_warmup(optimizer, cfg.warmup_steps, total, cfg.min_lr_ratio)
    trainable = [p for g in groups for p in g["params"]]
    ddp: nn.Module = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    text_classes = text.classes.to(dev).float()
    captions = text.captions.to(dev).float() if text.captions is not None else None
    caption_labels = text.caption_labels.to(dev) if text.caption_labels is not None else None
    if cfg.variant == "rgb_control" and captions is None:
        raise ValueError("rgb_control needs caption features (TextSide.captions)")

    history: dict[str, list] = {"step": [], "loss": [], "l_intra": [], "l_cross": [], "sigma": [], "lr": []}
    evals: list[dict[str, float]] = []
    best: dict[str, Any] = {"acc": -1.0, "step": -1, "encoder": None}
    start = 0
    ckpt_path = Path(checkpoint_path) if checkpoint_path else None
    last_saved = -1
    if resume and ckpt_path is not None and ckpt_path.is_file():
        got = ckpt.load_checkpoint(ckpt_path, model=model, optimizer=optimizer, scheduler=scheduler)
        start = got["step"]
        extra = got["extra"]
        history, evals, best = extra["history"], extra["evals"], extra["best"]
        last_saved = start

    def save(step: int) -> None:
        nonlocal last_saved
        if ckpt_path is None or not info.is_main:
            return
        extra = {"history": history, "evals": evals, "best": best, "config": asdict(cfg)}
        ckpt.save_checkpoint(ckpt_path, step=step, model=model, optimizer=optimizer, scheduler=scheduler,
                             extra=extra)
        last_saved = step

    def evaluate(step: int) -> None:
        acc, _ = zero_shot_accuracy(model.encoder, val, text_classes, cfg.eval_batch_size)
        evals.append({"step": step, "val_zeroshot": acc})
        if step > 0 and acc > best["acc"]:
            best.update(acc=acc, step=step, encoder={k: v.detach().cpu().clone()
                                                     for k, v in model.encoder.state_dict().items()})
        if on_eval is not None:
            on_eval(step, {"val_zeroshot": acc})

    if start == 0 and not evals:
        evaluate(0)  # CLIP's visual encoder on depth, before any pre-training

    t_start = time.perf_counter()
    samples_seen = 0
    bar = None
    model.train()
    local = shard_indices(cfg.batch_size, info)
    for step in range(start, total):
        epoch, i = divmod(step, steps_per_epoch)
        if bar is None or i == 0:
            if bar is not None:
                bar.close()
            left = min(steps_per_epoch, total - epoch * steps_per_epoch) - i
            bar = tqdm(total=left, desc=f"{cfg.variant} epoch {epoch + 1}/{n_epochs}", unit="step",
                       disable=not (progress and info.is_main), leave=False, dynamic_ncols=True)
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
        idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size][local]
        g = _step_generator(cfg.seed, step)
        view = torch.randint(0, n_views, (cfg.batch_size,), generator=g)[local]
        d1 = _jitter(cfg.distance, cfg.jitter, cfg.batch_size, g)[local]
        d2 = _jitter(cfg.distance, cfg.jitter, cfg.batch_size, g)[local]
        flip = (torch.rand(cfg.batch_size, generator=g) < 0.5)[local]
        rgb = data.rgb[idx, view]  # (b, H, W, 3)
        t0 = time.perf_counter()
        batch: dict[str, Tensor] = {"rgb": rgb, "labels": data.labels[idx], "flip": flip}
        if cfg.variant != "rgb_control":
            pts = data.points[idx].to(dev)
            if cfg.variant == "intra_cross":
                batch["depth1"], batch["depth2"] = render(pts, view, d1), render(pts, view, d2)
            else:
                batch["depth"] = render(pts, view, torch.full((len(idx),), float(cfg.distance)))
        t_render = time.perf_counter() - t0
        loss, scalars = step_loss(cfg.variant, ddp, frozen, model.sigma, batch, info, size=size,
                                  temperature=cfg.temperature, bf16=cfg.bf16, captions=captions,
                                  caption_labels=caption_labels, logit_scale=text.logit_scale)
        scalars["render_s"] = t_render
        loss_global = float(all_reduce_sum(loss.detach(), info))
        if not math.isfinite(loss_global):
            if bar is not None:
                bar.close()
            raise TrainingDiverged(
                f"loss became {loss_global} at step {step + 1} (epoch {epoch + 1}); stopped — last good "
                f"checkpoint: {ckpt_path if last_saved >= 0 else 'none written'} (step {max(last_saved, 0)})"
            )
        optimizer.zero_grad(set_to_none=True)
        (loss * backward_scale(info)).backward()
        if not _check_finite_grads(trainable):
            if bar is not None:
                bar.close()
            raise TrainingDiverged(
                f"non-finite gradient at step {step + 1} (epoch {epoch + 1}); stopped — last good "
                f"checkpoint: {ckpt_path if last_saved >= 0 else 'none written'} (step {max(last_saved, 0)})"
            )
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            if cfg.variant == "intra_cross":
                model.sigma.clamp_(min=1e-3)
        dt = time.perf_counter() - t0
        samples_seen += cfg.batch_size
        scalars.update(loss=loss_global, sigma=float(model.sigma.detach()),
                       lr=optimizer.param_groups[0]["lr"], samples_per_s=cfg.batch_size / dt)
        history["step"].append(step + 1)
        history["loss"].append(loss_global)
        history["l_intra"].append(scalars.get("l_intra", float("nan")))
        history["l_cross"].append(scalars.get("l_cross", scalars.get("l_rgb", float("nan"))))
        history["sigma"].append(float(model.sigma.detach()))
        history["lr"].append(scalars["lr"])
        if bar is not None:
            post = {"loss": f"{loss_global:.3f}"}
            if "l_intra" in scalars:
                post["intra"] = f"{scalars['l_intra']:.3f}"
            if "l_cross" in scalars:
                post["cross"] = f"{scalars['l_cross']:.3f}"
            if cfg.variant == "intra_cross":
                post["σ"] = f"{scalars['sigma']:.3f}"
            post["lr"] = f"{scalars['lr']:.2e}"
            post["smp/s"] = f"{scalars['samples_per_s']:.0f}"
            bar.set_postfix(post, refresh=False)
            bar.update(1)
        done = step + 1
        end_of_epoch = done % steps_per_epoch == 0 or done == total
        if end_of_epoch and ((epoch + 1) % max(1, cfg.eval_every) == 0 or done == total):
            evaluate(done)
        if end_of_epoch or (cfg.ckpt_every and done % cfg.ckpt_every == 0):
            save(done)
        if on_step is not None:
            on_step(done, scalars)
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t_start
    if best["encoder"] is None:  # no trained checkpoint evaluated (e.g. zero steps): keep the last weights
        acc, _ = zero_shot_accuracy(model.encoder, val, text_classes, cfg.eval_batch_size)
        best.update(acc=acc, step=total, encoder={k: v.detach().cpu().clone()
                                                  for k, v in model.encoder.state_dict().items()})
    metrics = {
        "variant": cfg.variant,
        "seed": cfg.seed,
        "steps": total,
        "steps_per_epoch": steps_per_epoch,
        "epochs": n_epochs,
        "batch_size": cfg.batch_size,
        "world_size": info.world,
        "val_zeroshot_before": evals[0]["val_zeroshot"] if evals else None,
        "val_zeroshot_best": best["acc"],
        "best_step": best["step"],
        "val_zeroshot_curve": evals,
        "sigma_init": cfg.sigma_init,
        "sigma_final": history["sigma"][-1] if history["sigma"] else cfg.sigma_init,
        "sigma_trajectory": _thin(history["step"], history["sigma"]),
        "final_loss": history["loss"][-1] if history["loss"] else None,
        "train_wall_s": round(wall, 2),
        "samples_per_s": round(samples_seen / wall, 2) if wall > 0 and samples_seen else None,
    }
    final = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return PretrainResult(encoder_state=best["encoder"], metrics=metrics, history=history, final_state=final)


class ViewDepthRenderer:
    """:class:`DepthRenderFn` over ``clip2point.render.depth.render_depth``: one view per sample, one call.

    Each cloud is first rotated by its view's world→camera rotation (``view_rotations``), expressed in the
    front view's frame, so that one ``render_depth`` call with the single front view renders every sample
    in its own view (identical maps to rendering that view directly; one call instead of one per view).
    """

    def __init__(self, view_set: Any, depth_cfg: Any) -> None:
        from clip2point.render.views import ViewSet, view_rotations

        self.cfg = depth_cfg
        self.front = ViewSet(elev=(0.0,), azim=(0.0,))
        r_views = view_rotations(view_set.elev, view_set.azim)  # (V, 3, 3)
        r_front = view_rotations(self.front.elev, self.front.azim)[0]
        self.rot = r_front.t() @ r_views  # (V, 3, 3): R_front · (this) = R_v

    def __call__(self, points: Tensor, view_idx: Tensor, distance: Tensor) -> Tensor:
        from clip2point.render.depth import render_depth

        rot = self.rot.to(points.device, points.dtype)[view_idx.to(points.device)]  # (B, 3, 3)
        rotated = torch.bmm(points, rot.transpose(1, 2))
        dist = distance.view(-1, 1).float().to(points.device)
        return render_depth(rotated, self.front, dist, self.cfg)[:, 0]


def render_eval_set(points: Tensor, labels: Tensor, view_set: Any, depth_cfg: Any, distance: float,
                    batch_size: int = 64) -> EvalSet:
    """Render the multi-view depth maps of a selection split once (base distance, all views)."""
    from clip2point.render.depth import render_depth

    maps = [render_depth(p, view_set, float(distance), depth_cfg).cpu() for p in points.split(batch_size)]
    return EvalSet(depth=torch.cat(maps), labels=labels)


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
    bf16: bool = True,
    captions: Tensor | None = None,
    caption_labels: Tensor | None = None,
    logit_scale: float = 100.0,
) -> tuple[Tensor, dict[str, float]]:
    """This rank's share of the loss of one global batch (Σ over ranks = the single-process loss).

    ``batch`` (local rows): ``rgb`` uint8 (b,H,W,3); ``depth1``/``depth2`` (b,H,W) for ``intra_cross``,
    ``depth`` for ``cross_only``; ``labels`` and ``flip`` for ``rgb_control``. ``encoder`` is E_d (possibly
    DDP-wrapped), ``frozen`` E_i. Returns the loss share and the global scalars (loss terms).
    """
    dev = info.device
    scalars: dict[str, float] = {}
    with autocast(dev, bf16):
        if variant == "rgb_control":
            x = rgb_to_clip_input(batch["rgb"], size).to(dev)
            x = torch.where(batch["flip"].to(dev).view(-1, 1, 1, 1), x.flip(-1), x)
            f_all, _ = gather_with_grad(encoder(x).float(), info)
            labels = batch["labels"].to(dev)
            labels_all = _gather_plain(labels, info) if info.enabled else labels
            # every rank computes the global loss and takes 1/world of it: Σ over ranks = that loss
            full = multi_positive_contrastive(f_all, captions, labels_all, caption_labels, logit_scale)
            scalars["l_rgb"] = float(full.detach())
            return full / info.world, scalars
        with torch.no_grad():
            f_img = frozen(rgb_to_clip_input(batch["rgb"], size).to(dev)).float()
        f_img_all, off = gather_with_grad(f_img, info)
        if variant == "intra_cross":
            depth = torch.cat([batch["depth1"], batch["depth2"]]).to(dev)
            f1, f2 = encoder(depth_to_clip_input(depth, size)).float().chunk(2)  # F_{i,d1}, F_{i,d2}
            f1_all, _ = gather_with_grad(f1, info)
            f2_all, _ = gather_with_grad(f2, info)
            l_intra = intra_modality_loss(f1, f2, temperature, f1_all, f2_all, off)  # Eq. 5–7
            fd, fd_all = mean_depth_feature(f1, f2), mean_depth_feature(f1_all, f2_all)
            l_cross = cross_modality_loss(fd, f_img, temperature, fd_all, f_img_all, off)  # Eq. 8–10
            loss = balanced_loss(l_intra, l_cross, sigma, 1.0 / info.world)  # Eq. 11
            scalars["l_intra"] = float(all_reduce_sum(l_intra.detach(), info))
        elif variant == "cross_only":
            f = encoder(depth_to_clip_input(batch["depth"].to(dev), size)).float()
            f_all, off = gather_with_grad(f, info)
            l_cross = cross_modality_loss(f, f_img, temperature, f_all, f_img_all, off)  # Eq. 10 only
            loss = l_cross
        else:
            raise ValueError(f"unknown pretraining variant '{variant}'")
        scalars["l_cross"] = float(all_reduce_sum(l_cross.detach(), info))
    return loss, scalars


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
