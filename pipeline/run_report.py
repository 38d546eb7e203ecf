"""The run's ``report.md`` with figures, in the shapes of the paper's tables (Tables 1, 2, 4; §5.6).

:func:`build_report` reads the details of every stage (``pipeline.paths.details_file``, :mod:`pipeline.headline`),
the CLIP's RGB zero-shot (``clip_bootstrap`` and ``rgb_zeroshot@<ds>`` metrics), the pre-training wall times
(``pipeline.paths.timings_file``), the confusion matrices and the contact sheet, writes the figures into a folder
and returns the markdown. Paper figures are
printed beside ours only as a reference for the *direction* of each finding (:mod:`pipeline.findings`): the
embedded benchmark is not ModelNet and the miniature CLIP is not ViT-B/32, so the numbers are not comparable.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from clip2point.report import bar_figure, fmt_pct, markdown_table
from clip2point.train.objective_info import METHOD, OBJECTIVES
from pipeline import paths
from pipeline.findings import clip_rgb_zero_shot, evaluate
from pipeline.headline import read_details
from pipeline.keys import CLIP, CLIP_ROW, DPA, EncoderKey, RowKey
from pipeline.params import DatasetParams, Params

# Paper figures (ModelNet40 unless said otherwise), for the direction of each finding.
PAPER_TABLE1 = {"ModelNet10": (30.51, 66.63), "ModelNet40": (29.71, 49.38), "S-OBJ_ONLY": (28.40, 35.46),
                "S-OBJ_BG": (23.92, 30.46), "S-PB_T50_RS": (18.18, 23.32)}
PAPER_TABLE4 = {("single", "inter_view"): 86.06, ("single", "global_view"): 87.32,
                ("dual", "inter_view"): 86.18, ("dual", "global_view"): 89.21}
PAPER_CROSS_ONLY = 38.29  # §5.6 zero-shot, ModelNet40, cross-modality only (intra + cross: 49.38)

CLIP_LABEL = "CLIP visual encoder on depth (w/o pre-training)"


def released_label(encoder: str) -> str | None:
    """``"released checkpoint (<name>)"`` for a released checkpoint's encoder key ``released-<name>``
    (``pretrain.external``), else ``None``."""
    try:
        key = EncoderKey.parse(encoder)
    except ValueError:
        return None
    return f"released checkpoint ({key.name})" if key.is_released else None


def _learns_sigma(encoder: str) -> bool:
    """Whether the pre-training run ``<variant>-seed<n>`` learned Eq. 11's σ (its objective's ``with_sigma``)."""
    try:
        variant = EncoderKey.parse(encoder).variant
    except ValueError:
        return False
    return variant in OBJECTIVES and OBJECTIVES.get(variant).with_sigma


def zs_rows(rows: dict[str, Any]) -> list[tuple[str, str]]:
    """The zero-shot table's rows: CLIP's, each objective's (its ``zero_shot_label``), then one per released
    checkpoint in ``rows``."""
    fixed = [(CLIP_ROW, CLIP_LABEL)] + [(i.zero_shot_row, i.zero_shot_label) for _, i in OBJECTIVES.items()]
    return fixed + [(k, label) for k in rows if (label := released_label(k)) is not None]


TABLE4 = [("single path", str(RowKey("inter_view", (METHOD,))), str(RowKey("global_view", (METHOD,)))),
          ("dual path", str(RowKey("dual_path_inter_view", (CLIP, METHOD))), str(DPA))]


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _seed_accs(row: dict[str, Any]) -> list[float]:
    seeds = row.get("seeds") or {}
    return [s["acc"] for s in seeds.values()] or [row["acc"]]


def _cell(rows: dict[str, Any], key: str) -> str:
    return fmt_pct(_seed_accs(rows[key])) if key in rows else "–"


def _dataset_line(ds: DatasetParams, role: str, params: Params) -> str:
    """One dataset as used by this run: kind, root, measured split sizes, and the subset if one was used."""
    if ds.kind == "synth":
        s = params.synth
        per = (f"{s.pretrain_train_per_class}/{s.pretrain_val_per_class} train/val" if role == "pre-training"
               else f"{s.benchmark_train_per_class}/{s.benchmark_test_per_class} train/test")
        what = f"procedural benchmark (`clip2point.synth`), {len(s.classes)} classes, {per} shapes per class"
    else:
        what = f"`{ds.kind}`" + (f" {ds.variant}" if ds.variant else "") + f" from `{ds.root}`, {ds.up_axis}-up"
    try:
        table = pq.read_table(paths.points_table(ds.name), columns=["split"]).column("split").to_pylist()
        sizes = ", ".join(f"{sp} {table.count(sp):,}" for sp in sorted(set(table)))
    except (FileNotFoundError, OSError):
        sizes = "not sampled"
    subset = "; ".join(f"{sp}: subset: {n:,} of {total:,}" for sp, (n, total) in sorted(ds.subset.items()))
    return f"- {role.capitalize()} `{ds.name}`: {what}; samples {sizes}" + (
        f"; **{subset}** (`prepare --allow-incomplete`)" if subset else "") + "."


def _setting(params: Params) -> str:
    c = params.clip
    if c.pretrained:
        clip = f"CLIP `{c.model}` with weights `{c.pretrained}` (loaded, not trained here)"
    else:
        clip = f"CLIP `{c.model}` (miniature, bootstrapped on the pre-training pool's RGB renders)"
    d = params.depth
    data = [_dataset_line(params.data.pretrain, "pre-training", params)]
    data += [_dataset_line(b, "benchmark", params) for b in params.data.benchmarks]
    return ("\n".join(data) + f"\n- Model: {clip}; prompts {list(c.templates)}.\n"
            f"- Depth maps: {d.image_size}², mode `{d.mode}`, dilation R={d.dilation}, `{d.projection}` "
            f"projection, distance {d.distance} (pre-training jitter ±{d.jitter}).\n"
            f"- Pre-training: {params.pretrain.epochs} epochs, batch {params.pretrain.batch_size}, lr "
            f"{params.pretrain.lr}, τ={params.pretrain.temperature}, seeds {list(params.pretrain.seeds)}.\n"
            f"- Adapters: {params.adapter.k_shot}-shot, {params.adapter.epochs} epochs max, seeds "
            f"{list(params.adapter.seeds)}.")


def build_report(params: Params, out: Path) -> str:
    """Write the figures into ``out`` and return the markdown text."""
    md: list[str] = ["# CLIP2Point — report of this run", "",
                     "Numbers are measured on this run and reported as measured; ± is the sample standard "
                     "deviation over seeds (n given). Paper figures are ModelNet with ViT-B/32: they show the "
                     "*direction* of each finding, the settings are not comparable.", "", "## Setting", "",
                     _setting(params), ""]
    sheet = paths.contact_sheet()
    if sheet.exists():
        shutil.copy(sheet, out / "contact_sheet.png")
        md += ["![contact sheet](contact_sheet.png)", "",
               "*RGB views (left) and depth maps (right) of a few pre-training shapes per class.*", ""]

    boot = read_details("clip_bootstrap")
    md += ["## The CLIP of this run", ""]
    if boot is None:
        md += ["(no `clip_bootstrap` metrics)", ""]
    else:
        rows = []
        for key, z in sorted(clip_rgb_zero_shot().items()):
            if "rgb_per_view" not in z:  # a point-cloud dataset: {"skipped": why}
                continue
            ds, _, split = key.partition("/")
            zs = read_details(f"zeroshot/{ds}") if split == "test" else None
            depth = zs["rows"].get("without_pretraining", {}).get("acc") if zs else None
            rows.append([key, fmt_pct(z.get("rgb_per_view")), fmt_pct(z.get("rgb_multi_view")),
                         fmt_pct(depth), fmt_pct(z.get("chance"))])
        how = ("loaded from the configured weights (not trained here)" if boot.get("mode") == "pointer"
               else "bootstrapped on the pre-training pool")
        md += [f"Model `{boot.get('model')}`, {how}.", "",
               markdown_table(["split", "RGB zero-shot (per view)", "RGB zero-shot (all views)",
                               "depth zero-shot (Eq. 15, zeroshot stage)", "chance"], rows), "",
               "The gap between RGB and depth accuracy is the image–depth domain gap that pre-training "
               "should close. (Paper, ViT-B/32 on its ShapeNet validation renders: RGB 54.21%, depth 19.98%.)",
               ""]

    md += ["## Pre-training", ""]
    curves: dict[str, dict[str, Any]] = {}
    prow = []
    for variant in params.pretrain.variants:
        for seed in params.pretrain.seeds:
            key = str(EncoderKey(variant, seed))
            m = read_details(paths.pretrain_key(variant, seed))
            if m is None:
                continue
            curves[key] = m
            wall = (_load(paths.timings_file(variant, seed)) or {}).get("wall_s")
            prow.append([variant, seed, fmt_pct(m.get("val_zeroshot_before")), fmt_pct(m.get("val_zeroshot_best")),
                         m.get("best_step"), f"{m.get('sigma_init', float('nan')):.3f} → "
                         f"{m.get('sigma_final', float('nan')):.3f}", "–" if wall is None else f"{wall:.0f}"])
    if prow:
        md += [markdown_table(["variant", "seed", "val zero-shot before", "val zero-shot best", "best step",
                               "σ (Eq. 11)", "wall s"], prow), "",
               "Wall times are this machine's (`data/timings/`, not a DVC output; – where a run left none).", "",
               "Checkpoints are selected on the pre-training pool's **validation** split (depth maps, Eq. 15), "
               "never on a benchmark test split.", ""]
        if _curves_figure(curves, out / "pretrain_curves.png"):
            md += ["![pre-training curves](pretrain_curves.png)", ""]
    md += _study_section(params, out)

    for ds in params.data.benchmarks:
        md += _dataset_section(params, ds.name, out)
    md += ["## Under the released code's choices", "",
           "The same findings with the released code's choices switched on (disc footprint, torch_optimizer's "
           "LAMB with warm restarts, the SimplifiedAdapter head, per-epoch resampling, the released prompt; "
           "`configs/released.yaml`, docs/parity.md) come from a second whole run outside this DAG "
           "(`make compare-profiles`), side by side with this profile's: [profiles.md](profiles.md).", ""]
    return "\n".join(md) + "\n"


def _study_section(params: Params, out: Path) -> list[str]:
    """The learning-curve study (``make study``, measured outside the DAG and committed as
    ``paths.study_summary()``): selected val zero-shot against the budget, this run's budget marked."""
    study = _load(paths.study_summary())
    if study is None:
        return []
    rows = []
    for variant, table in study.get("table", {}).items():
        for r in table:
            mark = " ← this run" if r["epochs"] == params.pretrain.epochs else ""
            rows.append([variant, f"{r['epochs']}{mark}", r["steps"], r["n_seeds"],
                         f"{100 * r['best_mean']:.2f} ± {100 * r['best_std']:.2f}", f"{100 * r['gain_mean']:+.2f}",
                         f"{r['selected_last']}/{r['n_seeds']}"])
    md = ["### How long to pre-train (the learning-curve study)", "",
          f"Measured by `make study` (`tools/study.py`, {paths.study_summary()}); each budget is its own run with its "
          "own schedule, selected on the pool's validation split. Knee (smallest budget with "
          f"{100 * study.get('knee_fraction', 0.8):.0f} % of the largest mean gain): "
          + ", ".join(f"{v} {k} epochs" for v, k in study.get("knee", {}).items()) + ".", "",
          markdown_table(["variant", "epochs", "steps", "seeds", "selected val zero-shot", "gain",
                          "selected = last eval"], rows), ""]
    fig = paths.study_summary().with_name("learning_curve.png")
    if fig.is_file():
        shutil.copyfile(fig, out / "learning_curve.png")
        md += ["![learning curve](learning_curve.png)", ""]
    return md


