"""``clip2point``: the command-line door to the library and to the pipeline's artifacts.

Commands: ``classify`` (zero-shot or adapter classification of the user's meshes and point clouds),
``render`` (depth views as a contact sheet), ``prepare`` (check a real dataset download and wire it into
``params.yaml``), ``info`` (versions, device, weights, pipeline outputs). See ``docs/cli.md``.

Exit codes: 0 ok, 1 user error (including usage errors and a batch with bad files), 2 internal error.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import typer
from typer.core import TyperGroup

from clip2point.cli._common import EXIT_USER


class _Group(TyperGroup):
    """Typer's group, with usage errors (unknown option, missing argument) mapped to exit code 1."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # fmt: skip
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:
            e.show()
            rv = EXIT_USER
        except click.Abort:
            click.echo("Aborted!", err=True)
            rv = EXIT_USER
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="clip2point",
    cls=_Group,
    help="CLIP2Point (ICCV 2023): classify and render point clouds with image-depth pretrained CLIP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

from clip2point.cli import classify as _classify  # noqa: E402
from clip2point.cli import info as _info  # noqa: E402
from clip2point.cli import prepare as _prepare  # noqa: E402
from clip2point.cli import render as _render  # noqa: E402

app.command("classify")(_classify.classify)
app.command("render")(_render.render)
app.command("prepare")(_prepare.prepare)
app.command("info")(_info.info)

__all__ = ["app"]
