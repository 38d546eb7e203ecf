"""Numeric precision of the encoders: one switch, ``fp32 | tf32 | bf16`` (``PretrainConfig.precision``).

* ``fp32``: plain float32 everywhere (the released code's choice: ``clip.load(..., device='cpu')`` casts the
  model to fp32).
* ``tf32``: float32 tensors, but matrix products and convolutions on CUDA run on the tensor cores in TF32
  (10-bit mantissa inputs, fp32 accumulation): ``torch.backends.cuda.matmul.allow_tf32`` and
  ``torch.backends.cudnn.allow_tf32``. Set only on CUDA: on a CPU ``tf32`` runs exactly as ``fp32``.
* ``bf16``: ``torch.autocast`` with bfloat16 around the encoders (on CUDA and on CPU alike: what is asked
  is what runs); weights and optimizer state stay fp32.

Whatever the setting, the contrastive losses and Eq. 11's σ compute in fp32 (:func:`full_precision`
disables autocast inside them: at τ = 0.07 a bf16 logit has an absolute error of up to ≈ 0.06), and the
depth renderer's geometry never runs under autocast.

:func:`encoder_precision` is the one context every caller wraps an encoder forward in (the training step,
the selection evaluation, the frozen-image-feature cache and the ``features`` stage).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from clip2point.configs import PRECISIONS  # noqa: F401 - the value set lives with the torch-free configs


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {' | '.join(PRECISIONS)}, got {precision!r}")
    return precision


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@contextlib.contextmanager
def encoder_precision(device: torch.device | str, precision: str) -> Iterator[None]:
    """Run the enclosed encoder work at ``precision`` on ``device`` (see the module docstring)."""
    dev = torch.device(device)
    check_precision(precision)
    with _tf32(precision == "tf32" and dev.type == "cuda"), torch.autocast(
            device_type=dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on ``x``'s device (for the losses: their matmuls then see the fp32 inputs they get)."""
    return torch.autocast(device_type=x.device.type, enabled=False)