def _dataset_section(params: Params, name: str, out: Path) -> list[str]:
    md = [f"## Downstream: `{name}`", ""]
    zs = read_details(f"zeroshot/{name}")
    if zs is not None:
        r = zs["rows"]
        md += [f"### Zero-shot (Table 1 shape; {zs.get('n_views')} views, {zs.get('n')} test shapes, chance "
               f"{fmt_pct(zs.get('chance'))})", "",
               markdown_table(["row", "accuracy", "mean class acc."],
                              [[label, _cell(r, key),
                                fmt_pct(r[key]["mean_class_acc"]) if key in r else "–"] for key, label in zs_rows(r)]),
               "", "Paper (Table 1, w/o → w/ pre-training): " + ", ".join(
                   f"{k} {a:.2f} → {b:.2f}" for k, (a, b) in PAPER_TABLE1.items())
               + f"; cross-only ablation on ModelNet40: {PAPER_CROSS_ONLY}.", ""]
        groups = {key: _seed_accs(r[key]) for key, _ in zs_rows(r) if key in r}
        fig = bar_figure(groups, f"zero-shot on {name}", chance=zs.get("chance"))
        fig.savefig(out / f"zeroshot_{name}.png")
        md += [f"![zero-shot](zeroshot_{name}.png)", ""]
        md += _copy_confusions(paths.results_dir("zeroshot") / name, out, f"zeroshot_{name}")
    md += _family_section(name, out)
    for mode in ("fewshot", "supervised"):
        m = read_details(f"{mode}/{name}")
        if m is None:
            continue
        r = m["rows"]
        title = (f"{m.get('k_shot')}-shot" if mode == "fewshot" else "fully supervised")
        paper = ("Table 4 shape (paper, ModelNet40 16-shot: single 86.06 / 87.32, dual 86.18 / 89.21):"
                 if mode == "fewshot" else
                 "Table 4 shape on the whole training split (paper Table 3, ModelNet40 fully supervised DPA: 94.0):")
        md += [f"### {title.capitalize()} adapters ({m.get('n_views')} views, {m.get('n_test')} test shapes, "
               f"chance {fmt_pct(m.get('chance'))})", "", paper, "",
               markdown_table(["", "inter-view", "global-view"],
                              [[label, _cell(r, a), _cell(r, b)] for label, a, b in TABLE4]), "",
               "All rows:", "",
               markdown_table(["row", "note", "accuracy", "mean class acc."],
                              [[k, v.get("note", ""), _cell(r, k), fmt_pct(v.get("mean_class_acc"))]
                               for k, v in r.items()]), ""]
        fig = bar_figure({k: _seed_accs(v) for k, v in r.items()}, f"{title} on {name}", chance=m.get("chance"))
        fig.savefig(out / f"{mode}_{name}.png")
        md += [f"![{mode}]({mode}_{name}.png)", ""]
        md += _copy_confusions(paths.results_dir(mode) / name, out, f"{mode}_{name}")
    fs = evaluate(name, params.data.pretrain.name)
    if fs:
        md += ["### Findings", "", "Checked findings fail CI (`python -m pipeline.findings --strict`); the others "
               "are the paper's directions, reported whether or not this run reproduces them. Comparisons are "
               "paired on the same test shapes (bootstrap over shapes and seeds, 95 % interval; "
               "`pipeline.findings`); *power* is this run's chance to see the paper's effect (ModelNet40) "
               "if it were the true one, *MDE* the smallest effect seen with 80 % power.", "",
               markdown_table(["finding", "kind", "reproduced", "effect [95 % CI]", "p", "paper", "power", "MDE",
                               "numbers"],
                              [[f.claim, "checked" if f.checked else "reported", "yes" if f.passed else "**no**",
                                *_finding_stats(f), f.detail] for f in fs]), ""]
    return md


