"""open_clip factory: real CLIP weights when the user has them, or a miniature CLIP config (paper §3.1).

The miniature configs are ordinary open_clip model configs (same ``CLIP`` class, same BPE tokenizer),
registered with open_clip's config registry at import through its public ``add_model_config``.
The image side follows CLIP's conventions: inputs are 3-channel images at the model's size, normalised
with CLIP's mean/std. Depth maps are stored raw (foreground in [0, 200/255], background 1.0) and turned
into CLIP inputs here, in :func:`depth_to_clip_input`, and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn

CLIP_MEAN = tuple(float(x) for x in OPENAI_DATASET_MEAN)
CLIP_STD = tuple(float(x) for x in OPENAI_DATASET_STD)

#: Miniature CLIP configs, shipped as open_clip JSON configs in ``clip2point/models/configs/`` (as open_clip
#: ships its own): ``c2p-mini`` is the embedded default's CLIP; ``c2p-tiny`` is for tests (seconds on a CPU).
CONFIG_DIR = Path(__file__).with_name("configs")
MINI_CONFIGS: dict[str, dict] = {p.stem: json.loads(p.read_text()) for p in sorted(CONFIG_DIR.glob("*.json"))}


class ClipWeightsError(RuntimeError):
    """CLIP weights were asked for but are not available; ``str()`` is one line saying how to provide them."""


def register_mini_configs() -> None:
    """Register the shipped :data:`MINI_CONFIGS` with open_clip's config registry (idempotent; reads only)."""
    if any(open_clip.get_model_config(n) is None for n in MINI_CONFIGS):
        open_clip.add_model_config(CONFIG_DIR)


register_mini_configs()


