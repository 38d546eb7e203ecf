"""Typed names of the run's encoders and adapter-grid rows, written and parsed in one place.

* :class:`EncoderKey`: ``clip`` (the run's CLIP visual encoder, "without pre-training"),
  ``<variant>-seed<seed>`` (a pre-trained depth encoder E_d, §3.2) or ``released-<name>`` (a released
  CLIP2Point checkpoint given as ``pretrain.external.<name>``); the name of a feature-store encoder,
  of a pre-training run's folder and metrics key, and of an adapter path.
* :class:`RowKey`: ``<adapter>@<path>+<path>``, a row of the adapter grid (Tables 2 and 4), e.g.
  ``dual_path@clip+intra_cross`` (the Dual-Path Adapter, Eq. 16–19, on CLIP and the intra + cross encoder).
* ``VARIANTS``: the pre-training variants, the library's (:data:`clip2point.train.objective_info.VARIANTS`,
  the names of its torch-free objectives registry): ``intra_cross`` (CLIP2Point, Eq. 11), ``cross_only``
  (§5.6 ablation, Eq. 10), ``rgb_control`` (equal-compute RGB-only control).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from clip2point.train.objective_info import METHOD, VARIANTS

__all__ = ["CLIP", "CLIP_ROW", "DPA", "EXTERNAL_NAME", "RELEASED", "VARIANTS", "EncoderKey", "RowKey", "released_keys"]

CLIP = "clip"  # the CLIP visual encoder's key (it has no pre-training variant nor seed)
CLIP_ROW = "without_pretraining"  # its row of the zero-shot table (Table 1's "w/o pre-training")
RELEASED = "released"  # the variant of a released checkpoint's encoder (``pretrain.external``): a name, no seed
#: the name of a released checkpoint (``pretrain.external`` key): a DVC stage key and a folder name
EXTERNAL_NAME = re.compile(r"[A-Za-z0-9_]+")


_ENCODER = re.compile(r"^(?P<variant>.+)-seed(?P<seed>-?\d+)$")
_RELEASED = re.compile(rf"^{RELEASED}-(?P<name>{EXTERNAL_NAME.pattern})$")


@dataclass(frozen=True, order=True)
class EncoderKey:
    """``EncoderKey("clip")``, ``EncoderKey(variant, seed)`` or ``EncoderKey("released", name=name)``;
    ``str()`` is the on-disk name (``clip``, ``<variant>-seed<seed>``, ``released-<name>``)."""

    variant: str
    seed: int | None = None
    name: str | None = None  # a released checkpoint's name (``pretrain.external``); only with variant "released"

    def __post_init__(self) -> None:
        if self.variant == RELEASED:
            if self.seed is not None or self.name is None or not EXTERNAL_NAME.fullmatch(self.name):
                raise ValueError(f"encoder key: 'released' takes a name of letters, digits and underscores and "
                                 f"no seed; got seed {self.seed!r}, name {self.name!r}")
        elif self.name is not None:
            raise ValueError(f"encoder key: only 'released' takes a name; got variant {self.variant!r}")
        elif (self.variant == CLIP) != (self.seed is None):
            raise ValueError(f"encoder key: 'clip' takes no seed, a pre-training variant takes one; "
                             f"got variant {self.variant!r}, seed {self.seed!r}")

    def __str__(self) -> str:
        if self.name is not None:
            return f"{RELEASED}-{self.name}"
        return CLIP if self.seed is None else f"{self.variant}-seed{self.seed}"

    @property
    def is_clip(self) -> bool:
        return self.variant == CLIP

    @property
    def is_released(self) -> bool:
        return self.variant == RELEASED

    @classmethod
    def released(cls, name: str) -> EncoderKey:
        """The key of the released checkpoint ``pretrain.external.<name>``."""
        return cls(RELEASED, name=name)

    @classmethod
    def parse(cls, text: str) -> EncoderKey:
        """``"clip"``, ``"released-<name>"`` or ``"<variant>-seed<seed>"`` → the key (``ValueError`` for
        anything else)."""
        if text == CLIP:
            return cls(CLIP)
        m = _RELEASED.match(text)
        if m is not None:
            return cls.released(m["name"])
        m = _ENCODER.match(text)
        if m is None or m["variant"] == RELEASED:
            raise ValueError(f"not an encoder key: {text!r} (expected 'clip', 'released-<name>' or "
                             f"'<variant>-seed<N>')")
        return cls(m["variant"], int(m["seed"]))

    def source(self) -> dict[str, str | int]:
        """How to load this encoder: ``{"variant": "clip"}``, ``{"variant": v, "seed": s}``
        (``pipeline.models.load_depth_encoder(v, s)``) or ``{"variant": "released", "name": n}``
        (``pipeline.models.load_external_encoder(n)``)."""
        if self.name is not None:
            return {"variant": RELEASED, "name": self.name}
        return {"variant": self.variant} if self.seed is None else {"variant": self.variant, "seed": self.seed}


@dataclass(frozen=True)
class RowKey:
    """An adapter-grid row: a registered adapter and the encoder variant of each feature path."""

    adapter: str
    paths: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.adapter}@{'+'.join(self.paths)}"

    @classmethod
    def parse(cls, text: str) -> RowKey:
        adapter, sep, paths = text.partition("@")
        if not sep or not adapter or not paths:
            raise ValueError(f"not a row key: {text!r} (expected '<adapter>@<path>[+<path>]')")
        return cls(adapter, tuple(paths.split("+")))


#: the Dual-Path Adapter on CLIP and the CLIP2Point encoder: the paper's main model (Table 4)
DPA = RowKey("dual_path", (CLIP, METHOD))


def released_keys(encoders: Iterable[str]) -> list[EncoderKey]:
    """The released checkpoints' encoder keys (``released-<name>``) among ``encoders``, in their order; names
    that are not encoder keys are skipped."""
    out: list[EncoderKey] = []
    for enc in encoders:
        try:
            key = EncoderKey.parse(enc)
        except ValueError:
            continue
        if key.is_released:
            out.append(key)
    return out
