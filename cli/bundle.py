"""What ``classify`` does with the models: one :class:`clip2point.predict.ModelBundle` per invocation (zero-shot,
an adapter checkpoint of this project, or a released DPA checkpoint; text features computed once), then
batches of clouds classified with it.

Models load once and text features are computed once per invocation (:func:`build_bundle`); files are read
one by one (a bad file is reported and skipped) and classified ``batch_size`` clouds at a time
(:func:`classify_clouds`), so the per-file cost is the depth renders and the encoder forwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cli._common import CliError, one_line
from cli.encoders import Encoders, torch_load
from cli.settings import RunSettings, view_set_for


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
                except (FileNotFoundError, ValueError) as e:  # missing, or weights that do not fit the run's CLIP
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
