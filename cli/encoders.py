"""The models of an invocation: a CLIP given by ``--clip`` or the run's (``pipeline.models``), and the depth
encoders a classifier can use (the run's pretrained one, or ``--encoder`` PATH)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cli._common import CliError, one_line, os_reason
from cli.settings import run_params


@dataclass
class Encoders:
    """The loaded CLIP and the visual encoders a classifier can use.

    ``visuals`` maps an encoder key to a visual tower: ``"clip"`` is CLIP's own image encoder, other keys
    (``"intra_cross-seed0"``, ``"encoder"``) are pretrained depth encoders. ``zero_shot_key`` names the one
    used for zero-shot classification (the pretrained depth encoder when there is one, §3.3).
    """

    model_name: str
    model: nn.Module
    tokenizer: Any
    visuals: dict[str, nn.Module]
    zero_shot_key: str
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def embed_dim(self) -> int:
        proj = getattr(self.model, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            return int(proj.shape[-1])
        return int(self.text_features(["x"], ["{}"]).shape[-1])

    @property
    def logit_scale(self) -> float:
        """CLIP's logit scale (:func:`clip2point.models.clip.logit_scale`)."""
        from clip2point.models.clip import logit_scale

        return logit_scale(self.model)

    def text_features(self, names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        from clip2point.models.clip import text_features

        return text_features(self.model, self.tokenizer, list(names), list(templates))


def _state_dict_of(obj: Any) -> dict[str, torch.Tensor] | None:
    """The tensor mapping inside a checkpoint (a plain state dict, or one under a usual key)."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in ("depth_encoder", "encoder", "visual", "state_dict", "model"):
            inner = _state_dict_of(obj.get(key))
            if inner is not None:
                return inner
    return None


def torch_load(path: str | os.PathLike, what: str) -> Any:
    """``torch.load`` of a user-given checkpoint (tensors and plain containers only) or a one-line error."""
    from clip2point.io.errors import path_problem

    p = Path(path)
    try:
        problem = path_problem(p, missing="not found")
    except OSError as e:
        raise CliError(f"{what} {p}: cannot access it ({os_reason(e)})") from None
    if problem == "not found":
        raise CliError(f"{what} not found: {p}")
    if problem is not None:  # a folder, a FIFO (torch.load would block on it), a symlink loop
        raise CliError(f"{what} {p} {problem}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is a user error
        raise CliError(f"{what} {p} is not a readable PyTorch checkpoint ({one_line(e)[:200]})") from None


def load_visual(template: nn.Module, path: str | os.PathLike, model_name: str) -> nn.Module:
    """A copy of ``template`` (CLIP's visual tower) with a pretrained depth encoder's weights from ``path``.

    Accepts a plain state dict or one under ``depth_encoder`` / ``encoder`` / ``visual`` / ``state_dict`` /
    ``model``, with or without a ``visual.`` / ``module.`` prefix. A checkpoint of another architecture is a
    :class:`CliError` naming the mismatch.
    """
    import copy

    from clip2point.models.released import ReleasedCheckpointError, load_checked_state

    state = _state_dict_of(torch_load(path, "depth encoder checkpoint"))
    if state is None:
        raise CliError(f"depth encoder checkpoint {path} holds no state dict of tensors")
    for prefix in ("module.", "visual."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    try:
        visual = load_checked_state(copy.deepcopy(template), state, "weights")
    except ReleasedCheckpointError as e:
        raise CliError(
            f"depth encoder checkpoint {path} does not fit CLIP model '{model_name}' ({one_line(e)}); "
            "was it trained with another --clip?"
        ) from None
    return visual.eval()


def load_encoders(clip: str | None, pretrained: str | None, encoder: str | None) -> Encoders:
    """Resolve the models of an invocation.

    * ``clip`` given: that open_clip model (``pretrained``: "" random, an open_clip tag from the local cache,
      or a checkpoint path); zero-shot uses CLIP's image encoder unless ``encoder`` names a depth encoder.
    * otherwise: the pipeline's latest artifacts (the run's CLIP and pretrained depth encoder).
    """
    from clip2point.models.clip import ClipWeightsError, create_clip

    if clip:
        logging.disable(logging.WARNING)  # open_clip warns about random init, which --clip alone asks for
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # random weights (no --pretrained) are the same on every invocation
                model, tokenizer = create_clip(clip, pretrained or "")
        except ClipWeightsError as e:
            raise CliError(str(e)) from None
        finally:
            logging.disable(logging.NOTSET)
        enc = Encoders(clip, model, tokenizer, {"clip": model.visual}, "clip", f"--clip {clip}")
        enc.source += f" --pretrained {pretrained}" if pretrained else " (random weights)"
    else:
        enc = run_encoders()
    if encoder:
        enc.visuals["encoder"] = load_visual(enc.visuals["clip"], encoder, enc.model_name)
        enc.zero_shot_key = "encoder"
        enc.source += f", --encoder {encoder}"
    return enc


def run_encoders(variant: str = "intra_cross") -> Encoders:
    """The run's CLIP and its pretrained depth encoder (``pipeline.models``; the first seed of
    ``pretrain.seeds`` that has one). Without a pretrained encoder, zero-shot uses CLIP's image encoder."""
    from clip2point.models.clip import ClipWeightsError
    from pipeline import models as run_models
    from pipeline import paths
    from pipeline.keys import EncoderKey
    from pipeline.params import PretrainParams

    try:
        pointer = run_models.read_clip_pointer()
        model, tokenizer = run_models.load_clip()
    except ClipWeightsError as e:
        raise CliError(f"{e}; or pass --clip NAME [--pretrained PATH]") from None
    enc = Encoders(pointer["model"], model, tokenizer, {"clip": model.visual}, "clip",
                   f"run CLIP {pointer['model']} ({paths.clip_dir()})")  # fmt: skip
    params = run_params()
    seeds = params.pretrain.seeds if params is not None else PretrainParams().seeds
    for seed in seeds:
        key = str(EncoderKey(variant, seed))
        if not (paths.pretrain_dir(variant, seed) / run_models.ENCODER_WEIGHTS).is_file():
            continue
        try:
            enc.visuals[key] = run_models.load_depth_encoder(variant, seed, clip_model=model)
        except (RuntimeError, ValueError) as e:  # ReleasedCheckpointError: a key or shape that does not fit
            msg = f"pretrained encoder {key} does not fit the run's CLIP: {one_line(e)[:200]}"
            raise CliError(msg) from None
        enc.zero_shot_key = key
        enc.source += f", depth encoder {key}"
        return enc
    enc.notes.append(
        f"no pretrained depth encoder under {paths.pretrain_root()} (run `dvc repro pretrain`); "
        "zero-shot uses CLIP's image encoder"
    )
    return enc
