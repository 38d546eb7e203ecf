"""Two runs' findings side by side (issue 12: the embedded default under the project's and the released choices).

Usage: ``python -m tools.compare_profiles NAME=DATA/metrics NAME=DATA/metrics [...] > profiles.md``

Each argument names a run and its metrics folder (``data/metrics`` of a finished ``dvc repro``; the rows' seed
spread is read from the details next to it, ``DATA/results/<stage>/<ds>/details.json``); the benchmarks
and the pre-training pool are read from the params of the current directory. Prints markdown: the headline rows
(zero-shot with / without pre-training, 16-shot DPA and single paths, supervised DPA) and every finding of
``pipeline.findings`` with its pass/fail and detail, one column per run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pipeline import findings, paths
from pipeline.headline import read_details
from pipeline.params import load_params

ROWS = (
    ("zeroshot", "without_pretraining", "zero-shot, CLIP on depth (w/o pre-training)"),
    ("zeroshot", "with_pretraining", "zero-shot, CLIP2Point (w/ pre-training)"),
    ("fewshot", "global_view@clip", "few-shot, single path on CLIP"),
    ("fewshot", "global_view@intra_cross", "few-shot, single path, pretrained"),
    ("fewshot", "dual_path@clip+intra_cross", "few-shot, DPA"),
    ("supervised", "dual_path@clip+intra_cross", "supervised, DPA"),
)


def _cell(row: dict[str, Any] | None) -> str:
    if not row:
        return "–"
    std = f" ± {100 * row['acc_std']:.2f}" if row.get("n_seeds", 1) > 1 else ""
    return f"{100 * row['acc']:.2f}{std}"


def compare(runs: dict[str, Path]) -> str:
    params = load_params()
    names = list(runs)
    out = ["# The embedded default under two profiles", "",
           "Measured; ± is the sample standard deviation over seeds. `project`: `params.yaml`; `released`: the same "
           "with the released code's choices (`configs/released.yaml`, docs/parity.md).", ""]
    for ds in params.data.benchmarks:
        out += [f"## {ds.name}", "", "| row | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for stage, key, label in ROWS:
            cells = []
            for n in names:
                with paths.using_data_root(runs[n].parent):
                    m = read_details(f"{stage}/{ds.name}")
                cells.append(_cell(m["rows"].get(key) if m else None))
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out += ["", "| finding | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        per_run: dict[str, dict[str, findings.Finding]] = {}
        for n in names:
            with paths.using_data_root(runs[n].parent):
                per_run[n] = {f.key: f for f in findings.evaluate(ds.name, params.data.pretrain.name)}
        keys = list(dict.fromkeys(k for n in names for k in per_run[n]))
        for k in keys:
            claim = next(per_run[n][k].claim for n in names if k in per_run[n])
            cells = []
            for n in names:
                f = per_run[n].get(k)
                cells.append("–" if f is None else f"{'yes' if f.passed else 'no'}: {f.detail}")
            out.append(f"| {claim} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    runs: dict[str, Path] = {}
    for a in argv:
        name, sep, folder = a.partition("=")
        if not sep or not Path(folder).is_dir():
            print(f"compare_profiles: expected NAME=METRICS_FOLDER, got {a!r}", file=sys.stderr)
            return 1
        runs[name] = Path(folder)
    if len(runs) < 2:
        print("compare_profiles: give at least two NAME=METRICS_FOLDER", file=sys.stderr)
        return 1
    sys.stdout.write(compare(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
