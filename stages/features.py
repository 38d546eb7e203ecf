"""Stage ``features``: encode every downstream cloud once with every encoder (paper §3.3, §4).

``python -m stages.features <dataset> [--variants intra_cross cross_only rgb_control] [--batch-size B]``

Reads ``points_table(dataset)`` (all its splits), renders depth maps (Eq. 12–14, ``params.depth``) for the
view sets the downstream stages use (``params.adapter.views``, ``params.zeroshot.views``; shared views once),
encodes them with the run's CLIP visual encoder (key ``clip``: "without pretraining") and with every
pretrained depth encoder ``<variant>-seed<seed>`` (``params.pretrain.seeds``) and with the depth encoder of
every released checkpoint ``released-<name>`` (``params.pretrain.external``, stage ``external_encoder``), and
caches the view features plus the class text features (``params.clip.templates``) under ``features_dir(dataset)``
(:mod:`pipeline.feature_store`). The only downstream stage that runs encoders: adapter parameters never
trigger a re-encode, except ``adapter.resample_epochs`` R > 0: then it also encodes, for ``adapter.views``,
R random draws of each training cloud from its point pool (``sample.pool_points``), which the adapter
stages train on, draw ``(epoch - 1) % R`` at each epoch (:mod:`pipeline.feature_store`).
"""

from __future__ import annotations

import argparse
import sys

import torch

from clip2point.models.clip import encode_views, logit_scale, text_features
from clip2point.precision import encoder_precision
from clip2point.render.depth import render_depth
from clip2point.render.views import get_views
from pipeline import models
from pipeline.artifacts import atomic_dir
from pipeline.feature_store import build_store, read_points_table, read_train_draws
from pipeline.keys import VARIANTS
from pipeline.params import load_params
from pipeline.paths import features_dir, points_table
from pipeline.stage import StageError, depth_config, depth_settings, find_dataset, run_main


def run(dataset: str, variants: list[str] | None, batch_size: int | None, device: str) -> None:
    params = load_params()
    ds = find_dataset(params, dataset)
    variants = list(params.pretrain.variants) if variants is None else variants
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise StageError(f"unknown pretraining variant(s) {bad}; known: {list(VARIANTS)}")
    table, clouds, class_names = read_points_table(points_table(dataset))
    r = params.adapter.resample_epochs
    draws = read_train_draws(points_table(dataset), r, int(clouds["train"].shape[1])) if r > 0 else None
    view_sets = {name: get_views(name) for name in dict.fromkeys([params.adapter.views, params.zeroshot.views])}
    d, cfg = params.depth, depth_config(params.depth)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    encoders, clip_model, tokenizer = models.load_encoders(variants, params.pretrain.seeds, device,
                                                           external=list(params.pretrain.external))
    bs = batch_size or params.zeroshot.batch_size
    prec = params.pretrain.precision

    def at_precision(m: torch.nn.Module, depth: torch.Tensor) -> torch.Tensor:
        with encoder_precision(device, prec):  # the encoders at the run's precision; features stored as STORE_DTYPE
            return encode_views(m, depth, bs)

    fns = {k: (lambda depth, m=m: at_precision(m, depth)) for k, m in encoders.items()}
    with torch.no_grad():
        text = text_features(clip_model, tokenizer, class_names, params.clip.templates)
        extra = {
            "templates": list(params.clip.templates),
            "clip_model": params.clip.model,
            "logit_scale": logit_scale(clip_model),
            "depth": {**depth_settings(d), "distance": d.distance},
            "up_axis": ds.up_axis,
            "pretrain_seeds": list(params.pretrain.seeds),
            "precision": prec,
        }
        with atomic_dir(features_dir(dataset)) as tmp:
            build_store(tmp, dataset, table, clouds, class_names, view_sets, d.distance,
                        lambda p, vs: render_depth(p.to(device), vs, None, cfg), fns, text, bs, extra,
                        draws=draws, draw_views=params.adapter.views)
    print(f"features: wrote {features_dir(dataset)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.features", description=__doc__.split("\n")[0])
    ap.add_argument("dataset", help="a downstream dataset name (params.yaml data.benchmarks)")
    ap.add_argument("--variants", nargs="*", default=None,
                    help="pretraining variants to encode (default: params pretrain.variants)")
    ap.add_argument("--batch-size", type=int, default=None, help="clouds per render/encode batch")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    args = ap.parse_args(argv)
    return run_main("features", lambda: run(args.dataset, args.variants, args.batch_size, args.device))


if __name__ == "__main__":
    sys.exit(main())
