"""Stage ``pretrain``: CLIP2Point image–depth pre-training (§3.2.1) → ``paths.pretrain_dir(variant, seed)``.

Variants: ``intra_cross`` (CLIP2Point, Eq. 11), ``cross_only`` (§5.6 ablation, Eq. 10), ``rgb_control``
(equal-compute control: CLIP's image encoder trained further on RGB with the image–text objective).
Depth maps are rendered on the fly from the pool's points; selection by zero-shot accuracy on depth maps of
the pre-training pool's *validation* split (``zeroshot.views``, Eq. 15), never a benchmark test split.

Data are streamed: the pool's shards are indexed once (tar headers only) and each DataLoader worker
(``pretrain.num_workers``) reads a sample's points and its one RGB view on demand; the validation split's
depth maps are rendered per batch. Memory does not grow with the pool.

Usage::

    python -m stages.pretrain --variant intra_cross --seed 0 [--fresh] [--keep-checkpoint] [--no-progress]
    torchrun --nproc_per_node 2 -m stages.pretrain --variant intra_cross --seed 0     # DDP (gloo / NCCL)

Resume: the resume checkpoint lives *outside* the stage's DVC outputs, in :func:`checkpoint_file`
(``data/checkpoints/pretrain/<variant>-seed<S>/last.pt``), so that ``dvc repro``, which deletes a stage's
outputs before running it, cannot delete it. It is tagged with :func:`run_tag` (a hash of every parameter,
the CLIP and the pool's manifest): a run that finds a checkpoint with its own tag resumes from it
automatically (``--resume`` is accepted and is the default); a checkpoint of other params is never
resumed. ``--fresh`` deletes it first. It is removed on success unless ``--keep-checkpoint``.

Writes ``encoder.pt`` + ``encoder.json`` (byte-reproducible); metrics ``metrics_file("pretrain/<variant>-
seed<S>")`` (results only: what ``dvc metrics diff`` compares); wall times, throughput, data share and resume
facts in :func:`timings_file` (``data/timings/pretrain/<variant>-seed<S>.json``, not a DVC output); dvclive
curves ``plots_dir("pretrain/<variant>-seed<S>")`` (replayed from the checkpoint on resume, so complete).
Temporary files of every write live in the checkpoint folder, never inside an output; leftovers of a
killed run are removed on start.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from clip2point.models.clip import ClipWeightsError, text_features
from clip2point.train.pretrain import VARIANTS, TrainingDiverged
from pipeline import paths
from pipeline.models import ENCODER_META, ENCODER_WEIGHTS, load_clip, read_clip_pointer
from pipeline.params import Params, ParamsError, load_params

CHECKPOINT = "last.pt"


class StageError(RuntimeError):
    pass


def key(variant: str, seed: int) -> str:
    return f"pretrain/{variant}-seed{seed}"


def checkpoint_dir(variant: str, seed: int) -> Path:
    """Resume checkpoint and write temporaries of one run: not a DVC output (git-ignored under ``data/``)."""
    return paths.data_root() / "checkpoints" / "pretrain" / f"{variant}-seed{seed}"


def checkpoint_file(variant: str, seed: int) -> Path:
    return checkpoint_dir(variant, seed) / CHECKPOINT


def timings_file(variant: str, seed: int) -> Path:
    """Wall times, throughput, data share, resume facts of one run (uncached; never in the metrics)."""
    return paths.data_root() / "timings" / "pretrain" / f"{variant}-seed{seed}.json"


def _sha256_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_tag(params: Params, variant: str, seed: int) -> str:
    """Hash of everything that determines a run's results: its params (the ``pretrain`` section minus the
    run lists and result-neutral fields, ``depth``, the view sets, prompts, ``data.pretrain``), the CLIP
    (pointer and weights file) and the pool's manifest. A resume checkpoint is resumed only under its tag."""
    neutral = {"seeds", "variants", "num_workers", "ckpt_every"}
    clip_dir = paths.clip_dir()
    pointer = read_clip_pointer(clip_dir)
    weights = pointer.get("weights")
    parts = {
        "variant": variant,
        "seed": seed,
        "pretrain": {k: v for k, v in dataclasses.asdict(params.pretrain).items() if k not in neutral},
        "depth": dataclasses.asdict(params.depth),
        "render.views": params.render.views,
        "zeroshot.views": params.zeroshot.views,
        "clip.templates": list(params.clip.templates),
        "bootstrap.caption_templates": list(params.bootstrap.caption_templates),
        "data.pretrain": dataclasses.asdict(params.data.pretrain),
        "clip": pointer,
        "clip_weights": _sha256_file(clip_dir / weights) if weights else None,
        "manifest": _sha256_file(paths.manifest(params.data.pretrain.name)),
    }
    blob = json.dumps(parts, sort_keys=True, default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _write_json(path: Path, obj: Any, tmp_dir: Path) -> None:
    from clip2point.train.checkpoint import write_bytes_atomic

    data = (json.dumps(obj, indent=2, default=_json_default) + "\n").encode()
    write_bytes_atomic(data, path, tmp_dir=tmp_dir)


def _clean_stale(variant: str, seed: int) -> None:
    """Remove what a killed run may have left: temporaries inside the output folder (older versions wrote
    them there) or next to the metrics / timings files, the old in-output ``last.pt``, and temporaries in
    the checkpoint folder."""
    from clip2point.train.checkpoint import remove_stale_temps

    out = paths.pretrain_dir(variant, seed)
    remove_stale_temps(out)
    if (out / CHECKPOINT).is_file():
        (out / CHECKPOINT).unlink()
    name = f"{variant}-seed{seed}.json"
    remove_stale_temps(paths.metrics_file(key(variant, seed)).parent, name)
    remove_stale_temps(timings_file(variant, seed).parent, name)
    remove_stale_temps(checkpoint_dir(variant, seed))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=VARIANTS, default="intra_cross")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true",
                    help="continue from a matching resume checkpoint (the default; kept for compatibility)")
    ap.add_argument("--fresh", action="store_true", help="delete the run's resume checkpoint and start over")
    ap.add_argument("--keep-checkpoint", action="store_true", help="keep last.pt after success")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    args = ap.parse_args(argv)
    from clip2point.train.distributed import cleanup, init_distributed

    info = init_distributed(args.device)
    t0 = time.perf_counter()
    try:
        params = load_params()
        metrics, timings = run(params, args.variant, args.seed, info, resume=not args.fresh,
                               keep_checkpoint=args.keep_checkpoint, progress=not args.no_progress)
    except (ParamsError, ClipWeightsError, StageError, TrainingDiverged) as e:
        print(f"pretrain {args.variant} seed {args.seed}: {e}", file=sys.stderr)
        cleanup()
        return 1
    if info.is_main:
        timings["wall_s"] = round(time.perf_counter() - t0, 1)
        tmp = checkpoint_dir(args.variant, args.seed)
        _write_json(paths.metrics_file(key(args.variant, args.seed)), metrics, tmp)
        _write_json(timings_file(args.variant, args.seed), timings, tmp)
        resumed = f", resumed at step {timings['resumed_from_step']}" if timings["resumed_from_step"] else ""
        print(f"pretrain {args.variant} seed {args.seed}: val zero-shot {metrics['val_zeroshot_before']:.3f} "
              f"(CLIP, no pre-training) -> {metrics['val_zeroshot_best']:.3f} (step {metrics['best_step']}), "
              f"σ {metrics['sigma_init']:.3f} -> {metrics['sigma_final']:.3f}, {timings['wall_s']} s{resumed}",
              file=sys.stderr)
    cleanup()
    return 0


