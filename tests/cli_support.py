"""What the CLI tests share: an isolated working folder (autouse fixture) and the typer runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from clip2point.cli import app

TINY = ["--clip", "c2p-tiny"]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty folder: no params.yaml, no pipeline outputs (settings fall back to defaults)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLIP2POINT_PARAMS", raising=False)


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])
