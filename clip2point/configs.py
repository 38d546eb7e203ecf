"""The library's run configurations, one frozen dataclass per concept, defaults and rules in this one place.

Every field is a :func:`~clip2point.settings.setting`: its default and its range or choices, checked when the
config is built (one line naming the section and the field). Torch-free, so that ``pipeline/params.py`` derives
its sections from these fields (same defaults, same rules, the params file's dotted keys in the errors) and
converts with :func:`config_from` without importing torch.

* :class:`DepthConfig` — the depth projection (Eqs. 12–14), used by ``clip2point.render.depth``;
* :class:`PretrainConfig` — image–depth pre-training (§4.2), used by ``clip2point.train.pretrain``;
* :class:`BootstrapConfig` — the miniature CLIP's training, used by ``clip2point.train.bootstrap``;
* :class:`TrainConfig` — adapter training (§4.3, §5.2), used by ``clip2point.fewshot``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from clip2point.registry import Registry
from clip2point.settings import check_settings, setting
from clip2point.train.objective_info import OBJECTIVES

MODES = ("min", "weighted")
PRECISIONS = ("fp32", "tf32", "bf16")  # clip2point.precision
#: Depth projections by name (``DepthConfig.projection``): renderers ``fn(points (B,N,3), views, distance, cfg,
#: out) -> (B,V,H,W)``, each imported on its first use (this module stays torch-free). Adding a projection: its
#: renderer in a module of its own and one line here (docs/architecture.md, worked example).
PROJECTIONS: Registry[Callable[..., Any]] = Registry("depth projection")
PROJECTIONS.lazy("orthographic", "clip2point.render.depth:render_rasterised")  # Eq. 12–14
PROJECTIONS.lazy("perspective", "clip2point.render.depth:render_rasterised")
PROJECTIONS.lazy("realistic", "clip2point.render.realistic:project_realistic")  # PointCLIP V2
#: Point footprints of the rasterised projections (``DepthConfig.footprint``): kernels ``fn(u, v, z, cfg, out)``
#: on the projected points (each (B,V,N)) -> (B,V,H,W).
FOOTPRINTS: Registry[Callable[..., Any]] = Registry("depth footprint")
FOOTPRINTS.lazy("square", "clip2point.render.depth:rasterise_square")  # Eq. 13's R × R block
FOOTPRINTS.lazy("disc", "clip2point.render.depth:rasterise_disc")  # the released pytorch3d disc
MAX_RADIUS = 2.0  # NDC units: the frame's width (it spans [−1, 1]²); bounds the candidate window
#: the registry names of ``clip2point.train.optim`` (OPTIMIZERS, SCHEDULES), which imports torch: spelled here so
#: that configs stay torch-free (``tests/test_params.py`` checks they agree)
OPTIMIZER_NAMES = ("lamb", "lamb_released", "adamw", "sgd")
SCHEDULE_NAMES = ("warmup_cosine", "cosine_restarts")

C = TypeVar("C")


def shared_settings(cls: type, section: Any) -> dict[str, Any]:
    """The values of ``section`` (a params dataclass) for the fields it shares with the config ``cls``, in the
    config's field order; not validated (the config validates when built)."""
    names = {f.name for f in dataclasses.fields(section)}
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(cls) if f.name in names}


def config_from(cls: type[C], section: Any, **overrides: Any) -> C:
    """Build the library config ``cls`` from a params section: every field the two dataclasses share is copied,
    ``overrides`` set the rest (per-run values such as a seed); the config's own defaults fill what is left."""
    return cls(**shared_settings(cls, section), **overrides)


