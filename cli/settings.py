"""The run settings of an invocation: the params file (the stages' own, :func:`pipeline.params.params_file`), its
``depth``, ``clip.templates`` and ``sample`` sections (or their defaults), and the view sets by size."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli._common import CliError, one_line, os_reason


@dataclass
class RunSettings:
    """Depth rendering and prompt settings (from ``params.yaml`` when readable, else the defaults)."""

    depth: dict[str, Any]
    distance: float
    templates: tuple[str, ...]
    num_points: int
    n_dense: int
    source: str


def params_path() -> tuple[Path, bool]:
    """The params file of this invocation, the one the stages read (:func:`pipeline.params.params_file`:
    ``$CLIP2POINT_PARAMS`` or ``params.yaml``), and whether it was named explicitly (by the environment
    variable: then a missing file is an error, not "no params")."""
    from pipeline.params import params_file

    return params_file(), bool(os.environ.get("CLIP2POINT_PARAMS"))


def run_params() -> Any:
    """The validated :class:`pipeline.params.Params` of the working directory, or ``None`` without one.

    A ``params.yaml`` that exists but does not validate is refused (a one-line :class:`CliError` naming the
    file and the key), never silently replaced by defaults; so is a ``$CLIP2POINT_PARAMS`` naming no file.
    """
    from pipeline.params import ParamsError, load_params

    path, explicit = params_path()
    try:
        if not path.exists():
            if explicit:
                raise CliError(f"CLIP2POINT_PARAMS={path}: no such file")
            return None
        return load_params(path)
    except ParamsError as e:
        detail = str(e).removeprefix("params: ").removeprefix(f"{path} ")
        raise CliError(f"invalid {path}: {detail}") from None
    except OSError as e:
        raise CliError(f"cannot read {path}: {os_reason(e)}") from None


def _check_run_settings(settings: RunSettings, where: str) -> None:
    """The settings ``classify``/``render`` use, checked up front: a bad value is a :class:`CliError` naming
    its key, not an error deep inside the renderer."""
    from clip2point.configs import DepthConfig

    try:
        DepthConfig(**settings.depth)
    except ValueError as e:
        raise CliError(f"invalid {where}: depth: {one_line(e)}") from None
    if not (math.isfinite(settings.distance) and settings.distance > 0):
        raise CliError(f"invalid {where}: depth.distance must be a positive number, got {settings.distance}")
    for key, value in (("sample.num_points", settings.num_points), ("sample.dense_points", settings.n_dense)):
        if value < 1:
            raise CliError(f"invalid {where}: {key} must be at least 1, got {value}")
    # clip.templates (non-empty, one '{}' each) and every other key's type and range are checked once, when
    # params.yaml loads (pipeline.params.load_params), for the CLI and the stages alike


def run_settings() -> RunSettings:
    """The ``depth``, ``clip.templates`` and ``sample`` sections of ``params.yaml``, or their defaults when
    there is no ``params.yaml`` (an invalid one is refused: :func:`run_params`)."""
    from pipeline.params import ClipParams, DepthParams, SampleParams
    from pipeline.stage import depth_settings

    p = run_params()
    if p is not None:
        depth, clip, sample, source = p.depth, p.clip, p.sample, str(params_path()[0])
    else:
        depth, clip, sample, source = DepthParams(), ClipParams(), SampleParams(), "defaults"
    cfg = depth_settings(depth)
    settings = RunSettings(
        cfg, depth.distance, tuple(clip.templates), sample.num_points, sample.dense_points, source
    )
    _check_run_settings(settings, source)
    return settings


def view_set_for(n_views: int) -> str:
    """The name of the view set with ``n_views`` views (``clip2point.render.views.VIEW_SETS``)."""
    from clip2point.render.views import VIEW_SETS

    by_count: dict[int, str] = {}
    for name, vs in VIEW_SETS.items():  # the first set of each size (pretrain10 before realistic10)
        by_count.setdefault(len(vs.azim), name)
    if n_views not in by_count:
        known = ", ".join(f"{n} ({name})" for n, name in sorted(by_count.items()))
        raise CliError(f"no view set with {n_views} views (available: {known})")
    return by_count[n_views]
