"""Checkpoint selection during pre-training: zero-shot accuracy (Eq. 15) on depth maps of the *pre-training
pool's validation split* (6 zero-shot views), in memory (:class:`EvalSet`) or streamed
(:class:`~clip2point.train.pretrain_data.StreamingEvalSet`). Never a downstream test split. The loop
(:mod:`clip2point.train.pretrain`) records step 0 (CLIP's encoder, no pre-training) as the baseline and keeps
the best trained step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from clip2point.evaluate import zero_shot_logits
from clip2point.models.clip import encode_views
from clip2point.precision import encoder_precision
from clip2point.render.depth import render_depth
from clip2point.train.distributed import DistInfo, all_reduce_sum
from clip2point.train.pretrain_data import StreamingEvalSet


@dataclass
class EvalSet:
    """Depth maps of the selection split, rendered once: (M, V_eval, H, W) and labels (M,)."""

    depth: Tensor
    labels: Tensor


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


def val_accuracy(encoder: nn.Module, val: EvalSet | StreamingEvalSet, text: Tensor, batch_size: int,
                 info: DistInfo, precision: str = "fp32") -> float:
    """Eq. 15 selection accuracy, E_d at the run's ``precision`` (the same setting as the training step)."""
    with encoder_precision(info.device, precision):
        if isinstance(val, EvalSet):
            return zero_shot_accuracy(encoder, val, text, batch_size)[0]
        return streaming_zero_shot_accuracy(encoder, val, text, batch_size, info)


def render_eval_set(points: Tensor, labels: Tensor, view_set: Any, depth_cfg: Any, distance: float,
                    batch_size: int = 64) -> EvalSet:
    """Render the multi-view depth maps of a selection split once (base distance, all views)."""
    maps = [render_depth(p, view_set, float(distance), depth_cfg).cpu() for p in points.split(batch_size)]
    return EvalSet(depth=torch.cat(maps), labels=labels)
