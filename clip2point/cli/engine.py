"""What ``classify`` and ``render`` do besides parsing options: read the user's files, resolve the models,
build one :class:`clip2point.predict.ModelBundle` per invocation, classify in batches.

Models load once and text features are computed once per invocation (:func:`build_bundle`); files are read
one by one (a bad file is reported and skipped) and classified ``batch_size`` clouds at a time
(:func:`classify_clouds`), so the per-file cost is the depth renders and the encoder forwards.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clip2point.cli._common import CliError, one_line, os_reason

#: Extensions ``classify`` and ``render`` accept (``.h5`` entries as ``file.h5:INDEX``).
SUPPORTED_EXTENSIONS = (".ply", ".obj", ".off", ".stl", ".xyz", ".txt", ".pts", ".npy", ".h5", ".hdf5")


class BadInput(Exception):
    """One input file cannot be used; ``str()`` is one line naming the file and the reason."""


# ------------------------------------------------------------------------------------------- inputs


def check_input(spec: str) -> Path:
    """The cheap checks of an input, before any model is loaded: a supported extension, an existing readable
    file (not a folder), an ``INDEX`` for HDF5 files. Returns the file's path; raises :class:`BadInput`."""
    from clip2point.io.errors import path_problem
    from clip2point.io.points import split_h5_entry

    path, index = split_h5_entry(spec)
    ext = path.suffix.lower()
    if index is None and re.search(r"\.(h5|hdf5):", str(spec), re.IGNORECASE):
        raise BadInput(f"{spec}: bad HDF5 entry (expected FILE.h5:INDEX with an integer INDEX)")
    try:
        problem = path_problem(path)  # missing, a dangling symlink or a loop, a folder, a FIFO or device
        if problem is not None:
            raise BadInput(f"{path}: {problem}")
        if ext not in SUPPORTED_EXTENSIONS:
            raise BadInput(
                f"{spec}: unsupported extension {ext or '(none)'!r} "
                f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})"
            )
        if not os.access(path, os.R_OK):
            raise BadInput(f"{path}: cannot read it (permission denied)")
    except OSError as e:  # e.g. a file inside a folder we may not enter
        raise BadInput(f"{path}: cannot access it ({os_reason(e)})") from None
    if ext in (".h5", ".hdf5") and index is None:
        raise BadInput(f"{path}: name one entry of the HDF5 file as {path}:INDEX")
    return path


def load_cloud(spec: str, num_points: int = 1024, n_dense: int = 20000, seed: int = 0) -> np.ndarray:
    """Read a mesh or point file and bring it to ``(num_points, 3)`` float32 in the unit sphere.

    Meshes are surface-sampled then farthest-point sampled (the pipeline's ``mesh_to_points``); clouds are
    FPS-subsampled, or padded by repeating points when they have fewer than ``num_points`` (a repeated
    point does not change a min-depth render). The up axis is converted later, by the bundle.
    Raises :class:`BadInput` for a missing, unsupported, corrupt, empty or non-finite input.
    """
    from clip2point.io import MESH_EXTENSIONS, ReadError, read_mesh_or_points, read_points
    from clip2point.sampling import SamplingError, mesh_to_points, points_to_points

    path = check_input(spec)
    ext = path.suffix.lower()
    try:
        obj = read_mesh_or_points(path) if ext in MESH_EXTENSIONS else read_points(spec)
        if isinstance(obj, np.ndarray):
            return points_to_points(obj, num_points, seed=seed, allow_fewer=True)
        return mesh_to_points(obj, num_points, n_dense, seed)
    except ReadError as e:
        raise BadInput(str(e)) from None
    except SamplingError as e:
        raise BadInput(f"{spec}: {one_line(e)}") from None
    except OSError as e:  # a read error the reader did not name (e.g. a device error)
        raise BadInput(f"{spec}: cannot read it ({os_reason(e)})") from None


