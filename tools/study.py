"""The learning-curve study (``make study``): how far must the embedded default pre-train?

Issue 21. For every budget in ``configs/study.yaml`` (pre-training epochs, each with its own full warmup-cosine
schedule, as a default with that many epochs would run), every variant and seed, it runs the real ``pretrain``
stage (``python -m stages.pretrain``) in a study workspace ``<root>/e<EPOCHS>/`` whose inputs (shards, CLIP,
frozen image features) are links to the built DAG's, with the run's params written beside it. Selection and
the curve use the pool's *validation* split only (the stage's rule); no benchmark test split is read.

Then it tabulates, per variant and budget, the selected validation zero-shot (mean ± std over seeds), the step
selected and whether it was the last evaluation, and finds the knee: the smallest budget whose mean gain over
CLIP without pre-training reaches ``knee_fraction`` (0.8) of the largest mean gain of any budget. It writes
``study.json``, ``study.md`` and ``learning_curve.png`` under ``<root>``.

Usage::

    dvc repro image_features && python -m tools.study [--config configs/study.yaml] [--root data/study]
    python -m tools.study --report-only     # tabulate what has finished
    python -m tools.study --previous docs/results/study.json   # run only the budgets an earlier study lacks

A killed study resumes: finished runs (their details file exists) are skipped and a killed run resumes from its
checkpoint (the stage's own resume).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: what a study workspace links from the built DAG (the stage's inputs)
LINKED = ("shards", "models/clip", "image_features")


@dataclass(frozen=True)
class StudyConfig:
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: tuple[int, ...]
    evals_per_run: int
    knee_fraction: float


def load_config(path: Path) -> StudyConfig:
    """``configs/study.yaml``, validated: one line naming the file and the key on bad input."""
    if not path.is_file():
        raise SystemExit(f"study: config not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SystemExit(f"study: {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SystemExit(f"study: {path} must hold a mapping")
    from pipeline.keys import VARIANTS

    def ints(key: str, lo: int) -> tuple[int, ...]:
        v = raw.get(key)
        if not isinstance(v, list) or not v or not all(isinstance(x, int) and not isinstance(x, bool) and x >= lo
                                                       for x in v):
            raise SystemExit(f"study: {path}: '{key}' must be a non-empty list of integers >= {lo}, got {v!r}")
        if len(set(v)) != len(v):
            raise SystemExit(f"study: {path}: '{key}' lists a value twice: {v!r}")
        return tuple(v)

    variants = raw.get("variants")
    if not isinstance(variants, list) or not variants or any(v not in VARIANTS for v in variants):
        raise SystemExit(f"study: {path}: 'variants' must be a non-empty list of {list(VARIANTS)}, got {variants!r}")
    evals = raw.get("evals_per_run", 8)
    frac = raw.get("knee_fraction", 0.8)
    if not isinstance(evals, int) or evals < 1:
        raise SystemExit(f"study: {path}: 'evals_per_run' must be an integer >= 1, got {evals!r}")
    if not isinstance(frac, (int, float)) or not 0 < frac <= 1:
        raise SystemExit(f"study: {path}: 'knee_fraction' must be in (0, 1], got {frac!r}")
    unknown = set(raw) - {"variants", "seeds", "epochs", "evals_per_run", "knee_fraction"}
    if unknown:
        raise SystemExit(f"study: {path}: unknown key(s) {sorted(unknown)}")
    return StudyConfig(tuple(variants), ints("seeds", 0), tuple(sorted(ints("epochs", 1))), evals, float(frac))


def eval_every(epochs: int, evals_per_run: int) -> int:
    """Epochs between validation passes so that a run of ``epochs`` evaluates about ``evals_per_run`` times."""
    return max(1, epochs // evals_per_run)


def run_params(base: dict[str, Any], epochs: int, evals_per_run: int, variant: str, seed: int) -> dict[str, Any]:
    """The default's params with the study's budget: ``pretrain.epochs``, its eval cadence, one run."""
    out = json.loads(json.dumps(base))
    out["pretrain"].update(epochs=epochs, eval_every=eval_every(epochs, evals_per_run), variants=[variant],
                           seeds=[seed])
    return out


def workspace(root: Path, epochs: int, data: Path) -> Path:
    """``<root>/e<EPOCHS>`` with links to the built DAG's inputs under ``data``."""
    ws = root / f"e{epochs:04d}"
    ws.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        src = (data / name).resolve()
        if not src.exists():
            raise SystemExit(f"study: {data / name} is missing; build the DAG's inputs first: dvc repro image_features")
        link = ws / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and link.resolve() != src:
            link.unlink()
        if not link.exists():
            link.symlink_to(src, target_is_directory=True)
    return ws