@dataclass(frozen=True)
class RealisticConfig:
    """PointCLIP V2's realistic projection (``DepthConfig.projection = "realistic"``): grid, densify, smooth.

    Defaults are the released ``params`` of ``zeroshot_cls/trainers/mv_utils_zs.py`` (see
    :mod:`clip2point.render.realistic`): a ``resolution``² × ``depth`` grid (112² × 8), ``obj_ratio`` 0.8,
    ``depth_bias`` 0.2, a (1, ``densify``, ``densify``) max-pool with padding ``densify_pad`` (7, 2), a
    (``smooth_z``, ``smooth``, ``smooth``) Gaussian (1, 3, 3) with σ_xy = ``sigma_xy`` 3, σ_z = ``sigma_z`` 1.
    """

    resolution: int = setting(112, ge=4, le=2048)
    depth: int = setting(8, ge=3, le=256)
    obj_ratio: float = setting(0.8, gt=0.0, le=1.0)
    depth_bias: float = setting(0.2, ge=0.0, le=10.0)
    densify: int = setting(7, ge=1)  # odd
    densify_pad: int = setting(2, ge=0)  # <= densify // 2
    smooth: int = setting(3, ge=1)  # odd
    smooth_z: int = setting(1, ge=1)  # odd
    sigma_xy: float = setting(3.0, gt=0.0)
    sigma_z: float = setting(1.0, gt=0.0)

    def __post_init__(self) -> None:
        check_settings(self, "realistic")
        for name in ("densify", "smooth", "smooth_z"):
            if int(getattr(self, name)) % 2 != 1:
                raise ValueError(f"realistic: '{name}' must be odd; got {getattr(self, name)!r}")
        if int(self.densify_pad) > int(self.densify) // 2:
            raise ValueError(f"realistic: 'densify_pad' must be <= densify // 2 = {int(self.densify) // 2}; "
                             f"got {self.densify_pad!r}")
        if self.layer_size < 1:
            raise ValueError(f"realistic: resolution {self.resolution} too small for densify "
                             f"{self.densify} with padding {self.densify_pad}")

    @property
    def layer_size(self) -> int:
        """The side of a densified layer: ``resolution + 2·densify_pad − densify + 1`` (110 by default)."""
        return int(self.resolution) + 2 * int(self.densify_pad) - int(self.densify) + 1


@dataclass(frozen=True)
class DepthConfig:
    """Depth settings: image size, dilation R (Eq. 13), mode (Eq. 14 ``min`` / Eq. 12 ``weighted``).

    ``footprint``: ``square`` (Eq. 13's R×R block, ``dilation``) or ``disc`` (the released pytorch3d
    footprint, ``radius`` in NDC units; ``dilation`` is then unused). ``projection``: ``orthographic`` /
    ``perspective`` (rasterised, Eqs. 12–14) or ``realistic`` (PointCLIP V2: ``realistic`` holds its
    settings; ``mode``, ``dilation``, ``footprint`` and ``radius`` are then unused).
    """

    image_size: int = setting(224, ge=8, le=8192)
    dilation: int = setting(2, ge=1, le=64)
    mode: str = setting("min", choices=MODES)  # min (Eq. 14) | weighted (Eq. 12)
    projection: str = setting("orthographic", choices=PROJECTIONS)
    eps: float = setting(1e-12, gt=0.0)  # Eq. 12's ε
    # point footprint: "square" (Eq. 13's R x R block) or "disc" (the released pytorch3d rasteriser: pixels whose
    # centre lies within ``radius`` NDC units of the projected point; dilation unused; docs/parity.md)
    footprint: str = setting("square", choices=FOOTPRINTS)
    radius: float = setting(0.02, gt=0.0, le=MAX_RADIUS)
    # projection "realistic" (PointCLIP V2): its grid / densify / smooth settings
    realistic: RealisticConfig = setting(default_factory=RealisticConfig)

    def __post_init__(self) -> None:
        if isinstance(self.realistic, dict):  # from JSON / a settings dict
            object.__setattr__(self, "realistic", RealisticConfig(**self.realistic))
        if not isinstance(self.realistic, RealisticConfig):
            raise ValueError(f"depth realistic must be a RealisticConfig or a mapping, got {self.realistic!r}")
        check_settings(self, "depth")