def _finding_stats(f: Any) -> list[str]:
    """Effect with interval, p, the paper's effect, power and MDE of a paired finding (points; – when unpaired)."""
    if f.effect is None:
        return ["–"] * 5
    pts = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    return [f"{pts(f.effect)} [{pts(f.lo)}, {pts(f.hi)}]", f"{f.p:.3f}",
            "–" if f.paper_effect is None else pts(f.paper_effect),
            "–" if f.power is None else f"{100 * f.power:.0f} %", f"{100 * f.mde:.1f}"]


#: published zero-shot ModelNet40 numbers of the family (for the direction only)
PAPER_FAMILY = ("PointCLIP 20.18 (searched on test), PointCLIP V2 64.22 (ViT-B/16; 55.14 with ViT-B/32), "
                "CLIP2Point 49.38")


def _family_section(name: str, out: Path) -> list[str]:
    """The projection-family table (stage ``family@<ds>``, :mod:`pipeline.family`)."""
    fam = read_details(f"family/{name}")
    if fam is None:
        return []
    p = fam["protocol"]
    released = sorted({c for r in fam["rows"].values() for c in r if c.startswith("released-")})
    rows = [[key, r["label"], f"`{r['views']}`", r["rule"], _cell(r, "without_pretraining"),
             _cell(r, "with_pretraining"), *(_cell(r, c) for c in released)] for key, r in fam["rows"].items()]
    heads = ["row", "projection", "views", "view weights", "w/o pre-training", "with pre-training",
             *(f"released checkpoint ({c.removeprefix('released-')})" for c in released)]
    md = [f"### Projection family, one protocol ({fam['n']} test shapes, chance {fmt_pct(fam.get('chance'))})", "",
          f"Every row: the same test split, prompts {p['templates']}, and the same rule for anything chosen: searched "
          f"view weights come from a stratified {p['val_fraction']:g} of the **training** split ({p['n_val']} shapes), "
          f"never the test split. \"with pre-training\": the run's `{p['pretrain_variant']}` encoders, pre-trained on "
          f"`{p['pretrained_on']}` maps (mean ± std over seeds).", "",
          markdown_table(heads, rows),
          "", f"Published, ModelNet40 zero-shot (each under its own protocol): {PAPER_FAMILY}.", ""]
    chart = paths.results_dir("family") / name / "family.png"
    if chart.is_file():
        shutil.copyfile(chart, out / f"family_{name}.png")
        md += [f"![projection family](family_{name}.png)", ""]
    return md


