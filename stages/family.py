"""Stage ``family``: the projection family on one protocol (issue 19, :mod:`pipeline.family`).

``python -m stages.family <dataset> [--device auto]``

For every member of ``params.family.members`` renders the benchmark's test split and a stratified
``zeroshot.val_fraction`` of its training split (the only data a view-weight search reads) with the member's
depth setting and view set, encodes them with the run's CLIP (``without_pretraining``), the pre-trained
``intra_cross`` encoders (``with_pretraining``, one per ``pretrain.seeds``) and every released checkpoint of
``pretrain.external`` (``released-<name>``), and classifies the test split zero-shot with each of the member's
view-weight rules.

Outputs: ``metrics_file("family/<dataset>")`` (headline: each row's accuracy with and without pre-training),
``details_file("family/<dataset>")`` (per row: label, rule, views, per-seed accuracies, searched weights; the
protocol: test size, validation part) and ``results_dir("family")/<dataset>/family.png`` (the table as a chart).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from clip2point.features import encode_splits
from clip2point.fewshot import stratified_holdout
from clip2point.models.clip import encode_views, logit_scale, text_features
from clip2point.precision import encoder_precision
from clip2point.render.depth import render_depth
from clip2point.render.views import get_views
from pipeline import models, paths
from pipeline.artifacts import atomic_dir, write_json
from pipeline.family import FAMILY, family_rows, member_depth
from pipeline.feature_store import read_points_table
from pipeline.headline import headline
from pipeline.keys import CLIP, EncoderKey
from pipeline.params import load_params
from pipeline.stage import StageError, depth_config, find_dataset, run_main


def _chart(rows: dict, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, ax = plt.subplots(figsize=(1.4 + 1.1 * len(names), 3.6))
    for j, (col, colour) in enumerate((("without_pretraining", "#9aa5b1"), ("with_pretraining", "#2f6db5"))):
        vals = [100 * rows[n][col]["acc"] if col in rows[n] else 0.0 for n in names]
        errs = [100 * (rows[n][col]["acc_std"] or 0.0) if col in rows[n] else 0.0 for n in names]
        ax.bar([i + (j - 0.5) * 0.38 for i in range(len(names))], vals, 0.38, yerr=errs, color=colour,
               label=col.replace("_", " "), capsize=2)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("zero-shot accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(dataset: str, device: str) -> None:
    params = load_params()
    find_dataset(params, dataset)
    members = list(params.family.members)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    table, clouds, class_names = read_points_table(paths.points_table(dataset))
    if "train" not in clouds or "test" not in clouds:
        raise StageError(f"family: dataset '{dataset}' needs a train and a test split, has {sorted(clouds)}")
    splits = np.asarray(table.column("split").to_pylist())
    labels_all = {s: table.column("label").to_numpy()[splits == s] for s in ("train", "test")}
    _, val = stratified_holdout(labels_all["train"], params.zeroshot.val_fraction, params.seed)
    if len(val) == 0:
        raise StageError(f"family: no validation samples in the training split of '{dataset}'")
    split_clouds = {"val": clouds["train"][torch.as_tensor(val)], "test": clouds["test"]}
    labels = {"val": labels_all["train"][val], "test": labels_all["test"]}
    external = list(params.pretrain.external)
    variants = [v for v in params.pretrain.variants if v == "intra_cross"]
    encoders, clip_model, tokenizer = models.load_encoders(variants, params.pretrain.seeds, device,
                                                           external=external)
    wanted = {"without_pretraining": [CLIP],
              "with_pretraining": [str(EncoderKey("intra_cross", s)) for s in params.pretrain.seeds],
              **{str(EncoderKey.released(n)): [str(EncoderKey.released(n))] for n in external}}
    groups = {col: [k for k in keys if k in encoders] for col, keys in wanted.items()}
    groups = {col: keys for col, keys in groups.items() if keys}  # e.g. no intra_cross in pretrain.variants
    bs, prec = params.zeroshot.batch_size, params.pretrain.precision

    def at_precision(m: torch.nn.Module, depth: torch.Tensor) -> torch.Tensor:
        with encoder_precision(device, prec):
            return encode_views(m, depth, bs)

    fns = {k: (lambda depth, m=m: at_precision(m, depth)) for k, m in encoders.items()}
    base = depth_config(params.depth)
    rows: dict = {}
    with torch.no_grad():
        text = text_features(clip_model, tokenizer, class_names, params.clip.templates)
        scale = logit_scale(clip_model)
        for name in members:
            cfg = member_depth(name, base)
            vs = FAMILY[name].views
            feats, _, _ = encode_splits(split_clouds, {vs: get_views(vs)}, params.depth.distance,
                                        lambda p, u, cfg=cfg: render_depth(p.to(device), u, None, cfg), fns, bs,
                                        desc=f"family/{name}")
            per_split = {s: {k: f[vs] for k, f in by_enc.items()} for s, by_enc in feats.items()}
            rows.update(family_rows(name, per_split, groups, text, labels, class_names, scale))
            for key, r in rows.items():
                if r["member"] == name:
                    cols = ", ".join(f"{c} {100 * r[c]['acc']:.2f}" for c in groups)
                    print(f"family {dataset} {key:>24}: {cols}", file=sys.stderr)
    details = {
        "dataset": dataset, "n": int(len(labels["test"])), "chance": 1.0 / len(class_names),
        "protocol": {"test_split": "test", "val_split": "train", "val_fraction": params.zeroshot.val_fraction,
                     "val_seed": params.seed, "n_val": int(len(val)), "templates": list(params.clip.templates),
                     "pretrained_on": params.depth.projection, "pretrain_variant": "intra_cross"},
        "rows": rows,
    }
    key = f"family/{dataset}"
    with atomic_dir(paths.results_dir("family") / dataset) as tmp:  # details.json and the chart, together
        write_json(tmp / paths.details_file(key).name, details)
        fig = _chart(rows, f"projection family · {dataset} · zero-shot, {len(labels['test'])} test shapes")
        fig.savefig(tmp / "family.png", dpi=120)
    write_json(paths.metrics_file(key), headline(key, details))
    print(f"family: wrote {paths.metrics_file(key)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.family", description=__doc__.split("\n")[0])
    ap.add_argument("dataset", help="a downstream dataset name (params.yaml data.benchmarks)")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    args = ap.parse_args(argv)
    return run_main("family", lambda: run(args.dataset, args.device))


if __name__ == "__main__":
    sys.exit(main())
