"""What the released-checkpoint tests share: seeded random weights and BatchNorm statistics for a module."""

from __future__ import annotations

import torch


def randomised(module: torch.nn.Module, seed: int, std: tuple[float, float] | None = None) -> torch.nn.Module:
    """Fill ``module`` in place from one seeded generator, in ``named_parameters()`` then ``named_buffers()``
    order: ``num_batches_tracked`` = 7, ``running_var`` uniform in [0.5, 1.5), every other floating tensor
    normal, scaled by ``std = (matrices' std, vectors' std)`` when given. Returns ``module``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.is_floating_point():
                noise = torch.randn(t.shape, generator=g)
                t.copy_(noise if std is None else noise * (std[0] if t.ndim > 1 else std[1]))
    return module
