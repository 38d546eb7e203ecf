"""Lightweight adapters over frozen multi-view features (paper Eq. 2–4 and Eq. 16–19).

Every adapter maps cached per-view features to class logits against *frozen* text features:

* :class:`GlobalViewAdapter` (Eq. 16): ``G = f2(ReLU(f1(concat_v F_v)))``, logits from ``G`` alone.
* :class:`DualPathAdapter` (Eq. 17–19): one global-view branch per encoder (CLIP path ``C`` and the
  pretrained depth path ``D``); logits from the mean ``(G^C + G^D) / 2``.
* :class:`InterViewAdapter` (PointCLIP, Eq. 2–4): ``G`` as above, expanded back to the views with one
  ``W_v`` per view (Eq. 3), residual ``F_v + F̂_v``; the post-searched view weights ``α_v`` of Eq. 4 are
  replaced by the plain mean of the view logits, as the paper does in its ablation (§5.6, "as Eq. (15)").
* :class:`DualPathInterViewAdapter`: Table 4's "dual path × inter-view" cell: one inter-view branch per
  encoder; the two adapted view features are averaged per view (the Eq. 19 recipe) before the view logits
  are averaged.

Logits and the logit scale (a documented choice). The paper writes ``softmax(G {F_k^T}^T)`` without a
norm or a temperature. Here the adapted feature and the text features are L2-normalised, so a logit is a
cosine similarity times a scale ``s``, as in CLIP itself. ``s = exp(t)`` is *learnable* (initialised at
CLIP's initial ``1 / 0.07``, clamped to CLIP's ceiling of 100, excluded from weight decay), so the adapters
cannot blow up logits through the norm of ``G`` and the softmax temperature is fitted with the adapter.
``learn_scale=False`` freezes it.

Released heads (``released_global``, ``released_dual_path``). :class:`SimplifiedAdapter` is the global-view
adapter of the released CLIP2Point code (``models/adapter.py``), a regularised form of Eq. 16: per-view
fusion weights (init 0.5) scale the view features, then a BatchNorm shared by all views, Dropout 0.075,
``f1: V*C -> C``, BatchNorm, ReLU, Dropout 0.075, ``f2: C -> C``; there is no residual (the released
``adapter_ratio = 0.6`` is never used). :class:`ReleasedDualPathAdapter` composes two of them as the
released ``models/dpa.py`` and ``fewshot.py`` do: ``G = (G^D + G^C) / 2`` (Eq. 19), logits are the plain
cosines ``norm(G) · norm(F^T)^T`` (scale 1, fixed, stored nowhere) fed to cross-entropy.

Adapters are created by name through a small registry (:func:`register_adapter`, :func:`create_adapter`,
:func:`list_adapters`), and saved/restored with :func:`adapter_state` / :func:`adapter_from_state`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip2point.registry import Registry

CLIP_INIT_SCALE = 1.0 / 0.07  # CLIP's initial logit scale
CLIP_MAX_SCALE = 100.0  # CLIP clamps its logit scale here


class _LogitScale(nn.Module):
    """``s = exp(t)``, learnable or fixed, clamped to ``CLIP_MAX_SCALE``."""

    def __init__(self, init: float = CLIP_INIT_SCALE, learnable: bool = True) -> None:
        super().__init__()
        value = torch.tensor(math.log(init), dtype=torch.float32)
        if learnable:
            self.log_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_scale", value)

    def forward(self) -> Tensor:
        return self.log_scale.clamp(max=math.log(CLIP_MAX_SCALE)).exp()


class GlobalFeature(nn.Module):
    """Eq. 2 / 17 / 18: ``G = f2(ReLU(f1(concat({F_v}_{v=1}^V))))``, ``(B,V,C) -> (B,C)``.

    ``f1: V*C -> hidden`` and ``f2: hidden -> C`` are linear maps; ``dropout`` acts on the concatenated
    input (0 disables it).
    """

    def __init__(self, n_views: int, dim: int, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = hidden or dim
        self.n_views, self.dim = n_views, dim
        self.drop = nn.Dropout(dropout)
        self.f1 = nn.Linear(n_views * dim, hidden)
        self.f2 = nn.Linear(hidden, dim)

    def forward(self, feats: Tensor) -> Tensor:
        _check_views(feats, self.n_views, self.dim)
        x = self.drop(feats.flatten(1))  # concat over views on the channel dimension
        return self.f2(F.relu(self.f1(x)))


def _check_views(feats: Tensor, n_views: int, dim: int) -> None:
    if feats.ndim != 3 or feats.shape[1] != n_views or feats.shape[2] != dim:
        raise ValueError(
            f"adapter expects view features of shape (B, {n_views}, {dim}), got {tuple(feats.shape)}"
        )


def _cosine_logits(feat: Tensor, text: Tensor, scale: Tensor) -> Tensor:
    """``s * <feat/|feat|, text/|text|>`` over the last dimension; ``feat (...,C)``, ``text (K,C)``."""
    return scale * F.normalize(feat, dim=-1) @ F.normalize(text, dim=-1).t()


class Adapter(nn.Module):
    """Base: ``n_paths`` view-feature tensors ``(B,V,C)`` and text ``(K,C)`` in, logits ``(B,K)`` out."""

    n_paths: int = 1

    def __init__(self, logit_scale: float = CLIP_INIT_SCALE, learn_scale: bool = True) -> None:
        super().__init__()
        self.scale = _LogitScale(logit_scale, learn_scale)


class _BranchAdapter(Adapter):
    """An adapter made of one ``branch_cls(n_views, dim, hidden, dropout)`` per path, stored under the attribute
    names ``path_names`` (built in that order, after the logit scale: this fixes parameter order, RNG draws
    and state-dict keys). Subclasses set ``branch_cls``, ``path_names`` and ``n_paths`` and write ``forward``."""

    branch_cls: Callable[..., nn.Module]
    path_names: tuple[str, ...] = ()

    def _build_paths(self, n_views: int, dim: int, hidden: int, dropout: float) -> None:
        for name in self.path_names:
            setattr(self, name, self.branch_cls(n_views, dim, hidden, dropout))


class _ProjectAdapter(_BranchAdapter):
    """Base of this project's heads: learnable logit scale initialised at CLIP's, no dropout by default."""

    def __init__(self, n_views: int, dim: int, hidden: int = 0, dropout: float = 0.0,
                 logit_scale: float = CLIP_INIT_SCALE, learn_scale: bool = True) -> None:  # fmt: skip
        super().__init__(logit_scale, learn_scale)
        self._build_paths(n_views, dim, hidden, dropout)


class GlobalViewAdapter(_ProjectAdapter):
    """Global-view adapter, Eq. 16: ``logits = s · norm(G) · norm(F^T)^T`` (single path)."""

    n_paths = 1
    branch_cls = GlobalFeature
    path_names = ("global_feature",)

    def forward(self, feats: Tensor, text: Tensor) -> Tensor:
        return _cosine_logits(self.global_feature(feats), text, self.scale())


class DualPathAdapter(_ProjectAdapter):
    """Dual-Path Adapter (DPA), Eq. 17–19: ``logits = s · norm((G^C + G^D)/2) · norm(F^T)^T``.

    ``forward(clip_feats, depth_feats, text)``: the first path is the CLIP visual encoder's view features
    (Eq. 17), the second the pretrained depth encoder's (Eq. 18); each has its own global-view branch.
    """

    n_paths = 2
    branch_cls = GlobalFeature
    path_names = ("clip_path", "depth_path")

    def forward(self, clip_feats: Tensor, depth_feats: Tensor, text: Tensor) -> Tensor:
        g = 0.5 * (self.clip_path(clip_feats) + self.depth_path(depth_feats))  # Eq. 19
        return _cosine_logits(g, text, self.scale())


class InterViewBranch(nn.Module):
    """PointCLIP's inter-view adapter body, Eq. 2–3: ``(B,V,C) -> F_v + F̂_v`` of shape ``(B,V,C)``.

    ``G`` (Eq. 2) is expanded back per view by ``F̂_v = ReLU(G W_v^T)`` with ``W_v ∈ R^{C×C}`` (Eq. 3), and
    added to the input view feature (the residual of Eq. 4).
    """

    def __init__(self, n_views: int, dim: int, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.global_feature = GlobalFeature(n_views, dim, hidden, dropout)
        self.view_weights = nn.Parameter(torch.empty(n_views, dim, dim))  # W_v, (V, C_out, C_in)
        bound = 1.0 / math.sqrt(dim)  # nn.Linear's default range for a C -> C map
        nn.init.uniform_(self.view_weights, -bound, bound)

    def forward(self, feats: Tensor) -> Tensor:
        g = self.global_feature(feats)  # (B, C)
        f_hat = F.relu(torch.einsum("bc,voc->bvo", g, self.view_weights))  # Eq. 3, (B, V, C)
        return feats + f_hat


class InterViewAdapter(_ProjectAdapter):
    """PointCLIP inter-view adapter, Eq. 2–4 with ``α_v = 1/V`` (mean of view logits, no post-search).

    ``logits = (1/V) Σ_v s · norm(F_v + F̂_v) · norm(F^T)^T``.
    """

    n_paths = 1
    branch_cls = InterViewBranch
    path_names = ("branch",)

    def forward(self, feats: Tensor, text: Tensor) -> Tensor:
        return _cosine_logits(self.branch(feats), text, self.scale()).mean(dim=1)


class DualPathInterViewAdapter(_ProjectAdapter):
    """Table 4's dual-path inter-view cell: one inter-view branch per encoder, Eq. 19's mean per view.

    ``logits = (1/V) Σ_v s · norm(½(A^C_v + A^D_v)) · norm(F^T)^T`` with ``A_v = F_v + F̂_v`` of each path.
    """

    n_paths = 2
    branch_cls = InterViewBranch
    path_names = ("clip_path", "depth_path")

    def forward(self, clip_feats: Tensor, depth_feats: Tensor, text: Tensor) -> Tensor:
        a = 0.5 * (self.clip_path(clip_feats) + self.depth_path(depth_feats))
        return _cosine_logits(a, text, self.scale()).mean(dim=1)


# ------------------------------------------------------------------------------------ released heads

RELEASED_DROPOUT = 0.075  # released models/adapter.py: dropout of both Dropout layers
RELEASED_FUSION_INIT = 0.5  # released models/adapter.py: initial per-view fusion weight


class _FixedScale(nn.Module):
    """A constant logit scale kept out of the state dict (a non-persistent buffer)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.register_buffer("value", torch.tensor(float(value)), persistent=False)

    def forward(self) -> Tensor:
        return self.value