def _hf_cached(repo_and_file: str, cache_dir: str | None) -> bool:
    """Whether a ``repo/`` hub entry of open_clip's pretrained table is in the local HF cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    repo = repo_and_file.rstrip("/")
    for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        hit = try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
        if isinstance(hit, str) and Path(hit).is_file():
            return True
    return False


def _check_pretrained_available(name: str, tag: str, cache_dir: str | None) -> None:
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise ClipWeightsError(
            f"open_clip has no pretrained tag '{tag}' for model '{name}' (known tags: {known}); "
            "set clip.pretrained to one of them or to a local checkpoint path"
        )
    found = False
    if cfg.get("hf_hub"):
        found = _hf_cached(cfg["hf_hub"], cache_dir)
    if not found and cfg.get("url"):
        root = Path(cache_dir or os.path.expanduser("~/.cache/clip"))
        found = (root / os.path.basename(cfg["url"])).is_file()
    if not found:
        raise ClipWeightsError(
            f"CLIP weights '{name}' / '{tag}' are not in open_clip's cache and this machine is offline: on a "
            f"connected machine run `python -c \"import open_clip; open_clip.create_model('{name}', "
            f"pretrained='{tag}')\"` and copy ~/.cache/huggingface here, or set clip.pretrained to a local "
            "checkpoint path"
        )


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's "No pretrained weights loaded" warning where random init is what we asked for."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(max(old, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(old)


RANDOM_WEIGHTS = "random"


def is_random_weights(pretrained: str) -> bool:
    """``clip.pretrained`` asks for seeded random weights (``random`` or ``random:<seed>``)."""
    return pretrained == RANDOM_WEIGHTS or pretrained.startswith(RANDOM_WEIGHTS + ":")


def random_weights_seed(pretrained: str) -> int:
    _, _, seed = pretrained.partition(":")
    try:
        return int(seed or 0)
    except ValueError:
        raise ClipWeightsError(f"clip.pretrained '{pretrained}': the seed after 'random:' must be an integer") from None


def _is_checkpoint_path(pretrained: str) -> bool:
    return os.path.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))


def check_clip_weights(name: str, pretrained: str, cache_dir: str | None = None) -> None:
    """Fail fast, without building the model, when ``name`` / ``pretrained`` cannot be loaded here.

    Cheap (no weights are read): the DAG's ``preflight`` stage runs it before any expensive stage, so a
    missing download is found in seconds, not after hours of sampling and rendering.
    """
    if open_clip.get_model_config(name) is None:
        raise ClipWeightsError(
            f"unknown CLIP model '{name}': use an open_clip model name (e.g. ViT-B-32) or one of "
            f"{sorted(MINI_CONFIGS)}"
        )
    if not pretrained:
        return
    if is_random_weights(pretrained):
        random_weights_seed(pretrained)
    elif _is_checkpoint_path(pretrained):
        if not Path(pretrained).is_file():
            raise ClipWeightsError(f"CLIP checkpoint not found: {pretrained} (clip.pretrained)")
    else:
        _check_pretrained_available(name, pretrained, cache_dir)


def create_clip(
    name: str, pretrained: str = "", device: str | torch.device = "cpu", cache_dir: str | None = None
) -> tuple[nn.Module, object]:
    """Build an open_clip CLIP and its tokenizer.

    ``pretrained``: ``""`` random init; ``"random"`` or ``"random:<seed>"`` seeded random init (the same
    weights for the same seed on every machine: smoke tests and rehearsals of full-size architectures);
    an open_clip tag such as ``"openai"`` (looked up in open_clip's cache only, never downloaded: a
    missing cache raises :class:`ClipWeightsError`); or a local checkpoint path (an open_clip checkpoint
    or a plain state dict, as written by the bootstrap).
    """
    check_clip_weights(name, pretrained, cache_dir)
    tokenizer = open_clip.get_tokenizer(name)
    if not pretrained:
        with _quiet_open_clip():
            model = open_clip.create_model(name, pretrained=None, device=device)
    elif is_random_weights(pretrained):
        with _quiet_open_clip(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_weights_seed(pretrained))
            model = open_clip.create_model(name, pretrained=None, device="cpu")
        model = model.to(device)
    elif _is_checkpoint_path(pretrained):
        path = Path(pretrained)
        with _quiet_open_clip():
            model = open_clip.create_model(name, pretrained=None, device=device)
        try:
            open_clip.load_checkpoint(model, str(path), strict=True)
        except Exception as e:  # noqa: BLE001 - one-line message for any unreadable checkpoint
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            msg = f"cannot load CLIP checkpoint {path} into '{name}': {first[:300]}"
            raise ClipWeightsError(msg) from None
    else:
        old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            model = open_clip.create_model(name, pretrained=pretrained, device=device, cache_dir=cache_dir)
        except Exception as e:  # noqa: BLE001
            raise ClipWeightsError(f"cannot load CLIP weights '{name}' / '{pretrained}': {e}") from None
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    model.eval()
    return model, tokenizer


def image_size(visual: nn.Module) -> int:
    """Input side length of an open_clip image tower."""
    size = getattr(visual, "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


@torch.no_grad()
def text_features(
    model: nn.Module, tokenizer, class_names: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """(K, C) L2-normalised class text features, averaged over prompt templates (§3.3: "image of a {}")."""
    device = next(model.parameters()).device
    captions = [t.format(c.replace("_", " ")) for c in class_names for t in templates]
    feats = model.encode_text(tokenizer(captions).to(device)).float()
    feats = F.normalize(feats, dim=-1).view(len(class_names), len(templates), -1).mean(1)
    return F.normalize(feats, dim=-1)


#: CLIP's cap on its learned temperature: logits are at most 100 x the cosine similarity.
MAX_LOGIT_SCALE = 100.0


def logit_scale(model: nn.Module) -> float:
    """CLIP's learned logit scale ``exp(t)``, capped at :data:`MAX_LOGIT_SCALE` as in CLIP; the cap itself for a
    model without one. The value read out of a model (for zero-shot logits); a training step that learns ``t``
    keeps the tensor (``model.logit_scale.exp().clamp(...)``) so that the gradient flows."""
    scale = getattr(model, "logit_scale", None)
    if isinstance(scale, torch.Tensor):
        return float(scale.detach().exp().clamp(max=MAX_LOGIT_SCALE))
    return MAX_LOGIT_SCALE


def clip_normalize(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (B, 3, S, S) → CLIP mean/std normalised."""
    mean = torch.tensor(CLIP_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def depth_to_clip_input(depth: torch.Tensor, size: int) -> torch.Tensor:
    """Depth maps (B, H, W) in [0, 1] → CLIP inputs (B, 3, S, S): grey → 3 channels, resize, CLIP mean/std."""
    if depth.dim() != 3:
        raise ValueError(f"depth must be (B, H, W), got {tuple(depth.shape)}")
    x = depth.float().unsqueeze(1)
    x = _resize(x, size).expand(-1, 3, -1, -1)
    return clip_normalize(x)


def rgb_to_clip_input(rgb: torch.Tensor | np.ndarray, size: int) -> torch.Tensor:
    """uint8 RGB images (B, H, W, 3) → CLIP inputs (B, 3, S, S)."""
    if isinstance(rgb, np.ndarray):
        rgb = torch.from_numpy(rgb)
    if rgb.dim() != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be (B, H, W, 3), got {tuple(rgb.shape)}")
    x = rgb.permute(0, 3, 1, 2).float().div_(255.0)
    return clip_normalize(_resize(x, size))


def encode_images(visual: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """L2-normalised features of CLIP inputs (B, 3, S, S) → (B, C), in chunks of ``batch_size``."""
    if batch_size is None or x.shape[0] <= batch_size:
        return F.normalize(visual(x).float(), dim=-1)
    return torch.cat([F.normalize(visual(c).float(), dim=-1) for c in x.split(batch_size)])


def encode_views(visual: nn.Module, depth: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Per-view features of multi-view depth maps (B, V, H, W) → (B, V, C), L2-normalised."""
    b, v, h, w = depth.shape
    size = image_size(visual)
    device = next(visual.parameters()).device
    flat = depth.reshape(b * v, h, w)
    chunk = batch_size or flat.shape[0]
    feats = [encode_images(visual, depth_to_clip_input(c.to(device), size)) for c in flat.split(chunk)]
    return torch.cat(feats).view(b, v, -1)


def encode_rgb_views(visual: nn.Module, rgb: torch.Tensor | np.ndarray, batch_size: int | None = None):
    """Per-view features of multi-view RGB renders uint8 (B, V, H, W, 3) → (B, V, C), L2-normalised."""
    if isinstance(rgb, np.ndarray):
        rgb = torch.from_numpy(rgb)
    b, v = rgb.shape[:2]
    size = image_size(visual)
    device = next(visual.parameters()).device
    flat = rgb.reshape(b * v, *rgb.shape[2:])
    chunk = batch_size or flat.shape[0]
    feats = [encode_images(visual, rgb_to_clip_input(c, size).to(device)) for c in flat.split(chunk)]
    return torch.cat(feats).view(b, v, -1)

