"""Table 5 (min / weighted depth x dilation, square and disc footprints) from a queue of DVC experiments.

Reads every experiment ref ``refs/exps/.../t5-<mode>-r<R>`` (square footprint, ``depth.dilation`` R) and
``t5d-<mode>-r<r>`` (disc footprint, ``depth.radius`` r) of the repository given (``--repo``, default ``.``): the
``predictions.parquet`` of its ``zeroshot@synth_benchmark`` (row ``without_pretraining``) and
``fewshot@synth_benchmark`` (row ``global_view@clip``) outputs, from its ``dvc.lock`` and the repository's DVC
cache. Prints the markdown table (zero-shot: one run; 16-shot: mean ± std over the adapter seeds) and the paired
comparisons (``clip2point.stats.paired_bootstrap``: the same test shapes in both arms). The README's *Measured
sweeps* lists the queue commands. Usage: ``python scripts/table5_paired.py --repo PATH``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from clip2point.stats import paired_bootstrap

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--repo", type=Path, default=Path("."))
REPO = ap.parse_args().repo.resolve()
CACHE = REPO / ".dvc/cache/files/md5"

def git(*a):
    return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, check=True).stdout

def cached(md5):
    return CACHE / md5[:2] / md5[2:]

def out_file(lock, stage, out_dir, rel):
    for o in lock["stages"][stage]["outs"]:
        if o["path"] == out_dir:
            man = json.loads(cached(o["md5"]).read_text())
            for e in man:
                if e["relpath"] == rel:
                    return cached(e["md5"])
    raise KeyError((stage, out_dir, rel))

refs = [r for r in git("for-each-ref", "--format=%(refname)", "refs/exps").split() if "/t5" in r]
rows = {}
for ref in refs:
    name = ref.rsplit("/", 1)[-1]
    lock = yaml.safe_load(git("show", f"{ref}:dvc.lock"))
    params = yaml.safe_load(git("show", f"{ref}:params.yaml"))
    dep = params["depth"]
    try:
        zs = pq.read_table(out_file(lock, "zeroshot@synth_benchmark", "data/results/zeroshot/synth_benchmark",
                                    "predictions.parquet")).to_pydict()
        fs = pq.read_table(out_file(lock, "fewshot@synth_benchmark", "data/results/fewshot/synth_benchmark",
                                    "predictions.parquet")).to_pydict()
    except (KeyError, FileNotFoundError) as e:
        print("skip", name, e, file=sys.stderr)
        continue
    def correct(t, method):
        by = {}
        for i, m in enumerate(t["method"]):
            if m == method:
                by.setdefault(t["seed"][i], {})[t["id"][i]] = t["pred"][i] == t["label"][i]
        ids = sorted(next(iter(by.values())))
        assert all(sorted(v) == ids for v in by.values())
        return ids, np.array([[v[k] for k in ids] for _, v in sorted(by.items())])
    zi, zm = correct(zs, "without_pretraining")
    fi, fm = correct(fs, "global_view@clip")
    assert zi == fi
    rows[name] = dict(fp=dep["footprint"], mode=dep["mode"], R=dep["dilation"], r=dep["radius"], zs=zm, fs=fm)
LEVELS = {"square": ("R=1", "R=2", "R=4"), "disc": ("r=0.01", "r=0.02", "r=0.04")}


def key(fp: str, mode: str, i: int) -> str:
    """The experiment name of footprint ``fp``, depth value ``mode`` and size level ``i`` (0, 1, 2)."""
    return f"t5-{mode}-r{(1, 2, 4)[i]}" if fp == "square" else f"t5d-{mode}-r{(0.01, 0.02, 0.04)[i]}"


def cell(m: np.ndarray) -> str:
    acc = m.mean(1) * 100
    return f"{acc.mean():.2f}" if len(acc) == 1 else f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}"


def paired(task: str, a: str, b: str, label: str) -> None:
    if a in rows and b in rows:
        d = paired_bootstrap(rows[a][task], rows[b][task])
        print(f"| {label} | {100 * d.effect:+.1f} | [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] |")


print("| task | depth value | footprint | R=1 / r=0.01 | R=2 / r=0.02 | R=4 / r=0.04 |")
print("|---|---|---|---|---|---|")
for task, name in (("zs", "zero-shot"), ("fs", "16-shot")):
    for mode in ("weighted", "min"):
        for fp in ("square", "disc"):
            cells = [cell(rows[key(fp, mode, i)][task]) if key(fp, mode, i) in rows else "–" for i in range(3)]
            print(f"| {name} | {mode} | {fp} | " + " | ".join(cells) + " |")
print()
print("| paired comparison, same test shapes (points) | effect | 95 % CI |")
print("|---|---|---|")
for task, name in (("zs", "zero-shot"), ("fs", "16-shot")):
    for fp, lv in LEVELS.items():
        for i in range(3):
            paired(task, key(fp, "min", i), key(fp, "weighted", i), f"{name}, {fp} {lv[i]}: min − weighted")
        for mode in ("min", "weighted"):
            for i, j in ((1, 0), (2, 1)):
                paired(task, key(fp, mode, i), key(fp, mode, j), f"{name}, {fp} {mode}: {lv[i]} − {lv[j]}")
