"""``clip2point info``: versions, device, which CLIP weights are found, where the pipeline outputs are."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from cli._common import Debug, collapse, handled, os_error_text


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _device() -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count()}
    return {"device": "cpu", "threads": torch.get_num_threads()}


def _openai_weights(model: str = "ViT-B-32", tag: str = "openai") -> str:
    """Whether open_clip's cache holds ``model``/``tag`` (never downloads)."""
    from clip2point.models import clip as clipmod

    try:
        clipmod._check_pretrained_available(model, tag, None)  # the factory's own offline check
    except clipmod.ClipWeightsError:
        return "not in the open_clip cache (classify --clip ViT-B-32 --pretrained PATH to use a local file)"
    return "found in the open_clip cache (classify --clip ViT-B-32 --pretrained openai)"


def _describe(path: Path) -> str:
    try:
        if path.is_file():
            return f"{path} ({path.stat().st_size / 1e6:.1f} MB)"
        if path.is_dir():
            n = 0
            for _root, _dirs, names in os.walk(path, onerror=_raise):
                n += len(names)
            return f"{path}/ ({n} files)"
    except OSError as e:
        return f"{path} (unreadable: {os_error_text(e)})"
    return f"{path} (missing)"


def _raise(e: OSError) -> None:
    raise e


def collect() -> dict[str, Any]:
    """Everything ``info`` reports, as a JSON-ready dict."""
    from cli.settings import params_path
    from pipeline import paths
    from pipeline.params import ParamsError, load_params

    out: dict[str, Any] = {
        "versions": {
            "clip2point": _version("clip2point"),
            "python": platform.python_version(),
            **{d: _version(d) for d in ("torch", "open_clip_torch", "numpy", "trimesh", "typer", "dvc")},
        },
        "device": _device(),
    }
    try:
        p = load_params(params_path()[0])
        out["params"] = {
            "clip.model": p.clip.model,
            "clip.pretrained": p.clip.pretrained or "(bootstrapped)",
            "benchmarks": [d.name for d in p.data.benchmarks],
            "pretrain": p.data.pretrain.name,
        }
    except ParamsError as e:  # info reports it (exit 0): classify and render refuse to run with it
        out["params"] = {"error": collapse(str(e))}
    except OSError as e:
        out["params"] = {"error": f"cannot read {os_error_text(e)}"}
    out["weights"] = {"openai ViT-B-32": _openai_weights(), "run CLIP": _describe(paths.clip_dir())}
    pre = paths.pretrain_root()
    try:
        encoders = sorted(p.name for p in pre.iterdir() if p.is_dir()) if pre.is_dir() else []
        found = ", ".join(encoders) if encoders else f"none under {pre}"
    except OSError as e:
        found = f"unreadable: {os_error_text(e)}"
    out["weights"]["pretrained depth encoders"] = found
    out["outputs"] = {
        "data": _describe(paths.data_root()),
        "points": _describe(paths.data_root() / "points"),
        "shards": _describe(paths.data_root() / "shards"),
        "models": _describe(paths.data_root() / "models"),
        "results": _describe(paths.data_root() / "results"),
        "report": _describe(paths.report_dir()),
    }
    return out


def info(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of text.")] = False,
    debug: Debug = False,
) -> None:
    """Versions, device (CUDA or CPU), which CLIP weights are found, where the pipeline's outputs are."""
    with handled(debug):
        data = collect()
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        for section, values in data.items():
            typer.echo(f"{section}:")
            for k, v in values.items():
                typer.echo(f"  {k}: {', '.join(map(str, v)) if isinstance(v, list) else v}")