class ViewBatchNorm(nn.Module):
    """One ``BatchNorm1d(C)`` over all ``B*V`` view features (statistics pooled over batch and views)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[2] != self.dim:
            raise ValueError(f"ViewBatchNorm expects (B, V, {self.dim}), got {tuple(x.shape)}")
        b, v, c = x.shape
        return self.bn(x.reshape(b * v, c)).reshape(b, v, c)


class SimplifiedAdapter(nn.Module):
    """The released global-view adapter (Eq. 16 with view weights, BatchNorm and Dropout), ``(B,V,C)->(B,C)``.

    ``G = f2(Drop(ReLU(BN(f1(flatten(Drop(BN_views(F_v · w_v))))))))`` with one learnable weight ``w_v`` per
    view (init :data:`RELEASED_FUSION_INIT`), ``BN_views`` a :class:`ViewBatchNorm`, ``f1: V*C -> hidden``
    and ``f2: hidden -> C`` linear maps with biases (the released code has ``hidden = C``). The module
    layout (``fusion_ratio``, ``global_f.{0.bn,3,4,7}``) is the released one, so released state dicts load
    without renaming.
    """

    def __init__(
        self, n_views: int, dim: int, hidden: int = 0, dropout: float = RELEASED_DROPOUT,
        fusion_init: float = RELEASED_FUSION_INIT,
    ) -> None:
        super().__init__()
        hidden = hidden or dim
        self.n_views, self.dim = n_views, dim
        self.fusion_ratio = nn.Parameter(torch.full((n_views,), float(fusion_init)))
        self.global_f = nn.Sequential(
            ViewBatchNorm(dim),  # 0
            nn.Dropout(dropout),  # 1
            nn.Flatten(),  # 2: concat over views on the channel dimension
            nn.Linear(n_views * dim, hidden),  # 3: f1
            nn.BatchNorm1d(hidden),  # 4
            nn.ReLU(),  # 5
            nn.Dropout(dropout),  # 6
            nn.Linear(hidden, dim),  # 7: f2
        )

    def forward(self, feats: Tensor) -> Tensor:
        _check_views(feats, self.n_views, self.dim)
        return self.global_f(feats * self.fusion_ratio.view(1, -1, 1))


class _ReleasedAdapter(_BranchAdapter):
    """Base of the released heads: :class:`SimplifiedAdapter` paths, released dropout, and a logit scale that
    defaults to a fixed 1 (plain cosines, as released)."""

    branch_cls = SimplifiedAdapter

    def __init__(self, n_views: int, dim: int, hidden: int = 0, dropout: float = RELEASED_DROPOUT,
                 logit_scale: float = 1.0, learn_scale: bool = False) -> None:  # fmt: skip
        super().__init__(logit_scale, learn_scale)
        if not learn_scale:
            self.scale = _FixedScale(logit_scale)
        self._build_paths(n_views, dim, hidden, dropout)


class ReleasedGlobalAdapter(_ReleasedAdapter):
    """One released :class:`SimplifiedAdapter` path: ``logits = s · norm(G) · norm(F^T)^T`` (Eq. 16, s = 1)."""

    n_paths = 1
    path_names = ("adapter",)

    def forward(self, feats: Tensor, text: Tensor) -> Tensor:
        return _cosine_logits(self.adapter(feats), text, self.scale())


class ReleasedDualPathAdapter(_ReleasedAdapter):
    """The released DPA head, Eq. 17–19: ``logits = s · norm((G^D + G^C)/2) · norm(F^T)^T`` with s = 1.

    ``forward(clip_feats, depth_feats, text)`` (this project's path order). ``clip_path`` is the released
    ``adapter2`` (on the CLIP encoder, ``ori_model``), ``depth_path`` the released ``adapter1`` (on the
    pre-trained encoder, ``pre_model``). The released heads read the encoders' raw (un-normalised) outputs.
    """

    n_paths = 2
    path_names = ("clip_path", "depth_path")

    def forward(self, clip_feats: Tensor, depth_feats: Tensor, text: Tensor) -> Tensor:
        g = 0.5 * (self.depth_path(depth_feats) + self.clip_path(clip_feats))  # Eq. 19
        return _cosine_logits(g, text, self.scale())


# ---------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class AdapterSpec:
    """A registered adapter: its constructor, how many feature paths it takes, and a one-line summary."""

    name: str
    cls: type[Adapter]
    n_paths: int
    summary: str


ADAPTERS: Registry[AdapterSpec] = Registry("adapter", error=KeyError)


def register_adapter(name: str, summary: str = "") -> Callable[[type[Adapter]], type[Adapter]]:
    """Class decorator / function registering an :class:`Adapter` subclass under ``name``."""

    def deco(cls: type[Adapter]) -> type[Adapter]:
        ADAPTERS.register(name, AdapterSpec(name, cls, cls.n_paths, summary or (cls.__doc__ or "").split("\n")[0]))
        return cls

    return deco


register_adapter("global_view", "global-view adapter, single path (Eq. 16)")(GlobalViewAdapter)
register_adapter("dual_path", "Dual-Path Adapter: two global-view paths (Eq. 17-19)")(DualPathAdapter)
register_adapter("inter_view", "PointCLIP inter-view adapter, mean view logits (Eq. 2-4)")(InterViewAdapter)
register_adapter("dual_path_inter_view", "two inter-view paths, mean per view (Table 4)")(
    DualPathInterViewAdapter
)
register_adapter("released_global", "released SimplifiedAdapter, single path, scale 1")(ReleasedGlobalAdapter)
register_adapter("released_dual_path", "released DPA: two SimplifiedAdapters, scale 1 (Eq. 17-19)")(
    ReleasedDualPathAdapter
)


def list_adapters() -> list[str]:
    """Names of the registered adapters."""
    return sorted(ADAPTERS)


def adapter_spec(name: str) -> AdapterSpec:
    """The :class:`AdapterSpec` registered under ``name``; unknown names list the known ones."""
    return ADAPTERS.get(name)


def create_adapter(name: str, **kwargs: Any) -> Adapter:
    """Build a registered adapter: ``create_adapter("dual_path", n_views=10, dim=512, hidden=0)``.

    The instance remembers ``name`` and ``kwargs`` so :func:`adapter_state` can rebuild it.
    """
    model = adapter_spec(name).cls(**kwargs)
    model.registry_name = name  # type: ignore[attr-defined]
    model.init_kwargs = dict(kwargs)  # type: ignore[attr-defined]
    return model


def adapter_state(model: Adapter) -> dict[str, Any]:
    """A plain dict (name, constructor kwargs, state dict) that :func:`adapter_from_state` restores."""
    name = getattr(model, "registry_name", None)
    if name is None:
        raise ValueError("adapter_state needs an adapter built with create_adapter()")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"name": name, "kwargs": dict(model.init_kwargs), "state_dict": state}  # type: ignore[attr-defined]


def adapter_from_state(state: dict[str, Any]) -> Adapter:
    """Rebuild an adapter saved with :func:`adapter_state` (in eval mode)."""
    model = create_adapter(state["name"], **state["kwargs"])
    model.load_state_dict(state["state_dict"])
    return model.eval()


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: weight decay on matrices only (not biases, not the logit scale)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
