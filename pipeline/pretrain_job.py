"""The work of the ``pretrain`` stage: one CLIP2Point pre-training run (§3.2.1) on the run's pool and CLIP.

:func:`train` streams the pool's shards (indexed once, tar headers only; each DataLoader worker,
``pretrain.num_workers``, reads a sample's points and its one RGB view on demand), renders depth maps on the
fly (``params.depth``, Eq. 12–14), selects by zero-shot accuracy (Eq. 15) on depth maps of the pool's
*validation* split (``zeroshot.views``, rendered per batch), never a benchmark test split, and writes the
selected encoder (``encoder.pt`` + ``encoder.json``, byte-reproducible) under ``paths.pretrain_dir``.

Resume: the checkpoint lives *outside* the stage's DVC outputs, in ``paths.checkpoint_file(variant, seed)``
(``data/checkpoints/pretrain/<variant>-seed<S>/last.pt``), so that ``dvc repro``, which deletes a stage's
outputs before running it, cannot delete it. It is tagged with :func:`run_tag` (a hash of every parameter,
the CLIP and the pool's manifest): a run that finds a checkpoint with its own tag resumes from it; a
checkpoint of other params is never resumed. Temporary files of every write live in the checkpoint folder,
never inside an output; leftovers of a killed run are removed on start (:func:`clean_stale`). Curves go to
dvclive (``plots_dir(pretrain_key)``), replayed from the checkpoint on resume, so complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from clip2point.configs import PretrainConfig, config_from
from clip2point.files import json_default
from clip2point.models.clip import logit_scale, text_features
from clip2point.train.distributed import DistInfo
from pipeline import paths
from pipeline.models import ENCODER_META, ENCODER_WEIGHTS, load_clip, read_clip_pointer
from pipeline.params import Params
from pipeline.stage import StageError, depth_config, live_logger

#: the ``pretrain`` params that do not change a run's results (left out of :func:`run_tag`)
NEUTRAL = frozenset({"seeds", "variants", "num_workers", "ckpt_every", "log_every"})


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
    clip_dir = paths.clip_dir()
    pointer = read_clip_pointer(clip_dir)
    weights = pointer.get("weights")
    parts = {
        "variant": variant,
        "seed": seed,
        # resample off is left out, so the tags of runs from before the switch existed are unchanged
        "pretrain": {k: v for k, v in dataclasses.asdict(params.pretrain).items()
                     if k not in NEUTRAL and not (k == "resample" and not v)},
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
    blob = json.dumps(parts, sort_keys=True, default=json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_json(path: Path, obj: Any, variant: str, seed: int) -> None:
    """``obj`` as indented JSON at ``path``, atomically, its temporary file in the run's checkpoint folder."""
    from clip2point.train.checkpoint import write_bytes_atomic

    data = (json.dumps(obj, indent=2, default=json_default) + "\n").encode()
    write_bytes_atomic(data, path, tmp_dir=paths.checkpoint_dir(variant, seed))


def clean_stale(variant: str, seed: int) -> None:
    """Remove what a killed run may have left: temporaries inside the output folder (older versions wrote
    them there) or next to the metrics / timings files, the old in-output ``last.pt``, and temporaries in
    the checkpoint folder."""
    from clip2point.train.checkpoint import remove_stale_temps

    out = paths.pretrain_dir(variant, seed)
    remove_stale_temps(out)
    old_checkpoint = out / paths.checkpoint_file(variant, seed).name
    if old_checkpoint.is_file():
        old_checkpoint.unlink()
    timings = paths.timings_file(variant, seed)
    remove_stale_temps(paths.metrics_file(paths.pretrain_key(variant, seed)).parent, timings.name)
    remove_stale_temps(paths.details_file(paths.pretrain_key(variant, seed)).parent, "details.json")
    remove_stale_temps(timings.parent, timings.name)
    remove_stale_temps(paths.checkpoint_dir(variant, seed))


def _curve_logger(key: str | None, log_keys: list[str], logged: Any = None) -> tuple[Any, Any, Any, Any]:
    """A fresh dvclive logger of one run (None without ``key``: not the main rank) and its ``on_step``,
    ``on_eval``, ``on_resume`` callbacks. ``on_step`` logs the steps whose scalars the loop read (the
    logging steps, ``pretrain.log_every``); ``on_resume`` replays the curves of the steps before a kill in
    the order the uninterrupted run logged them (by step, an evaluation before the step's scalars; only the
    logging steps, ``logged(step)``), so the logger's files are the same bytes."""
    live = live_logger(key) if key is not None else None

    def on_step(step: int, sc: dict[str, float]) -> None:
        if live is not None and sc:
            live.step = step
            for k in log_keys:
                live.log_metric(f"train/{k}", sc[k])

    def on_eval(step: int, ev: dict[str, float]) -> None:
        if live is not None:
            live.step = step
            live.log_metric("val/zeroshot", ev["val_zeroshot"])

    def on_resume(step: int, history: dict[str, list], evals: list[dict[str, float]]) -> None:
        if live is None:
            return
        events = [(ev["step"], 0, i) for i, ev in enumerate(evals)]
        events += [(s, 1, i) for i, s in enumerate(history["step"]) if logged is None or logged(s)]
        for s, kind, i in sorted(events):
            if kind == 0:
                on_eval(s, evals[i])
            else:
                on_step(s, {k: history[k][i] for k in log_keys})

    return live, on_step, on_eval, on_resume


