"""What every stage shares: one error type, one way to find a dataset, one live logger, one entry wrapper.

A stage is ``main(argv) -> int``: parse args, load typed params, call one library or pipeline function,
write artifacts. :func:`run_main` turns every user-facing failure into one line on stderr and an exit
code (1: bad input or params; 130: interrupted), never a traceback.
"""

from __future__ import annotations

import errno
import shutil
import sys
from collections.abc import Callable
from typing import Any

from pipeline import paths
from pipeline.params import DatasetParams, Params, ParamsError


class StageError(RuntimeError):
    """A stage cannot run on its inputs; ``str()`` is one line naming the file or value."""


def find_dataset(params: Params, name: str) -> DatasetParams:
    """The pre-training pool or benchmark called ``name`` in params (``ParamsError`` naming the known)."""
    return params.data.benchmark(name)


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


#: failures that are the user's input, not a bug: reported as one line, exit code 1
USER_ERRORS: tuple[type[BaseException], ...] = (StageError, ParamsError, FileNotFoundError, ValueError)


def run_main(name: str, body: Callable[[], int | None],
             user_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run a stage body; user errors, a full disk and Ctrl-C end with one line on stderr."""
    from clip2point.io.errors import ReadError
    from clip2point.models.clip import ClipWeightsError
    from clip2point.shards import ShardError

    known = (*USER_ERRORS, ReadError, ClipWeightsError, ShardError, *user_errors)
    try:
        return body() or 0
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    except known as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"{name}: {msg}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno == errno.ENOSPC:
            print(f"{name}: no space left on device ({e.filename or 'output'}); no partial output was kept",
                  file=sys.stderr)
            return 1
        raise
