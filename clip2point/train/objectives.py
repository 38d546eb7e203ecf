"""Pre-training objectives (paper §3.2.1, Eq. 5–11, §5.6) as a registry: ``PretrainConfig.variant`` names one.

Each :class:`Objective` declares what its batches must hold (depth maps rendered from the points and at which
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

Adding an objective: its loss and :class:`Objective` here (a module constant), and its
:class:`~clip2point.train.objective_info.ObjectiveInfo` (name, log terms, progress fields, report rows, the
constant's ``module:attribute``) in :mod:`clip2point.train.objective_info`, which lists the names without
importing torch. The loop (:mod:`clip2point.train.pretrain`) and the pipeline know no objective by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from clip2point.losses import (
    balanced_loss,
    cross_modality_loss,
    intra_modality_loss,
    mean_depth_feature,
    multi_positive_contrastive,
)
from clip2point.models.clip import depth_to_clip_input, rgb_to_clip_input
from clip2point.precision import encoder_precision
from clip2point.train.distributed import DistInfo, all_reduce_sum, gather_with_grad
from clip2point.train.objective_info import ObjectiveInfo, objective_info


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
    image_features: bool = False

    def __post_init__(self) -> None:
        bad = [d for _, d in self.depth if d not in ("d1", "d2", "base")]
        if bad:
            raise ValueError(f"objective '{self.name}': depth distance must be d1, d2 or base, got {bad}")

    @property
    def needs_points(self) -> bool:
        return bool(self.depth)

    @property
    def info(self) -> ObjectiveInfo:
        return objective_info(self.name)

    @property
    def with_sigma(self) -> bool:
        """σ of Eq. 11 is learned (:attr:`ObjectiveInfo.with_sigma`)."""
        return self.info.with_sigma

    @property
    def log_keys(self) -> tuple[str, ...]:
        """The loss terms its ``loss`` returns (logged besides ``loss``, ``sigma`` and ``lr``)."""
        return self.info.log_terms


def get_objective(name: str) -> Objective:
    """The registered objective ``name`` (``ValueError`` listing the variants)."""
    return objective_info(name).load()


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
    labels_all = gather_plain(labels, info) if info.enabled else labels
    # every rank computes the global loss and takes 1/world of it: Σ over ranks = that loss
    full = multi_positive_contrastive(f_all, x.captions, labels_all, x.caption_labels, x.logit_scale)
    return full / info.world, {"l_rgb": full.detach()}


INTRA_CROSS = Objective("intra_cross", intra_cross_loss, depth=(("depth1", "d1"), ("depth2", "d2")),
                        image_features=True)
CROSS_ONLY = Objective("cross_only", cross_only_loss, depth=(("depth", "base"),), image_features=True)
RGB_CONTROL = Objective("rgb_control", rgb_control_loss, needs_labels=True, needs_captions=True)


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


def gather_plain(x: Tensor, info: DistInfo) -> Tensor:
    """All ranks' rows of a tensor that needs no gradient (e.g. labels), in rank order."""
    import torch.distributed as dist

    out = [torch.empty_like(x) for _ in range(info.world)]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out)
