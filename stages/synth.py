"""Stage ``synth``: generate the procedural shape benchmark (the embedded ShapeNet/ModelNet stand-in, §5.1).

``python -m stages.synth`` reads ``params.synth`` and writes two disjoint pools in ModelNet's folder layout,
each replaced atomically as a whole:

* ``pipeline.paths.synth_root("pretrain")``: splits ``train`` / ``val`` (the role ShapeNet plays);
* ``pipeline.paths.synth_root("benchmark")``: splits ``train`` / ``test`` (the role ModelNet plays);

as ``<root>/<class>/<split>/<class>_<NNNN>.<mesh_format>`` plus ``<root>/classes.txt`` (label order). Meshes
are y-up with per-face colours (OFF face lines ``3 a b c r g b a``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from clip2point.io import write_off
from clip2point.synth import generate_pool
from pipeline.artifacts import atomic_dir
from pipeline.params import load_params
from pipeline.paths import synth_root
from pipeline.stage import StageError, run_main

MESH_FORMATS = ("off", "ply")  # both keep per-face colours (read back by clip2point.io)

#: pool name → stream id mixed into the seed, so the two pools never share a shape.
POOL_STREAMS = {"pretrain": 0, "benchmark": 1}


def write_pool(
    root: Path, classes: list[str], per_split: dict[str, int], seed: tuple[int, int], mesh_format: str, desc: str
) -> int:
    """Generate one pool into ``root`` (an existing, empty directory). Returns the number of meshes."""
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    total = len(classes) * sum(per_split.values())
    n = 0
    for split, name, index, mesh in tqdm(generate_pool(classes, per_split, seed), total=total, desc=desc):
        out = root / name / split
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}_{index:04d}.{mesh_format}"
        if mesh_format == "off":
            write_off(mesh, path)
        else:
            mesh.export(path)
        n += 1
    return n


def run() -> None:
    p = load_params().synth
    if p.mesh_format not in MESH_FORMATS:
        raise StageError(f"unknown mesh_format {p.mesh_format!r} (expected one of {MESH_FORMATS})")
    if not p.classes:
        raise StageError("params synth.classes is empty")
    pools = {
        "pretrain": {"train": p.pretrain_train_per_class, "val": p.pretrain_val_per_class},
        "benchmark": {"train": p.benchmark_train_per_class, "test": p.benchmark_test_per_class},
    }
    for pool, per_split in pools.items():
        with atomic_dir(synth_root(pool)) as tmp:
            n = write_pool(tmp, list(p.classes), per_split, (p.seed, POOL_STREAMS[pool]), p.mesh_format, pool)
        print(f"synth: {pool}: {n} meshes, {len(p.classes)} classes -> {synth_root(pool)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.synth", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    return run_main("synth", run, code=2)  # ValueError: an unknown class name


if __name__ == "__main__":
    sys.exit(main())
