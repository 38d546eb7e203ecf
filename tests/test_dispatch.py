"""The data stages' bytes do not depend on the CPU's SIMD dispatch (issue 18, item 2).

Each test runs the same work in two subprocesses, under the default dispatch and under the narrowed one of
``tests.dispatch_support.NARROW`` (numpy without AVX2/AVX-512 kernels, torch's ATen at its baseline), and
compares md5s. The library test hashes the full-precision intermediates the stages write from (float64
mesh vertices, points, camera frames, a mesh fitted to its points); the stage test hashes every file the
stages ``synth``, ``sample`` and ``render`` write on a tiny pool.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.dispatch_support import NARROW, REPO, run_stages, stage_env

#: Library-level probe: printed as JSON {name: md5}; every class of the procedural benchmark, 6 shapes each.
PROBE = r"""
import hashlib, json
import numpy as np
from clip2point.render.rgb import align_mesh_to_points
from clip2point.render.views import camera_frames, get_views
from clip2point.sampling import mesh_to_points, points_to_points
from clip2point.synth import CLASSES, generate_pool

def md5(a):
    return hashlib.md5(np.ascontiguousarray(a).tobytes()).hexdigest()

out = {}
for split, name, index, mesh in generate_pool(sorted(CLASSES), {"train": 6}, (0, 0)):
    key = f"{name}_{index}"
    out[key + ".vertices"] = md5(np.asarray(mesh.vertices, dtype=np.float64))
    out[key + ".colours"] = md5(np.asarray(mesh.visual.face_colors))
    pts = mesh_to_points(mesh, 256, 4000, index)
    out[key + ".points"] = md5(pts)
    out[key + ".points_of_points"] = md5(points_to_points(np.asarray(mesh.vertices) * 3.0 + 1.0, 64, index,
                                                           allow_fewer=True))
    out[key + ".aligned"] = md5(np.asarray(align_mesh_to_points(mesh, pts)[0].vertices, dtype=np.float32))
for views in ("pretrain10", "zeroshot6"):
    v = get_views(views)
    out["frames." + views] = md5(camera_frames(v.elev, v.azim))
print(json.dumps(out))
"""


def _probe(narrow: bool) -> dict[str, str]:
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=stage_env(narrow), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _differing(a: dict[str, str], b: dict[str, str]) -> list[str]:
    assert a.keys() == b.keys()
    return sorted(k for k in a if a[k] != b[k])


def test_narrowed_dispatch_is_really_narrowed():
    """The comparison means something only if the narrowed run really loses the wide kernels."""
    code = ("import numpy._core._multiarray_umath as m, torch; "
            "print(m.__cpu_features__['X86_V3'], m.__cpu_features__['X86_V4'], "
            "torch.backends.cpu.get_cpu_capability())")
    narrow = subprocess.run([sys.executable, "-c", code], env=stage_env(True), capture_output=True, text=True)
    assert narrow.returncode == 0, narrow.stderr[-1000:]
    assert narrow.stdout.split() == ["False", "False", "DEFAULT"]
    assert NARROW["ATEN_CPU_CAPABILITY"] == "default"


def test_library_outputs_do_not_depend_on_dispatch():
    differing = _differing(_probe(False), _probe(True))
    assert not differing, f"{len(differing)} outputs differ between dispatch levels, e.g. {differing[:8]}"


@pytest.mark.slow
def test_stage_artifacts_do_not_depend_on_dispatch(tmp_path):
    wide = run_stages(tmp_path / "wide", narrow=False)
    narrow = run_stages(tmp_path / "narrow", narrow=True)
    assert any(k.startswith("shards/") for k in wide) and any(k.startswith("points/") for k in wide)
    differing = _differing(wide, narrow)
    assert not differing, f"{len(differing)} files differ between dispatch levels, e.g. {differing[:8]}"
