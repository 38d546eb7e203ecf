"""Stage ``preflight``: checks that take seconds, before any stage that takes hours.

Validates ``params.yaml`` (every key, type and range), that the CLIP weights ``clip.pretrained`` names
can be loaded on this machine (without loading them), that every dataset root exists (a ``synth`` root
may be missing only when it is one the ``synth`` stage writes), and that every released checkpoint of
``pretrain.external`` is readable, has the released key layout and fits ``clip.model``. Every
expensive stage depends on its output, whose content is constant: a change of ``clip`` or ``data`` reruns
this check (seconds) and nothing else.

Usage: ``python -m stages.preflight``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clip2point.models.clip import check_clip_weights
from pipeline import paths
from pipeline.artifacts import write_json
from pipeline.models import check_external_checkpoint
from pipeline.params import load_params
from pipeline.stage import StageError, run_main

GENERATED_KINDS = ("synth",)  # roots written by the DAG itself (the ``synth`` stage)
SYNTH_POOLS = ("pretrain", "benchmark")  # the synth stage's outputs: pipeline.paths.synth_root(pool)


def _same_path(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same place (relative ones from the working folder, where dvc runs)."""
    return Path(a).absolute().resolve() == Path(b).absolute().resolve()


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m stages.preflight", description=__doc__.splitlines()[0]).parse_args(argv)

    def body() -> None:
        params = load_params()
        check_clip_weights(params.clip.model, params.clip.pretrained)
        for name, path in params.pretrain.external.items():
            check_external_checkpoint(name, path, params.clip.model)
        generated = [paths.synth_root(pool) for pool in SYNTH_POOLS]
        for ds in (params.data.pretrain, *params.data.benchmarks):
            if Path(ds.root).exists():
                continue
            if ds.kind not in GENERATED_KINDS:
                raise StageError(f"dataset '{ds.name}': root {ds.root} does not exist (params data)")
            if not any(_same_path(ds.root, g) for g in generated):  # DVC would say a raw "[Errno 2]" later
                raise StageError(
                    f"dataset '{ds.name}': root {ds.root} does not exist, and the synth stage does not write it "
                    f"(it writes {' and '.join(map(str, generated))}) (params data)"
                )
        write_json(paths.preflight_file(), {"ok": True})

    return run_main("preflight", body)


if __name__ == "__main__":
    sys.exit(main())
