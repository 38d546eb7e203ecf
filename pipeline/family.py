"""The projection family on one protocol (issue 19): PointCLIP-style, PointCLIP V2 and CLIP2Point depth maps,
each read by the run's CLIP (no pre-training) and by its pre-trained depth encoders, on the same test split,
the same prompts and the same selection rule.

A member (:data:`FAMILY`) is a depth setting (overrides of ``params.depth``), a view set and the view-weight
rules it is reported with. Rules: ``mean`` (Eq. 15) or ``searched`` (PointCLIP's per-view weights,
:func:`clip2point.view_weights.search_view_weights`, searched per encoder on a stratified
``zeroshot.val_fraction`` of the benchmark's **training** split; the released PointCLIP / PointCLIP V2 search
on the test split, which is not done here). Facts per member:

* ``pointclip``: Eq. 12's weighted depth value with R = 1 (no dilation), the 6 orthogonal views, searched
  weights — PointCLIP's projection-without-rendering in this project's rasteriser (its camera, not
  PointCLIP's own code);
* ``pointclip_v2``: the realistic projection (:mod:`clip2point.render.realistic`) with its own 10 views
  (``realistic10``), mean and searched weights;
* ``clip2point``: Eq. 14's min depth, Eq. 13's square block R = ``depth.dilation``, the 6 views, mean;
* ``clip2point_disc``: Eq. 14's min depth with the released disc footprint (r = ``depth.radius``), mean.

The pre-trained encoders are those of the run (``pretrain@intra_cross-<seed>``): pre-trained on the maps of
``params.depth`` (``depth.projection``); a member with another projection measures how they transfer. Pre-training
on realistic projections is ``dvc exp run -S depth.projection=realistic`` (README).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clip2point.configs import DepthConfig
from clip2point.evaluate import evaluate_zero_shot
from clip2point.view_weights import DEFAULT_GRID, search_view_weights


@dataclass(frozen=True)
class Member:
    """One projection of the family: its label, overrides of ``params.depth``, view set and weight rules."""

    label: str
    depth: Mapping[str, Any]
    views: str
    rules: tuple[str, ...]


FAMILY: dict[str, Member] = {
    "pointclip": Member("PointCLIP-style (Eq. 12 weighted, R = 1)",
                        {"projection": "orthographic", "mode": "weighted", "dilation": 1, "footprint": "square"},
                        "zeroshot6", ("searched",)),
    "pointclip_v2": Member("PointCLIP V2 (realistic projection)", {"projection": "realistic"}, "realistic10",
                           ("mean", "searched")),
    "clip2point": Member("CLIP2Point (Eq. 14 min, square R)",
                         {"projection": "orthographic", "mode": "min", "footprint": "square"}, "zeroshot6",
                         ("mean",)),
    "clip2point_disc": Member("CLIP2Point (Eq. 14 min, released disc)",
                              {"projection": "orthographic", "mode": "min", "footprint": "disc"}, "zeroshot6",
                              ("mean",)),
}


def member_depth(name: str, base: DepthConfig) -> DepthConfig:
    """The member's depth setting: ``base`` (the run's ``params.depth``) with the member's overrides."""
    fields = {f: getattr(base, f) for f in DepthConfig.__dataclass_fields__}
    return DepthConfig(**{**fields, **FAMILY[name].depth})


def row_key(member: str, rule: str) -> str:
    """``<member>`` for the member's first rule, ``<member>+<rule>`` for the others."""
    return member if rule == FAMILY[member].rules[0] else f"{member}+{rule}"


def family_rows(
    member: str,
    feats: Mapping[str, Mapping[str, torch.Tensor]],
    groups: Mapping[str, Sequence[str]],
    text: torch.Tensor,
    labels: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    logit_scale: float,
    grid: Sequence[float] = DEFAULT_GRID,
) -> dict[str, dict[str, Any]]:
    """Zero-shot rows of one member.

    ``feats[split][encoder]``: (M, V, C) view features of splits ``val`` (the training-split hold-out) and
    ``test``; ``groups``: column name (``without_pretraining`` / ``with_pretraining``) → encoder keys (one per
    seed). Returns ``{row: {"label", "rule", "views", column: aggregate over the group's encoders, "weights"}}``.
    """
    rows: dict[str, dict[str, Any]] = {}
    for rule in FAMILY[member].rules:
        row: dict[str, Any] = {"member": member, "label": FAMILY[member].label, "rule": rule,
                               "views": FAMILY[member].views, "weights": {}}
        for column, encs in groups.items():
            weights = None
            if rule == "searched":
                weights = {}
                for k in encs:
                    w, _ = search_view_weights(feats["val"][k], labels["val"], text, grid)
                    weights[k] = [float(x) for x in w]
                row["weights"].update(weights)
            runs = ((k, feats["test"][k]) for k in encs)
            agg, _, _ = evaluate_zero_shot(runs, text, labels["test"], class_names, logit_scale, weights)
            row[column] = {"acc": agg["acc"], "acc_std": agg["acc_std"], "n_seeds": agg["n_seeds"],
                           "seeds": {s: {"acc": v["acc"]} for s, v in agg.get("seeds", {}).items()}}
        rows[row_key(member, rule)] = row
    return rows