def run(params: Params, variant: str, seed: int, info, resume: bool = True, keep_checkpoint: bool = False,
        progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pre-train one (variant, seed); returns (metrics, timings). Writes the encoder (main rank)."""
    from clip2point import shards
    from clip2point.render.depth import DepthConfig
    from clip2point.render.views import get_views
    from clip2point.train import checkpoint as ckpt
    from clip2point.train.pretrain import (
        PretrainConfig,
        TextSide,
        ViewDepthRenderer,
        get_objective,
        pretrain,
    )
    from clip2point.train.pretrain_data import ShardPointsSource, ShardPretrainSource, StreamingEvalSet

    pp, dp = params.pretrain, params.depth
    ck_dir, ck = checkpoint_dir(variant, seed), checkpoint_file(variant, seed)
    out = paths.pretrain_dir(variant, seed)
    if info.is_main:
        _clean_stale(variant, seed)
        if not resume and ck.exists():
            ck.unlink()
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()
    torch.manual_seed(seed)
    model, tok = load_clip(info.device)
    pool = params.data.pretrain.name
    t_index = time.perf_counter()
    try:
        manifest = shards.read_manifest(paths.manifest(pool))
        source = ShardPretrainSource(shards.index_split(manifest, "train"))
        val_index = shards.index_split(manifest, "val")
    except (shards.ShardError, KeyError, OSError) as e:
        raise StageError(f"cannot read the pre-training pool '{pool}': {str(e).splitlines()[0]}") from None
    except ValueError as e:  # no RGB views
        raise StageError(f"pre-training pool '{pool}': {e}") from None
    t_index = time.perf_counter() - t_index
    if len(val_index) == 0:
        raise StageError(f"pre-training pool '{pool}': split 'val' is empty in {paths.manifest(pool)}")
    dcfg = DepthConfig(image_size=dp.image_size, dilation=dp.dilation, mode=dp.mode, projection=dp.projection)
    train_views = get_views(params.render.views)
    if len(train_views) != source.n_views:
        raise StageError(f"render.views '{params.render.views}' has {len(train_views)} views but the shards "
                         f"hold {source.n_views} RGB views")
    class_names = list(manifest.get("class_names", []))
    text = text_features(model, tok, class_names, list(params.clip.templates))
    cap_templates = list(params.bootstrap.caption_templates)
    caps = torch.cat([text_features(model, tok, class_names, [t]) for t in cap_templates])
    cap_labels = torch.arange(len(class_names)).repeat(len(cap_templates))
    side = TextSide(classes=text, logit_scale=float(model.logit_scale.detach().exp().clamp(max=100)), captions=caps,
                    caption_labels=cap_labels)
    evalset = StreamingEvalSet(ShardPointsSource(val_index), get_views(params.zeroshot.views), dcfg, dp.distance,
                               num_workers=pp.num_workers)
    cfg = PretrainConfig(
        variant=variant, epochs=pp.epochs, batch_size=pp.batch_size, lr=pp.lr, weight_decay=pp.weight_decay,
        warmup_steps=pp.warmup_steps, temperature=pp.temperature, sigma_init=pp.sigma_init,
        sigma_lr=pp.sigma_lr, optimizer=pp.optimizer, eval_every=pp.eval_every, bf16=pp.bf16, seed=seed,
        distance=dp.distance, jitter=dp.jitter, max_steps=pp.max_steps, ckpt_every=pp.ckpt_every,
        num_workers=pp.num_workers, schedule=pp.schedule, param_groups=pp.param_groups,
    )
    obj = get_objective(variant)
    tag = run_tag(params, variant, seed)
    live = _live(key(variant, seed)) if info.is_main else None
    log_keys = [("loss", "loss"), *((k, k) for k in obj.log_keys)]
    if obj.with_sigma:
        log_keys.append(("sigma", "sigma"))
    log_keys.append(("lr", "lr"))

    def on_step(step: int, sc: dict[str, float]) -> None:
        if live is not None:
            live.step = step
            for name, k in log_keys:
                live.log_metric(f"train/{name}", sc[k])

    def on_eval(step: int, ev: dict[str, float]) -> None:
        if live is not None:
            live.step = step
            live.log_metric("val/zeroshot", ev["val_zeroshot"])

    def on_resume(step: int, history: dict[str, list], evals: list[dict[str, float]]) -> None:
        """Replay the curves of the steps before the kill (history stores l_rgb under l_cross)."""
        if live is None:
            return
        for i, s in enumerate(history["step"]):
            on_step(s, {k: history["l_cross" if k == "l_rgb" else k][i] for _, k in log_keys})
        for ev in evals:
            on_eval(ev["step"], ev)

    res = pretrain(model.visual, source, evalset, side, cfg, ViewDepthRenderer(train_views, dcfg), info=info,
                   checkpoint_path=ck, resume=True, run_tag=tag, on_step=on_step, on_eval=on_eval,
                   on_resume=on_resume, progress=progress)
    if live is not None:
        live.end()
    if info.is_main:
        meta = {"variant": variant, "seed": seed, "clip": read_clip_pointer(),
                "best_step": res.metrics["best_step"], "val_zeroshot": res.metrics["val_zeroshot_best"],
                "selected_on": f"{pool}/val"}
        out.mkdir(parents=True, exist_ok=True)
        ckpt.save_atomic(res.encoder_state, out / ENCODER_WEIGHTS, tmp_dir=ck_dir)
        _write_json(out / ENCODER_META, meta, ck_dir)
        if not keep_checkpoint and ck.exists():
            ck.unlink()
    metrics = {**res.metrics, "selected_on": f"{pool}/val", "temperature": pp.temperature, "lr": pp.lr,
               "sigma_lr": pp.sigma_lr}
    timings = {**res.timings, "index_s": round(t_index, 2), "run_tag": tag, "train_samples": len(source),
               "val_samples": len(val_index), "skipped_samples": source.index.skipped + val_index.skipped}
    return metrics, timings


def _live(k: str):
    """A fresh dvclive folder (curves of a resumed run are replayed into it from the checkpoint)."""
    try:
        from dvclive import Live
    except ImportError:  # pragma: no cover
        return None
    d = paths.plots_dir(k)
    if d.exists():
        shutil.rmtree(d)
    return Live(dir=str(d), resume=False, save_dvc_exp=False, dvcyaml=None, report=None)


if __name__ == "__main__":
    sys.exit(main())
