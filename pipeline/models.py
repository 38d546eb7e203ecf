"""The run's models, found through ``pipeline.paths``: its CLIP and its pre-trained depth encoders.

Layout written by ``stages/clip_bootstrap.py`` in :func:`pipeline.paths.clip_dir`:

- ``clip.json``: ``{"model": <open_clip name>, "pretrained": "" | "openai" | <path>,
  "weights": "weights.pt" | null}``
- ``weights.pt``: the bootstrapped miniature's state dict (absent when ``clip.pretrained`` names real
  weights).

Layout written by ``pipeline/pretrain_job.py`` (stage ``pretrain``) in :func:`pipeline.paths.pretrain_dir`:

- ``encoder.pt``: the selected depth encoder E_d (a state dict of CLIP's visual tower),
- ``encoder.json``: variant, seed, CLIP model name, selection step and validation zero-shot accuracy.

Layout written by ``stages/external_encoder.py`` (stage ``external_encoder@<name>``) in
:func:`pipeline.paths.external_dir`: the depth encoder of the released checkpoint ``pretrain.external.<name>``,
checked against the run's CLIP (:func:`clip2point.models.released.load_released_depth_encoder`):

- ``encoder.pt``: its state dict (CLIP's visual tower),
- ``encoder.json``: name, checkpoint path and md5, CLIP model name.

Encoders are named by :class:`pipeline.keys.EncoderKey`: ``clip``, ``<variant>-seed<seed>`` or
``released-<name>``.
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


def _load_visual(f: Path, what: str, how: str, device: str | torch.device, clip_model: nn.Module | None) -> nn.Module:
    if not f.is_file():
        raise FileNotFoundError(f"no {what} at {f}: run `{how}` first")
    if clip_model is None:
        clip_model, _ = load_clip(device)
    from clip2point.models.released import load_checked_state

    enc = load_checked_state(copy.deepcopy(clip_model.visual), load_torch(f, what), f"{what} {f}")
    return enc.to(device).eval()


def load_depth_encoder(
    variant: str, seed: int, device: str | torch.device = "cpu", clip_model: nn.Module | None = None
) -> nn.Module:
    """A pre-trained depth encoder E_d: CLIP's visual tower with the selected pre-training weights."""
    f = paths.pretrain_dir(variant, seed) / ENCODER_WEIGHTS
    return _load_visual(f, "pre-trained encoder", "dvc repro pretrain", device, clip_model)


def load_external_encoder(
    name: str, device: str | torch.device = "cpu", clip_model: nn.Module | None = None
) -> nn.Module:
    """The depth encoder of the released checkpoint ``pretrain.external.<name>`` (stage
    ``external_encoder@<name>``): CLIP's visual tower with the released E_d weights."""
    f = paths.external_dir(name) / ENCODER_WEIGHTS
    return _load_visual(f, "released encoder", f"dvc repro external_encoder@{name}", device, clip_model)


def load_encoders(
    variants: Sequence[str], seeds: Sequence[int], device: str | torch.device = "cpu", external: Sequence[str] = ()
) -> tuple[dict[str, nn.Module], nn.Module, Any]:
    """``{encoder key: visual encoder}`` for the run's CLIP (key ``clip``), every pre-trained run
    ``<variant>-seed<seed>`` and every released checkpoint ``released-<name>`` of ``external``
    (``pretrain.external`` names), plus the CLIP model and tokenizer."""
    clip_model, tokenizer = load_clip(device)
    encoders: dict[str, nn.Module] = {CLIP: clip_model.visual}
    for variant in variants:
        for seed in seeds:
            encoders[str(EncoderKey(variant, seed))] = load_depth_encoder(variant, seed, device, clip_model)
    for name in external:
        encoders[str(EncoderKey.released(name))] = load_external_encoder(name, device, clip_model)
    return encoders, clip_model, tokenizer


def _describe(arch: dict[str, int] | None) -> str:
    if arch is None:
        return "not a ViT tower"
    return f"ViT width {arch['width']}, patch {arch['patch']}, {arch['layers']} layers, {arch['image_size']} px"


def _model_for(arch: dict[str, int] | None) -> str | None:
    """The open_clip model name of a ViT architecture, its ``-quickgelu`` form first (the released weights')."""
    import open_clip

    if arch is None:
        return None
    found = []
    for name in open_clip.list_models():
        v = (open_clip.get_model_config(name) or {}).get("vision_cfg", {})
        if (v.get("width"), v.get("patch_size"), v.get("layers"), v.get("image_size")) == (
                arch["width"], arch["patch"], arch["layers"], arch["image_size"]):
            found.append(name)
    found.sort(key=lambda n: (not n.endswith("-quickgelu"), len(n), n))
    return found[0] if found else None


def check_external_checkpoint(name: str, path: str | Path, clip_model: str) -> None:
    """Raise :class:`clip2point.models.released.ReleasedCheckpointError` (one line) unless ``path`` (the
    released checkpoint ``pretrain.external.<name>``) is readable, has the released key layout and fits
    ``clip_model`` (the run's ``clip.model``: architecture and QuickGELU). Reads the file; builds no weights
    (the tower is made on the ``meta`` device)."""
    import open_clip

    from clip2point.models.released import (
        ReleasedCheckpointError,
        check_state_keys,
        released_encoder_state,
        uses_quick_gelu,
        visual_architecture,
    )

    where = f"pretrain.external.{name} ({path})"
    try:
        state = released_encoder_state(path)
    except ReleasedCheckpointError as e:
        raise ReleasedCheckpointError(f"{where}: {e}") from None
    visual = open_clip.create_model(clip_model, pretrained=None, device="meta").visual
    want = visual.state_dict()
    got_arch, want_arch = visual_architecture(state), visual_architecture(want)
    if got_arch is not None and got_arch != want_arch:
        expected = _model_for(got_arch)
        hint = f"set clip.model: {expected}" if expected else "no open_clip model has this architecture"
        raise ReleasedCheckpointError(
            f"{where} holds a depth encoder for CLIP '{expected or '?'}' ({_describe(got_arch)}) but clip.model is "
            f"'{clip_model}' ({_describe(want_arch)}): {hint} (the released checkpoints: clip.model "
            f"ViT-B-32-quickgelu, clip.pretrained openai)")  # fmt: skip
    check_state_keys(want, state, f"{where}: its depth encoder vs clip.model '{clip_model}'")
    if not uses_quick_gelu(visual):
        raise ReleasedCheckpointError(
            f"{where}: the released weights were trained with OpenAI CLIP's QuickGELU but clip.model "
            f"'{clip_model}' uses GELU: use its '-quickgelu' form (e.g. ViT-B-32-quickgelu)")


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
