"""Shared plumbing of the commands: exit codes, one-line errors, ``--quiet`` / ``--debug``, progress bars.

Exit codes: 0 success; 1 user error (bad input, missing file, wrong checkpoint, failed check; also a
``classify`` batch in which some files were bad); 2 internal error (a bug: the message says so and
``--debug`` shows the traceback).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterable, Iterator
from typing import Annotated, TypeVar

import typer

EXIT_OK = 0
EXIT_USER = 1
EXIT_INTERNAL = 2

T = TypeVar("T")

Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars or notes; results and errors only.")
]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")]


class CliError(Exception):
    """A user-facing failure: ``str()`` is the one line printed on stderr; exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USER) -> None:
        super().__init__(" ".join(str(message).split()))
        self.code = code


def one_line(exc: BaseException) -> str:
    """An exception as a single line (its first non-empty line, whitespace collapsed)."""
    text = str(exc).strip()
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    return " ".join(first.split()) or type(exc).__name__


def err(message: str) -> None:
    """Print one line on stderr (above a running progress bar, if any)."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


@contextlib.contextmanager
def handled(debug: bool) -> Iterator[None]:
    """Turn exceptions into one stderr line and an exit code (traceback too with ``--debug``)."""
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except CliError as e:
        if debug:
            traceback.print_exc(file=sys.stderr)
        err(f"error: {e}")
        raise typer.Exit(e.code) from None
    except KeyboardInterrupt:
        err("interrupted")
        raise typer.Exit(130) from None
    except Exception as e:  # noqa: BLE001 - the last resort of a command-line tool
        if debug:
            traceback.print_exc(file=sys.stderr)
            err(f"internal error: {type(e).__name__}: {one_line(e)}")
        else:
            err(f"internal error: {type(e).__name__}: {one_line(e)} (rerun with --debug for the traceback)")
        raise typer.Exit(EXIT_INTERNAL) from None


def progress(
    items: Iterable[T], quiet: bool, desc: str, total: int | None = None, unit: str = "it"
) -> Iterable[T]:
    """A tqdm bar on stderr (none with ``--quiet`` or when there are fewer than two items)."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if quiet or (total is not None and total < 2):
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)
