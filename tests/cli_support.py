"""What the CLI tests share: an isolated working folder (autouse fixture) and the typer runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from released_support import randomised
from typer.testing import CliRunner

from cli import app

TINY = ["--clip", "c2p-tiny"]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty folder: no params.yaml, no pipeline outputs (settings fall back to defaults)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLIP2POINT_PARAMS", raising=False)


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------- a fake released few-shot DPA checkpoint

#: ``c2p-tiny`` built with QuickGELU: the activation the released checkpoints need (registered by
#: :func:`released_dpa_files` for the test that uses it).
TINY_QUICK = "c2p-tiny-quickgelu"
RELEASED_VIEWS = 10


def register_tiny_quickgelu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``--clip c2p-tiny-quickgelu`` an open_clip model for this test (as ``ViT-B-32-quickgelu`` is
    ``ViT-B-32`` with ``quick_gelu: true``)."""
    import copy

    import open_clip
    from open_clip import factory

    import clip2point.models.clip  # noqa: F401 - registers c2p-tiny

    cfg = copy.deepcopy(open_clip.get_model_config("c2p-tiny"))
    cfg["quick_gelu"] = True
    monkeypatch.setitem(factory._MODEL_CONFIGS, TINY_QUICK, cfg)


def _randomised(module, seed: int):
    return randomised(module, seed, std=(0.02, 0.5)).eval()


def released_dpa_files(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Write a tiny CLIP's weights (``clip``, for ``--clip c2p-tiny-quickgelu --pretrained``) and a released
    few-shot checkpoint around it (``dpa``: ``pre_model``/``ori_model`` differ from each other and from the
    CLIP's own visual tower; ``adapter1``/``adapter2`` random; selector buffers as released)."""
    import open_clip
    import torch

    from clip2point.models.adapters import SimplifiedAdapter

    register_tiny_quickgelu(monkeypatch)
    torch.manual_seed(0)
    clip = open_clip.create_model(TINY_QUICK, pretrained=None).eval()
    torch.save(clip.state_dict(), folder / "tiny_clip.pt")
    dim = int(clip.text_projection.shape[-1])
    pre = _randomised(open_clip.create_model(TINY_QUICK, pretrained=None).visual, 1)
    ori = _randomised(open_clip.create_model(TINY_QUICK, pretrained=None).visual, 2)
    a1 = _randomised(SimplifiedAdapter(RELEASED_VIEWS, dim), 3)
    a2 = _randomised(SimplifiedAdapter(RELEASED_VIEWS, dim), 4)
    ckpt = {f"pre_model.{k}": v.clone() for k, v in pre.state_dict().items()}
    ckpt |= {f"ori_model.{k}": v.clone() for k, v in ori.state_dict().items()}
    ckpt |= {f"adapter1.{k}": v.clone() for k, v in a1.state_dict().items()}
    ckpt |= {f"adapter2.{k}": v.clone() for k, v in a2.state_dict().items()}
    ckpt |= {f"selector.view_selector.views_{n}": torch.zeros(RELEASED_VIEWS) for n in ("azim", "elev", "dist")}
    torch.save(ckpt, folder / "best_test.pth")
    return {"clip": folder / "tiny_clip.pt", "dpa": folder / "best_test.pth"}


def released_args(paths: dict[str, Path]) -> list[object]:
    return ["--checkpoint", paths["dpa"], "--clip", TINY_QUICK, "--pretrained", paths["clip"]]
