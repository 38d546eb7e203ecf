"""Markdown table of the headline rows of two finished runs: best dispatch vs ``ATEN_CPU_CAPABILITY=default``.

    python scripts/dispatch_table.py BEST_RESULTS_DIR DEFAULT_RESULTS_DIR

Reads every ``<stage>/<dataset>/details.json`` under both folders (``data/results`` of a run: ``zeroshot``,
``fewshot``, ``supervised``, each with ``rows``: name → ``acc``, ``acc_std``, ``n_seeds``; the metrics files hold
only the headline accuracies since issue 22.17) and prints one line per row found
in either run: accuracy under each dispatch (%), their difference in points, the row's seed spread (std over
the seeds of the best-dispatch run; "-" for a row without seeds) and the difference in units of that spread.
Used by scripts/dispatch_compare.sh (issue 18, item 3).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STAGES = ("zeroshot", "fewshot", "supervised")


def headline_rows(results: Path) -> dict[tuple[str, str, str], dict]:
    """``{(stage, dataset, row): row dict}`` of the stages in :data:`STAGES` under a results folder."""
    rows: dict[tuple[str, str, str], dict] = {}
    for stage in STAGES:
        for f in sorted((results / stage).glob("*/details.json")):
            data = json.loads(f.read_text())
            for name, row in (data.get("rows") or {}).items():
                if isinstance(row, dict) and "acc" in row:
                    rows[(stage, f.parent.name, name)] = row
    return rows


def _pct(row: dict | None, key: str = "acc") -> str:
    return "missing" if row is None or row.get(key) is None else f"{100 * float(row[key]):.2f}"


def table(best: dict[tuple[str, str, str], dict], default: dict[tuple[str, str, str], dict]) -> list[str]:
    """The markdown lines."""
    lines = ["| stage | dataset | row | best dispatch | ATen default | Δ (points) | seed std (points) | |Δ| / std |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for key in sorted(set(best) | set(default), key=lambda k: (STAGES.index(k[0]), k[1], k[2])):
        b, d = best.get(key), default.get(key)
        delta = std = ratio = "-"
        if b is not None and d is not None:
            diff = 100 * (float(d["acc"]) - float(b["acc"]))
            delta = f"{diff:+.2f}"
            if int(b.get("n_seeds", 1)) > 1 and b.get("acc_std") is not None:
                s = 100 * float(b["acc_std"])
                std = f"{s:.2f}"
                ratio = f"{abs(diff) / s:.2f}" if s > 0 else ("0" if diff == 0 else "inf")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {_pct(b)} | {_pct(d)} | {delta} | {std} | {ratio} |")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python scripts/dispatch_table.py BEST_RESULTS_DIR DEFAULT_RESULTS_DIR", file=sys.stderr)
        return 2
    best, default = (headline_rows(Path(p)) for p in argv)
    if not best or not default:
        empty = argv[0] if not best else argv[1]
        print(f"dispatch_table: no zeroshot/fewshot/supervised rows under {empty}", file=sys.stderr)
        return 1
    print("\n".join(table(best, default)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