def expand_input(spec: str) -> list[str]:
    """A file as given; a folder expands to its supported files (sorted, not recursive).

    Raises :class:`BadInput` for a folder that cannot be listed or that holds no supported file.
    """
    p = Path(spec)
    try:
        is_dir = p.is_dir()
    except OSError:  # inside a folder we may not enter: check_input names the file and the reason
        return [spec]
    if not is_dir:
        return [spec]
    try:
        found = sorted(
            str(c) for c in p.iterdir() if c.suffix.lower() in SUPPORTED_EXTENSIONS and c.is_file()
        )
    except OSError as e:
        raise BadInput(f"{p}: cannot list the folder ({os_reason(e)})") from None
    if not found:
        raise BadInput(f"{p}: folder holds no supported files ({', '.join(SUPPORTED_EXTENSIONS)})")
    return found


def expand_inputs(specs: Iterable[str]) -> list[str]:
    """Files as given; a directory expands to its supported files (:func:`expand_input`)."""
    return [f for s in specs for f in expand_input(s)]


# ------------------------------------------------------------------------------------------- models


@dataclass
class Encoders:
    """The loaded CLIP and the visual encoders a classifier can use.

    ``visuals`` maps an encoder key to a visual tower: ``"clip"`` is CLIP's own image encoder, other keys
    (``"intra_cross-seed0"``, ``"encoder"``) are pretrained depth encoders. ``zero_shot_key`` names the one
    used for zero-shot classification (the pretrained depth encoder when there is one, §3.3).
    """

    model_name: str
    model: nn.Module
    tokenizer: Any
    visuals: dict[str, nn.Module]
    zero_shot_key: str
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def embed_dim(self) -> int:
        proj = getattr(self.model, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            return int(proj.shape[-1])
        return int(self.text_features(["x"], ["{}"]).shape[-1])

    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale", None)
        if isinstance(scale, torch.Tensor):
            return float(scale.detach().exp().clamp(max=100.0))
        return 100.0

    def text_features(self, names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        from clip2point.models.clip import text_features

        return text_features(self.model, self.tokenizer, list(names), list(templates))


def _state_dict_of(obj: Any) -> dict[str, torch.Tensor] | None:
    """The tensor mapping inside a checkpoint (a plain state dict, or one under a usual key)."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in ("depth_encoder", "encoder", "visual", "state_dict", "model"):
            inner = _state_dict_of(obj.get(key))
            if inner is not None:
                return inner
    return None


def torch_load(path: str | os.PathLike, what: str) -> Any:
    """``torch.load`` of a user-given checkpoint (tensors and plain containers only) or a one-line error."""
    from clip2point.io.errors import path_problem

    p = Path(path)
    try:
        problem = path_problem(p, missing="not found")
    except OSError as e:
        raise CliError(f"{what} {p}: cannot access it ({os_reason(e)})") from None
    if problem == "not found":
        raise CliError(f"{what} not found: {p}")
    if problem is not None:  # a folder, a FIFO (torch.load would block on it), a symlink loop
        raise CliError(f"{what} {p} {problem}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is a user error
        raise CliError(f"{what} {p} is not a readable PyTorch checkpoint ({one_line(e)[:200]})") from None


def load_visual(template: nn.Module, path: str | os.PathLike, model_name: str) -> nn.Module:
    """A copy of ``template`` (CLIP's visual tower) with a pretrained depth encoder's weights from ``path``.

    Accepts a plain state dict or one under ``depth_encoder`` / ``encoder`` / ``visual`` / ``state_dict`` /
    ``model``, with or without a ``visual.`` / ``module.`` prefix. A checkpoint of another architecture is a
    :class:`CliError` naming the mismatch.
    """
    import copy

    from clip2point.models.released import ReleasedCheckpointError, check_state_keys

    state = _state_dict_of(torch_load(path, "depth encoder checkpoint"))
    if state is None:
        raise CliError(f"depth encoder checkpoint {path} holds no state dict of tensors")
    for prefix in ("module.", "visual."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    visual = copy.deepcopy(template)
    try:
        check_state_keys(visual.state_dict(), state, "weights")
    except ReleasedCheckpointError as e:
        raise CliError(
            f"depth encoder checkpoint {path} does not fit CLIP model '{model_name}' ({one_line(e)}); "
            "was it trained with another --clip?"
        ) from None
    visual.load_state_dict(state, strict=True)
    return visual.eval()


def load_encoders(clip: str | None, pretrained: str | None, encoder: str | None) -> Encoders:
    """Resolve the models of an invocation.

    * ``clip`` given: that open_clip model (``pretrained``: "" random, an open_clip tag from the local cache,
      or a checkpoint path); zero-shot uses CLIP's image encoder unless ``encoder`` names a depth encoder.
    * otherwise: the pipeline's latest artifacts (the run's CLIP and pretrained depth encoder).
    """
    from clip2point.models.clip import ClipWeightsError, create_clip

    if clip:
        logging.disable(logging.WARNING)  # open_clip warns about random init, which --clip alone asks for
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # random weights (no --pretrained) are the same on every invocation
                model, tokenizer = create_clip(clip, pretrained or "")
        except ClipWeightsError as e:
            raise CliError(str(e)) from None
        finally:
            logging.disable(logging.NOTSET)
        enc = Encoders(clip, model, tokenizer, {"clip": model.visual}, "clip", f"--clip {clip}")
        enc.source += f" --pretrained {pretrained}" if pretrained else " (random weights)"
    else:
        enc = run_encoders()
    if encoder:
        enc.visuals["encoder"] = load_visual(enc.visuals["clip"], encoder, enc.model_name)
        enc.zero_shot_key = "encoder"
        enc.source += f", --encoder {encoder}"
    return enc


def run_encoders(variant: str = "intra_cross") -> Encoders:
    """The run's CLIP and its pretrained depth encoder (``pipeline.models``; the first seed of
    ``pretrain.seeds`` that has one). Without a pretrained encoder, zero-shot uses CLIP's image encoder."""
    from clip2point.models.clip import ClipWeightsError
    from pipeline import models as run_models
    from pipeline import paths
    from pipeline.keys import EncoderKey
    from pipeline.params import PretrainParams

    try:
        pointer = run_models.read_clip_pointer()
        model, tokenizer = run_models.load_clip()
    except ClipWeightsError as e:
        raise CliError(f"{e}; or pass --clip NAME [--pretrained PATH]") from None
    enc = Encoders(pointer["model"], model, tokenizer, {"clip": model.visual}, "clip",
                   f"run CLIP {pointer['model']} ({paths.clip_dir()})")  # fmt: skip
    params = run_params()
    seeds = params.pretrain.seeds if params is not None else PretrainParams().seeds
    for seed in seeds:
        key = str(EncoderKey(variant, seed))
        if not (paths.pretrain_dir(variant, seed) / run_models.ENCODER_WEIGHTS).is_file():
            continue
        try:
            enc.visuals[key] = run_models.load_depth_encoder(variant, seed, clip_model=model)
        except RuntimeError as e:
            msg = f"pretrained encoder {key} does not fit the run's CLIP: {one_line(e)[:200]}"
            raise CliError(msg) from None
        enc.zero_shot_key = key
        enc.source += f", depth encoder {key}"
        return enc
    enc.notes.append(
        f"no pretrained depth encoder under {paths.pretrain_root()} (run `dvc repro pretrain`); "
        "zero-shot uses CLIP's image encoder"
    )
    return enc


@dataclass
class RunSettings:
    """Depth rendering and prompt settings (from ``params.yaml`` when readable, else the defaults)."""

    depth: dict[str, Any]
    distance: float
    templates: tuple[str, ...]
    num_points: int
    n_dense: int
    source: str


def params_path() -> tuple[Path, bool]:
    """The params file of this invocation (``$CLIP2POINT_PARAMS`` or ``params.yaml``) and whether it was
    named explicitly (by the environment variable)."""
    from pipeline.params import PARAMS_FILE

    env = os.environ.get("CLIP2POINT_PARAMS")
    return (Path(env), True) if env else (Path(PARAMS_FILE), False)


def run_params() -> Any:
    """The validated :class:`pipeline.params.Params` of the working directory, or ``None`` without one.

    A ``params.yaml`` that exists but does not validate is refused (a one-line :class:`CliError` naming the
    file and the key), never silently replaced by defaults; so is a ``$CLIP2POINT_PARAMS`` naming no file.
    """
    from pipeline.params import ParamsError, load_params

    path, explicit = params_path()
    try:
        if not path.exists():
            if explicit:
                raise CliError(f"CLIP2POINT_PARAMS={path}: no such file")
            return None
        return load_params(path)
    except ParamsError as e:
        detail = str(e).removeprefix("params: ").removeprefix(f"{path} ")
        raise CliError(f"invalid {path}: {detail}") from None
    except OSError as e:
        raise CliError(f"cannot read {path}: {os_reason(e)}") from None


def _check_run_settings(settings: RunSettings, where: str) -> None:
    """The settings ``classify``/``render`` use, checked up front: a bad value is a :class:`CliError` naming
    its key, not an error deep inside the renderer."""
    from clip2point.configs import DepthConfig

    try:
        DepthConfig(**settings.depth)
    except ValueError as e:
        raise CliError(f"invalid {where}: depth: {one_line(e)}") from None
    if not (math.isfinite(settings.distance) and settings.distance > 0):
        raise CliError(f"invalid {where}: depth.distance must be a positive number, got {settings.distance}")
    for key, value in (("sample.num_points", settings.num_points), ("sample.dense_points", settings.n_dense)):
        if value < 1:
            raise CliError(f"invalid {where}: {key} must be at least 1, got {value}")
    # clip.templates (non-empty, one '{}' each) and every other key's type and range are checked once, when
    # params.yaml loads (pipeline.params.load_params), for the CLI and the stages alike


def run_settings() -> RunSettings:
    """The ``depth``, ``clip.templates`` and ``sample`` sections of ``params.yaml``, or their defaults when
    there is no ``params.yaml`` (an invalid one is refused: :func:`run_params`)."""
    from pipeline.params import ClipParams, DepthParams, SampleParams
    from pipeline.stage import depth_settings

    p = run_params()
    if p is not None:
        depth, clip, sample, source = p.depth, p.clip, p.sample, str(params_path()[0])
    else:
        depth, clip, sample, source = DepthParams(), ClipParams(), SampleParams(), "defaults"
    cfg = depth_settings(depth)
    settings = RunSettings(
        cfg, depth.distance, tuple(clip.templates), sample.num_points, sample.dense_points, source
    )
    _check_run_settings(settings, source)
    return settings


def view_set_for(n_views: int) -> str:
    """The name of the view set with ``n_views`` views (``clip2point.render.views.VIEW_SETS``)."""
    from clip2point.render.views import VIEW_SETS

    by_count: dict[int, str] = {}
    for name, vs in VIEW_SETS.items():  # the first set of each size (pretrain10 before realistic10)
        by_count.setdefault(len(vs.azim), name)
    if n_views not in by_count:
        known = ", ".join(f"{n} ({name})" for n, name in sorted(by_count.items()))
        raise CliError(f"no view set with {n_views} views (available: {known})")
    return by_count[n_views]


def load_adapter_checkpoint(path: str | os.PathLike, enc: Encoders) -> dict[str, Any]:
    """Read an adapter checkpoint (written by the few-shot / supervised stages); check it fits ``enc``."""
    ckpt = torch_load(path, "adapter checkpoint")
    needed = ("adapter", "class_names", "text", "views", "paths")
    if not isinstance(ckpt, Mapping) or any(k not in ckpt for k in needed):
        have = sorted(ckpt)[:6] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CliError(f"{path} is not an adapter checkpoint (expected keys {list(needed)}, found {have})")
    trained_with = ckpt.get("clip_model") or ckpt.get("model_name")
    if trained_with and trained_with != enc.model_name:
        raise CliError(
            f"adapter checkpoint {path} was trained on CLIP '{trained_with}', not '{enc.model_name}'"
        )
    dim = int(torch.as_tensor(ckpt["text"]).shape[-1])
    if dim != enc.embed_dim:
        raise CliError(
            f"adapter checkpoint {path} expects {dim}-d features but CLIP '{enc.model_name}' gives "
            f"{enc.embed_dim}-d (a checkpoint from another model?)"
        )
    return dict(ckpt)


#: The CLIP of the released CLIP2Point checkpoints: OpenAI's ViT-B/32, with its QuickGELU activation.
RELEASED_CLIP = "ViT-B-32-quickgelu"


def read_released_dpa(path: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The state dict of ``path`` when it is a released CLIP2Point few-shot (DPA) checkpoint, recognised by
    its key layout (``pre_model.*``, ``ori_model.*``, ``adapter1.*``, ``adapter2.*``; ``module.`` prefix
    removed); ``None`` for any other checkpoint (e.g. this project's adapter checkpoints)."""
    from clip2point.models.released import is_released_dpa_state, read_released_checkpoint

    obj = torch_load(path, "checkpoint")
    return read_released_checkpoint(obj) if is_released_dpa_state(obj) else None


def released_bundle(
    enc: Encoders,
    state: Mapping[str, torch.Tensor],
    labels: Sequence[str] | None,
    settings: RunSettings,
    n_views: int | None,
    up_axis: str,
    checkpoint: str,
):
    """The classifier of a released few-shot DPA checkpoint (:func:`clip2point.predict.released_dpa_bundle`):
    E_d from ``pre_model.*``, CLIP's encoder from ``ori_model.*``, the adapters from ``adapter1/2.*``, the
    loaded CLIP's text features of ``'image of a ' + name`` for ``labels`` (default: ModelNet40's 40 classes
    in the released, alphabetical order), the released 10 views and disc footprint."""
    from clip2point import predict
    from clip2point.datasets import MODELNET40_CLASSES
    from clip2point.models.released import ReleasedCheckpointError, load_released_dpa_models, uses_quick_gelu

    where = f"released DPA checkpoint {checkpoint}"
    visual = enc.visuals["clip"]
    if not uses_quick_gelu(visual):
        raise CliError(
            f"{where} needs CLIP ViT-B/32 with QuickGELU, but CLIP '{enc.model_name}' uses GELU: "
            f"pass --clip {RELEASED_CLIP} --pretrained openai (or the path of OpenAI's ViT-B/32 weights)"
        )
    want = visual.state_dict()
    other = sorted(k for k, v in state.items() if k.startswith("pre_model.")
                   and k[len("pre_model."):] in want and tuple(v.shape) != tuple(want[k[len("pre_model."):]].shape))
    if other:  # another architecture: say so in a short line, not with the list of every key
        k = other[0]
        raise CliError(
            f"{where} does not fit CLIP '{enc.model_name}': {len(other)} encoder weight(s) of another shape, "
            f"e.g. {k} {tuple(state[k].shape)} vs {tuple(want[k[len('pre_model.'):]].shape)}; the released "
            f"weights are ViT-B/32: pass --clip {RELEASED_CLIP}"
        )
    try:
        depth_encoder, clip_encoder, adapter = load_released_dpa_models(visual, state)
    except ReleasedCheckpointError as e:
        raise CliError(f"{where}: {one_line(e)}") from None
    view_set = view_set_for(adapter.depth_path.n_views)
    if n_views is not None and view_set_for(n_views) != view_set:
        raise CliError(f"{where} was trained on view set '{view_set}'; drop --views")
    if adapter.depth_path.dim != enc.embed_dim:
        raise CliError(f"{where} expects {adapter.depth_path.dim}-d features but CLIP '{enc.model_name}' "
                       f"gives {enc.embed_dim}-d (it needs {RELEASED_CLIP})")  # fmt: skip
    names = list(labels) if labels else sorted(MODELNET40_CLASSES)
    text = enc.text_features(names, [predict.RELEASED_TEMPLATE])
    depth_cfg = {**settings.depth, **predict.RELEASED_DEPTH}
    enc.notes.append(f"released DPA checkpoint: views {view_set}, depth footprint disc r=0.02, up axis {up_axis}")
    return predict.released_dpa_bundle(
        depth_encoder, clip_encoder, adapter, text, names, views=view_set, distance=settings.distance,
        depth_cfg=depth_cfg, up_axis=up_axis,
    )


def build_bundle(
    enc: Encoders,
    labels: Sequence[str] | None,
    settings: RunSettings,
    n_views: int | None,
    up_axis: str,
    checkpoint: str | None = None,
    released: Mapping[str, torch.Tensor] | None = None,
):
    """One :class:`clip2point.predict.ModelBundle` for the whole invocation (text features computed here).

    ``released``: the state dict of ``checkpoint`` when it is a released DPA checkpoint
    (:func:`read_released_dpa`); then :func:`released_bundle` builds it."""
    from clip2point import predict

    if checkpoint and released is not None:
        return released_bundle(enc, released, labels, settings, n_views, up_axis, checkpoint)
    if checkpoint:
        ckpt = load_adapter_checkpoint(checkpoint, enc)
        encoders = dict(enc.visuals)
        sources = ckpt.get("encoders") or {}
        for key in ckpt["paths"]:
            if key in encoders or key == "clip":
                continue
            src = sources.get(key)
            if src and "seed" in src:
                # the exact pretrained encoder the adapter was trained on (e.g. intra_cross-seed2)
                try:
                    from pipeline.models import load_depth_encoder

                    encoders[key] = load_depth_encoder(src["variant"], int(src["seed"]), clip_model=enc.model)
                    continue
                except FileNotFoundError as e:
                    raise CliError(f"adapter checkpoint {checkpoint} needs encoder '{key}': {one_line(e)}") from None
            if enc.zero_shot_key != "clip":  # a checkpoint that does not say: the loaded depth encoder
                encoders[key] = enc.visuals[enc.zero_shot_key]
                enc.notes.append(f"checkpoint path '{key}' uses encoder '{enc.zero_shot_key}'")
        if n_views is not None and view_set_for(n_views) != ckpt["views"]:
            raise CliError(
                f"adapter checkpoint {checkpoint} was trained on view set '{ckpt['views']}'; drop --views"
            )
        if labels:
            ckpt["class_names"] = list(labels)
            ckpt["text"] = enc.text_features(labels, settings.templates)
        try:
            return predict.bundle_from_checkpoint(ckpt, encoders, up_axis=up_axis)
        except (KeyError, RuntimeError, ValueError) as e:
            raise CliError(
                f"adapter checkpoint {checkpoint} does not fit the loaded models: {one_line(e)}"
            ) from None
    if not labels:
        raise CliError('no class labels: pass --labels "chair,table,..." or --dataset NAME')
    text = enc.text_features(labels, settings.templates)
    return predict.zero_shot_bundle(
        enc.visuals[enc.zero_shot_key],
        text,
        labels,
        views=view_set_for(n_views if n_views is not None else 6),
        distance=settings.distance,
        depth_cfg=settings.depth,
        logit_scale=enc.logit_scale,
        up_axis=up_axis,
    )


@dataclass
class Timer:
    """Wall-clock seconds spent reading/preparing, rendering+encoding, in total."""

    load: float = 0.0
    classify: float = 0.0

    def add(self, key: str, t0: float) -> None:
        setattr(self, key, getattr(self, key) + time.perf_counter() - t0)


def classify_clouds(clouds: np.ndarray, bundle: Any, top_k: int) -> list[list[tuple[str, float]]]:
    """Top-``k`` ``(name, probability)`` of each cloud of a ``(B, N, 3)`` batch."""
    from clip2point.predict import predict_proba

    probs = predict_proba(torch.from_numpy(np.ascontiguousarray(clouds)), bundle)
    k = max(1, min(top_k, probs.shape[1]))
    values, idx = probs.topk(k, dim=1)
    return [
        [(bundle.class_names[i], float(v)) for v, i in zip(vr, ir, strict=True)]
        for vr, ir in zip(values.tolist(), idx.tolist(), strict=True)
    ]