@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training settings (§4.2, §5.1): the image–depth objective (Eqs. 9–11) and its optimiser."""

    variant: str = setting("intra_cross", choices=OBJECTIVES)  # clip2point.train.objective_info
    epochs: int = setting(5, ge=1)
    batch_size: int = setting(64, ge=1)
    lr: float = setting(6e-3, gt=0.0)
    weight_decay: float = setting(1e-4, ge=0.0)
    warmup_steps: int = setting(20, ge=0)
    temperature: float = setting(0.07, gt=0.0)  # τ of Eq. 5–10 (the released code's value; paper text: 0.7)
    sigma_init: float = setting(1.0, gt=0.0)
    sigma_lr: float = setting(1e-2, ge=0.0)
    # "lamb" (timm's LAMB) or "lamb_released" (torch_optimizer's rule, as the released code); adamw | sgd
    optimizer: str = setting("lamb", choices=OPTIMIZER_NAMES)
    eval_every: int = setting(1, ge=1)  # epochs
    # "fp32" | "tf32" (CUDA matmuls on tensor cores; fp32 on a CPU) | "bf16" (autocast): clip2point.precision
    precision: str = setting("fp32", choices=PRECISIONS)
    seed: int = setting(0, ge=0)
    distance: float = setting(1.0, gt=0.0)
    jitter: float = setting(0.1, ge=0.0, lt=1.0)  # pre-training distances d · (1 + U(−jitter, jitter))
    max_steps: int = setting(0, ge=0)  # 0: epochs × steps per epoch
    ckpt_every: int = setting(0, ge=0)  # steps between resume checkpoints; 0: end of each epoch only
    eval_batch_size: int = setting(256, ge=1)
    min_lr_ratio: float = setting(0.0, ge=0.0, le=1.0)
    # "warmup_cosine" (linear warm-up, one cosine) or "cosine_restarts" (released: warm restarts every
    # 2 epochs down to 1e-5, no warm-up; clip2point.train.optim.build_schedule)
    schedule: str = setting("warmup_cosine", choices=SCHEDULE_NAMES)
    # "split": weight decay on matrices only, σ in its own group at ``sigma_lr``; "single": the released
    # single group, every trainable tensor (σ included) decayed at ``lr`` (optim.released_param_groups)
    param_groups: str = setting("split", choices=("split", "single"))
    num_workers: int = setting(0, ge=0)  # DataLoader worker processes reading the pool (results do not depend on it)
    log_every: int = setting(10, ge=1)  # steps between reads of the step's scalars (progress bar, curves); neutral
    compile: bool = False  # torch.compile E_d (the step's encoder; state_dicts unchanged)

    def __post_init__(self) -> None:
        check_settings(self, "pretrain")


@dataclass(frozen=True)
class BootstrapConfig:
    """Training of the miniature CLIP on RGB renders and captions (the embedded default's stand-in for CLIP)."""

    epochs: int = setting(6, ge=1)
    batch_size: int = setting(128, ge=1)
    lr: float = setting(1e-3, gt=0.0)
    weight_decay: float = setting(0.1, ge=0.0)
    warmup_steps: int = setting(50, ge=0)
    seed: int = setting(0, ge=0)
    augment: bool = True
    optimizer: str = setting("adamw", choices=OPTIMIZER_NAMES)
    eval_every: int = setting(1, ge=1)
    eval_batch_size: int = setting(256, ge=1)
    max_steps: int = setting(0, ge=0)  # 0: no cap
    # text tower lr = lr × this; 0 locks it (a from-scratch text tower collapses)
    text_lr_mult: float = setting(0.0, ge=0.0)
    grad_clip: float = setting(1.0, ge=0.0)

    def __post_init__(self) -> None:
        check_settings(self, "bootstrap")


@dataclass(frozen=True)
class TrainConfig:
    """Adapter training settings (§5.2 defaults)."""

    epochs: int = setting(100, ge=1)
    lr: float = setting(1e-3, gt=0.0)
    weight_decay: float = setting(1e-4, ge=0.0)
    batch_size: int = setting(32, ge=1)
    val_fraction: float = setting(0.2, ge=0.0, lt=1.0)  # 0: no held-out part, train the fixed epochs
    seed: int = setting(0, ge=0)
    refit: bool = True
    device: str = "cpu"
    # CPU threads while training; tiny matmuls run fastest on one (None: leave as is)
    threads: int | None = setting(1, ge=1)
    # AdamW weight decay on "matrices" only, or on "all" tensors (released fewshot.py:42)
    decay: str = setting("matrices", choices=("matrices", "all"))

    def __post_init__(self) -> None:
        check_settings(self, "adapter")
