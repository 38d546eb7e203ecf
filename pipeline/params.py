"""Typed, validated parameters, built once from ``params.yaml``.

Each stage reads its own section as a frozen dataclass: ``load_params().render``. Unknown keys and
wrong types fail loudly with the offending key named, so a typo in a sweep (``-S render.dilaton=4``)
cannot silently run the default.

The sections that configure library code take their defaults from the library's configs
(:mod:`clip2point.configs`: ``DepthConfig``, ``PretrainConfig``, ``BootstrapConfig``, ``TrainConfig``), so each
default is written once; :func:`clip2point.configs.config_from` turns a section into its config. What only the
pipeline knows (seeds, variants, views, ranges) is declared here.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clip2point.configs import (
    FOOTPRINTS,
    MODES,
    PROJECTIONS,
    BootstrapConfig,
    DepthConfig,
    PretrainConfig,
    RealisticConfig,
    TrainConfig,
)
from pipeline.keys import CLIP, EXTERNAL_NAME
from pipeline.params_fields import ParamsError, _build, _f
from pipeline.params_yaml import DuplicateKeyError, YAMLError, parse_yaml

PARAMS_ENV = "CLIP2POINT_PARAMS"


def params_file() -> Path:
    """``$CLIP2POINT_PARAMS`` (default ``params.yaml``), read now."""
    return Path(os.environ.get(PARAMS_ENV, "params.yaml"))


#: the registered pre-training objectives (``clip2point.train.objectives``' registry; spelled here so that reading
#: params does not import torch; ``tests/test_params.py`` checks the two agree)
PRETRAIN_OBJECTIVES = ("intra_cross", "cross_only", "rgb_control")
#: the same for the view sets (``clip2point.render.views.VIEW_SETS``), the catalogue readers
#: (``clip2point.io.KINDS``), the optimizers (``clip2point.train.optim.OPTIMIZERS``) and the RGB renderers
#: (``clip2point.render.rgb.BACKENDS``)
VIEW_SET_NAMES = ("pretrain10", "zeroshot6", "realistic10")
DATASET_KINDS = ("synth", "modelnet40", "modelnet10", "shapenet55", "shapenetcore", "scanobjectnn")
OPTIMIZER_NAMES = ("lamb", "lamb_released", "adamw", "sgd")
RGB_BACKENDS = ("pyrender",)


@dataclass(frozen=True)
class SynthParams:
    seed: int = _f(0, ge=0)
    classes: tuple[str, ...] = _f((), nonempty=True, unique=True)
    pretrain_train_per_class: int = _f(40, ge=1)
    pretrain_val_per_class: int = _f(10, ge=1)
    benchmark_train_per_class: int = _f(30, ge=1)
    benchmark_test_per_class: int = _f(20, ge=1)
    mesh_format: str = _f("off", choices=("off", "obj", "ply", "stl"))


@dataclass(frozen=True)
class DatasetParams:
    """One downstream or pretraining source. ``kind`` names a catalogue reader in clip2point.io."""

    name: str
    kind: str = _f(dataclasses.MISSING, choices=DATASET_KINDS)  # a clip2point.io catalogue reader
    root: str
    variant: str = ""  # ScanObjectNN: OBJ_ONLY | OBJ_BG | PB_T50_RS
    # "y" (synth, ShapeNet) or "z" (ModelNet): the sample stage converts the points to y-up;
    # "z_released": z-up turned as the released code turns ModelNet, (x, y, z) -> (-y, z, -x) (docs/parity.md)
    up_axis: str = _f("y", choices=("x", "y", "z", "z_released"))
    # split -> [n, N]: only n of the release's N items are present, accepted by `prepare --allow-incomplete`
    subset: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split, counts in self.subset.items():
            ok = (isinstance(counts, (list, tuple)) and len(counts) == 2
                  and all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
                  and 1 <= counts[0] <= counts[1])  # fmt: skip
            if not (isinstance(split, str) and ok):
                raise ParamsError(f"params: dataset '{self.name}': subset entry {split!r}: {counts!r} must be "
                                  "[found, expected] with 1 <= found <= expected")  # fmt: skip


@dataclass(frozen=True)
class DataParams:
    """``benchmarks`` is written in params.yaml as a mapping name → dataset; it loads as a tuple."""

    pretrain: DatasetParams
    benchmarks: tuple[DatasetParams, ...]

    def __post_init__(self) -> None:
        check_dataset_names(self.pretrain.name, [d.name for d in self.benchmarks])

    def benchmark(self, name: str) -> DatasetParams:
        return _find_dataset(self, name)


#: a dataset name: it keys DVC stages (``sample@<name>``) and names output files (``data/points/<name>.parquet``)
DATASET_NAME = re.compile(r"[A-Za-z0-9_]+")


def check_dataset_names(pretrain: str, benchmarks: list[str]) -> None:
    """:class:`ParamsError` unless every dataset name is a stage key and no two datasets share one: each
    dataset's outputs are named after it (``data/points/<name>.parquet``, ``data/shards/<name>``), so a
    benchmark named like the pre-training pool, or two benchmarks of one name, would write the same outputs."""
    for i, name in enumerate([pretrain, *benchmarks]):
        key = "data.pretrain.name" if i == 0 else f"data.benchmarks[{i - 1}]"
        if not DATASET_NAME.fullmatch(name):
            raise ParamsError(f"params: '{key}' must be letters, digits and underscores (a DVC stage key); "
                              f"got {name!r}")  # fmt: skip
    if pretrain in benchmarks:
        raise ParamsError(f"params: benchmark '{pretrain}' has the name of the pre-training pool "
                          f"(data.pretrain.name): both would write data/points/{pretrain}.parquet")  # fmt: skip
    twice = sorted({n for n in benchmarks if benchmarks.count(n) > 1})
    if twice:
        raise ParamsError(f"params: 'data.benchmarks' names {', '.join(map(repr, twice))} more than once")


def _find_dataset(data: DataParams, name: str) -> DatasetParams:
    for d in (data.pretrain, *data.benchmarks):
        if d.name == name:
            return d
    known = [data.pretrain.name, *(d.name for d in data.benchmarks)]
    raise ParamsError(f"params: no dataset named '{name}' (known: {', '.join(known)})")


@dataclass(frozen=True)
class SampleParams:
    num_points: int = _f(1024, ge=1)
    dense_points: int = _f(20000, ge=1)
    max_reject_fraction: float = _f(0.05, ge=0.0, le=1.0)
    workers: int = _f(2, ge=1)
    # > 0: also store a resampling pool of this many uniform surface points per shape (Point-BERT-like: 8192)
    pool_points: int = _f(0, ge=0)


@dataclass(frozen=True)
class RenderParams:
    image_size: int = _f(112, ge=8)
    views: str = _f("pretrain10", choices=VIEW_SET_NAMES)
    samples_per_shard: int = _f(256, ge=1)
    workers: int = _f(2, ge=0)  # 0: render inline in the stage's process
    backend: str = _f("pyrender", choices=RGB_BACKENDS)
    contact_sheet_per_class: int = _f(2, ge=1)


@dataclass(frozen=True)
class DepthParams:
    image_size: int = _f(DepthConfig.image_size, ge=8)
    dilation: int = _f(DepthConfig.dilation, ge=1)
    mode: str = _f(DepthConfig.mode, choices=MODES)  # min (Eq. 14) | weighted (Eq. 12)
    projection: str = _f(DepthConfig.projection, choices=PROJECTIONS)
    distance: float = _f(PretrainConfig.distance, gt=0.0)
    jitter: float = _f(PretrainConfig.jitter, ge=0.0, lt=1.0)  # pretraining distances d * (1 + U(-jitter, jitter))
    # point footprint: "square" (Eq. 13's R x R block) or "disc" (the released pytorch3d rasteriser: pixels whose
    # centre lies within ``radius`` NDC units of the projected point; dilation unused; docs/parity.md)
    footprint: str = _f(DepthConfig.footprint, choices=FOOTPRINTS)
    radius: float = _f(DepthConfig.radius, gt=0.0, le=1.0)
    # projection "realistic" (PointCLIP V2): its grid / densify / smooth settings, validated by the library config
    realistic: RealisticConfig = field(default_factory=RealisticConfig)


@dataclass(frozen=True)
class ClipParams:
    model: str = "c2p-mini"  # an open_clip model name, or one of clip2point.models.clip.MINI_CONFIGS
    pretrained: str = ""  # "" (bootstrap a miniature), "openai", or a local checkpoint path
    templates: tuple[str, ...] = _f(("image of a {}.",), nonempty=True, template=True)


@dataclass(frozen=True)
class BootstrapParams:
    epochs: int = _f(BootstrapConfig.epochs, ge=1)
    batch_size: int = _f(BootstrapConfig.batch_size, ge=1)
    lr: float = _f(BootstrapConfig.lr, gt=0.0)
    weight_decay: float = _f(BootstrapConfig.weight_decay, ge=0.0)
    warmup_steps: int = _f(BootstrapConfig.warmup_steps, ge=0)
    seed: int = _f(BootstrapConfig.seed, ge=0)
    caption_templates: tuple[str, ...] = _f(("image of a {}.",), nonempty=True, template=True)
    augment: bool = BootstrapConfig.augment
    optimizer: str = _f(BootstrapConfig.optimizer, choices=OPTIMIZER_NAMES)
    eval_every: int = _f(BootstrapConfig.eval_every, ge=1)
    max_steps: int = _f(BootstrapConfig.max_steps, ge=0)  # 0: no cap
    # text tower lr multiplier; 0 keeps it at its random init
    text_lr_mult: float = _f(BootstrapConfig.text_lr_mult, ge=0.0)
    grad_clip: float = _f(BootstrapConfig.grad_clip, ge=0.0)


@dataclass(frozen=True)
class PretrainParams:
    epochs: int = _f(PretrainConfig.epochs, ge=1)
    batch_size: int = _f(PretrainConfig.batch_size, ge=1)
    lr: float = _f(PretrainConfig.lr, gt=0.0)
    weight_decay: float = _f(PretrainConfig.weight_decay, ge=0.0)
    warmup_steps: int = _f(PretrainConfig.warmup_steps, ge=0)
    temperature: float = _f(PretrainConfig.temperature, gt=0.0)
    sigma_init: float = _f(PretrainConfig.sigma_init, gt=0.0)
    sigma_lr: float = _f(PretrainConfig.sigma_lr, ge=0.0)
    # "lamb" (timm's LAMB) or "lamb_released" (torch_optimizer's rule, as the released code); adamw | sgd
    optimizer: str = _f(PretrainConfig.optimizer, choices=OPTIMIZER_NAMES)
    schedule: str = _f(PretrainConfig.schedule, choices=("warmup_cosine", "cosine_restarts"))
    # single: the released one decayed group
    param_groups: str = _f(PretrainConfig.param_groups, choices=("split", "single"))
    seeds: tuple[int, ...] = _f((0, 1, 2), ge=0, nonempty=True, unique=True)  # numpy seeds: >= 0
    # intra_cross: CLIP2Point (Eq. 11); cross_only: §5.6 ablation (Eq. 10); rgb_control: equal-compute control
    variants: tuple[str, ...] = _f(PRETRAIN_OBJECTIVES, choices=PRETRAIN_OBJECTIVES, nonempty=True, unique=True)
    eval_every: int = _f(PretrainConfig.eval_every, ge=1)
    # fp32 | tf32 (CUDA tensor cores; fp32 on CPU) | bf16 (autocast): the training step, the selection
    # evaluation, the frozen-image-feature cache and the features stage (clip2point.precision)
    precision: str = _f(PretrainConfig.precision, choices=("fp32", "tf32", "bf16"))
    log_every: int = _f(PretrainConfig.log_every, ge=1)  # steps between reads of the scalars (no effect on results)
    compile: bool = PretrainConfig.compile  # torch.compile E_d
    num_workers: int = _f(PretrainConfig.num_workers, ge=0)
    max_steps: int = _f(PretrainConfig.max_steps, ge=0)  # 0: no cap
    ckpt_every: int = _f(PretrainConfig.ckpt_every, ge=0)  # steps between resume checkpoints (0: once per epoch)
    # true: a fresh random num_points subset of each shape's pool per epoch (the released code; needs
    # sample.pool_points > 0)
    resample: bool = False
    # name -> path of a released CLIP2Point checkpoint (best_eval.pth / best_test.pth): its depth encoder joins
    # the run's encoders as ``released-<name>`` (stage external_encoder@<name>; README "Real data and real weights")
    external: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, path in self.external.items():
            key = f"pretrain.external.{name}"
            if not isinstance(name, str) or not EXTERNAL_NAME.fullmatch(name):
                raise ParamsError(f"params: 'pretrain.external' name {name!r} must be letters, digits and "
                                  "underscores (a DVC stage key)")
            if name == CLIP or name in PRETRAIN_OBJECTIVES:
                owner = "the run's CLIP" if name == CLIP else "a pre-training variant"
                raise ParamsError(f"params: '{key}': the name {name!r} is taken by {owner}; pick another")
            if not isinstance(path, str) or not path:
                raise ParamsError(f"params: '{key}' must be the path of a checkpoint file; got {path!r}")
            if not Path(path).is_file():
                raise ParamsError(f"params: '{key}': checkpoint file not found: {path}")


@dataclass(frozen=True)
class ZeroshotParams:
    views: str = _f("zeroshot6", choices=VIEW_SET_NAMES)
    batch_size: int = _f(64, ge=1)
    # mean: Eq. 15; searched: PointCLIP's per-view weights, searched on a stratified val_fraction of the
    # benchmark's training split (pipeline.zeroshot_table; never on test)
    view_weights: str = _f("mean", choices=("mean", "searched"))
    val_fraction: float = _f(0.2, gt=0.0, lt=1.0)


#: the projection family's members (``pipeline.family.FAMILY``; spelled out here so params stays torch-free)
FAMILY_NAMES = ("pointclip", "pointclip_v2", "clip2point", "clip2point_disc")


@dataclass(frozen=True)
class FamilyParams:
    # the projection family table (stage family@<ds>, pipeline/family.py); every member on one protocol
    members: tuple[str, ...] = _f(FAMILY_NAMES, choices=FAMILY_NAMES, nonempty=True, unique=True)


@dataclass(frozen=True)
class AdapterParams:
    k_shot: int = _f(16, ge=1)
    seeds: tuple[int, ...] = _f((0, 1, 2), ge=0, nonempty=True, unique=True)
    epochs: int = _f(TrainConfig.epochs, ge=1)
    lr: float = _f(TrainConfig.lr, gt=0.0)
    weight_decay: float = _f(TrainConfig.weight_decay, ge=0.0)
    batch_size: int = _f(TrainConfig.batch_size, ge=1)
    hidden: int = _f(0, ge=0)  # 0: adapter bottleneck = embedding dim
    dropout: float = _f(0.0, ge=0.0, lt=1.0)
    val_fraction: float = _f(TrainConfig.val_fraction, ge=0.0, lt=1.0)  # 0: no held-out part, train the fixed epochs
    views: str = _f("pretrain10", choices=VIEW_SET_NAMES)
    logit_scale: float = _f(0.0, ge=0.0)  # initial adapter logit scale; 0: the run's CLIP logit scale
    threads: int = _f(TrainConfig.threads, ge=1)  # torch threads for adapter training (small matrices: 1 is fastest)
    # adapter head: "project" (Linear-ReLU-Linear, learnable logit scale) or "released" (the released
    # SimplifiedAdapter: view weights, BatchNorm, dropout 0.075, plain cosine logits; docs/parity.md)
    head: str = _f("project", choices=("project", "released"))
    # epoch selection: "heldout" (a held-out part of the training split) or "released_best_test" (the released
    # protocol: the epoch with the best TEST accuracy; labelled as such wherever it is reported)
    protocol: str = _f("heldout", choices=("heldout", "released_best_test"))
    # AdamW weight decay on matrices or on every tensor
    decay: str = _f(TrainConfig.decay, choices=("matrices", "all"))
    # R > 0: the features stage also encodes R random pool draws of the training clouds (needs
    # sample.pool_points > 0) and adapter epoch e trains on draw (e - 1) % R (released: fresh points each epoch)
    resample_epochs: int = _f(0, ge=0)


@dataclass(frozen=True)
class LaunchParams:
    """How ``pipeline.launch`` starts the distributed stages; never changes a result, so no stage depends
    on it."""

    # "auto": one process per CUDA device (1 without CUDA); an integer >= 1: that many (> 1: torchrun, DDP)
    nproc_per_node: Any = "auto"

    def __post_init__(self) -> None:
        n = self.nproc_per_node
        if n != "auto" and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ParamsError(f"params: 'launch.nproc_per_node' must be 'auto' or an integer >= 1; got {n!r}")


@dataclass(frozen=True)
class Params:
    seed: int = _f(dataclasses.MISSING, ge=0)
    synth: SynthParams
    data: DataParams
    sample: SampleParams
    render: RenderParams
    depth: DepthParams
    clip: ClipParams
    bootstrap: BootstrapParams
    pretrain: PretrainParams
    zeroshot: ZeroshotParams
    adapter: AdapterParams
    family: FamilyParams = field(default_factory=FamilyParams)
    launch: LaunchParams = field(default_factory=LaunchParams)
    extra: dict = field(default_factory=dict)


def params_from_dict(raw: dict) -> Params:
    """Validate a raw params mapping into typed :class:`Params`."""
    return _build(Params, raw, "")


def load_params(path: str | os.PathLike | None = None) -> Params:
    """Load and validate ``params.yaml`` (or ``$CLIP2POINT_PARAMS``): the one reader of params files for
    the stages and the CLI alike."""
    path = Path(path) if path is not None else params_file()
    try:
        raw = parse_yaml(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"params: file not found: {path}") from None
    except DuplicateKeyError as e:
        raise ParamsError(f"params: {path} has a {e}; a key may appear once") from None
    except YAMLError as e:
        raise ParamsError(f"params: {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"params: {path} must hold a mapping")
    return params_from_dict(raw)