def train(params: Params, variant: str, seed: int, info: DistInfo, resume: bool = True,
          keep_checkpoint: bool = False, progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pre-train one (variant, seed); returns (metrics, timings). Writes the encoder (main rank)."""
    from clip2point import shards
    from clip2point.render.view_depth import ViewDepthRenderer
    from clip2point.render.views import get_views
    from clip2point.train import checkpoint as ckpt
    from clip2point.train.objectives import get_objective
    from clip2point.train.pretrain import pretrain
    from clip2point.train.pretrain_data import ShardPointsSource, ShardPretrainSource, StreamingEvalSet
    from clip2point.train.pretrain_run import TextSide, logged_step, schedule_of
    from pipeline import image_feature_job

    pp, dp = params.pretrain, params.depth
    ck_dir, ck = paths.checkpoint_dir(variant, seed), paths.checkpoint_file(variant, seed)
    out = paths.pretrain_dir(variant, seed)
    if info.is_main:
        clean_stale(variant, seed)
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
        source = ShardPretrainSource(shards.index_split(manifest, "train"),
                                     resample_seed=seed if pp.resample else None)
        val_index = shards.index_split(manifest, "val")
    except (shards.ShardError, KeyError, OSError) as e:
        raise StageError(f"cannot read the pre-training pool '{pool}': {str(e).splitlines()[0]}") from None
    except ValueError as e:  # no RGB views
        raise StageError(f"pre-training pool '{pool}': {e}") from None
    t_index = time.perf_counter() - t_index
    if len(val_index) == 0:
        raise StageError(f"pre-training pool '{pool}': split 'val' is empty in {paths.manifest(pool)}")
    dcfg = depth_config(dp)
    train_views = get_views(params.render.views)
    if len(train_views) != source.n_views:
        raise StageError(f"render.views '{params.render.views}' has {len(train_views)} views but the shards "
                         f"hold {source.n_views} RGB views")
    class_names = list(manifest.get("class_names", []))
    text = text_features(model, tok, class_names, list(params.clip.templates))
    cap_templates = list(params.bootstrap.caption_templates)
    caps = torch.cat([text_features(model, tok, class_names, [t]) for t in cap_templates])
    cap_labels = torch.arange(len(class_names)).repeat(len(cap_templates))
    side = TextSide(classes=text, logit_scale=logit_scale(model), captions=caps,
                    caption_labels=cap_labels)
    evalset = StreamingEvalSet(ShardPointsSource(val_index), get_views(params.zeroshot.views), dcfg, dp.distance,
                               num_workers=pp.num_workers)
    cfg = config_from(PretrainConfig, pp, variant=variant, seed=seed, distance=dp.distance, jitter=dp.jitter)
    obj = get_objective(variant)
    tag = run_tag(params, variant, seed)
    log_keys = ["loss", *obj.log_keys, *(["sigma"] if obj.with_sigma else []), "lr"]
    key = paths.pretrain_key(variant, seed) if info.is_main else None
    spe, total = schedule_of(cfg, len(source))
    live, on_step, on_eval, on_resume = _curve_logger(key, log_keys, lambda s: logged_step(s, cfg, spe, total))
    # E_i's features of the pool's RGB views, computed once by the image_features stage (None: not built,
    # e.g. a run outside the DAG; the step then encodes the RGB renders, as rgb_control always does)
    cache = (image_feature_job.load(pool, source.index.keys, source.n_views, pp.precision, read_clip_pointer())
             if obj.image_features else None)
    res = pretrain(model.visual, source, evalset, side, cfg, ViewDepthRenderer(train_views, dcfg), info=info,
                   checkpoint_path=ck, resume=True, run_tag=tag, on_step=on_step, on_eval=on_eval,
                   on_resume=on_resume, progress=progress, image_features=cache)
    if live is not None:
        live.end()
    if info.is_main:
        meta = {"variant": variant, "seed": seed, "clip": read_clip_pointer(),
                "best_step": res.metrics["best_step"], "val_zeroshot": res.metrics["val_zeroshot_best"],
                "selected_on": f"{pool}/val"}
        out.mkdir(parents=True, exist_ok=True)
        ckpt.save_atomic(res.encoder_state, out / ENCODER_WEIGHTS, tmp_dir=ck_dir)
        write_json(out / ENCODER_META, meta, variant, seed)
        if not keep_checkpoint and ck.exists():
            ck.unlink()
    metrics = {**res.metrics, "selected_on": f"{pool}/val", "temperature": pp.temperature, "lr": pp.lr,
               "sigma_lr": pp.sigma_lr}
    timings = {**res.timings, "index_s": round(t_index, 2), "run_tag": tag, "train_samples": len(source),
               "val_samples": len(val_index), "skipped_samples": source.index.skipped + val_index.skipped}
    return metrics, timings


def summary(metrics: dict[str, Any], timings: dict[str, Any]) -> str:
    """One line: selection accuracy before and after, σ, wall time, resume step."""
    resumed = f", resumed at step {timings['resumed_from_step']}" if timings["resumed_from_step"] else ""
    return (f"val zero-shot {metrics['val_zeroshot_before']:.3f} (CLIP, no pre-training) -> "
            f"{metrics['val_zeroshot_best']:.3f} (step {metrics['best_step']}), "
            f"σ {metrics['sigma_init']:.3f} -> {metrics['sigma_final']:.3f}, {timings['wall_s']} s{resumed}")
