"""Launch a stage module with one process, or with torchrun when ``launch.nproc_per_node`` asks for more.

``dvc.yaml`` runs the distributed stages (``render``, ``pretrain``) through this, so ``dvc repro`` uses
every GPU of the machine and DVC's lock records the run. The process count is read here, not declared as
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("launch: usage: python -m pipeline.launch <module> [args...]", file=sys.stderr)
        return 2
    try:
        nproc = load_params().launch.nproc_per_node
    except ParamsError as e:
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
