"""``clip2point prepare``: check a real dataset download and wire it into ``params.yaml``.

The check (:func:`clip2point.datasets.check_layout`) compares the files with the published split
sizes and names what is missing; the pipeline's own reader (:func:`clip2point.io.catalogue`) is then run
over the download so what ``dvc repro`` will see is what was checked. On success the dataset's entry is
written into ``data.benchmarks`` (or ``data.pretrain`` for the pretraining sets, ShapeNet-55 and
ShapeNetCore) with a targeted text edit that keeps the rest of ``params.yaml``, comments included.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from cli._common import (
    CliError,
    Debug,
    Quiet,
    check_up_axis,
    err,
    handled,
    one_line,
    os_error_text,
)
from cli.params_edit import check_entry_name, flow, read_params, write_params

#: The key of a dataset entry that records a subset (``prepare --allow-incomplete``):
#: ``subset: {<split>: [found, expected], ...}`` for every split of the published counts.
SUBSET_KEY = "subset"

#: Problems of :func:`clip2point.datasets.check_layout` that only say items are missing (tolerated by
#: ``--allow-incomplete``); anything else (missing split lists or HDF5 files, listed files absent, more
#: items than expected, an unreadable folder) still refuses the download.
_SUBSET_PROBLEM_PREFIXES = ("missing class folders under ", "no .off files in: ", "missing synset folders under ")


def _portable(root: Path, base: Path) -> str:
    """``root`` relative to ``base`` (the params file's folder, where dvc runs) if inside, else absolute."""
    resolved = root.resolve()
    try:
        return str(resolved.relative_to(base.resolve()))
    except ValueError:
        return str(resolved)


def prepare(
    dataset: Annotated[
        str, typer.Argument(help="modelnet40 | modelnet10 | shapenet55 | shapenetcore | scanobjectnn")
    ],
    root: Annotated[
        Path, typer.Option("--root", help="The local download (see docs/cli.md for where to get it).")
    ],
    variant: Annotated[
        str | None,
        typer.Option(
            help="ScanObjectNN: OBJ_ONLY | OBJ_BG | PB_T50_RS. ShapeNetCore: the folder of Point-BERT's "
            "train.txt/test.txt (default: the root; else an 80/20 split by model-id hash)."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Entry name in params.yaml (default: the dataset's).")
    ] = None,
    up_axis: Annotated[
        str | None, typer.Option("--up-axis", help="Override the dataset's up axis (y, z, x, z_released).")
    ] = None,
    params: Annotated[
        Path | None, typer.Option(help="The params file to update (default: params.yaml).")
    ] = None,
    check_only: Annotated[
        bool, typer.Option("--check-only", help="Check the download; do not touch params.")
    ] = False,
    allow_incomplete: Annotated[
        bool,
        typer.Option(
            "--allow-incomplete",
            help="Accept a subset (fewer items than the published counts, at least one per split) and record "
            "it in the entry as subset: {split: \\[found, expected]}.",  # \\[: a bracket, not rich markup
        ),
    ] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Overwrite an existing params entry of the same name (refused without)."),
    ] = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Check a local download of a real dataset and wire it into the pipeline's inputs (params.yaml).

    Exit 1, with one line per problem on stderr (exactly what is missing), when the download is incomplete;
    with --allow-incomplete a download with fewer items (at least one per split) is accepted and recorded as
    a subset (one "subset: <split> n of N" line per split).
    """
    with handled(debug):
        from clip2point.datasets import DATASETS, TOTAL, check_layout

        info = DATASETS.get(dataset, None)
        if info is None:
            raise CliError(f"unknown dataset '{dataset}' (choose from {', '.join(DATASETS)})")
        if info.variants:
            if variant is None:
                raise CliError(f"{info.name} needs --variant ({' | '.join(info.variants)})")
            if variant not in info.variants:
                raise CliError(
                    f"unknown {info.name} variant '{variant}' (choose from {', '.join(info.variants)})"
                )
        elif info.variant_path:
            if variant is not None:
                if not Path(variant).expanduser().is_dir():
                    raise CliError(f"--variant {variant} is not a folder ({info.name}: {info.variant_path})")
                variant = str(Path(variant).expanduser())
        elif variant:
            raise CliError(f"{info.name} has no variants (drop --variant)")
        if up_axis is not None:
            check_up_axis(up_axis)
        entry_name = name or (f"{info.name}_{variant.lower()}" if variant and info.variants else info.name)
        if not re.fullmatch(r"[A-Za-z0-9_]+", entry_name):
            raise CliError(
                f"--name must be letters, digits and underscores (a DVC stage key), not {entry_name!r}"
            )
        from pipeline.params import params_file

        target = params or params_file()
        try:
            if not root.exists():
                raise CliError(f"--root {root} does not exist; download {info.name} from {info.download}")
            if not root.is_dir():
                raise CliError(f"--root {root} is a file, not a folder (pass the folder of the download)")
            if not check_only:  # a params file that cannot be updated, or a name that cannot be used, is
                # refused before the (long) check
                check_entry_name(read_params(target)[1], "pretrain" if info.role == "pretrain" else "benchmarks",
                                 entry_name, replace)  # fmt: skip
            report = check_layout(info.name, root, variant or "")
        except OSError as e:
            raise CliError(f"cannot read the download under --root {root}: {os_error_text(e)}") from None
        problems = list(report.problems)
        subset: dict[str, list[int]] = {}
        if allow_incomplete:
            problems, subset = _as_subset(report, problems)
        splits: Counter[str] = Counter()
        if not problems:
            against = {s: report.found.get(s, 0) for s in report.expected} if subset else report.expected
            reader_problems, splits = _reader_check(info.kind, report.root, variant or "", against)
            problems += [f"{p} (the files present)" for p in reader_problems] if subset else reader_problems
        if not quiet:
            for note in report.notes:
                err(f"{info.name}: note: {note}")
        if problems:
            for p in problems:
                err(f"{info.name}: {p}")
            hint = ""
            if not allow_incomplete and report.problems and not _as_subset(report, list(report.problems))[0]:
                hint = "; --allow-incomplete uses it as a recorded subset"
            raise CliError(
                f"{info.name} at {report.root} is incomplete ({report.summary()}); "
                f"expected layout {info.layout}; download: {info.download}{hint}"
            )
        for split, (n, total) in subset.items():  # shown even with --quiet: results on a subset differ
            err(f"{info.name}: subset: {split} {n:,} of {total:,}")
        if not quiet:
            split_sizes = ", ".join(f"{s} {n:,}" for s, n in sorted(splits.items()))
            extra = f"; splits: {split_sizes}" if TOTAL in report.expected else ""
            state = "subset" if subset else "complete"
            err(f"{info.name}: {state} at {report.root} ({report.summary()}{extra})")
        if check_only:
            return
        entry: dict[str, Any] = {"kind": info.kind, "root": _portable(report.root, target.parent)}
        if variant:
            entry["variant"] = _portable(Path(variant), target.parent) if info.variant_path else variant
        entry["up_axis"] = up_axis or info.up_axis
        if subset:
            entry[SUBSET_KEY] = subset
        section = "pretrain" if info.role == "pretrain" else "benchmarks"
        if section == "pretrain":
            entry = {"name": entry_name, **entry}
        how = write_params(target, section, entry_name, entry)
        where = "data.pretrain" if section == "pretrain" else f"data.benchmarks.{entry_name}"
        typer.echo(f"{where} = {flow(entry)} ({how} {target})")
        if how == "rewritten":
            err(
                f"note: {target} had a layout the targeted edit does not handle; "
                "it was rewritten (comments lost)"
            )


def _reader_check(
    kind: str, root: Path, variant: str, expected: dict[str, int]
) -> tuple[list[str], Counter[str]]:
    """Run the pipeline's catalogue over the download: the problems (disagreements with the expected counts,
    :data:`~clip2point.datasets.TOTAL` standing for all splits) and the items per split it sees."""
    from clip2point.datasets import TOTAL
    from clip2point.io import ReadError, catalogue

    try:
        items = catalogue(kind, root, variant)
    except (ReadError, OSError, ValueError) as e:
        return [f"the pipeline's reader cannot list it: {one_line(e)}"], Counter()
    splits = Counter(it.split for it in items)
    counts = {**splits, TOTAL: len(items)}
    problems = [
        f"the pipeline's reader sees {counts.get(s, 0):,} {s} items, expected {n:,}"
        for s, n in expected.items()
        if counts.get(s, 0) != n
    ]
    return problems, splits


def _as_subset(report: Any, problems: list[str]) -> tuple[list[str], dict[str, list[int]]]:
    """Under ``--allow-incomplete``: the problems that still refuse the download, and the subset record
    ``{split: [found, expected]}`` (empty when nothing is missing).

    Tolerated: fewer items than expected in a split that has at least one, and the missing class/synset
    folders or empty class splits that explain it.
    """
    shortfalls = {}
    fatal_extra = []
    for split, n in report.expected.items():
        got = report.found.get(split, 0)
        line = f"{split}: found {got:,} of {n:,} ({n - got:,} missing)"
        if 0 < got < n:
            shortfalls[line] = split
        elif got == 0:
            fatal_extra.append(f"{split}: no items at all (a subset needs at least one per split)")
    fatal = [
        p for p in problems
        if p not in shortfalls and not p.startswith(_SUBSET_PROBLEM_PREFIXES) and not p.startswith(
            tuple(f"{s}: found 0 of " for s in report.expected))
    ]  # fmt: skip
    fatal += fatal_extra
    subset = {}
    if not fatal and any(report.found.get(s, 0) < n for s, n in report.expected.items()):
        subset = {s: [report.found.get(s, 0), n] for s, n in report.expected.items()}
    return fatal, subset
