"""``clip2point classify``: zero-shot (or adapter) classification of meshes and point clouds."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cli._common import (
    EXIT_OK,
    EXIT_USER,
    CliError,
    Debug,
    Quiet,
    bounded,
    check_up_axis,
    err,
    handled,
    progress,
)
from cli.bundle import Timer, classify_clouds
from cli.inputs import BadInput, check_input, expand_input, load_cloud


def parse_labels(text: str) -> list[str]:
    """``"chair, table, lamp"`` → ``["chair", "table", "lamp"]``; an empty label (``"chair,,table"``, a
    trailing comma) or a duplicated one is an error, as ``docs/cli.md`` says."""
    parts = [t.strip() for t in text.split(",")]
    if not any(parts):
        raise CliError(f'empty label list {text!r}: pass --labels "chair,table,..."')
    empty = [i + 1 for i, t in enumerate(parts) if not t]
    if empty:
        where = ", ".join(map(str, empty))
        raise CliError(f"--labels {text!r} has an empty label (item {where} of {len(parts)}); drop the extra comma")
    labels = parts
    seen: set[str] = set()
    for lab in labels:
        if lab.lower() in seen:
            raise CliError(f"label '{lab}' is given twice in --labels")
        seen.add(lab.lower())
    return labels


def dataset_labels(name: str) -> tuple[list[str], str]:
    """Class names and up axis of ``--dataset NAME``: a params.yaml dataset, or a known real dataset."""
    from cli.settings import run_params
    from clip2point.datasets import DATASETS
    from pipeline.params import ParamsError

    params = run_params()  # an invalid params.yaml is refused here, not read as "no such dataset"
    entry = None
    if params is not None:
        try:
            entry = params.data.benchmark(name)
        except ParamsError:
            entry = None
    if entry is not None:
        from clip2point.io import ReadError, class_names

        try:
            return list(class_names(entry.kind, entry.root, entry.variant)), entry.up_axis
        except (ReadError, OSError, ValueError) as e:
            raise CliError(f"dataset '{name}' of params.yaml: cannot read its class names ({e})") from None
    info = DATASETS.get(name, None)
    if info is not None and info.classes:
        return list(info.classes), info.up_axis
    known = sorted(n for n, i in DATASETS.items() if i.classes)
    raise CliError(f"unknown dataset '{name}': use a dataset of params.yaml or one of {', '.join(known)}")


def _format_table(rows: list[tuple[str, list[tuple[str, float]]]]) -> str:
    name_w = max([4, *(len(r[0]) for r in rows)])
    label_w = max([10, *(len(r[1][0][0]) for r in rows)])
    lines = [f"{'FILE':<{name_w}}  {'PREDICTION':<{label_w}}  {'PROB':>6}  TOP-K"]
    for name, top in rows:
        rest = ", ".join(f"{lab} {p:.3f}" for lab, p in top)
        lines.append(f"{name:<{name_w}}  {top[0][0]:<{label_w}}  {top[0][1]:>6.3f}  {rest}")
    return "\n".join(lines)


def classify(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Meshes or point clouds (.ply .obj .off .stl .xyz .txt .npy, "
            "FILE.h5:INDEX); a folder means its supported files."
        ),
    ],
    labels: Annotated[str | None, typer.Option("--labels", "-l", help="Comma-separated class names.")] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Take the class names of a dataset (params.yaml or modelnet40/modelnet10/scanobjectnn).",
        ),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="A trained adapter checkpoint (few-shot/supervised), or the released CLIP2Point "
            "few-shot DPA checkpoint (best_test.pth; needs ViT-B-32-quickgelu)."
        ),
    ] = None,
    views: Annotated[int | None, typer.Option(help="Number of depth views: 6 (zero-shot set) or 10.")] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", callback=bounded(1), help="Classes shown per file (at least 1).")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file on stdout.")] = False,
    clip: Annotated[
        str | None, typer.Option(help="open_clip model name (e.g. ViT-B-32); default: the run's CLIP.")
    ] = None,
    pretrained: Annotated[
        str | None,
        typer.Option(
            help="CLIP weights for --clip: a local checkpoint or an "
            "open_clip tag found in the cache (e.g. openai)."
        ),
    ] = None,
    encoder: Annotated[str | None, typer.Option(help="A pretrained depth encoder checkpoint.")] = None,
    up_axis: Annotated[
        str | None,
        typer.Option(
            "--up-axis",
            help="Up axis of the files: y (default), z (ModelNet), x or z_released; --dataset sets its own.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(callback=bounded(1), help="Clouds rendered and encoded together (at least 1).")
    ] = 32,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Classify point clouds or meshes zero-shot (or with a trained adapter); a table, or JSON lines.

    Exit 0 when every file was classified; 1 when some could not be (the others are still classified and
    printed; each bad file gets one line on stderr, and a {"file", "error"} line with --json); 130 on Ctrl-C.
    """
    with handled(debug):
        code = _classify(files, labels, dataset, checkpoint, views, top_k, as_json, clip, pretrained, encoder,
                         up_axis, batch_size, quiet)  # fmt: skip
    raise typer.Exit(code)


