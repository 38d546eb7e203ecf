"""The paper's findings, checked on a run's metrics and predictions, with paired intervals and power.

``python -m pipeline.findings [--strict] [--json]`` reads the details and predictions of a finished run
(``pipeline.paths.details_file``; the CLIP's RGB zero-shot from the ``clip_bootstrap`` / ``rgb_zeroshot`` metrics)
and prints one line per finding: what it claims, the numbers, and PASS /
FAIL. With ``--strict`` (CI) it exits 1 when a *checked* finding fails; the *reported* ones (directions the
paper shows that the miniature may or may not reproduce) never fail the run, they are listed in the report.

Rules (not picked to pass):

* "well above chance" for an accuracy measured on n test samples: acc > chance + 3·sqrt(chance·(1−chance)/n),
  three binomial standard errors of a chance-level classifier on the same n;
* "A above B": both rows score the same test shapes, so the comparison is **paired**
  (:func:`clip2point.stats.paired_bootstrap`: shapes resampled once for both arms, runs (seeds) within each
  arm); A is above B when the 95 % interval of mean_A − mean_B lies above 0 (the p-value: the bootstrap's,
  or the exact McNemar test when each arm is one run). "A at least as good as the best
  of Bs": the interval's upper end is ≥ 0. Each such finding carries its effect, interval and p-value, the
  paper's effect (:data:`PAPER_EFFECT`, ModelNet40) and the power of this run to see an effect that large
  (:func:`clip2point.stats.power` at the bootstrap's standard error);
* without per-shape predictions (older details files), the unpaired fallback: mean_A − mean_B >
  2·sqrt(se_A² + se_B²) with se = std/sqrt(n_seeds).

These are the only rules: the ``zeroshot`` / ``fewshot`` / ``supervised`` stages record
:func:`zeroshot_findings` / :func:`adapter_findings` in their details (``findings``: key → passed) with them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clip2point.stats import PairedDifference, mcnemar_exact, min_detectable_effect, paired_bootstrap, power
from pipeline import paths
from pipeline.headline import read_details
from pipeline.keys import CLIP, DPA, RowKey
from pipeline.params import load_params


@dataclass(frozen=True)
class Finding:
    key: str
    claim: str
    passed: bool
    detail: str
    checked: bool  # True: CI fails when it fails; False: reported only
    effect: float | None = None  # paired mean_A − mean_B (accuracy, 0–1), with its 95 % interval
    lo: float | None = None
    hi: float | None = None
    p: float | None = None
    paper_effect: float | None = None  # the paper's difference (accuracy, 0–1; ModelNet40), None: not published
    power: float | None = None  # of this run's paired comparison to see paper_effect (two-sided 5 %)
    mde: float | None = None  # the smallest difference this run sees with 80 % power


#: The paper's effect for each comparison, in accuracy points (ModelNet40): Table 1 (49.38 vs 29.71), §5.6
#: (cross-only 38.29; DPA on two CLIP paths 87.20), Tables 2 and 4 (16-shot: w/o Pre. 87.46; single inter /
#: global 86.06 / 87.32; dual 86.18 / 89.21). Keys without a published pair (the equal-compute controls, the
#: fully supervised comparisons) have none.
PAPER_EFFECT: dict[str, float] = {
    "zeroshot_pretraining_helps": 49.38 - 29.71,
    "zeroshot_intra_helps": 49.38 - 38.29,
    "fewshot_dpa_vs_single": 89.21 - max(87.46, 87.32),
    "fewshot_global_vs_inter": 87.32 - 86.06,
    "fewshot_global_vs_inter_dual": 89.21 - 86.18,
    "fewshot_pretrained_single": 87.32 - 87.46,
    "fewshot_dpa_knowledge": 89.21 - 87.20,
}

#: bootstrap replicates of every paired finding (fixed seed: a finding is a function of the predictions)
N_BOOT = 2000


def correct_by_row(rows: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Per method (a table row), its ``(runs, shapes)`` correctness matrix from prediction rows (columns
    ``method``, ``seed``, ``id``, ``label``, ``pred``; runs by seed, shapes by id, both sorted)."""
    runs: dict[str, dict[int, dict[str, bool]]] = {}
    for r in rows:
        runs.setdefault(str(r["method"]), {}).setdefault(int(r["seed"]), {})[str(r["id"])] = (
            int(r["pred"]) == int(r["label"]))
    out: dict[str, np.ndarray] = {}
    for method, by_seed in runs.items():
        ids = sorted(next(iter(by_seed.values())))
        mats = []
        for seed in sorted(by_seed):
            got = by_seed[seed]
            if sorted(got) != ids:
                raise ValueError(f"predictions of '{method}' seed {seed} score other shapes than its first run")
            mats.append([got[i] for i in ids])
        out[method] = np.asarray(mats, dtype=bool)
    return out


