"""The library's run configurations, one frozen dataclass per concept, defaults in this one place.

Torch-free, so that ``pipeline/params.py`` can nest them (its sections take their defaults from here and convert
with :func:`config_from`) without importing torch.

* :class:`DepthConfig` — the depth projection (Eqs. 12–14), used by ``clip2point.render.depth``;
* :class:`PretrainConfig` — image–depth pre-training (§4.2), used by ``clip2point.train.pretrain``;
* :class:`BootstrapConfig` — the miniature CLIP's training, used by ``clip2point.train.bootstrap``;
* :class:`TrainConfig` — adapter training (§4.3, §5.2), used by ``clip2point.fewshot``.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any, TypeVar

MODES = ("min", "weighted")
PRECISIONS = ("fp32", "tf32", "bf16")  # clip2point.precision
PROJECTIONS = ("orthographic", "perspective", "realistic")  # clip2point.render.depth.PROJECTORS
FOOTPRINTS = ("square", "disc")
MAX_RADIUS = 2.0  # NDC units: the frame's width (it spans [−1, 1]²); bounds the candidate window

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

    resolution: int = 112
    depth: int = 8
    obj_ratio: float = 0.8
    depth_bias: float = 0.2
    densify: int = 7
    densify_pad: int = 2
    smooth: int = 3
    smooth_z: int = 1
    sigma_xy: float = 3.0
    sigma_z: float = 1.0

    def __post_init__(self) -> None:
        checks = {
            "resolution": 4 <= int(self.resolution) <= 2048,
            "depth": 3 <= int(self.depth) <= 256,
            "obj_ratio": 0.0 < float(self.obj_ratio) <= 1.0,
            "depth_bias": 0.0 <= float(self.depth_bias) <= 10.0,
            "densify": int(self.densify) >= 1 and int(self.densify) % 2 == 1,
            "densify_pad": 0 <= int(self.densify_pad) <= int(self.densify) // 2,
            "smooth": int(self.smooth) >= 1 and int(self.smooth) % 2 == 1,
            "smooth_z": int(self.smooth_z) >= 1 and int(self.smooth_z) % 2 == 1,
            "sigma_xy": float(self.sigma_xy) > 0.0,
            "sigma_z": float(self.sigma_z) > 0.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"realistic projection: invalid {name} = {getattr(self, name)!r}")
        if self.layer_size < 1:
            raise ValueError(f"realistic projection: resolution {self.resolution} too small for densify "
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

    image_size: int = 224
    dilation: int = 2
    mode: str = "min"
    projection: str = "orthographic"
    eps: float = 1e-12  # Eq. 12's ε
    footprint: str = "square"
    radius: float = 0.02
    realistic: RealisticConfig = field(default_factory=RealisticConfig)  # projection "realistic" only

    def __post_init__(self) -> None:
        if isinstance(self.realistic, dict):  # from JSON / a settings dict
            object.__setattr__(self, "realistic", RealisticConfig(**self.realistic))
        if not isinstance(self.realistic, RealisticConfig):
            raise ValueError(f"depth realistic must be a RealisticConfig or a mapping, got {self.realistic!r}")
        if self.mode not in MODES:
            raise ValueError(f"depth mode must be one of {MODES}, got {self.mode!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"depth projection must be one of {PROJECTIONS}, got {self.projection!r}")
        if not 1 <= int(self.image_size) <= 8192:
            raise ValueError(f"image_size must be in [1, 8192], got {self.image_size}")
        if not 1 <= int(self.dilation) <= 64:
            raise ValueError(f"dilation must be in [1, 64], got {self.dilation}")
        if self.footprint not in FOOTPRINTS:
            raise ValueError(f"depth footprint must be one of {FOOTPRINTS}, got {self.footprint!r}")
        r = self.radius
        if not (isinstance(r, numbers.Real) and not isinstance(r, bool) and 0.0 < r <= MAX_RADIUS):
            raise ValueError(f"depth radius must be in (0, {MAX_RADIUS}] (NDC units), got {self.radius!r}")



@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training settings (§4.2, §5.1): the image–depth objective (Eqs. 9–11) and its optimiser."""

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
    # "fp32" | "tf32" (CUDA matmuls on tensor cores; fp32 on a CPU) | "bf16" (autocast): clip2point.precision
    precision: str = "fp32"
    seed: int = 0
    distance: float = 1.0
    jitter: float = 0.1
    max_steps: int = 0  # 0: epochs × steps per epoch
    ckpt_every: int = 0  # steps between resume checkpoints; 0: end of each epoch only
    eval_batch_size: int = 256
    min_lr_ratio: float = 0.0
    # "warmup_cosine" (linear warm-up, one cosine) or "cosine_restarts" (released: warm restarts every
    # 2 epochs down to 1e-5, no warm-up; clip2point.train.optim.build_schedule)
    schedule: str = "warmup_cosine"
    # "split": weight decay on matrices only, σ in its own group at ``sigma_lr``; "single": the released
    # single group, every trainable tensor (σ included) decayed at ``lr`` (optim.released_param_groups)
    param_groups: str = "split"
    num_workers: int = 0  # DataLoader worker processes reading the pool (results do not depend on it)
    log_every: int = 10  # steps between reads of the step's scalars (progress bar, curves); results-neutral
    compile: bool = False  # torch.compile E_d (the step's encoder; state_dicts unchanged)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {' | '.join(PRECISIONS)}, got {self.precision!r}")
        if int(self.log_every) < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")


@dataclass(frozen=True)
class BootstrapConfig:
    """Training of the miniature CLIP on RGB renders and captions (the embedded default's stand-in for CLIP)."""

    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    seed: int = 0
    augment: bool = True
    optimizer: str = "adamw"
    eval_every: int = 1
    eval_batch_size: int = 256
    max_steps: int = 0
    text_lr_mult: float = 0.0  # text tower lr = lr × this; 0 locks it (a from-scratch text tower collapses)
    grad_clip: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Adapter training settings (§5.2 defaults)."""

    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    val_fraction: float = 0.2
    seed: int = 0
    refit: bool = True
    device: str = "cpu"
    threads: int | None = 1  # CPU threads while training; tiny matmuls run fastest on one (None: leave as is)
    decay: str = "matrices"  # AdamW weight decay on "matrices" only, or on "all" tensors (released fewshot.py:42)
