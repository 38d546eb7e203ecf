"""The run's models, found through ``pipeline.paths``: its CLIP and its pre-trained depth encoders.

Layout written by ``stages/clip_bootstrap.py`` in :func:`pipeline.paths.clip_dir`:

- ``clip.json``: ``{"model": <open_clip name>, "pretrained": "" | "openai" | <path>,
  "weights": "weights.pt" | null}``
- ``weights.pt``: the bootstrapped miniature's state dict (absent when ``clip.pretrained`` names real
  weights).

Layout written by ``pipeline/pretrain_job.py`` (stage ``pretrain``) in :func:`pipeline.paths.pretrain_dir`:

- ``encoder.pt``: the selected depth encoder E_d (a state dict of CLIP's visual tower),
- ``encoder.json``: variant, seed, CLIP model name, selection step and validation zero-shot accuracy.

Encoders are named by :class:`pipeline.keys.EncoderKey`: ``clip`` or ``<variant>-seed<seed>``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clip2point.models.clip import ClipWeightsError, create_clip
from pipeline import paths
from pipeline.artifacts import load_torch
from pipeline.keys import CLIP, EncoderKey

CLIP_POINTER = "clip.json"
CLIP_WEIGHTS = "weights.pt"
ENCODER_WEIGHTS = "encoder.pt"
ENCODER_META = "encoder.json"


def read_clip_pointer(clip_dir: Path | None = None) -> dict[str, Any]:
    clip_dir = Path(clip_dir) if clip_dir is not None else paths.clip_dir()
    f = clip_dir / CLIP_POINTER
    if not f.is_file():
        raise ClipWeightsError(f"no CLIP for this run at {clip_dir}: run `dvc repro clip_bootstrap` first")
    return json.loads(f.read_text())


def load_clip(device: str | torch.device = "cpu", clip_dir: Path | None = None) -> tuple[nn.Module, Any]:
    """The run's CLIP (eval mode) and tokenizer: the bootstrapped miniature or the configured weights."""
    clip_dir = Path(clip_dir) if clip_dir is not None else paths.clip_dir()
    ptr = read_clip_pointer(clip_dir)
    if ptr.get("weights"):
        model, tok = create_clip(ptr["model"], str(clip_dir / ptr["weights"]), device=device)
    else:
        model, tok = create_clip(ptr["model"], ptr.get("pretrained", ""), device=device)
    return model.eval(), tok


def load_depth_encoder(
    variant: str, seed: int, device: str | torch.device = "cpu", clip_model: nn.Module | None = None
) -> nn.Module:
    """A pre-trained depth encoder E_d: CLIP's visual tower with the selected pre-training weights."""
    d = paths.pretrain_dir(variant, seed)
    f = d / ENCODER_WEIGHTS
    if not f.is_file():
        raise FileNotFoundError(f"no pre-trained encoder at {f}: run `dvc repro pretrain` first")
    if clip_model is None:
        clip_model, _ = load_clip(device)
    enc = copy.deepcopy(clip_model.visual)
    enc.load_state_dict(load_torch(f, "pre-trained encoder"))
    return enc.to(device).eval()


def load_encoders(
    variants: Sequence[str], seeds: Sequence[int], device: str | torch.device = "cpu"
) -> tuple[dict[str, nn.Module], nn.Module, Any]:
    """``{encoder key: visual encoder}`` for the run's CLIP (key ``clip``) and every pre-trained run
    ``<variant>-seed<seed>``, plus the CLIP model and tokenizer."""
    clip_model, tokenizer = load_clip(device)
    encoders: dict[str, nn.Module] = {CLIP: clip_model.visual}
    for variant in variants:
        for seed in seeds:
            encoders[str(EncoderKey(variant, seed))] = load_depth_encoder(variant, seed, device, clip_model)
    return encoders, clip_model, tokenizer


def clip_logit_scale(model: nn.Module) -> float:
    """CLIP's learned logit scale ``exp(t)`` (capped at 100 as in CLIP), or 100 when the model has none."""
    ls = getattr(model, "logit_scale", None)
    return float(ls.exp().clamp(max=100.0)) if ls is not None else 100.0


def load_split_tensors(dataset: str, split: str, with_rgb: bool = True) -> dict[str, Any]:
    """A dataset split from its shards, in memory, as tensors: points, labels, rgb (or None), class_names."""
    from clip2point import shards

    m = shards.read_manifest(paths.manifest(dataset))
    raw = shards.load_split(m, split, with_rgb=with_rgb)
    if len(raw["labels"]) == 0:
        raise ValueError(f"dataset {dataset}: split '{split}' empty or missing in {paths.manifest(dataset)}")
    return {
        "points": torch.from_numpy(np.ascontiguousarray(raw["points"], dtype=np.float32)),
        "labels": torch.from_numpy(raw["labels"]).long(),
        "rgb": torch.from_numpy(raw["rgb"]) if raw.get("rgb") is not None else None,
        "class_names": list(m.get("class_names", [])),
        "ids": raw["ids"],
    }