def read_correct(key: str) -> dict[str, np.ndarray] | None:
    """:func:`correct_by_row` of stage instance ``key``'s ``predictions.parquet`` (None when there is none)."""
    import pyarrow.parquet as pq

    f = paths.details_file(key).parent / "predictions.parquet"
    if not f.is_file():
        return None
    cols = pq.read_table(f, columns=["method", "seed", "id", "label", "pred"]).to_pydict()
    return correct_by_row(dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True))


def _paired(key: str, a: np.ndarray, b: np.ndarray) -> tuple[PairedDifference, dict[str, Any]]:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"finding {key}: the rows score {a.shape[1]} and {b.shape[1]} test shapes")
    d = paired_bootstrap(a, b, n_boot=N_BOOT, seed=0)
    if a.shape[0] == 1 and b.shape[0] == 1:  # one run per arm: the exact test instead of the bootstrap's tail
        d = dataclasses.replace(d, p=mcnemar_exact(a[0], b[0]))
    pe = PAPER_EFFECT.get(key)
    extra = {"effect": d.effect, "lo": d.lo, "hi": d.hi, "p": d.p,
             "paper_effect": None if pe is None else pe / 100, "mde": min_detectable_effect(d.se),
             "power": None if pe is None else power(pe / 100, d.se)}
    return d, extra


def _paired_str(d: PairedDifference) -> str:
    return (f"paired difference {_pct(d.effect)} [95 % CI {_pct(d.lo)}, {_pct(d.hi)}], p = {d.p:.3f} "
            f"({d.n_shapes} shapes × {d.runs_a} / {d.runs_b} runs)")


def binomial_margin(chance: float, n: int, z: float = 3.0) -> float:
    """``z`` binomial standard errors of a chance-level classifier on ``n`` samples."""
    return z * math.sqrt(chance * (1.0 - chance) / max(n, 1))


def diff_margin(row_a: dict[str, Any], row_b: dict[str, Any], z: float = 2.0) -> float:
    """``z`` standard errors of the difference of two seed means (rows with ``acc_std`` and ``n_seeds``)."""
    se2 = 0.0
    for r in (row_a, row_b):
        n = max(int(r.get("n_seeds", 1)), 1)
        se2 += (float(r.get("acc_std", 0.0)) ** 2) / n
    return z * math.sqrt(se2)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _row_str(name: str, r: dict[str, Any]) -> str:
    n = int(r.get("n_seeds", 1))
    spread = f" ± {_pct(r.get('acc_std', 0.0))} (n={n})" if n > 1 else ""
    return f"{name} {_pct(r['acc'])}{spread}"


def above(key: str, claim: str, rows: dict[str, Any], a: str, b: str, checked: bool,
          correct: Mapping[str, np.ndarray] | None = None) -> Finding | None:
    """Finding "row a is above row b": paired on ``correct`` (per row, ``(runs, shapes)``) when it holds both
    rows, else with a margin from the seed spread; None when a row is missing."""
    if a not in rows or b not in rows:
        return None
    ra, rb = rows[a], rows[b]
    if correct is not None and a in correct and b in correct:
        d, extra = _paired(key, correct[a], correct[b])
        detail = f"{_row_str(a, ra)} vs {_row_str(b, rb)}: {_paired_str(d)}"
        return Finding(key, claim, d.lo > 0, detail, checked, **extra)
    margin = diff_margin(ra, rb)
    diff = ra["acc"] - rb["acc"]
    ok = diff > margin
    detail = f"{_row_str(a, ra)} vs {_row_str(b, rb)}: difference {_pct(diff)}, margin {_pct(margin)}"
    return Finding(key, claim, ok, detail, checked)


