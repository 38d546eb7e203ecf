"""Load the released CLIP2Point checkpoints into this project's modules (paper §5.2, Eq. 17–19).

The released code (github.com/tyhuang0428/CLIP2Point) links two files in its README:

* the pre-trained checkpoint (``best_eval.pth``): ``torch.save(model.state_dict())`` of the pre-training
  model wrapped in ``nn.DataParallel``, so every key starts with ``module.``; the depth encoder E_d is the
  ``point_model`` attribute (an OpenAI-CLIP ViT-B/32 visual tower), next to ``image_model`` (the frozen
  CLIP image encoder), ``weights`` (the loss-balance scalar) and ``selector`` (fixed view buffers). The
  released loader keeps ``point_model.*`` and drops the rest; so does :func:`released_encoder_state`.
* the few-shot checkpoint (``best_test.pth``): ``state_dict()`` of the released DPA module, with
  ``pre_model.*`` (E_d), ``ori_model.*`` (CLIP's visual encoder), ``adapter1.*`` (the adapter on
  ``pre_model``), ``adapter2.*`` (the adapter on ``ori_model``) and ``selector.*``.

OpenAI CLIP's ``VisionTransformer`` and open_clip's have the same parameter names and shapes for ViT-B/32,
so E_d maps onto ``open_clip`` ``CLIP.visual`` key for key. The released weights were trained with OpenAI
CLIP's QuickGELU; open_clip builds ``ViT-B-32`` with ``nn.GELU`` unless asked for QuickGELU (model name
``ViT-B-32-quickgelu`` or ``force_quick_gelu=True``), which :func:`load_released_depth_encoder` checks.

Every mismatch (missing, unexpected or mis-shaped key, or an unknown top-level name) raises
:class:`ReleasedCheckpointError` with a one-line message naming the keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from clip2point.models.adapters import RELEASED_DROPOUT, ReleasedDualPathAdapter, create_adapter

DATA_PARALLEL_PREFIX = "module."
#: Where the released checkpoints keep a visual encoder: pre-training E_d, DPA's E_d, DPA's CLIP encoder.
PRETRAIN_ENCODER_PREFIX = "point_model."
DPA_DEPTH_PREFIX = "pre_model."
DPA_CLIP_PREFIX = "ori_model."
ENCODER_PREFIXES = (PRETRAIN_ENCODER_PREFIX, DPA_DEPTH_PREFIX, DPA_CLIP_PREFIX)
#: Released DPA adapter prefix -> this project's :class:`ReleasedDualPathAdapter` attribute.
DPA_ADAPTER_PATHS = {"adapter1.": "depth_path.", "adapter2.": "clip_path."}
#: Top-level attribute names of the released CLIP2Point (pre-training) and DPA (few-shot) modules.
KNOWN_TOP_LEVEL = frozenset(
    {"point_model", "image_model", "weights", "selector", "renderer", "criterion",
     "pre_model", "ori_model", "adapter1", "adapter2"}
)
_MAX_LISTED = 10


class ReleasedCheckpointError(ValueError):
    """A released checkpoint does not fit the target module; ``str()`` is one line naming the keys."""


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else "")


def read_released_checkpoint(source: str | Path | Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A released state dict (a path to a ``torch.save`` file, or the mapping itself) on the CPU, with
    the ``module.`` prefix of ``nn.DataParallel`` removed from every key that has it."""
    where = str(source) if isinstance(source, (str, Path)) else "checkpoint"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ReleasedCheckpointError(f"released checkpoint not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - one-line message for any unreadable file
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ReleasedCheckpointError(f"cannot read released checkpoint {path}: {first[:300]}") from None
    else:
        state = source
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ReleasedCheckpointError(f"{where} is not a state dict (a mapping of names to tensors)")
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        key = k[len(DATA_PARALLEL_PREFIX):] if k.startswith(DATA_PARALLEL_PREFIX) else k
        out[key] = v
    return out


def _check_top_level(state: Mapping[str, Tensor], where: str) -> None:
    unknown = sorted(k for k in state if k.split(".", 1)[0] not in KNOWN_TOP_LEVEL)
    if unknown:
        raise ReleasedCheckpointError(
            f"{where}: {len(unknown)} key(s) outside the released CLIP2Point/DPA modules: {_listing(unknown)}"
        )


def check_state_keys(expected: Mapping[str, Tensor], got: Mapping[str, Tensor], what: str) -> None:
    """Raise :class:`ReleasedCheckpointError` unless ``got`` has exactly the keys and shapes of ``expected``."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = sorted(
        f"{k} {tuple(got[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(got)
        if tuple(got[k].shape) != tuple(expected[k].shape)
    )
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es) (checkpoint vs model): {_listing(shapes)}")
    if parts:
        raise ReleasedCheckpointError(f"{what}: " + "; ".join(parts))


def load_checked_state(module: nn.Module, state: Mapping[str, Tensor], what: str, *, key_prefix: str = "") -> nn.Module:
    """Load ``state`` into ``module`` (in place, strict) and return it, after :func:`check_state_keys`: a missing,
    unexpected or mis-shaped key raises :class:`ReleasedCheckpointError` naming it as ``key_prefix + key`` (the
    name it has in the checkpoint file). The one way a set of weights goes into a CLIP visual tower here: the
    released checkpoints, the run's pre-trained encoders (``pipeline.models``) and the CLI's ``--encoder``."""
    check_state_keys({key_prefix + k: v for k, v in module.state_dict().items()},
                     {key_prefix + k: v for k, v in state.items()}, what)  # fmt: skip
    module.load_state_dict(state, strict=True)
    return module


def _resolve_prefix(state: Mapping[str, Tensor], prefix: str | None) -> str:
    if prefix is None:
        found = [p for p in (PRETRAIN_ENCODER_PREFIX, DPA_DEPTH_PREFIX) if any(k.startswith(p) for k in state)]
        if not found:
            raise ReleasedCheckpointError(
                f"released checkpoint holds no depth encoder (no '{PRETRAIN_ENCODER_PREFIX}*' or "
                f"'{DPA_DEPTH_PREFIX}*' keys)"
            )
        return found[0]
    if prefix not in ENCODER_PREFIXES:
        raise ReleasedCheckpointError(f"unknown encoder prefix '{prefix}' ({' | '.join(ENCODER_PREFIXES)} | '')")
    if not any(k.startswith(prefix) for k in state):
        raise ReleasedCheckpointError(f"released checkpoint has no '{prefix}*' keys")
    return prefix


def released_encoder_state(state: Mapping[str, Tensor], prefix: str | None = None) -> dict[str, Tensor]:
    """The visual-encoder state dict stored under ``prefix`` in a released state dict (prefix removed).

    ``prefix=None`` picks ``point_model.`` (pre-training checkpoint) or else ``pre_model.`` (few-shot
    checkpoint: E_d); pass ``ori_model.`` for the DPA's CLIP encoder, or ``""`` for a bare visual state dict.
    Keys of the other released parts (``image_model``, ``selector``, ``weights``, adapters, ...) are dropped;
    keys outside the released modules raise.
    """
    state = read_released_checkpoint(state)
    if prefix == "":
        return dict(state)
    _check_top_level(state, "released checkpoint")
    prefix = _resolve_prefix(state, prefix)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def visual_architecture(state: Mapping[str, Tensor]) -> dict[str, int] | None:
    """``{"width", "patch", "layers", "image_size"}`` of a ViT visual state dict (open_clip / OpenAI CLIP key
    names, as :func:`released_encoder_state` returns them), read from its shapes; ``None`` when the keys are
    not a ViT tower's (no ``conv1.weight`` / ``positional_embedding``)."""
    conv, pos = state.get("conv1.weight"), state.get("positional_embedding")
    if conv is None or pos is None or conv.ndim != 4 or pos.ndim != 2:
        return None
    patch = int(conv.shape[-1])
    grid = round((int(pos.shape[0]) - 1) ** 0.5)
    blocks = {k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")}
    return {"width": int(conv.shape[0]), "patch": patch, "layers": len(blocks), "image_size": grid * patch}


def uses_quick_gelu(visual: nn.Module) -> bool:
    """Whether a CLIP visual tower uses QuickGELU (``x · sigmoid(1.702 x)``), OpenAI CLIP's activation."""
    return any(type(m).__name__ == "QuickGELU" for m in visual.modules())


def load_released_depth_encoder(
    visual: nn.Module,
    source: str | Path | Mapping[str, Tensor],
    *,
    prefix: str | None = None,
    check_activation: bool = True,
) -> nn.Module:
    """Load a released visual encoder into ``visual`` (an open_clip ``CLIP.visual``, in place) and return it.

    ``source``: the released pre-training checkpoint (E_d under ``point_model.``), the few-shot checkpoint
    (E_d under ``pre_model.``, CLIP under ``ori_model.``), a path to either, or a state dict. Exactly the
    keys and shapes of ``visual.state_dict()`` must be present (else :class:`ReleasedCheckpointError`).
    ``check_activation``: refuse a tower without QuickGELU, the activation the released weights were
    trained with.
    """
    if check_activation and not uses_quick_gelu(visual):
        raise ReleasedCheckpointError(
            "the released CLIP2Point weights were trained with OpenAI CLIP's QuickGELU but this visual tower "
            "has none: build it as 'ViT-B-32-quickgelu' (or with force_quick_gelu=True), or pass "
            "check_activation=False"
        )
    state = read_released_checkpoint(source)
    if prefix != "":
        _check_top_level(state, "released checkpoint")
        prefix = _resolve_prefix(state, prefix)
    sub = released_encoder_state(state, prefix)
    # compared under the checkpoint's own names, so an error names the key as it is in the file
    return load_checked_state(visual, sub, "released depth encoder", key_prefix=prefix)


def _to_released_name(key: str) -> str:
    for src, dst in DPA_ADAPTER_PATHS.items():
        if key.startswith(dst):
            return src + key[len(dst):]
    return key


def released_dpa_adapter_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The released DPA's ``adapter1.*`` / ``adapter2.*`` entries renamed for :class:`ReleasedDualPathAdapter`
    (``adapter1`` -> ``depth_path``, ``adapter2`` -> ``clip_path``); encoders and selector are dropped."""
    state = read_released_checkpoint(state)
    _check_top_level(state, "released DPA checkpoint")
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        for src, dst in DPA_ADAPTER_PATHS.items():
            if k.startswith(src):
                out[dst + k[len(src):]] = v
    if not out:
        raise ReleasedCheckpointError("released DPA checkpoint has no 'adapter1.*' / 'adapter2.*' keys")
    return out


def load_released_dpa(
    source: str | Path | Mapping[str, Tensor],
    adapter: ReleasedDualPathAdapter | None = None,
    *,
    dropout: float = RELEASED_DROPOUT,
) -> ReleasedDualPathAdapter:
    """The released few-shot DPA head (Eq. 17–19) in eval mode, loaded from the released checkpoint.

    ``adapter=None`` builds ``create_adapter("released_dual_path", ...)`` with ``n_views``, ``dim`` and
    ``hidden`` read from the checkpoint's shapes (scale fixed at 1, as released); otherwise ``adapter`` is
    loaded in place. Keys and shapes must match exactly (else :class:`ReleasedCheckpointError`, naming the
    keys as the checkpoint spells them).
    """
    sub = released_dpa_adapter_state(source)
    if adapter is None:
        need = ["depth_path.fusion_ratio", "depth_path.global_f.3.weight", "depth_path.global_f.7.weight"]
        absent = [_to_released_name(k) for k in need if k not in sub]
        if absent:
            raise ReleasedCheckpointError(f"released DPA adapter: missing key(s): {_listing(absent)}")
        n_views, hidden, dim = (int(sub[k].shape[0]) for k in need)
        adapter = cast(ReleasedDualPathAdapter, create_adapter(
            "released_dual_path", n_views=n_views, dim=dim, hidden=hidden, dropout=dropout, logit_scale=1.0))
    check_state_keys({_to_released_name(k): v for k, v in adapter.state_dict().items()},
                     {_to_released_name(k): v for k, v in sub.items()}, "released DPA adapter")
    adapter.load_state_dict(sub, strict=True)
    return adapter.eval()


#: Top-level names of the released DPA (few-shot) module's own parts.
DPA_TOP_LEVEL = ("pre_model", "ori_model", "adapter1", "adapter2")


def is_released_dpa_state(obj: object) -> bool:
    """Whether ``obj`` (e.g. what ``torch.load`` returned) has the released DPA checkpoint's key layout: a
    mapping of names to tensors with at least one ``pre_model.*`` / ``ori_model.*`` / ``adapter1.*`` /
    ``adapter2.*`` key (``module.`` prefix allowed). An incomplete one still counts, so that loading it
    names what is missing."""
    if not isinstance(obj, Mapping) or not obj:
        return False
    if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        return False
    tops = {k.removeprefix(DATA_PARALLEL_PREFIX).split(".", 1)[0] for k in obj}
    return bool(tops & set(DPA_TOP_LEVEL))


def load_released_dpa_models(
    visual: nn.Module, source: str | Path | Mapping[str, Tensor], *, check_activation: bool = True
) -> tuple[nn.Module, nn.Module, ReleasedDualPathAdapter]:
    """The three parts of the released few-shot DPA: ``(depth_encoder, clip_encoder, adapter)``.

    ``visual`` is CLIP's visual tower (open_clip ``CLIP.visual``, ViT-B/32 with QuickGELU for the released
    weights); it is left untouched: the encoders are copies of it loaded from ``pre_model.*`` (E_d) and
    ``ori_model.*`` (CLIP's encoder as saved), in eval mode. ``adapter``: :func:`load_released_dpa`. Any
    missing, unexpected or mis-shaped key raises :class:`ReleasedCheckpointError` naming it.
    """
    import copy

    state = read_released_checkpoint(source)
    _check_top_level(state, "released DPA checkpoint")
    depth = load_released_depth_encoder(copy.deepcopy(visual), state, prefix=DPA_DEPTH_PREFIX,
                                        check_activation=check_activation)  # fmt: skip
    clip = load_released_depth_encoder(copy.deepcopy(visual), state, prefix=DPA_CLIP_PREFIX,
                                       check_activation=check_activation)  # fmt: skip
    adapter = load_released_dpa(state)
    return depth.eval(), clip.eval(), adapter
