"""Launch a stage module with one process, or with torchrun when ``launch.nproc_per_node`` asks for more.

``dvc.yaml`` runs the distributed stages (``render``, ``pretrain``) through this, so ``dvc repro`` uses
every GPU of the machine and DVC's lock records the run. ``launch.nproc_per_node: auto`` (the default) is
one process per CUDA device, 1 without CUDA; an explicit count above the number of CUDA devices is refused
in one line before anything starts (on a machine without CUDA any count runs on CPU with gloo, as the
tests and the CPU rehearsal of DDP do). The process count is read here, not declared as
a stage parameter: results do not depend on it (the loss and the sample order are the same for any world
size), so changing it never reruns a stage. Multi-node runs stay the README's ``torchrun`` line.

Usage: ``python -m pipeline.launch <module> [args...]``
"""

from __future__ import annotations

import os
import shutil
import sys

from pipeline.params import ParamsError, load_params


def command(module: str, args: list[str], nproc: int) -> list[str]:
    """The argv that runs ``module`` with ``nproc`` processes on this node."""
    if nproc <= 1:
        return [sys.executable, "-m", module, *args]
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    head = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    return [*head, "--standalone", f"--nproc_per_node={nproc}", "-m", module, *args]


def cuda_device_count() -> int:
    """CUDA devices visible to this process, without initialising CUDA in it (the children do that)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_nproc(requested: int | str, n_cuda: int) -> int:
    """Processes to start for ``launch.nproc_per_node``: ``auto`` → the CUDA device count (1 without CUDA);
    an integer is checked against the CUDA devices when there are any (rank r uses device r)."""
    if requested == "auto":
        return max(1, n_cuda)
    n = int(requested)
    if n_cuda and n > n_cuda:
        raise ValueError(f"launch.nproc_per_node is {n} but this machine has {n_cuda} CUDA device"
                         f"{'s' if n_cuda != 1 else ''}: set it to 'auto' or at most {n_cuda}")
    return n


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("launch: usage: python -m pipeline.launch <module> [args...]", file=sys.stderr)
        return 2
    try:
        nproc = resolve_nproc(load_params().launch.nproc_per_node, cuda_device_count())
    except (ParamsError, ValueError) as e:
        print(f"launch: {e}", file=sys.stderr)
        return 1
    if "WORLD_SIZE" in os.environ:  # already under torchrun: never nest
        nproc = 1
    cmd = command(argv[0], argv[1:], nproc)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