def at_least(
    key: str, claim: str, rows: dict[str, Any], a: str, bs: list[str], checked: bool,
    correct: Mapping[str, np.ndarray] | None = None,
) -> Finding | None:
    """Finding "row a is at least as good as the best of rows bs": the paired interval's upper end ≥ 0 (with
    ``correct``), else within the seed-spread margin."""
    present = [b for b in bs if b in rows]
    if a not in rows or not present:
        return None
    best = max(present, key=lambda b: rows[b]["acc"])
    if correct is not None and a in correct and best in correct:
        d, extra = _paired(key, correct[a], correct[best])
        detail = f"{_row_str(a, rows[a])} vs best of {present}: {_row_str(best, rows[best])}; {_paired_str(d)}"
        return Finding(key, claim, d.hi >= 0, detail, checked, **extra)
    margin = diff_margin(rows[a], rows[best])
    diff = rows[a]["acc"] - rows[best]["acc"]
    ok = diff >= -margin
    detail = (f"{_row_str(a, rows[a])} vs best of {present}: {_row_str(best, rows[best])}; "
              f"difference {_pct(diff)}, tolerance {_pct(margin)}")
    return Finding(key, claim, ok, detail, checked)


def well_above_chance(key: str, claim: str, acc: float, chance: float, n: int, checked: bool) -> Finding:
    margin = binomial_margin(chance, n)
    ok = acc > chance + margin
    detail = f"{_pct(acc)} vs chance {_pct(chance)} + 3 SE {_pct(margin)} (n={n})"
    return Finding(key, claim, ok, detail, checked)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def clip_rgb_zero_shot() -> dict[str, dict[str, Any]]:
    """RGB zero-shot of the run's CLIP per ``"<dataset>/<split>"``: the pool's val (``clip_bootstrap``)
    and each benchmark's test split (``rgb_zeroshot@<ds>``)."""
    out: dict[str, dict[str, Any]] = {}
    per_benchmark = sorted(paths.metrics_file("rgb_zeroshot/-").parent.glob("*.json"))
    files = [paths.metrics_file("clip_bootstrap"), *per_benchmark]
    for f in files:
        m = _load(f)
        if m is not None:
            out.update(m.get("zeroshot", {}))
    return out


def zeroshot_findings(rows: dict[str, Any], correct: Mapping[str, np.ndarray] | None = None) -> list[Finding]:
    """The zero-shot findings (Table 1, §5.6) on a ``zeroshot`` metrics file's ``rows`` (paired on
    ``correct``, :func:`correct_by_row` of its predictions, when given)."""
    out = [
        above("zeroshot_pretraining_helps", "zero-shot: with pre-training above without (Table 1)",
              rows, "with_pretraining", "without_pretraining", checked=True, correct=correct),
        above("zeroshot_intra_helps", "zero-shot: intra + cross above cross only (§5.6)",
              rows, "with_pretraining", "cross_only", checked=False, correct=correct),
        above("zeroshot_not_just_compute",
              "zero-shot: image–depth pre-training above the equal-compute RGB-only control",
              rows, "with_pretraining", "rgb_control", checked=False, correct=correct),
    ]
    return [f for f in out if f is not None]


