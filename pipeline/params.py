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
    BootstrapConfig,
    DepthConfig,
    PretrainConfig,
    TrainConfig,
)
from clip2point.settings import setting
from clip2point.train.objective_info import OBJECTIVES, VARIANTS
from pipeline.keys import CLIP, EXTERNAL_NAME
from pipeline.params_fields import ParamsError, _build, copied, derived_from
from pipeline.params_yaml import DuplicateKeyError, YAMLError, parse_yaml

PARAMS_ENV = "CLIP2POINT_PARAMS"


def params_file() -> Path:
    """``$CLIP2POINT_PARAMS`` (default ``params.yaml``), read now."""
    return Path(os.environ.get(PARAMS_ENV, "params.yaml"))


#: the registries of the view sets (``clip2point.render.views.VIEW_SETS``), the catalogue readers
#: (``clip2point.io.KINDS``) and the RGB renderers (``clip2point.render.rgb.BACKENDS``) live in modules that import
#: torch or pyrender: their names are spelled here so that reading params does not import them
#: (``tests/test_params.py`` checks they agree; the optimizers' are ``clip2point.configs.OPTIMIZER_NAMES``)
VIEW_SET_NAMES = ("pretrain10", "zeroshot6", "realistic10")
DATASET_KINDS = ("synth", "modelnet40", "modelnet10", "shapenet55", "shapenetcore", "scanobjectnn")
RGB_BACKENDS = ("pyrender",)


@dataclass(frozen=True)
class SynthParams:
    seed: int = setting(0, ge=0)
    classes: tuple[str, ...] = setting((), nonempty=True, unique=True)
    pretrain_train_per_class: int = setting(40, ge=1)
    pretrain_val_per_class: int = setting(10, ge=1)
    benchmark_train_per_class: int = setting(30, ge=1)
    benchmark_test_per_class: int = setting(20, ge=1)
    mesh_format: str = setting("off", choices=("off", "obj", "ply", "stl"))


@dataclass(frozen=True)
class DatasetParams:
    """One downstream or pretraining source. ``kind`` names a catalogue reader in clip2point.io."""

    name: str
    kind: str = setting(dataclasses.MISSING, choices=DATASET_KINDS)  # a clip2point.io catalogue reader
    root: str
    variant: str = ""  # ScanObjectNN: OBJ_ONLY | OBJ_BG | PB_T50_RS
    # "y" (synth, ShapeNet) or "z" (ModelNet): the sample stage converts the points to y-up;
    # "z_released": z-up turned as the released code turns ModelNet, (x, y, z) -> (-y, z, -x) (docs/parity.md)
    up_axis: str = setting("y", choices=("x", "y", "z", "z_released"))
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
    num_points: int = setting(1024, ge=1)
    dense_points: int = setting(20000, ge=1)
    max_reject_fraction: float = setting(0.05, ge=0.0, le=1.0)
    workers: int = setting(2, ge=1)
    # > 0: also store a resampling pool of this many uniform surface points per shape (Point-BERT-like: 8192)
    pool_points: int = setting(0, ge=0)


@dataclass(frozen=True)
class RenderParams:
    image_size: int = setting(112, ge=8)
    views: str = setting("pretrain10", choices=VIEW_SET_NAMES)
    samples_per_shard: int = setting(256, ge=1)
    workers: int = setting(2, ge=0)  # 0: render inline in the stage's process
    backend: str = setting("pyrender", choices=RGB_BACKENDS)
    contact_sheet_per_class: int = setting(2, ge=1)


@derived_from(DepthConfig, drop=("eps",))
class DepthParams:
    """``depth``: :class:`~clip2point.configs.DepthConfig`'s fields (Eq. 12–14, the footprint, the realistic
    projection) and the pre-training camera distance and its jitter (:class:`~clip2point.configs.PretrainConfig`'s
    ``distance`` / ``jitter``: d · (1 + U(−jitter, jitter)))."""

    distance: float = copied(PretrainConfig, "distance")
    jitter: float = copied(PretrainConfig, "jitter")


@dataclass(frozen=True)
class ClipParams:
    model: str = "c2p-mini"  # an open_clip model name, or one of clip2point.models.clip.MINI_CONFIGS
    pretrained: str = ""  # "" (bootstrap a miniature), "openai", or a local checkpoint path
    templates: tuple[str, ...] = setting(("image of a {}.",), nonempty=True, template=True)


@derived_from(BootstrapConfig, drop=("eval_batch_size",))
class BootstrapParams:
    """``bootstrap``: :class:`~clip2point.configs.BootstrapConfig`'s fields and the caption templates."""

    caption_templates: tuple[str, ...] = setting(("image of a {}.",), nonempty=True, template=True)


