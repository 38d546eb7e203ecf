"""Typed names of the run's encoders and adapter-grid rows, written and parsed in one place.

* :class:`EncoderKey`: ``clip`` (the run's CLIP visual encoder, "without pre-training") or
  ``<variant>-seed<seed>`` (a pre-trained depth encoder E_d, §3.2); the name of a feature-store encoder,
  of a pre-training run's folder and metrics key, and of an adapter path.
* :class:`RowKey`: ``<adapter>@<path>+<path>``, a row of the adapter grid (Tables 2 and 4), e.g.
  ``dual_path@clip+intra_cross`` (the Dual-Path Adapter, Eq. 16–19, on CLIP and the intra + cross encoder).
* ``VARIANTS``: the pre-training variants, the library's
  (:data:`clip2point.train.pretrain.VARIANTS`, the names of its objectives registry): ``intra_cross``
  (CLIP2Point, Eq. 11), ``cross_only`` (§5.6 ablation, Eq. 10), ``rgb_control`` (equal-compute RGB-only
  control). Resolved on first use, so that importing this module (and :mod:`pipeline.paths`) stays cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CLIP = "clip"  # the CLIP visual encoder's key (it has no pre-training variant nor seed)


def __getattr__(name: str) -> Any:
    """``VARIANTS``: the library's, imported on first use (the training module imports torch and open_clip)."""
    if name == "VARIANTS":
        from clip2point.train.pretrain import VARIANTS

        return VARIANTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ENCODER = re.compile(r"^(?P<variant>.+)-seed(?P<seed>-?\d+)$")


@dataclass(frozen=True, order=True)
class EncoderKey:
    """``EncoderKey("clip")`` or ``EncoderKey(variant, seed)``; ``str()`` is the on-disk name."""

    variant: str
    seed: int | None = None

    def __post_init__(self) -> None:
        if (self.variant == CLIP) != (self.seed is None):
            raise ValueError(f"encoder key: 'clip' takes no seed, a pre-training variant takes one; "
                             f"got variant {self.variant!r}, seed {self.seed!r}")

    def __str__(self) -> str:
        return CLIP if self.seed is None else f"{self.variant}-seed{self.seed}"

    @property
    def is_clip(self) -> bool:
        return self.seed is None

    @classmethod
    def parse(cls, text: str) -> EncoderKey:
        """``"clip"`` or ``"<variant>-seed<seed>"`` → the key (``ValueError`` for anything else)."""
        if text == CLIP:
            return cls(CLIP)
        m = _ENCODER.match(text)
        if m is None:
            raise ValueError(f"not an encoder key: {text!r} (expected 'clip' or '<variant>-seed<N>')")
        return cls(m["variant"], int(m["seed"]))

    def source(self) -> dict[str, str | int]:
        """How to load this encoder: ``{"variant": "clip"}`` or ``{"variant": v, "seed": s}``
        (``pipeline.models.load_depth_encoder(v, s)``)."""
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
DPA = RowKey("dual_path", (CLIP, "intra_cross"))
