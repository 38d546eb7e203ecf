"""Stage ``report``: the run's ``report.md`` with figures, in the shapes of the paper's tables.

``python -m stages.report``

Reads the metrics files of every stage (``pipeline.paths.metrics_file``), the confusion matrices and the
contact sheet, and writes ``pipeline.paths.report_dir()``: ``report.md``, ``zeroshot_<ds>.png``,
``fewshot_<ds>.png``, ``pretrain_curves.png``, and copies of the confusion matrices and contact sheet, so that
the folder stands alone (:func:`pipeline.run_report.build_report`). The findings are those of
:mod:`pipeline.findings`.
"""

from __future__ import annotations

import argparse
import sys

from pipeline import paths
from pipeline.artifacts import atomic_dir
from pipeline.params import load_params
from pipeline.run_report import build_report
from pipeline.stage import run_main


def run() -> None:
    params = load_params()
    with atomic_dir(paths.report_dir()) as tmp:
        text = build_report(params, tmp)
        (tmp / "report.md").write_text(text)
    print(f"report: {paths.report_dir() / 'report.md'}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.report", description=__doc__.split("\n")[0])
    ap.parse_args(argv)
    return run_main("report", run)


if __name__ == "__main__":
    sys.exit(main())
