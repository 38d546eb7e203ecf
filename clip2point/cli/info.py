"""``clip2point info``: versions, device, which CLIP weights are found, where the pipeline outputs are."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from clip2point.cli._common import Debug, handled


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
    if path.is_file():
        return f"{path} ({path.stat().st_size / 1e6:.1f} MB)"
    if path.is_dir():
        n = sum(1 for p in path.rglob("*") if p.is_file())
        return f"{path}/ ({n} files)"
    return f"{path} (missing)"


def collect() -> dict[str, Any]:
    """Everything ``info`` reports, as a JSON-ready dict."""
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
        p = load_params()
        out["params"] = {
            "clip.model": p.clip.model,
            "clip.pretrained": p.clip.pretrained or "(bootstrapped)",
            "benchmarks": [d.name for d in p.data.benchmarks],
            "pretrain": p.data.pretrain.name,
        }
    except ParamsError as e:
        out["params"] = {"error": str(e)}
    out["weights"] = {"openai ViT-B-32": _openai_weights(), "run CLIP": _describe(paths.clip_dir())}
    pre = paths.DATA / "models" / "pretrain"
    encoders = sorted(p.name for p in pre.iterdir() if p.is_dir()) if pre.is_dir() else []
    out["weights"]["pretrained depth encoders"] = ", ".join(encoders) if encoders else f"none under {pre}"
    out["outputs"] = {
        "data": _describe(paths.DATA),
        "points": _describe(paths.DATA / "points"),
        "shards": _describe(paths.DATA / "shards"),
        "models": _describe(paths.DATA / "models"),
        "results": _describe(paths.DATA / "results"),
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
