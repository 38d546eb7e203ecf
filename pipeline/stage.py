"""What every stage shares: one error type, one way to find a dataset, one live logger, one entry wrapper,
one conversion of the ``depth`` params into the renderer's settings.

A stage is ``main(argv) -> int``: parse args, load typed params, call one library or pipeline function,
write artifacts. :func:`run_main` turns every user-facing failure into one line on stderr and an exit
code (1, or the stage's own code for bad input; 130: interrupted), never a traceback
(``CLIP2POINT_DEBUG=1`` re-raises instead).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from clip2point.configs import DepthConfig, config_from, shared_settings
from pipeline import paths
from pipeline.params import DatasetParams, DepthParams, Params, ParamsError


class StageError(RuntimeError):
    """A stage cannot run on its inputs; ``str()`` is one line naming the file or value.

    ``exit_code``: the process exit code :func:`run_main` returns for it (None: the stage's default).
    """

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def find_dataset(params: Params, name: str) -> DatasetParams:
    """The pre-training pool or benchmark called ``name`` in params (``StageError`` naming the known)."""
    try:
        return params.data.benchmark(name)
    except ParamsError:
        known = ", ".join(d.name for d in (params.data.pretrain, *params.data.benchmarks))
        raise StageError(f"unknown dataset {name!r} (params.yaml data has: {known})") from None


def depth_settings(depth: DepthParams) -> dict[str, Any]:
    """The :class:`~clip2point.render.depth.DepthConfig` fields that the ``depth`` params set (Eq. 12–14:
    image size, dilation R, mode, projection, and any later setting both define), in DepthConfig's order."""
    settings = shared_settings(DepthConfig, depth)
    settings["realistic"] = dataclasses.asdict(settings["realistic"])  # JSON-ready; DepthConfig takes a mapping
    return settings


def depth_config(depth: DepthParams) -> DepthConfig:
    """``params.depth`` as the depth renderer's :class:`~clip2point.configs.DepthConfig`."""
    return config_from(DepthConfig, depth)


def live_logger(key: str, resume: bool = False) -> Any:
    """A dvclive ``Live`` writing to ``paths.plots_dir(key)`` (fresh unless ``resume``), or None."""
    try:
        from dvclive import Live
    except ImportError:  # pragma: no cover
        return None
    d = paths.plots_dir(key)
    if d.exists() and not resume:
        shutil.rmtree(d)
    return Live(dir=str(d), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)


#: failures that are the user's input, not a bug: reported as one line
USER_ERRORS: tuple[type[BaseException], ...] = (StageError, ParamsError, FileNotFoundError, ValueError)


def one_argument_main(name: str, doc: str | None, argv: list[str] | None, run: Callable[[Any], int | None], *,
                      arg: str = "dataset", help: str = "", default: Any = ..., **run_main_kwargs: Any) -> int:
    """The ``main`` of a stage that takes one positional argument (a dataset or a checkpoint name): parse
    ``argv`` (``default`` given: the argument is optional) and run ``run(value)`` under :func:`run_main`."""
    import argparse

    ap = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=(doc or name).splitlines()[0])
    if default is ...:
        ap.add_argument(arg, help=help)
    else:
        ap.add_argument(arg, nargs="?", default=default, help=help)
    value = getattr(ap.parse_args(argv), arg)
    return run_main(name, lambda: run(value), **run_main_kwargs)


def run_main(name: str, body: Callable[[], int | None],
             user_errors: tuple[type[BaseException], ...] = (), code: int = 1) -> int:
    """Run a stage body; user errors (exit ``code``, or a :class:`StageError`'s own ``exit_code``), a full
    disk (1) and Ctrl-C (130) end with one line on stderr. ``CLIP2POINT_DEBUG=1`` re-raises them."""
    from clip2point.io.errors import ReadError
    from clip2point.models.clip import ClipWeightsError
    from clip2point.shards import ShardError

    known = (*USER_ERRORS, ReadError, ClipWeightsError, ShardError, *user_errors)
    debug = os.environ.get("CLIP2POINT_DEBUG") == "1"
    try:
        return body() or 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{name}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    except known as e:
        if debug:
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"{name}: {msg}", file=sys.stderr)
        return getattr(e, "exit_code", None) or code
    except OSError as e:
        if e.errno == errno.ENOSPC and not debug:
            print(f"{name}: no space left on device ({e.filename or 'output'}); no partial output was kept",
                  file=sys.stderr)
            return 1
        raise