def details_path(ws: Path, variant: str, seed: int) -> Path:
    return ws / "results" / "pretrain" / f"{variant}-seed{seed}" / "details.json"


def run_one(ws: Path, params: dict[str, Any], variant: str, seed: int) -> float:
    """One pre-training run through the real stage in workspace ``ws``; returns its wall time."""
    pfile = ws / f"params-{variant}-seed{seed}.yaml"
    pfile.write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "CLIP2POINT_DATA": str(ws), "CLIP2POINT_PARAMS": str(pfile)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "stages.pretrain", "--variant", variant, "--seed", str(seed),
                           "--no-progress"], env=env)
    if proc.returncode != 0:
        raise SystemExit(f"study: pretrain {variant} seed {seed} ({ws.name}) failed with exit code {proc.returncode}")
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------- analysis


def knee(budgets: list[int], gains: list[float], fraction: float) -> int | None:
    """Smallest budget whose gain reaches ``fraction`` of the largest gain (None when no budget gains)."""
    best = max(gains, default=-math.inf)
    if not best > 0:
        return None
    return next(b for b, g in sorted(zip(budgets, gains, strict=True)) if g >= fraction * best)


def previous_runs(path: Path | None, cfg: StudyConfig) -> dict[tuple[int, str, int], dict[str, Any]]:
    """The runs of an earlier ``study.json`` (same pool, CLIP and image features: the caller's to ensure) that
    this config asks for, keyed by (epochs, variant, seed); each marked ``"source": "previous"``."""
    if path is None:
        return {}
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"study: cannot read previous runs from {path}: {type(e).__name__}: {e}") from None
    out = {}
    for r in runs:
        key = (r["epochs"], r["variant"], r["seed"])
        if r["epochs"] in cfg.epochs and r["variant"] in cfg.variants and r["seed"] in cfg.seeds:
            out[key] = {**r, "source": "previous"}
    return out