def adapter_findings(mode: str, metrics: dict[str, Any],
                     correct: Mapping[str, np.ndarray] | None = None) -> list[Finding]:
    """The adapter findings (Tables 2 and 4, §5.6) on a ``fewshot`` / ``supervised`` metrics dict (paired on
    ``correct`` when given)."""
    r = metrics["rows"]
    dpa = str(DPA)
    out: list[Finding | None] = []
    if dpa in r:
        n_test = int(metrics.get("n_test", metrics.get("n", 0)) or 0)
        chance = float(metrics.get("chance", 0.0) or 0.0)
        if n_test and chance:
            # the seed mean less two standard errors of it, against the chance margin
            se = r[dpa].get("acc_std", 0.0) / math.sqrt(max(r[dpa].get("n_seeds", 1), 1))
            out.append(well_above_chance(
                f"{mode}_above_chance", f"{mode}: the Dual-Path Adapter well above chance",
                r[dpa]["acc"] - 2 * se, chance, n_test, checked=(mode == "fewshot")))
    single_clip, single_pre = str(RowKey("global_view", (CLIP,))), str(RowKey("global_view", ("intra_cross",)))
    inter_pre = str(RowKey("inter_view", ("intra_cross",)))
    out += [
        at_least(f"{mode}_dpa_vs_single", f"{mode}: DPA at least as good as the better single path (Table 4)",
                 r, dpa, [single_clip, single_pre], checked=False, correct=correct),
        above(f"{mode}_global_vs_inter", f"{mode}: global-view above inter-view, single path (Table 4)",
              r, single_pre, inter_pre, checked=False, correct=correct),
        above(f"{mode}_global_vs_inter_dual", f"{mode}: global-view above inter-view, dual path (Table 4)",
              r, dpa, str(RowKey("dual_path_inter_view", DPA.paths)), checked=False, correct=correct),
        above(f"{mode}_pretrained_single", f"{mode}: single path on the pretrained encoder above on CLIP "
              "(Table 2 w/o Pre. vs Table 4)", r, single_pre, single_clip, checked=False, correct=correct),
        above(f"{mode}_dpa_knowledge",
              f"{mode}: DPA with the pretrained path above DPA with two CLIP paths (§5.6)",
              r, dpa, str(RowKey("dual_path", (CLIP, CLIP))), checked=False, correct=correct),
        above(f"{mode}_dpa_not_just_compute",
              f"{mode}: DPA with the pretrained path above the equal-compute RGB-only control",
              r, dpa, str(RowKey("dual_path", (CLIP, "rgb_control"))), checked=False, correct=correct),
    ]
    return [f for f in out if f is not None]


def passed(findings: list[Finding]) -> dict[str, bool]:
    """``{key: passed}``: the findings as a stage's metrics file records them."""
    return {f.key: f.passed for f in findings}


def evaluate(dataset: str, pretrain_pool: str) -> list[Finding]:
    """Every finding that the run's metrics files allow to check on one downstream dataset."""
    out: list[Finding] = []
    z = clip_rgb_zero_shot().get(f"{dataset}/test", {})
    if "rgb_multi_view" in z:
        out.append(well_above_chance(
            "clip_rgb_above_chance", "the miniature CLIP classifies RGB renders well above chance",
            z["rgb_multi_view"], z["chance"], int(z["n"]), checked=True))
        out.append(Finding(
            "clip_rgb_4x_chance", "the miniature CLIP reaches 4x chance on RGB renders (issue target)",
            z["rgb_multi_view"] >= 4 * z["chance"],
            f"{_pct(z['rgb_multi_view'])} vs 4 x chance {_pct(4 * z['chance'])}", checked=False))
    zs = read_details(f"zeroshot/{dataset}")
    if zs is not None:
        out += zeroshot_findings(zs["rows"], read_correct(f"zeroshot/{dataset}"))
    for mode in ("fewshot", "supervised"):
        m = read_details(f"{mode}/{dataset}")
        if m is not None:
            out += adapter_findings(mode, m, read_correct(f"{mode}/{dataset}"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.findings", description=__doc__.split("\n")[0])
    ap.add_argument("--strict", action="store_true", help="exit 1 when a checked finding fails")
    ap.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = ap.parse_args(argv)
    params = load_params()
    failed = []
    all_findings: dict[str, list[dict[str, Any]]] = {}
    for ds in params.data.benchmarks:
        fs = evaluate(ds.name, params.data.pretrain.name)
        all_findings[ds.name] = [asdict(f) for f in fs]
        if not args.json:
            for f in fs:
                tag = ("PASS" if f.passed else "FAIL") if f.checked else ("yes " if f.passed else "no  ")
                print(f"[{tag}] {ds.name}: {f.claim}: {f.detail}")
        failed += [f"{ds.name}: {f.claim}: {f.detail}" for f in fs if f.checked and not f.passed]
        if not fs:
            failed.append(f"{ds.name}: no metrics found under {paths.data_root()}")
    if args.json:
        print(json.dumps(all_findings, indent=2))
    if failed and args.strict:
        print(f"findings: {len(failed)} checked finding(s) failed:", file=sys.stderr)
        for line in failed:
            print(f"  FAILED {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
