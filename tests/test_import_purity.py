"""Importing the library writes no file and sets no environment variable (issue 13)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import os, pkgutil, importlib, tempfile, json, sys
import torch, open_clip, trimesh, pyarrow  # third-party import side effects (open_clip sets TOKENIZERS_PARALLELISM)
before_env = dict(os.environ)
tmp = tempfile.gettempdir()
before_tmp = set(os.listdir(tmp))
import clip2point
names = [m.name for m in pkgutil.walk_packages(clip2point.__path__, "clip2point.")]
for n in names:
    importlib.import_module(n)
changed = sorted(k for k in set(os.environ) | set(before_env) if os.environ.get(k) != before_env.get(k))
new_tmp = sorted(set(os.listdir(tmp)) - before_tmp)
print(json.dumps({"modules": len(names), "env": changed, "tmp": new_tmp}))
"""


@pytest.mark.slow
def test_importing_every_library_module_changes_no_env_and_writes_no_temp_file(tmp_path):
    import json
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["modules"] >= 20
    assert res["env"] == [] and res["tmp"] == []
