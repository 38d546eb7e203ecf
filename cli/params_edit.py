"""``clip2point prepare``'s edit of a params file: the dataset entry (``data.pretrain`` or
``data.benchmarks.<name>``) set by a targeted text edit that keeps the rest of the file, comments included
(a round trip through YAML where the layout does not allow it), checked before and after with the stages'
own loader (:func:`pipeline.params_yaml.parse_yaml`, :func:`pipeline.params.params_from_dict`)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from cli._common import CliError, atomic_output, collapse, os_reason


class _EditError(Exception):
    """The targeted edit cannot be applied to this file's layout (the caller falls back to a round trip)."""


def flow(mapping: dict[str, Any]) -> str:
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
        new = [f"{' ' * child}pretrain: {flow(entry)}"]
        if at is None:
            lines[data + 1 : data + 1] = new
        else:
            lines[at : _block_end(lines, at, child)] = new
        return "\n".join(lines) + "\n"
    bench = _find_key(lines, data + 1, data_end, "benchmarks", child)
    if bench is None:
        lines[data_end:data_end] = [f"{' ' * child}benchmarks:", f"{' ' * (child + 2)}{name}: {flow(entry)}"]
        return "\n".join(lines) + "\n"
    if lines[bench].split(":", 1)[1].split("#", 1)[0].strip():
        raise _EditError("data.benchmarks is written inline")
    bench_end = _block_end(lines, bench, child)
    grand = next((_indent(ln) for ln in lines[bench + 1 : bench_end] if _is_content(ln)), child + 2)
    new_line = f"{' ' * grand}{name}: {flow(entry)}"
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

    from pipeline.params import ParamsError, params_from_dict
    from pipeline.params_yaml import parse_yaml

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
    from pipeline.params import ParamsError, params_from_dict
    from pipeline.params_yaml import YAMLError, parse_yaml

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
    except YAMLError as e:
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
