"""``clip2point``: the command-line door to the library and to the pipeline's artifacts.

Commands: ``classify`` (zero-shot or adapter classification of the user's meshes and point clouds),
``render`` (depth views as a contact sheet), ``prepare`` (check a real dataset download and wire it into
``params.yaml``), ``info`` (versions, device, weights, pipeline outputs). See ``docs/cli.md``.

Exit codes: 0 ok, 1 user error (including usage errors and a batch with bad files), 2 internal error,
130 interrupted. Every error is one line on stderr (``error: ...``); see ``docs/cli.md``.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from cli._common import EXIT_INTERRUPTED, EXIT_USER, collapse, err


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """The exception classes typer raises for usage errors: typer >= 0.25 ships its own copy of click
    (``typer.TyperException`` is their base), older versions raise click's own."""
    found: list[type[BaseException]] = []
    base = getattr(typer, "TyperException", None)
    if isinstance(base, type):
        found.append(base)
    try:
        import click
    except ImportError:  # pragma: no cover - typer without click
        pass
    else:
        found.append(click.ClickException)
    return tuple(found)


def _abort_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [typer.Abort]
    try:
        import click
    except ImportError:  # pragma: no cover
        pass
    else:
        found.append(click.exceptions.Abort)
    return tuple(found)


def _given_value(args: list[str], e: BaseException) -> str | None:
    """The value the user gave to the option a usage error is about (``--top-k 0`` → ``"0"``), if any."""
    param = getattr(e, "param", None)
    opts = [o for o in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())) if o.startswith("-")]
    value = None
    for i, a in enumerate(args):
        if a == "--":
            break
        for o in opts:
            if a == o and i + 1 < len(args):
                value = args[i + 1]
            elif o.startswith("--") and a.startswith(o + "="):
                value = a[len(o) + 1 :]
            elif not o.startswith("--") and a.startswith(o) and len(a) > len(o):
                value = a[len(o) :]
    return value


def usage_line(e: BaseException, args: list[str] | None = None) -> str:
    """A usage error as one line: ``error: <what is wrong> [(got 'X')] (see 'clip2point CMD --help')``."""
    fmt = getattr(e, "format_message", None)
    message = collapse(fmt() if callable(fmt) else str(e)).rstrip(".") or type(e).__name__
    value = _given_value(list(args or []), e) if type(e).__name__ == "BadParameter" else None
    if value is not None and "got " not in message and repr(value) not in message:
        message += f" (got {value!r})"
    ctx = getattr(e, "ctx", None)
    path = getattr(ctx, "command_path", None)
    hint = f" (see '{path} --help')" if path else ""
    return f"error: {message[:1].lower() + message[1:]}{hint}"


class _Group(TyperGroup):
    """Typer's group, with usage errors (unknown option, missing argument, bad number) as one stderr line
    and exit code 1, and Ctrl-C as one line and exit code 130."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # fmt: skip
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _usage_error_types() as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # `clip2point` alone: the help (rich prints it)
                text = getattr(e, "format_message", lambda: "")()
                if text.strip():
                    sys.stderr.write(text.rstrip() + "\n")
            else:
                err(usage_line(e, sys.argv[1:] if args is None else list(args)))
            rv = EXIT_USER
        except _abort_types():
            err("error: aborted")
            rv = EXIT_USER
        except KeyboardInterrupt:
            err("error: interrupted")
            rv = EXIT_INTERRUPTED
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # outside a command's own handler (e.g. while parsing or importing)
            err("error: interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    name="clip2point",
    cls=_Group,
    help="CLIP2Point (ICCV 2023): classify and render point clouds with image-depth pretrained CLIP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

from cli import classify as _classify  # noqa: E402
from cli import info as _info  # noqa: E402
from cli import prepare as _prepare  # noqa: E402
from cli import render as _render  # noqa: E402

app.command("classify")(_classify.classify)
app.command("render")(_render.render)
app.command("prepare")(_prepare.prepare)
app.command("info")(_info.info)

__all__ = ["app"]