def _classify(files: list[str], labels_opt: str | None, dataset: str | None, checkpoint: str | None,
              views: int | None, top_k: int, as_json: bool, clip: str | None, pretrained: str | None,
              encoder: str | None, up_axis: str | None, batch_size: int, quiet: bool) -> int:  # fmt: skip
    from cli.bundle import RELEASED_CLIP, build_bundle, read_released_dpa
    from cli.encoders import load_encoders
    from cli.settings import run_settings, view_set_for

    if labels_opt is not None and dataset is not None:
        raise CliError("pass either --labels or --dataset, not both")
    labels: list[str] | None = None
    axis: str | None = None
    if labels_opt is not None:
        labels = parse_labels(labels_opt)
    elif dataset is not None:
        labels, axis = dataset_labels(dataset)
    elif checkpoint is None:
        raise CliError('no class labels: pass --labels "chair,table,..." or --dataset NAME')
    if up_axis is not None:
        check_up_axis(up_axis)
        axis = up_axis
    if pretrained and not clip and checkpoint is None:
        raise CliError("--pretrained needs --clip NAME (the model its weights belong to)")
    if views is not None:
        view_set_for(views)  # a bad --views is refused before anything loads
    settings = run_settings()  # an invalid params.yaml is refused (not replaced by defaults)
    # the cheap checks of every input come before the models load: a missing file costs no model load
    specs: list[str] = []
    unusable: list[tuple[str, str]] = []  # (input, one-line reason)
    for given in files:
        try:
            expanded = expand_input(given)
        except BadInput as e:
            unusable.append((given, str(e)))
            continue
        for spec in expanded:
            try:
                check_input(spec)
                specs.append(spec)
            except BadInput as e:
                unusable.append((spec, str(e)))
    if not specs:
        if as_json:
            for given, reason in unusable:
                typer.echo(json.dumps({"file": given, "error": reason}))
        if len(unusable) == 1:
            raise CliError(unusable[0][1])
        for _, reason in unusable:
            err(f"error: {reason}")
        raise CliError(f"none of the {len(unusable)} inputs can be classified (each reason above)")

    t0 = time.perf_counter()
    released = read_released_dpa(checkpoint) if checkpoint else None
    if released is not None:
        if encoder:
            raise CliError(f"--encoder does not apply to the released DPA checkpoint {checkpoint} (it holds "
                           "its own encoders)")  # fmt: skip
        if pretrained and not clip:
            clip = RELEASED_CLIP  # --pretrained openai: OpenAI's ViT-B/32, as the released code loads it
        axis = up_axis or "z_released"  # the released ModelNet40 frame, whatever --dataset says
    elif pretrained and not clip:
        raise CliError("--pretrained needs --clip NAME (the model its weights belong to)")
    enc = load_encoders(clip, pretrained, encoder)
    bundle = build_bundle(enc, labels, settings, views, axis or "y", checkpoint, released)
    if not quiet:
        for note in enc.notes:
            err(f"note: {note}")
        err(
            f"model: {enc.source}; {len(bundle.class_names)} classes; "
            f"loaded in {time.perf_counter() - t0:.1f}s"
        )

    timer = Timer()
    rows: list[tuple[str, list[tuple[str, float]]]] = []
    bad: list[str] = []
    batch: list[tuple[str, np.ndarray]] = []
    for given, reason in unusable:
        bad.append(given)
        err(f"error: {reason}")
        if as_json:
            typer.echo(json.dumps({"file": given, "error": reason}))

    def flush() -> None:
        if not batch:
            return
        t = time.perf_counter()
        results = classify_clouds(np.stack([c for _, c in batch]), bundle, top_k)
        timer.add("classify", t)
        for (spec, _), top in zip(batch, results, strict=True):
            if as_json:
                typer.echo(
                    json.dumps(
                        {
                            "file": spec,
                            "prediction": top[0][0],
                            "probability": round(top[0][1], 6),
                            "top_k": [{"label": lab, "probability": round(p, 6)} for lab, p in top],
                        }
                    )
                )
            else:
                rows.append((spec, top))
        batch.clear()

    for spec in progress(specs, quiet, "classify", unit="file"):
        t = time.perf_counter()
        try:
            cloud = load_cloud(spec, settings.num_points, settings.n_dense)
        except BadInput as e:
            bad.append(spec)
            err(f"error: {e}")
            if as_json:
                typer.echo(json.dumps({"file": spec, "error": str(e)}))
            continue
        finally:
            timer.add("load", t)
        batch.append((spec, cloud))
        if len(batch) >= batch_size:
            flush()
    flush()

    if rows:
        shown = [
            (Path(s).name if len({Path(x).name for x, _ in rows}) == len(rows) else s, top) for s, top in rows
        ]
        typer.echo(_format_table(shown))
    n_all = len(specs) + len(unusable)
    n_ok = n_all - len(bad)
    if not quiet:
        err(f"classified {n_ok} of {n_all} file(s) in {timer.load + timer.classify:.2f}s "
            f"(reading {timer.load:.2f}s, rendering+encoding {timer.classify:.2f}s)")  # fmt: skip
    if bad:
        if n_all > 1:  # one bad input alone: its own line says it all
            err(f"error: {len(bad)} of {n_all} file(s) could not be classified")
        return EXIT_USER
    return EXIT_OK
