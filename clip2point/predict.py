"""Point cloud → top-k class names with probabilities, for the CLI (paper §3.3 and §4).

A :class:`ModelBundle` holds everything a prediction needs, as plain callables and tensors:

* ``render``: points ``(B,N,3)`` → depth maps ``(B,V,H,W)`` (the run's view set and depth settings),
* ``featurizers``: one per feature path, depth maps → L2-normalised view features ``(B,V,C)``
  (the CLIP visual encoder and/or a pretrained depth encoder),
* ``text``: frozen class text features ``(K,C)`` and ``class_names``,
* ``adapter``: a trained adapter taking the paths' features (few-shot / supervised), or ``None`` for
  zero-shot, which uses Eq. 15 on the first path with ``logit_scale``.

Build one with :func:`zero_shot_bundle` from a loaded encoder, or :func:`bundle_from_checkpoint` from an
:class:`AdapterCheckpoint` (written by the ``fewshot`` / ``supervised`` stages as its :meth:`~AdapterCheckpoint.
to_dict`; the caller resolves the checkpoint's encoder keys to loaded encoders).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from clip2point.evaluate import zero_shot_logits
from clip2point.models.adapters import adapter_from_state

Featurizer = Callable[[Tensor], Tensor]
Renderer = Callable[[Tensor], Tensor]


@dataclass
class ModelBundle:
    """A ready-to-use classifier (see module docstring)."""

    class_names: list[str]
    text: Tensor
    render: Renderer
    featurizers: list[Featurizer]
    adapter: nn.Module | None = None
    logit_scale: float = 100.0
    up_axis: str = "y"
    normalize_points: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.text.ndim != 2 or self.text.shape[0] != len(self.class_names):
            k = len(self.class_names)
            raise ValueError(f"text features {tuple(self.text.shape)} do not match {k} classes")
        n_paths = getattr(self.adapter, "n_paths", 1)
        if len(self.featurizers) != n_paths:
            have = len(self.featurizers)
            raise ValueError(f"the adapter takes {n_paths} feature path(s), the bundle has {have}")


@dataclass
class AdapterCheckpoint:
    """A trained adapter (Eq. 2–4 or 16–19) with everything needed to classify raw clouds with it.

    On disk it is the plain dict of :meth:`to_dict` (``torch.save``); :meth:`from_dict` reads such a dict
    (optional keys may be absent; unknown keys are kept in ``extra``).

    ``adapter``: :func:`~clip2point.models.adapters.adapter_state`; ``text``: ``(K,C)`` class text features;
    ``views``: a view-set name; ``distance`` and ``depth`` (DepthConfig kwargs): the depth rendering;
    ``paths``: one encoder key per feature path (e.g. ``["clip", "intra_cross-seed2"]``) and ``encoders``:
    how to load each (``{"variant", "seed"}``); the rest records where it came from.
    """

    adapter: dict[str, Any]
    class_names: list[str]
    text: Tensor
    views: str
    distance: float
    depth: dict[str, Any]
    paths: list[str]
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    logit_scale: float = 100.0
    dataset: str | None = None
    mode: str | None = None
    seed: int | None = None
    val_acc: float | None = None
    best_epoch: int | None = None
    up_axis: str = "y"
    clip_model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AdapterCheckpoint:
        """From a checkpoint dict (``KeyError`` naming a missing required key)."""
        names = [f.name for f in fields(cls) if f.name != "extra"]
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise KeyError(f"adapter checkpoint lacks {missing} (has: {sorted(d)})")
        return cls(**{k: d[k] for k in names if k in d}, extra={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The on-disk dict: the fields in declaration order, then ``extra``."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**out, **self.extra}


def unit_sphere(points: Tensor) -> Tensor:
    """Centre ``(…,N,3)`` clouds on their centroid and scale the farthest point to radius 1 (same dtype).

    Exact for any finite input whatever its scale: each cloud is first divided by a power of two (exact) that
    brings its largest |coordinate| into [0.5, 1), so squared norms neither overflow (a float32 cloud ×1e30
    once gave inf radii and blank maps) nor underflow (×1e-30 collapsed to a dot); centre and radius are then
    computed in float64. A cloud ×2**k gives bit-identical output, the same rule as
    :func:`clip2point.sampling.normalize_unit_sphere`. A cloud whose points all coincide maps to the origin."""
    p = points.double()
    m = p.abs().amax(dim=(-2, -1), keepdim=True)
    _, e = torch.frexp(m)
    p = torch.ldexp(p, -e)
    centred = p - p.mean(dim=-2, keepdim=True)
    radius = centred.square().sum(dim=-1).amax(dim=-1, keepdim=True).sqrt()
    radius = torch.where(radius > 0, radius, torch.ones_like(radius))
    return (centred / radius.unsqueeze(-1)).to(points.dtype)


@torch.no_grad()
def predict_proba(points: Tensor | np.ndarray, bundle: ModelBundle) -> Tensor:
    """Class probabilities ``(B,K)`` of clouds ``(B,N,3)`` (or one cloud ``(N,3)`` → ``(1,K)``)."""
    x = torch.as_tensor(np.asarray(points, dtype=np.float32)) if isinstance(points, np.ndarray) else points
    x = x.float()
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3 or x.shape[-1] != 3 or x.shape[1] == 0:
        raise ValueError(f"points must be (N, 3) or (B, N, 3) with N > 0, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("points contain NaN or infinite coordinates")
    if bundle.up_axis != "y":
        from clip2point.render.views import to_y_up

        x = torch.as_tensor(to_y_up(x, bundle.up_axis)).float()
    if bundle.normalize_points:
        x = unit_sphere(x)
    depth = bundle.render(x)
    feats = [f(depth).float().cpu() for f in bundle.featurizers]
    text = bundle.text.float().cpu()
    if bundle.adapter is None:
        logits = zero_shot_logits(feats[0], text, bundle.logit_scale)  # Eq. 15
    else:
        bundle.adapter.eval()
        device = next(bundle.adapter.parameters()).device
        logits = bundle.adapter(*[f.to(device) for f in feats], text.to(device)).cpu()
    return logits.softmax(dim=-1)


def predict(points: Tensor | np.ndarray, bundle: ModelBundle, top_k: int = 5) -> list[tuple[str, float]]:
    """Top-``k`` ``(class name, probability)`` pairs for one cloud ``(N,3)``, most probable first."""
    if isinstance(points, (Tensor, np.ndarray)) and points.ndim != 2:
        raise ValueError(f"predict takes one cloud (N, 3), got shape {tuple(points.shape)}")
    probs = predict_proba(points, bundle)[0]
    k = max(1, min(top_k, probs.numel()))
    values, idx = probs.topk(k)
    return [(bundle.class_names[i], float(v)) for v, i in zip(values.tolist(), idx.tolist(), strict=True)]


# ---------------------------------------------------------------------------------------------- builders


def depth_renderer(views: str, distance: float, **depth_cfg: Any) -> Renderer:
    """``points -> depth`` with a named view set (``render.views.VIEW_SETS``) and ``DepthConfig`` kwargs."""
    from clip2point.configs import DepthConfig
    from clip2point.render.depth import render_depth
    from clip2point.render.views import VIEW_SETS

    view_set, cfg = VIEW_SETS[views], DepthConfig(**depth_cfg)
    return lambda pts: render_depth(pts, view_set, distance, cfg)


def encode_views_raw(visual: nn.Module, depth: Tensor, batch_size: int | None = None) -> Tensor:
    """Per-view features ``(B,V,C)`` of depth maps ``(B,V,H,W)`` as the encoder outputs them (not
    L2-normalised): the input of the released DPA heads (released ``models/dpa.py``)."""
    from clip2point.models.clip import depth_to_clip_input, image_size

    b, v, h, w = depth.shape
    size = image_size(visual)
    device = next(visual.parameters()).device
    flat = depth.reshape(b * v, h, w)
    chunk = batch_size or flat.shape[0]
    feats = [visual(depth_to_clip_input(c.to(device), size)).float() for c in flat.split(chunk)]
    return torch.cat(feats).view(b, v, -1)


def visual_featurizer(visual: nn.Module, batch_size: int = 64, normalize: bool = True) -> Featurizer:
    """``depth -> (B,V,C)`` view features of a visual encoder: L2-normalised
    (``clip2point.models.clip.encode_views``), or raw with ``normalize=False`` (:func:`encode_views_raw`)."""
    from clip2point.models.clip import encode_views

    visual.eval()
    if not normalize:
        return lambda depth: encode_views_raw(visual, depth, batch_size)
    return lambda depth: encode_views(visual, depth, batch_size)


def zero_shot_bundle(
    visual: nn.Module,
    text: Tensor,
    class_names: Sequence[str],
    views: str = "zeroshot6",
    distance: float = 1.0,
    depth_cfg: Mapping[str, Any] | None = None,
    logit_scale: float = 100.0,
    up_axis: str = "y",
) -> ModelBundle:
    """Zero-shot classifier (Eq. 15) of one visual encoder (CLIP's, or a pretrained depth encoder)."""
    renderer = depth_renderer(views, distance, **dict(depth_cfg or {}))
    return ModelBundle(list(class_names), text, renderer, [visual_featurizer(visual)], None, logit_scale, up_axis)


def bundle_from_checkpoint(
    ckpt: AdapterCheckpoint | Mapping[str, Any], encoders: Mapping[str, nn.Module], up_axis: str = "y"
) -> ModelBundle:
    """Rebuild the classifier of an adapter checkpoint (an :class:`AdapterCheckpoint` or its dict).

    ``encoders`` maps each of the checkpoint's ``paths`` (encoder keys, e.g. ``"intra_cross-seed0"``) to a
    loaded visual encoder.
    """
    if not isinstance(ckpt, AdapterCheckpoint):
        ckpt = AdapterCheckpoint.from_dict(ckpt)
    missing = [p for p in ckpt.paths if p not in encoders]
    if missing:
        raise KeyError(f"checkpoint needs encoder(s) {missing}; given: {sorted(encoders)}")
    return ModelBundle(
        list(ckpt.class_names),
        torch.as_tensor(ckpt.text).float(),
        depth_renderer(ckpt.views, float(ckpt.distance), **dict(ckpt.depth)),
        [visual_featurizer(encoders[p]) for p in ckpt.paths],
        adapter_from_state(ckpt.adapter),
        float(ckpt.logit_scale),
        up_axis,
        meta={k: v for k, v in ckpt.to_dict().items() if k not in ("adapter", "text")},
    )


#: The released few-shot prompt (released ``fewshot.py``: ``'image of a ' + name``, no full stop).
RELEASED_TEMPLATE = "image of a {}"
#: The released few-shot renderer's point footprint (``Renderer(points_radius=0.02)``).
RELEASED_DEPTH = {"footprint": "disc", "radius": 0.02}


def released_dpa_bundle(
    depth_encoder: nn.Module,
    clip_encoder: nn.Module,
    adapter: nn.Module,
    text: Tensor,
    class_names: Sequence[str],
    views: str = "pretrain10",
    distance: float = 1.0,
    depth_cfg: Mapping[str, Any] | None = None,
    up_axis: str = "z_released",
) -> ModelBundle:
    """The released few-shot DPA classifier (Eq. 17-19, released ``models/dpa.py`` + ``fewshot.py``).

    Both encoders read the same depth maps; their raw (un-normalised) view features go to ``adapter`` (a
    :class:`~clip2point.models.adapters.ReleasedDualPathAdapter`, called ``adapter(clip, depth, text)``),
    whose logits are plain cosines (scale 1) of the normalised fused feature with ``text`` ``(K,C)``
    (normalised class features of :data:`RELEASED_TEMPLATE`). ``depth_cfg`` defaults to
    :data:`RELEASED_DEPTH`.
    """
    cfg = dict(RELEASED_DEPTH if depth_cfg is None else depth_cfg)
    return ModelBundle(
        list(class_names),
        torch.as_tensor(text).float(),
        depth_renderer(views, float(distance), **cfg),
        [visual_featurizer(clip_encoder, normalize=False), visual_featurizer(depth_encoder, normalize=False)],
        adapter.eval(),
        1.0,
        up_axis,
        meta={"released_dpa": True, "views": views, "distance": float(distance), "depth": cfg},
    )
