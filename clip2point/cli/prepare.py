"""``clip2point prepare``: check a real dataset download and wire it into ``params.yaml``.

The check (:func:`clip2point.datasets.check_layout`) compares the files with the published split
sizes and names what is missing; the pipeline's own reader (:func:`clip2point.io.catalogue`) is then run
over the download so what ``dvc repro`` will see is what was checked. On success the dataset's entry is
written into ``data.benchmarks`` (or ``data.pretrain`` for the pretraining sets, ShapeNet-55 and
ShapeNetCore) with a targeted text edit that keeps the rest of ``params.yaml``, comments included.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from clip2point.cli._common import (
    CliError,
    Debug,
    Quiet,
    atomic_output,
    check_up_axis,
    collapse,
    err,
    handled,
    one_line,
    os_error_text,
    os_reason,
)

#: The key of a dataset entry that records a subset (``prepare --allow-incomplete``):
#: ``subset: {<split>: [found, expected], ...}`` for every split of the published counts.
SUBSET_KEY = "subset"

#: Problems of :func:`clip2point.datasets.check_layout` that only say items are missing (tolerated by
#: ``--allow-incomplete``); anything else (missing split lists or HDF5 files, listed files absent, more
#: items than expected, an unreadable folder) still refuses the download.
_SUBSET_PROBLEM_PREFIXES = ("missing class folders under ", "no .off files in: ", "missing synset folders under ")


class _EditError(Exception):
    """The targeted edit cannot be applied to this file's layout (the caller falls back to a round trip)."""


def _flow(mapping: dict[str, Any]) -> str:
    """``{kind: modelnet40, root: /data/ModelNet40, up_axis: z}`` (YAML flow style, quoted where needed)."""
    return yaml.safe_dump(mapping, default_flow_style=True, sort_keys=False, width=math.inf).strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#")


def _block_end(lines: list[str], start: int, parent_indent: int) -> int:
    """Index after the block of line ``start``: up to the next content line indented ≤ ``parent_indent``."""
    end = start + 1
    while end < len(lines) and not (_is_content(lines[end]) and _indent(lines[end]) <= parent_indent):
        end += 1
    while end > start + 1 and not _is_content(lines[end - 1]):  # trailing blanks/comments stay outside
        end -= 1
    return end


def _find_key(lines: list[str], lo: int, hi: int, key: str, indent: int) -> int | None:
    pat = re.compile(rf"^ {{{indent}}}{re.escape(key)}\s*:(\s|$)")
    return next((i for i in range(lo, hi) if pat.match(lines[i])), None)


def edit_params_text(text: str, section: str, name: str, entry: dict[str, Any]) -> str:
    """Set ``data.pretrain`` (``section="pretrain"``, ``entry`` holds ``name``) or ``data.benchmarks.<name>``
    in params.yaml's text, touching only that entry's lines. Raises :class:`_EditError` on layouts it
    does not recognise."""
    lines = text.splitlines()
    data = _find_key(lines, 0, len(lines), "data", 0)
    if data is None:
        raise _EditError("no top-level 'data:' key")
    data_end = _block_end(lines, data, 0)
    child = next((_indent(ln) for ln in lines[data + 1 : data_end] if _is_content(ln)), 2)
    if section == "pretrain":
        at = _find_key(lines, data + 1, data_end, "pretrain", child)
        new = [f"{' ' * child}pretrain: {_flow(entry)}"]
        if at is None:
            lines[data + 1 : data + 1] = new
        else:
            lines[at : _block_end(lines, at, child)] = new
        return "\n".join(lines) + "\n"
    bench = _find_key(lines, data + 1, data_end, "benchmarks", child)
    if bench is None:
        lines[data_end:data_end] = [f"{' ' * child}benchmarks:", f"{' ' * (child + 2)}{name}: {_flow(entry)}"]
        return "\n".join(lines) + "\n"
    if lines[bench].split(":", 1)[1].split("#", 1)[0].strip():
        raise _EditError("data.benchmarks is written inline")
    bench_end = _block_end(lines, bench, child)
    grand = next((_indent(ln) for ln in lines[bench + 1 : bench_end] if _is_content(ln)), child + 2)
    new_line = f"{' ' * grand}{name}: {_flow(entry)}"
    at = _find_key(lines, bench + 1, bench_end, name, grand)
    if at is None:
        lines[bench_end:bench_end] = [new_line]
    else:
        lines[at : _block_end(lines, at, grand)] = [new_line]
    return "\n".join(lines) + "\n"


