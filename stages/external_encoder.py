"""Stage ``external_encoder@<name>``: the depth encoder of a released CLIP2Point checkpoint, as a DAG input.

``python -m stages.external_encoder <name>``

Reads the checkpoint ``params.pretrain.external.<name>`` (the released ``best_eval.pth``, E_d under
``point_model.*``, or the few-shot ``best_test.pth``, E_d under ``pre_model.*``), loads its depth encoder into a
copy of the run's CLIP visual tower with :func:`clip2point.models.released.load_released_depth_encoder` (every
key and shape checked, QuickGELU required) and writes it to :func:`pipeline.paths.external_dir` in the layout of a
pre-training run (:mod:`pipeline.models`). The checkpoint is this stage's DVC dependency, so a changed file
reruns it and, when the encoder changed, ``features@<ds>`` and what follows; the features stage encodes with
it as ``released-<name>``, which gets its own zero-shot, few-shot and supervised rows.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from pathlib import Path

from clip2point.models.released import load_released_depth_encoder
from pipeline import models, paths
from pipeline.artifacts import atomic_dir, write_json, write_torch
from pipeline.keys import EncoderKey
from pipeline.params import load_params
from pipeline.stage import StageError, one_argument_main


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - a content fingerprint, as DVC's
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(name: str) -> None:
    params = load_params()
    external = params.pretrain.external
    if name not in external:
        raise StageError(f"no released checkpoint named '{name}' in pretrain.external (has: {sorted(external)})")
    path = Path(external[name])
    models.check_external_checkpoint(name, path, params.clip.model)
    clip_model, _ = models.load_clip("cpu")
    enc = load_released_depth_encoder(copy.deepcopy(clip_model.visual), path)
    with atomic_dir(paths.external_dir(name)) as tmp:
        write_torch(enc.state_dict(), tmp / models.ENCODER_WEIGHTS)
        write_json(tmp / models.ENCODER_META, {"key": str(EncoderKey.released(name)), "checkpoint": str(path),
                                               "md5": _md5(path), "clip_model": params.clip.model})
    print(f"external_encoder: wrote {paths.external_dir(name)} from {path}")


def main(argv: list[str] | None = None) -> int:
    return one_argument_main("external_encoder", __doc__, argv, run, arg="name",
                             help="a released checkpoint's name (params.yaml pretrain.external)")


if __name__ == "__main__":
    sys.exit(main())
