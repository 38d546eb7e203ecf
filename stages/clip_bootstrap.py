"""Stage ``clip_bootstrap``: the run's CLIP (§3.1) → ``pipeline.paths.clip_dir()``.

``clip.pretrained`` empty: train the miniature CLIP ``clip.model`` on the pre-training pool's RGB renders
(train split, every view a separate image) with captions from ``bootstrap.caption_templates``, select on the
pool's validation split (RGB zero-shot), and write ``weights.pt`` + ``clip.json``.
``clip.pretrained`` set (``openai`` or a checkpoint path): check the weights load, write the pointer only.

Either way it then reports, for every benchmark with a ``test`` split, the CLIP's zero-shot accuracy on RGB
renders (per view and over all views) and on depth maps (``zeroshot.views``, Eq. 15): the image–depth
domain gap the pre-training closes. Reported, never used for any choice.

Usage: ``python -m stages.clip_bootstrap [--no-progress] [--device cpu|cuda]``
Metrics: ``pipeline.paths.metrics_file("clip_bootstrap")``; curves: ``plots_dir("clip_bootstrap")``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch

from clip2point.models.clip import MINI_CONFIGS, ClipWeightsError, create_clip, text_features
from pipeline import paths
from pipeline.artifacts import atomic_dir, write_json
from pipeline.models import CLIP_POINTER, CLIP_WEIGHTS, load_split_tensors
from pipeline.params import ParamsError, load_params


class StageError(RuntimeError):
    pass


def evaluate_clip(model, tok, params, progress: bool = True) -> dict[str, Any]:
    """Zero-shot RGB accuracy of a CLIP on each benchmark's test split and the pool's val split.

    Depth-map accuracy of the same CLIP is the ``without_pretraining`` row of the ``zeroshot`` stage: it is
    not measured here, so that depth parameters (``dvc exp run -S depth.dilation=4``) never rerun this stage.
    """
    from clip2point.train.bootstrap import RgbSet, rgb_zero_shot

    templates = list(params.clip.templates)
    out: dict[str, Any] = {}
    targets = [(params.data.pretrain.name, "val")] + [(b.name, "test") for b in params.data.benchmarks]
    for name, split in targets:
        try:
            data = load_split_tensors(name, split)
            if data["rgb"] is None:
                raise ValueError(f"{name}/{split} has no RGB renders")
        except (FileNotFoundError, KeyError, ValueError) as e:
            out[f"{name}/{split}"] = {"skipped": str(e).splitlines()[0]}
            continue
        text = text_features(model, tok, data["class_names"], templates)
        res: dict[str, Any] = {"n": int(len(data["labels"])), "chance": 1.0 / len(data["class_names"])}
        if data["rgb"] is not None:
            rgb = rgb_zero_shot(model.visual, RgbSet(data["rgb"], data["labels"]), text)
            res["rgb_per_view"], res["rgb_multi_view"] = rgb["per_view"], rgb["multi_view"]
        out[f"{name}/{split}"] = res
        if progress:
            print(f"clip_bootstrap: {name}/{split}: " + ", ".join(
                f"{k}={v:.3f}" for k, v in res.items() if isinstance(v, float)), file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        params = load_params()
        result = run(params, args.device, progress=not args.no_progress)
    except (ParamsError, ClipWeightsError, StageError) as e:
        print(f"clip_bootstrap: {e}", file=sys.stderr)
        return 1
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json(paths.metrics_file("clip_bootstrap"), result)
    print(f"clip_bootstrap: done in {result['wall_s']} s -> {paths.clip_dir()}", file=sys.stderr)
    return 0


def run(params, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    cp, bp = params.clip, params.bootstrap
    torch.manual_seed(bp.seed)
    if cp.pretrained:
        model, tok = create_clip(cp.model, cp.pretrained, device=device)
        with atomic_dir(paths.clip_dir()) as tmp:
            (tmp / CLIP_POINTER).write_text(json.dumps(
                {"model": cp.model, "pretrained": cp.pretrained, "weights": None}, indent=2) + "\n")
        return {"mode": "pointer", "model": cp.model, "pretrained": cp.pretrained,
                "zeroshot": evaluate_clip(model, tok, params, progress)}
    if cp.model not in MINI_CONFIGS:
        raise StageError(
            f"clip.model '{cp.model}' with empty clip.pretrained: bootstrapping is for the miniature "
            f"configs {sorted(MINI_CONFIGS)}; for a full-size CLIP set clip.pretrained to 'openai' or a "
            "checkpoint path"
        )
    from clip2point.train.bootstrap import BootstrapConfig, RgbSet, bootstrap_clip

    pool = params.data.pretrain.name
    try:
        train = load_split_tensors(pool, "train")
        val = load_split_tensors(pool, "val")
    except (FileNotFoundError, KeyError, ValueError, OSError) as e:
        raise StageError(f"cannot read the pre-training pool '{pool}': {str(e).splitlines()[0]}") from None
    if train["rgb"] is None or val["rgb"] is None:
        raise StageError(f"pre-training pool '{pool}' has no RGB renders: the bootstrap needs them")
    model, tok = create_clip(cp.model, "", device=device)
    cfg = BootstrapConfig(
        epochs=bp.epochs, batch_size=bp.batch_size, lr=bp.lr, weight_decay=bp.weight_decay,
        warmup_steps=bp.warmup_steps, seed=bp.seed, augment=bp.augment,
        optimizer=getattr(bp, "optimizer", "adamw"), eval_every=getattr(bp, "eval_every", 1),
        max_steps=getattr(bp, "max_steps", 0), text_lr_mult=getattr(bp, "text_lr_mult", 0.0),
        grad_clip=getattr(bp, "grad_clip", 1.0),
    )
    live = _live("clip_bootstrap")

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
        torch.save(res.state_dict, tmp / CLIP_WEIGHTS)
        (tmp / CLIP_POINTER).write_text(json.dumps(
            {"model": cp.model, "pretrained": "", "weights": CLIP_WEIGHTS, "config": MINI_CONFIGS[cp.model]},
            indent=2) + "\n")
    return {"mode": "bootstrap", "model": cp.model, **res.metrics,
            "zeroshot": evaluate_clip(model, tok, params, progress)}


def _live(key: str):
    try:
        from dvclive import Live
    except ImportError:  # pragma: no cover
        return None
    import shutil

    d = paths.plots_dir(key)
    if d.exists():
        shutil.rmtree(d)
    return Live(dir=str(d), save_dvc_exp=False, dvcyaml=None, report=None)


if __name__ == "__main__":
    sys.exit(main())
