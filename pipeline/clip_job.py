"""The ``clip_bootstrap`` stage's work: the run's CLIP (§3.1) → ``pipeline.paths.clip_dir()``.

``clip.pretrained`` empty: :func:`bootstrap` trains the miniature CLIP ``clip.model`` on the pre-training
pool's RGB renders (train split, every view a separate image; CLIP's contrastive image–text objective, whose
logits are Eq. 1's) with captions from ``bootstrap.caption_templates``, selects on the pool's validation
split (RGB zero-shot), and writes ``weights.pt`` + ``clip.json``. ``clip.pretrained`` set (``openai``,
``random[:seed]`` or a checkpoint path): check the weights load, write the pointer only. Either way it then
measures the CLIP's RGB zero-shot accuracy on the pool's validation split (streamed, :mod:`pipeline.clip_eval`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch

from clip2point.configs import BootstrapConfig, config_from
from clip2point.models.clip import MINI_CONFIGS, create_clip
from pipeline import paths
from pipeline.artifacts import atomic_dir, write_torch
from pipeline.clip_eval import stream_rgb_zero_shot
from pipeline.models import CLIP_POINTER, CLIP_WEIGHTS, load_split_tensors
from pipeline.params import Params
from pipeline.stage import StageError, live_logger


def _val_zero_shot(model: torch.nn.Module, tok: Any, params: Params, progress: bool) -> dict[str, Any]:
    pool = params.data.pretrain.name
    try:
        res = stream_rgb_zero_shot(model, tok, pool, "val", list(params.clip.templates))
    except (KeyError, ValueError) as e:
        return {f"{pool}/val": {"skipped": str(e).splitlines()[0]}}
    if progress:
        print(f"clip_bootstrap: {pool}/val: RGB zero-shot {res['rgb_per_view']:.3f} per view, "
              f"{res['rgb_multi_view']:.3f} over views", file=sys.stderr)
    return {f"{pool}/val": res}


def bootstrap(params: Params, device: str = "cpu", progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's CLIP, bootstrapped or pointed to; returns the stage's metrics and its timings (wall-clock)."""
    cp, bp = params.clip, params.bootstrap
    torch.manual_seed(bp.seed)
    if cp.pretrained:
        return _pointer(params, device, progress), {}
    if cp.model not in MINI_CONFIGS:
        raise StageError(
            f"clip.model '{cp.model}' with empty clip.pretrained: bootstrapping is for the miniature "
            f"configs {sorted(MINI_CONFIGS)}; for a full-size CLIP set clip.pretrained to 'openai', "
            "'random' or a checkpoint path"
        )
    from clip2point.train.bootstrap import RgbSet, bootstrap_clip

    pool = params.data.pretrain.name
    try:
        train = load_split_tensors(pool, "train")
        val = load_split_tensors(pool, "val")
    except (FileNotFoundError, KeyError, ValueError, OSError) as e:
        raise StageError(f"cannot read the pre-training pool '{pool}': {str(e).splitlines()[0]}") from None
    if train["rgb"] is None or val["rgb"] is None:
        raise StageError(f"pre-training pool '{pool}' has no RGB renders: the bootstrap needs them")
    model, tok = create_clip(cp.model, "", device=device)
    cfg = config_from(BootstrapConfig, bp)
    live = live_logger("clip_bootstrap")

    def on_step(step: int, sc: dict[str, float]) -> None:
        if live is not None and (step % 5 == 0 or step == 1):
            live.step = step
            for k in ("loss", "logit_scale", "lr"):
                live.log_metric(f"train/{k}", sc[k])

    def on_eval(step: int, ev: dict[str, float]) -> None:
        if live is not None:
            live.step = step
            live.log_metric("val/rgb_zeroshot_per_view", ev["val_rgb_per_view"])
            live.log_metric("val/rgb_zeroshot_multi_view", ev["val_rgb_multi_view"])

    res = bootstrap_clip(model, tok, RgbSet(train["rgb"], train["labels"]), RgbSet(val["rgb"], val["labels"]),
                         train["class_names"], list(bp.caption_templates), list(cp.templates), cfg,
                         on_step=on_step, on_eval=on_eval, progress=progress)
    if live is not None:
        live.end()
    model.load_state_dict(res.state_dict)
    model.eval()
    with atomic_dir(paths.clip_dir()) as tmp:
        write_torch(res.state_dict, tmp / CLIP_WEIGHTS)
        (tmp / CLIP_POINTER).write_text(json.dumps(
            {"model": cp.model, "pretrained": "", "weights": CLIP_WEIGHTS, "config": MINI_CONFIGS[cp.model]},
            indent=2) + "\n")
    metrics = {"mode": "bootstrap", "model": cp.model, **res.metrics,
               "zeroshot": _val_zero_shot(model, tok, params, progress)}
    return metrics, res.timings


def _pointer(params: Params, device: str, progress: bool) -> dict[str, Any]:
    """Real (or seeded random) weights: check they load, write the pointer, measure them on the pool's val."""
    cp = params.clip
    model, tok = create_clip(cp.model, cp.pretrained, device=device)
    with atomic_dir(paths.clip_dir()) as tmp:
        (tmp / CLIP_POINTER).write_text(json.dumps(
            {"model": cp.model, "pretrained": cp.pretrained, "weights": None}, indent=2) + "\n")
    zs = _val_zero_shot(model, tok, params, progress)
    live = live_logger("clip_bootstrap")  # the plots output exists in pointer mode too (DVC expects it)
    if live is not None:
        live.step = 0
        for res in zs.values():
            if "rgb_per_view" in res:
                live.log_metric("val/rgb_zeroshot_per_view", res["rgb_per_view"])
                live.log_metric("val/rgb_zeroshot_multi_view", res["rgb_multi_view"])
        live.end()
    paths.plots_dir("clip_bootstrap").mkdir(parents=True, exist_ok=True)
    return {"mode": "pointer", "model": cp.model, "pretrained": cp.pretrained, "zeroshot": zs}
