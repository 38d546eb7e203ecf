"""Run the data stages (synth, sample, render) on a tiny pool under a chosen SIMD dispatch and hash every output.

Used by ``tests/test_dispatch.py`` (two subprocesses, default vs narrowed dispatch) and runnable by hand:

    python tests/dispatch_support.py WORKDIR [--narrow]

writes ``WORKDIR/params.yaml`` (a tiny copy of the embedded default: every synth class, one shape per split),
runs ``stages.synth``, ``stages.sample`` and ``stages.render`` for both pools in ``WORKDIR`` (each stage a
subprocess with the dispatch variables of :data:`NARROW` when ``--narrow``) and prints one JSON object
``{relative path: md5}`` of every file under ``WORKDIR/data``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

#: The narrowed dispatch: numpy without its AVX2/AVX-512 kernels (names this numpy accepts; an unknown name
#: makes numpy refuse to import), torch's ATen at its baseline kernels, and numpy's OpenBLAS on its SSE-era
#: Nehalem kernels (BLAS picks kernels by CPU too; ``OPENBLAS_VERBOSE=2`` prints the one in use).
NARROW = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "ATEN_CPU_CAPABILITY": "default",
    "OPENBLAS_CORETYPE": "Nehalem",
}

STAGES = (
    ("stages.synth",),
    ("stages.sample", "synth_pretrain"),
    ("stages.sample", "synth_benchmark"),
    ("stages.render", "synth_pretrain", "--no-progress"),
    ("stages.render", "synth_benchmark", "--no-progress"),
)


def tiny_params(per_split: int = 1) -> dict:
    """The embedded default's params with every class but ``per_split`` shapes per split and one worker."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    synth = params["synth"]
    for key in ("pretrain_train_per_class", "pretrain_val_per_class", "benchmark_train_per_class",
                "benchmark_test_per_class"):
        synth[key] = per_split
    params["sample"]["workers"] = 1
    params["render"]["workers"] = 1
    return params


def stage_env(narrow: bool) -> dict[str, str]:
    """The environment of one stage run: this checkout first on PYTHONPATH, the dispatch variables set or unset."""
    env = {k: v for k, v in os.environ.items() if k not in NARROW and k not in ("CLIP2POINT_DATA",
                                                                               "CLIP2POINT_PARAMS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("PYOPENGL_PLATFORM", "osmesa")
    if narrow:
        env.update(NARROW)
    return env


def hash_tree(root: Path) -> dict[str, str]:
    """md5 of every file under ``root``, by path relative to it."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_stages(workdir: Path, narrow: bool, per_split: int = 1) -> dict[str, str]:
    """Run :data:`STAGES` in ``workdir`` (created) and return :func:`hash_tree` of its ``data`` folder."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params(per_split), sort_keys=False))
    env = stage_env(narrow)
    for stage in STAGES:
        proc = subprocess.run([sys.executable, "-m", *stage], cwd=workdir, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(stage)} failed (rc {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return hash_tree(workdir / "data")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--narrow", action="store_true", help="run under the narrowed dispatch (NARROW)")
    ap.add_argument("--per-split", type=int, default=1)
    args = ap.parse_args(argv)
    print(json.dumps(run_stages(args.workdir, args.narrow, args.per_split), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