def _copy_confusions(src: Path, out: Path, prefix: str) -> list[str]:
    md = []
    for png in sorted(src.glob("confusion_*.png")) if src.exists() else []:
        dst = f"{prefix}_{png.name}"
        shutil.copy(png, out / dst)
        md += [f"![{png.stem}]({dst})", ""]
    return md


def _curves_figure(curves: dict[str, dict[str, Any]], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=120)
    drawn = False
    for name, m in curves.items():
        ev = m.get("val_zeroshot_curve") or []
        if ev:
            a1.plot([e["step"] for e in ev], [100 * e["val_zeroshot"] for e in ev], marker="o", ms=3, label=name)
            drawn = True
        sig = m.get("sigma_trajectory")
        if sig and _learns_sigma(name):
            steps, vals = (sig["step"], sig["value"]) if isinstance(sig, dict) else zip(*sig, strict=True)
            a2.plot(list(steps), list(vals), label=name)
    a1.set_title("val zero-shot on depth (selection)", fontsize=9)
    a1.set_xlabel("step")
    a1.set_ylabel("accuracy (%)")
    a1.legend(fontsize=6)
    a2.set_title("σ of Eq. 11", fontsize=9)
    a2.set_xlabel("step")
    fig.tight_layout()
    if drawn:
        fig.savefig(path)
    plt.close(fig)
    return drawn
