"""Stage ``pretrain``: CLIP2Point image–depth pre-training (§3.2.1) → ``paths.pretrain_dir(variant, seed)``.

Variants: ``intra_cross`` (CLIP2Point, Eq. 11), ``cross_only`` (§5.6 ablation, Eq. 10), ``rgb_control``
(equal-compute control: CLIP's image encoder trained further on RGB with the image–text objective).
Depth maps are rendered on the fly from the pool's points; selection by zero-shot accuracy on depth maps of
the pre-training pool's *validation* split (``zeroshot.views``, Eq. 15), never a benchmark test split.

Usage::

    python -m stages.pretrain --variant intra_cross --seed 0 [--resume] [--keep-checkpoint] [--no-progress]
    torchrun --nproc_per_node 2 -m stages.pretrain --variant intra_cross --seed 0     # DDP (gloo / NCCL)

Writes ``encoder.pt`` + ``encoder.json`` (and, while running, the resume checkpoint ``last.pt``, removed on
success unless ``--keep-checkpoint``); metrics ``metrics_file("pretrain/<variant>-seed<S>")``; dvclive curves
``plots_dir("pretrain/<variant>-seed<S>")``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from typing import Any

import torch

from clip2point.models.clip import ClipWeightsError, text_features
from clip2point.train.pretrain import VARIANTS, TrainingDiverged
from pipeline import paths
from pipeline.artifacts import atomic_path, write_json
from pipeline.models import ENCODER_META, ENCODER_WEIGHTS, load_clip, load_split_tensors, read_clip_pointer
from pipeline.params import ParamsError, load_params

CHECKPOINT = "last.pt"


class StageError(RuntimeError):
    pass


def key(variant: str, seed: int) -> str:
    return f"pretrain/{variant}-seed{seed}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=VARIANTS, default="intra_cross")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from the run's last.pt if present")
    ap.add_argument("--keep-checkpoint", action="store_true", help="keep last.pt after success")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    args = ap.parse_args(argv)
    from clip2point.train.distributed import cleanup, init_distributed

    info = init_distributed(args.device)
    t0 = time.perf_counter()
    try:
        params = load_params()
        metrics = run(params, args.variant, args.seed, info, resume=args.resume,
                      keep_checkpoint=args.keep_checkpoint, progress=not args.no_progress)
    except (ParamsError, ClipWeightsError, StageError, TrainingDiverged) as e:
        print(f"pretrain {args.variant} seed {args.seed}: {e}", file=sys.stderr)
        cleanup()
        return 1
    if info.is_main:
        metrics["wall_s"] = round(time.perf_counter() - t0, 1)
        write_json(paths.metrics_file(key(args.variant, args.seed)), metrics)
        print(f"pretrain {args.variant} seed {args.seed}: val zero-shot {metrics['val_zeroshot_before']:.3f} "
              f"(CLIP, no pre-training) -> {metrics['val_zeroshot_best']:.3f} (step {metrics['best_step']}), "
              f"σ {metrics['sigma_init']:.3f} -> {metrics['sigma_final']:.3f}, {metrics['wall_s']} s",
              file=sys.stderr)
    cleanup()
    return 0


def run(params, variant: str, seed: int, info, resume: bool = False, keep_checkpoint: bool = False,
        progress: bool = True) -> dict[str, Any]:
    from clip2point.render.depth import DepthConfig
    from clip2point.render.views import get_views
    from clip2point.train.pretrain import (
        PretrainConfig,
        PretrainData,
        TextSide,
        ViewDepthRenderer,
        pretrain,
        render_eval_set,
    )

    pp, dp = params.pretrain, params.depth
    torch.manual_seed(seed)
    model, tok = load_clip(info.device)
    pool = params.data.pretrain.name
    try:
        train = load_split_tensors(pool, "train")
        val = load_split_tensors(pool, "val", with_rgb=False)
    except (FileNotFoundError, KeyError, ValueError, OSError) as e:
        raise StageError(f"cannot read the pre-training pool '{pool}': {str(e).splitlines()[0]}") from None
    if train["rgb"] is None:
        raise StageError(f"pre-training pool '{pool}' has no RGB renders: image–depth pre-training needs")
    dcfg = DepthConfig(image_size=dp.image_size, dilation=dp.dilation, mode=dp.mode, projection=dp.projection)
    train_views = get_views(params.render.views)
    if len(train_views) != train["rgb"].shape[1]:
        raise StageError(f"render.views '{params.render.views}' has {len(train_views)} views but the shards "
                         f"hold {train['rgb'].shape[1]} RGB views")
    class_names = train["class_names"]
    text = text_features(model, tok, class_names, list(params.clip.templates))
    cap_templates = list(params.bootstrap.caption_templates)
    caps = torch.cat([text_features(model, tok, class_names, [t]) for t in cap_templates])
    cap_labels = torch.arange(len(class_names)).repeat(len(cap_templates))
    side = TextSide(classes=text, logit_scale=float(model.logit_scale.detach().exp().clamp(max=100)), captions=caps,
                    caption_labels=cap_labels)
    zs_views = get_views(params.zeroshot.views)
    evalset = render_eval_set(val["points"], val["labels"], zs_views, dcfg, dp.distance)
    cfg = PretrainConfig(
        variant=variant, epochs=pp.epochs, batch_size=pp.batch_size, lr=pp.lr, weight_decay=pp.weight_decay,
        warmup_steps=pp.warmup_steps, temperature=pp.temperature, sigma_init=pp.sigma_init,
        sigma_lr=pp.sigma_lr, optimizer=pp.optimizer, eval_every=pp.eval_every, bf16=pp.bf16, seed=seed,
        distance=dp.distance, jitter=dp.jitter, max_steps=getattr(pp, "max_steps", 0),
        ckpt_every=getattr(pp, "ckpt_every", 0),
    )
    out = paths.pretrain_dir(variant, seed)
    out.mkdir(parents=True, exist_ok=True)
    ck = out / CHECKPOINT
    if not resume and ck.exists() and info.is_main:
        ck.unlink()
    live = _live(key(variant, seed), resume and ck.exists()) if info.is_main else None

    def on_step(step: int, sc: dict[str, float]) -> None:
        if live is not None:
            live.step = step
            for k in ("loss", "l_intra", "l_cross", "l_rgb", "sigma", "lr"):
                if k in sc and not (k == "sigma" and variant != "intra_cross"):
                    live.log_metric(f"train/{k}", sc[k])

    def on_eval(step: int, ev: dict[str, float]) -> None:
        if live is not None:
            live.step = step
            live.log_metric("val/zeroshot", ev["val_zeroshot"])

    data = PretrainData(train["points"], train["rgb"], train["labels"])
    res = pretrain(model.visual, data, evalset, side, cfg, ViewDepthRenderer(train_views, dcfg), info=info,
                   checkpoint_path=ck, resume=resume, on_step=on_step, on_eval=on_eval, progress=progress)
    if live is not None:
        live.end()
    if info.is_main:
        with atomic_path(out / ENCODER_WEIGHTS) as tmp:
            torch.save(res.encoder_state, tmp)
        meta = {"variant": variant, "seed": seed, "clip": read_clip_pointer(),
                "best_step": res.metrics["best_step"], "val_zeroshot": res.metrics["val_zeroshot_best"],
                "selected_on": f"{pool}/val"}
        with atomic_path(out / ENCODER_META) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        if not keep_checkpoint and ck.exists():
            ck.unlink()
    return {**res.metrics, "selected_on": f"{pool}/val", "temperature": pp.temperature, "lr": pp.lr,
            "sigma_lr": pp.sigma_lr}


def _live(k: str, resume: bool):
    try:
        from dvclive import Live
    except ImportError:  # pragma: no cover
        return None
    d = paths.plots_dir(k)
    if d.exists() and not resume:
        shutil.rmtree(d)
    return Live(dir=str(d), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)


if __name__ == "__main__":
    sys.exit(main())
