"""Counting what a training step asks of the device: kernel-launching ops and host synchronisations.

A :class:`DispatchCounter` (a ``TorchDispatchMode``) sees every aten op the step dispatches, on any device,
so the counts measured on a CPU are the counts a GPU step would launch:

* **ops**: dispatched aten ops that are not views or pure metadata (each launches at least one kernel on
  a GPU; a multi-tensor ``_foreach_*`` op counts once), per phase (:attr:`DispatchCounter.phase`);
* **host syncs**: ops whose result the host must wait for — ``_local_scalar_dense`` (``.item()``,
  ``float()``, ``bool()`` of a tensor) and ops with a data-dependent output shape (``nonzero``,
  ``masked_select``, ``unique``…). A tensor that lives on the host by design is not a sync: on a CUDA
  run the device tells them apart; on a CPU run the one such scalar the step reads is timm's optimizer
  step count (``timm.optim`` keeps it on the CPU on every device), recognised by its call site.

Used by the tests (no host sync between logging steps), ``benchmarks/bench_pretrain.py`` and
``benchmarks/gpu_smoke.py``.
"""

from __future__ import annotations

import sys
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique", "_unique2",
                      "unique_consecutive", "unique_dim", "is_nonzero", "equal"})
#: ops that only relabel memory (no kernel)
METADATA_OPS = frozenset({"detach", "alias", "lift_fresh", "_reshape_alias", "set_", "empty_like_meta"})


def _host_side_by_design(func_name: str, args: tuple) -> bool:
    t = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if t is None:
        return False
    if t.device.type != "cpu":
        return False
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return True  # a CUDA run: a CPU tensor is a host tensor, reading it is no device sync
    f = sys._getframe(0)
    while f is not None:  # CPU run: timm's step counter (a CPU tensor on every device)
        if "timm" in f.f_code.co_filename and f.f_code.co_name == "_get_value":
            return True
        f = f.f_back
    return False


def _device_to_host(name: str, args: tuple, kwargs: dict | None) -> bool:
    """A copy from a device tensor into host memory (``.cpu()``, ``.to("cpu")``): the host waits for it."""
    if name not in ("_to_copy", "copy_") or not args or not isinstance(args[0], torch.Tensor):
        return False
    if name == "_to_copy":
        dst = (kwargs or {}).get("device")
        return args[0].device.type != "cpu" and dst is not None and torch.device(dst).type == "cpu"
    src = args[1] if len(args) > 1 and isinstance(args[1], torch.Tensor) else None
    return src is not None and src.device.type != "cpu" and args[0].device.type == "cpu"


class DispatchCounter(TorchDispatchMode):
    """Counts ops per :attr:`phase` and host syncs per phase while active (``with DispatchCounter() as c``)."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = "other"
        self.ops: Counter[str] = Counter()
        self.syncs: Counter[str] = Counter()
        self.sync_sites: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        name = func.__name__.split(".")[0]
        if (name in SYNC_OPS and not _host_side_by_design(name, args)) or _device_to_host(name, args, kwargs):
            self.syncs[self.phase] += 1
            self.sync_sites[_caller()] += 1
        if not (func.is_view or name in METADATA_OPS):
            self.ops[self.phase] += 1
        return func(*args, **(kwargs or {}))


def _caller() -> str:
    """file:line of the nearest frame outside torch and this module (where a sync was asked for)."""
    f = sys._getframe(2)
    while f is not None:
        fn = f.f_code.co_filename
        if "/torch/" not in fn and not fn.endswith("profiling.py"):
            return f"{fn.rsplit('/', 2)[-2]}/{fn.rsplit('/', 1)[-1]}:{f.f_lineno}"
        f = f.f_back
    return "?"
