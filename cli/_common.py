"""Shared plumbing of the commands: exit codes, one-line errors, ``--quiet`` / ``--debug``, progress bars,
atomic output files.

Exit codes (``docs/cli.md``): 0 success; 1 user error (a usage error such as an unknown option or a bad
number, bad input, missing or unreadable file, invalid ``params.yaml``, full disk, failed check; also a
``classify`` batch in which some files were bad); 2 internal error (a bug: the message says so and
``--debug`` shows the traceback); 130 interrupted (Ctrl-C). Every error is one line on stderr, starting
with ``error:``, naming the bad value or file.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from clip2point.files import atomic_file

EXIT_OK = 0
EXIT_USER = 1
EXIT_INTERNAL = 2
EXIT_INTERRUPTED = 130

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


def collapse(text: str) -> str:
    """All of ``text`` on one line (every run of whitespace, newlines included, becomes one space)."""
    return " ".join(str(text).split())


def err(message: str) -> None:
    """Print one line on stderr (above a running progress bar, if any)."""
    from tqdm.auto import tqdm

    tqdm.write(collapse(message), file=sys.stderr)


def os_reason(e: OSError) -> str:
    """The reason of an OS error in lower case (``no space left on device`` for a full disk or quota)."""
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "no space left on device"
    reason = (e.strerror or one_line(e)).rstrip(".")
    return reason[:1].lower() + reason[1:]


def os_error_text(e: OSError) -> str:
    """``'<file>: <reason>'`` of an OS error (just the reason when it names no file)."""
    reason = os_reason(e)
    names = [str(f) for f in (e.filename, getattr(e, "filename2", None)) if f is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


def _quiet_stdout() -> None:
    """After a broken pipe (``clip2point classify ... | head``): no second error when Python flushes stdout."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


@contextlib.contextmanager
def handled(debug: bool) -> Iterator[None]:
    """Turn exceptions into one stderr line and an exit code (traceback too with ``--debug``).

    :class:`CliError` → its code (1); ``KeyboardInterrupt`` → 130; an ``OSError`` with an errno (a missing,
    unreadable or unwritable file, a full disk) → 1; an allocation that failed (:func:`is_out_of_memory`) → 1,
    "not enough memory"; anything else is a bug → 2.
    """
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
        err("error: interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        _quiet_stdout()  # the reader of our output went away: nothing to say, nowhere to say it
        raise typer.Exit(EXIT_USER) from None
    except OSError as e:
        if e.errno is None:
            _internal(e, debug)
        if debug:
            traceback.print_exc(file=sys.stderr)
        err(f"error: {os_error_text(e)}")
        raise typer.Exit(EXIT_USER) from None
    except Exception as e:  # noqa: BLE001 - the last resort of a command-line tool
        if is_out_of_memory(e):  # not a bug: the machine is too small for what was asked
            if debug:
                traceback.print_exc(file=sys.stderr)
            err(f"error: {memory_message('this command', e)}")
            raise typer.Exit(EXIT_USER) from None
        _internal(e, debug)


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` says an allocation failed: Python's ``MemoryError``, torch's ``OutOfMemoryError`` (CUDA),
    or the ``RuntimeError`` torch's CPU allocator raises ("DefaultCPUAllocator: can't allocate memory ...")."""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and any(w in text for w in _OOM_WORDS)


#: how torch's allocators word a failed allocation (CPU: "DefaultCPUAllocator: can't allocate memory: you
#: tried to allocate N bytes. Error code 12 (Cannot allocate memory)"; older: "not enough memory"; CUDA)
_OOM_WORDS = ("not enough memory", "out of memory", "can't allocate memory", "cannot allocate memory")


def memory_message(what: str, e: BaseException) -> str:
    """``not enough memory for <what> (<the allocator's words>)``: one line for an allocation that failed."""
    detail = one_line(e) if str(e).strip() else ""
    detail = detail[:160] + ("..." if len(detail) > 160 else "")
    return f"not enough memory for {what}" + (f" ({detail})" if detail else "")


def _internal(e: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(e, file=sys.stderr)
        err(f"internal error: {type(e).__name__}: {one_line(e)}")
    else:
        err(f"internal error: {type(e).__name__}: {one_line(e)} (rerun with --debug for the traceback)")
    raise typer.Exit(EXIT_INTERNAL) from None


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress(
    items: Iterable[T], quiet: bool, desc: str, total: int | None = None, unit: str = "it"
) -> Iterable[T]:
    """A tqdm bar on stderr: none with ``--quiet``, for fewer than two items, or when stderr is not a terminal
    (a log file or a pipe would collect the bar's carriage-return fragments; notes and errors still come)."""
    if quiet or not _is_terminal(sys.stderr):
        return items
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if total is not None and total < 2:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------- options


def config_range(config: type, name: str) -> tuple[int | float, int | float]:
    """The ``(ge, le)`` bounds of the library config field ``name`` (its :func:`clip2point.settings.setting`
    rule), so an option checks the same range as the config it feeds, written once."""
    import dataclasses

    meta = {f.name: f.metadata for f in dataclasses.fields(config)}[name]
    return meta["ge"], meta["le"]


def bounded(low: float | None = None, high: float | None = None) -> Callable[[Any], Any]:
    """A typer option callback: the value (if given) must lie in ``[low, high]``; the usage error names it."""

    def check(value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise typer.BadParameter(f"must be a finite number, got {value}")
        if low is not None and high is not None and not low <= value <= high:
            raise typer.BadParameter(f"must be between {low:g} and {high:g}, got {value:g}")
        if low is not None and value < low:
            raise typer.BadParameter(f"must be at least {low:g}, got {value:g}")
        if high is not None and value > high:
            raise typer.BadParameter(f"must be at most {high:g}, got {value:g}")
        return value

    return check


def check_up_axis(value: str, option: str = "--up-axis") -> str:
    """``value`` if it is an up axis the pipeline knows (``clip2point.sampling.UP_AXES``), else a CliError."""
    from clip2point.sampling import UP_AXES

    if value not in UP_AXES:
        raise CliError(f"{option} must be one of {', '.join(UP_AXES)}, not {value!r}")
    return value


# ------------------------------------------------------------------------------------------- output files


def check_output_path(path: Path, option: str) -> None:
    """Refuse, before any work, an output path that cannot be written: a folder, or one under a file.

    Missing parent folders are fine (they are created when the file is written).
    """
    try:
        if path.is_dir():
            raise CliError(f"{option} {path} is a folder; name a file")
        parent = path.parent
        while not parent.exists():
            if parent == parent.parent:
                break
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            raise CliError(f"{option} {path}: {parent} is a file, not a folder")
    except OSError as e:
        raise CliError(f"{option} {path}: {os_error_text(e)}") from None


@contextlib.contextmanager
def atomic_output(path: Path, option: str = "--out") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it becomes ``path`` only when the block succeeds.

    On any failure (an error, a full disk, Ctrl-C) the temporary file is removed and ``path`` is left as it
    was: no partial output. OS errors become a one-line :class:`CliError` naming ``path``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"cannot create the folder of {option} {path}: {os_error_text(e)}") from None
    try:
        with atomic_file(path) as tmp:
            yield tmp
    except OSError as e:
        raise CliError(f"cannot write {path}: {os_reason(e)} (nothing written)") from None