@derived_from(PretrainConfig, drop=("variant", "seed", "distance", "jitter", "eval_batch_size", "min_lr_ratio"))
class PretrainParams:
    """``pretrain``: :class:`~clip2point.configs.PretrainConfig`'s fields but the per-run ones (one run per
    variant × seed), and the pipeline's own: the variants and seeds, pool resampling, released checkpoints."""

    seeds: tuple[int, ...] = setting((0, 1, 2), ge=0, nonempty=True, unique=True)  # numpy seeds: >= 0
    # intra_cross: CLIP2Point (Eq. 11); cross_only: §5.6 ablation (Eq. 10); rgb_control: equal-compute control
    variants: tuple[str, ...] = setting(VARIANTS, choices=OBJECTIVES, nonempty=True, unique=True)
    # true: a fresh random num_points subset of each shape's pool per epoch (the released code; needs
    # sample.pool_points > 0)
    resample: bool = False
    # name -> path of a released CLIP2Point checkpoint (best_eval.pth / best_test.pth): its depth encoder joins
    # the run's encoders as ``released-<name>`` (stage external_encoder@<name>; README "Real data and real weights")
    external: dict = setting(default_factory=dict)

    def __post_init__(self) -> None:
        for name, path in self.external.items():
            key = f"pretrain.external.{name}"
            if not isinstance(name, str) or not EXTERNAL_NAME.fullmatch(name):
                raise ParamsError(f"params: 'pretrain.external' name {name!r} must be letters, digits and "
                                  "underscores (a DVC stage key)")
            if name == CLIP or name in VARIANTS:
                owner = "the run's CLIP" if name == CLIP else "a pre-training variant"
                raise ParamsError(f"params: '{key}': the name {name!r} is taken by {owner}; pick another")
            if not isinstance(path, str) or not path:
                raise ParamsError(f"params: '{key}' must be the path of a checkpoint file; got {path!r}")
            if not Path(path).is_file():
                raise ParamsError(f"params: '{key}': checkpoint file not found: {path}")


@dataclass(frozen=True)
class ZeroshotParams:
    views: str = setting("zeroshot6", choices=VIEW_SET_NAMES)
    batch_size: int = setting(64, ge=1)
    # mean: Eq. 15; searched: PointCLIP's per-view weights, searched on a stratified val_fraction of the
    # benchmark's training split (pipeline.zeroshot_table; never on test)
    view_weights: str = setting("mean", choices=("mean", "searched"))
    val_fraction: float = setting(0.2, gt=0.0, lt=1.0)


#: the projection family's members (``pipeline.family.FAMILY``; spelled out here so params stays torch-free)
FAMILY_NAMES = ("pointclip", "pointclip_v2", "clip2point", "clip2point_disc")


@dataclass(frozen=True)
class FamilyParams:
    # the projection family table (stage family@<ds>, pipeline/family.py); every member on one protocol
    members: tuple[str, ...] = setting(FAMILY_NAMES, choices=FAMILY_NAMES, nonempty=True, unique=True)


@derived_from(TrainConfig, drop=("seed", "refit", "device"))
class AdapterParams:
    """``adapter``: :class:`~clip2point.configs.TrainConfig`'s fields but the per-run ones, and the grid's own."""

    k_shot: int = setting(16, ge=1)
    seeds: tuple[int, ...] = setting((0, 1, 2), ge=0, nonempty=True, unique=True)
    hidden: int = setting(0, ge=0)  # 0: adapter bottleneck = embedding dim
    dropout: float = setting(0.0, ge=0.0, lt=1.0)
    views: str = setting("pretrain10", choices=VIEW_SET_NAMES)
    logit_scale: float = setting(0.0, ge=0.0)  # initial adapter logit scale; 0: the run's CLIP logit scale
    # adapter head: "project" (Linear-ReLU-Linear, learnable logit scale) or "released" (the released
    # SimplifiedAdapter: view weights, BatchNorm, dropout 0.075, plain cosine logits; docs/parity.md)
    head: str = setting("project", choices=("project", "released"))
    # epoch selection: "heldout" (a held-out part of the training split) or "released_best_test" (the released
    # protocol: the epoch with the best TEST accuracy; labelled as such wherever it is reported)
    protocol: str = setting("heldout", choices=("heldout", "released_best_test"))
    # R > 0: the features stage also encodes R random pool draws of the training clouds (needs
    # sample.pool_points > 0) and adapter epoch e trains on draw (e - 1) % R (released: fresh points each epoch)
    resample_epochs: int = setting(0, ge=0)


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
    seed: int = setting(dataclasses.MISSING, ge=0)
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