def collect(root: Path, cfg: StudyConfig,
            previous: dict[tuple[int, str, int], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every finished run's selection facts and curve, grouped by variant and budget; a run missing under
    ``root`` is taken from ``previous`` (:func:`previous_runs`) when it is there."""
    runs: list[dict[str, Any]] = []
    previous = previous or {}
    for e in cfg.epochs:
        for v in cfg.variants:
            for s in cfg.seeds:
                p = details_path(root / f"e{e:04d}", v, s)
                if not p.is_file():
                    if (e, v, s) in previous:
                        runs.append(previous[(e, v, s)])
                    continue
                d = json.loads(p.read_text())
                curve = d["val_zeroshot_curve"]
                runs.append({"variant": v, "seed": s, "epochs": e, "steps": d["steps"], "best": d["val_zeroshot_best"],
                             "best_step": d["best_step"], "before": d["val_zeroshot_before"],
                             "final": curve[-1]["val_zeroshot"], "selected_last": d["best_step"] == curve[-1]["step"],
                             "curve": [[c["step"], c["val_zeroshot"]] for c in curve]})
    table: dict[str, list[dict[str, Any]]] = {}
    knees: dict[str, int | None] = {}
    for v in cfg.variants:
        rows = []
        for e in cfg.epochs:
            rs = [r for r in runs if r["variant"] == v and r["epochs"] == e]
            if not rs:
                continue
            best = [r["best"] for r in rs]
            before = rs[0]["before"]
            rows.append({"epochs": e, "steps": rs[0]["steps"], "n_seeds": len(rs), "best_mean": _mean(best),
                         "best_std": _std(best), "final_mean": _mean([r["final"] for r in rs]),
                         "gain_mean": _mean(best) - before, "before": before,
                         "selected_last": sum(r["selected_last"] for r in rs)})
        table[v] = rows
        knees[v] = knee([r["epochs"] for r in rows], [r["gain_mean"] for r in rows], cfg.knee_fraction)
    return {"runs": runs, "table": table, "knee": knees, "knee_fraction": cfg.knee_fraction}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def markdown(study: dict[str, Any]) -> str:
    from clip2point.report import markdown_table

    lines = ["# Learning-curve study (issue 21)", "",
             "Validation zero-shot (Eq. 15) on the pre-training pool's validation split, selected checkpoint, "
             "mean ± std over seeds; each budget is its own run with its own warmup-cosine schedule. "
             f"Knee: the smallest budget reaching {100 * study['knee_fraction']:.0f} % of the largest mean gain "
             "over CLIP without pre-training.", ""]
    for v, rows in study["table"].items():
        lines += [f"## {v} (knee: {study['knee'][v]} epochs)", "", markdown_table(
            ["epochs", "steps", "seeds", "selected val zero-shot", "gain", "last eval", "selected = last eval"],
            [[r["epochs"], r["steps"], r["n_seeds"], f"{100 * r['best_mean']:.2f} ± {100 * r['best_std']:.2f}",
              f"{100 * r['gain_mean']:+.2f}", f"{100 * r['final_mean']:.2f}", f"{r['selected_last']}/{r['n_seeds']}"]
             for r in rows]), ""]
    return "\n".join(lines)


def figure(study: dict[str, Any], path: Path) -> None:
    """Left: each budget's selected accuracy against its length. Right: the curves of the longest budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for v, rows in study["table"].items():
        if not rows:
            continue
        steps = [r["steps"] for r in rows]
        m = [100 * r["best_mean"] for r in rows]
        s = [100 * r["best_std"] for r in rows]
        color = a.errorbar(steps, m, yerr=s, marker="o", capsize=3, label=v)[0].get_color()
        if study["knee"][v] is not None:
            k = next(r for r in rows if r["epochs"] == study["knee"][v])
            a.axvline(k["steps"], ls=":", color=color)
        a.axhline(100 * rows[0]["before"], color="grey", ls="--", lw=1)
        longest = max(r["epochs"] for r in rows)
        for run in study["runs"]:
            if run["variant"] == v and run["epochs"] == longest:
                xs, ys = zip(*run["curve"], strict=True)
                b.plot(xs, [100 * y for y in ys], color=color, alpha=0.6,
                       label=f"{v} seed {run['seed']}")
    a.set_xscale("log", base=2)
    a.set_xlabel("pre-training steps (budget)")
    a.set_ylabel("selected val zero-shot (%)")
    a.set_title("accuracy against budget (dotted: knee; dashed: no pre-training)")
    a.legend(fontsize=8)
    b.set_xlabel("step")
    b.set_ylabel("val zero-shot (%)")
    b.set_title("curves of the longest budget")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def write_outputs(root: Path, study: dict[str, Any]) -> None:
    from clip2point.files import atomic_file

    with atomic_file(root / "study.json") as tmp:
        tmp.write_text(json.dumps(study, indent=1) + "\n")
    with atomic_file(root / "study.md") as tmp:
        tmp.write_text(markdown(study) + "\n")
    with atomic_file(root / "learning_curve.png") as tmp:
        figure(study, tmp)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.study", description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path("configs/study.yaml"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="the profile the study starts from")
    ap.add_argument("--data", type=Path, default=Path("data"), help="the built DAG's data root")
    ap.add_argument("--root", type=Path, default=Path("data/study"))
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--previous", type=Path, default=None,
                    help="an earlier study.json on the same inputs: its runs are not run again")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    from pipeline.params import parse_yaml

    base = parse_yaml(args.params.read_text())
    previous = previous_runs(args.previous, cfg)
    # seed-major within a budget: a study cut short still has both variants on the same seeds (paired)
    todo = [(e, v, s) for e in cfg.epochs for s in cfg.seeds for v in cfg.variants if (e, v, s) not in previous]
    if not args.report_only:
        t_start = time.perf_counter()
        for i, (e, v, s) in enumerate(todo, 1):
            ws = workspace(args.root, e, args.data)
            if details_path(ws, v, s).is_file():
                continue
            wall = run_one(ws, run_params(base, e, cfg.evals_per_run, v, s), v, s)
            print(f"study [{i}/{len(todo)}] {v} seed {s}, {e} epochs: {wall:.0f} s "
                  f"(study {time.perf_counter() - t_start:.0f} s)", file=sys.stderr, flush=True)
    study = collect(args.root, cfg, previous)
    args.root.mkdir(parents=True, exist_ok=True)
    write_outputs(args.root, study)
    print(markdown(study))
    return 0


if __name__ == "__main__":
    sys.exit(main())