def _expected_raw(raw: dict, section: str, name: str, entry: dict[str, Any]) -> dict:
    import copy

    raw = copy.deepcopy(raw)
    data = raw.setdefault("data", {})
    if section == "pretrain":
        data["pretrain"] = dict(entry)
    else:
        bench = data.get("benchmarks") or {}
        if isinstance(bench, list):  # list form: replace or append by name
            bench = [b for b in bench if b.get("name") != name] + [{"name": name, **entry}]
        else:
            bench = {**bench, name: dict(entry)}
        data["benchmarks"] = bench
    return raw


def write_params(path: Path, section: str, name: str, entry: dict[str, Any]) -> str:
    """Upsert the dataset entry in ``path``; returns ``"edited"`` (comments kept) or ``"rewritten"``.

    The file is replaced atomically (its permissions kept): on an error, a full disk or Ctrl-C it is left
    as it was. A file that does not parse or validate before the change is refused, naming the problem.
    """
    import shutil

    from pipeline.params import ParamsError, params_from_dict, parse_yaml

    text, raw = read_params(path)
    expected = _expected_raw(raw, section, name, entry)
    how = "edited"
    try:
        new_text = edit_params_text(text, section, name, entry)
        if parse_yaml(new_text) != expected:
            raise _EditError("the edited file does not parse to the expected parameters")
    except _EditError:
        how = "rewritten"
        new_text = yaml.safe_dump(expected, sort_keys=False, width=110)
    try:
        params_from_dict(parse_yaml(new_text))
    except ParamsError as e:
        raise CliError(f"{path} would not validate after the change: {e}") from None
    with atomic_output(path, "--params") as tmp:
        tmp.write_text(new_text)
        shutil.copymode(path, tmp)
    return how


def read_params(path: Path) -> tuple[str, dict]:
    """The text and raw mapping of a params file that parses and validates, or a one-line :class:`CliError`
    (missing, a folder, unreadable, not YAML, not a mapping, or invalid: the key named)."""
    from pipeline.params import ParamsError, params_from_dict, parse_yaml

    try:
        if path.is_dir():
            raise CliError(f"--params {path} is a folder, not a params file")
        text = path.read_text()
    except OSError as e:
        raise CliError(f"cannot read {path}: {os_reason(e)}") from None
    except UnicodeDecodeError:
        raise CliError(f"cannot read {path}: not a text (UTF-8) file") from None
    try:
        raw = parse_yaml(text) or {}
    except yaml.YAMLError as e:
        raise CliError(f"invalid {path}: not valid YAML ({collapse(str(e))[:200]})") from None
    if not isinstance(raw, dict):
        raise CliError(f"invalid {path}: it does not hold a mapping")
    try:
        params_from_dict(raw)
    except ParamsError as e:
        raise CliError(f"invalid {path} (fix it first): {str(e).removeprefix('params: ')}") from None
    return text, raw


def _dataset_names(raw: dict) -> tuple[str | None, list[str]]:
    """The pre-training pool's name and the benchmark names of a raw (validated) params mapping."""
    data = raw.get("data") or {}
    pretrain = (data.get("pretrain") or {}).get("name")
    bench = data.get("benchmarks") or {}
    names = [b.get("name") for b in bench] if isinstance(bench, list) else list(bench)
    return pretrain, [str(n) for n in names]


def check_entry_name(raw: dict, section: str, name: str, replace: bool) -> None:
    """Refuse a ``--name`` that would silently replace an entry (unless ``replace``) or that collides with
    the other section's outputs (always: a benchmark named like the pre-training pool, or the reverse,
    writes the same ``data/points/<name>.parquet``; DVC refuses such a pipeline as overlapping outputs)."""
    pretrain, benchmarks = _dataset_names(raw)
    if section == "benchmarks" and name == pretrain:
        raise CliError(f"--name {name} is the pre-training pool's name (data.pretrain.name): both would write "
                       f"data/points/{name}.parquet; pick another --name")  # fmt: skip
    if section == "pretrain" and name in benchmarks:
        raise CliError(f"--name {name} is the name of benchmark data.benchmarks.{name}: both would write "
                       f"data/points/{name}.parquet; pick another --name")  # fmt: skip
    existing = name == pretrain if section == "pretrain" else name in benchmarks
    if existing and not replace:
        where = "data.pretrain" if section == "pretrain" else f"data.benchmarks.{name}"
        raise CliError(f"{where} '{name}' already exists; pass --replace to overwrite it, or --name another name")


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

        info = DATASETS.get(dataset.lower())
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
        from pipeline.params import PARAMS_FILE

        target = params or Path(os.environ.get("CLIP2POINT_PARAMS", PARAMS_FILE))
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
        typer.echo(f"{where} = {_flow(entry)} ({how} {target})")
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
