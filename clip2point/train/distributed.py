"""torch.distributed helpers: init under torchrun, gradient-correct all-gather.

One code path serves one process and many: :func:`init_distributed` returns a :class:`DistInfo` with
``world == 1`` when not launched by torchrun. NCCL on CUDA, gloo on CPU.

Negatives across ranks: :func:`gather_with_grad` all-gathers the features of the global batch; the local
slice keeps its autograd path and, in backward, the gradient that every rank's loss sends to this rank's
slice is summed back (all-reduce of the gathered gradient, then the local slice). Each rank's loss is its
share of the global loss (local anchors, global negatives, divided by the global batch, see
:mod:`clip2point.losses`), so Σ_ranks loss_r is the single-process loss and Σ_ranks grad_r its gradient.
DDP averages gradients over ranks, so :func:`backward_scale` (= world) is applied to the loss before
``backward``: parameters then receive exactly the single-process gradient of the global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Initialise the process group when run under torchrun (``WORLD_SIZE`` > 1), else a 1-process info.

    Backend: NCCL when CUDA is used, gloo otherwise. ``device`` forces ``"cpu"`` or ``"cuda"``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if world <= 1:
        return DistInfo(device=torch.device("cuda" if use_cuda else "cpu"))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=dev)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0; backward sums the gathered gradient over ranks and returns the local slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # Equal local batches on every rank are a precondition, not checked here: a size all-gather would
        # cost a collective and a device→host read per call. The pre-training sampler guarantees it
        # (PretrainBatchSampler refuses a batch size that does not divide by the world size).
        world = dist.get_world_size()
        out = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(out, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor, info: DistInfo) -> tuple[torch.Tensor, int]:
    """``(global features (W·n, C), offset of this rank's rows)``; identity with offset 0 on one process."""
    if not info.enabled:
        return x, 0
    return _GatherWithGrad.apply(x), info.rank * x.shape[0]


def backward_scale(info: DistInfo) -> float:
    """Factor on each rank's loss share so that DDP's gradient *average* equals the global-batch gradient."""
    return float(info.world)


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of a (detached) tensor over ranks, e.g. each rank's loss share → the global loss."""
    if not info.enabled:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def shard_indices(n: int, info: DistInfo) -> slice:
    """This rank's contiguous slice of a global batch of ``n`` rows (n must divide by the world size)."""
    if n % info.world:
        raise ValueError(f"global batch {n} does not divide by world size {info.world}")
    per = n // info.world
    return slice(info.rank * per, (info.rank + 1) * per)
