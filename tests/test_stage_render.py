"""Stages ``render`` and ``contact_sheet`` end to end on a tiny parquet + mesh fixture."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import trimesh
import yaml

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
pytest.importorskip("pyrender")

from clip2point import shards  # noqa: E402
from clip2point.render.depth import DepthConfig, render_depth  # noqa: E402
from clip2point.render.rgb import foreground_mask  # noqa: E402
from clip2point.report import THUMB  # noqa: E402
from clip2point.schema import points_to_table  # noqa: E402
from pipeline import params as params_mod  # noqa: E402
from pipeline import paths, render_job  # noqa: E402
from pipeline.stage import StageError  # noqa: E402
from stages import contact_sheet as contact_stage  # noqa: E402
from stages import render as render_stage  # noqa: E402

IMAGE = 32


def _shape(kind: int) -> trimesh.Trimesh:
    if kind == 0:
        m = trimesh.creation.box(extents=(1.0, 0.4, 0.6))
    elif kind == 1:
        m = trimesh.creation.cylinder(radius=0.3, height=1.2, sections=16)
    else:
        m = trimesh.creation.cone(radius=0.5, height=1.0, sections=16)
    m.visual.face_colors = [[200, 40, 40, 255], [40, 160, 40, 255], [40, 40, 200, 255]][kind]
    return m


def _write_off(mesh: trimesh.Trimesh, path) -> None:
    lines = ["OFF", f"{len(mesh.vertices)} {len(mesh.faces)} 0"]
    lines += [" ".join(f"{c:.6f}" for c in v) for v in mesh.vertices]
    lines += ["3 " + " ".join(str(int(i)) for i in f) for f in mesh.faces]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("CLIP2POINT_DATA", str(data))
    raw = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "params.yaml")))
    raw["data"] = {
        "pretrain": {"name": "toy", "kind": "synth", "root": str(tmp_path / "meshes"), "up_axis": "z"},
        "benchmarks": [{"name": "scan", "kind": "scanobjectnn", "root": str(tmp_path),
                        "variant": "OBJ_ONLY"}],
    }
    raw["render"].update({"image_size": IMAGE, "workers": 1, "samples_per_shard": 2, "views": "pretrain10",
                          "contact_sheet_per_class": 1})
    raw["depth"].update({"image_size": IMAGE})
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(pfile))
    (tmp_path / "meshes").mkdir()
    ids, splits, labels, names, sources, clouds = [], [], [], [], [], []
    rot_zup = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # y-up → z-up, the inverse of sampling.to_y_up
    for i in range(7):
        kind = i % 3
        mesh = _shape(kind)
        mesh.apply_translation((0.3 * i, -0.1, 0.2))
        mesh.vertices = np.asarray(mesh.vertices) @ rot_zup.T  # store z-up, like ModelNet
        src = tmp_path / "meshes" / (f"s{i}.off" if i % 2 else f"s{i}.obj")
        if i % 2:
            _write_off(mesh, src)
        else:
            mesh.export(src)
        # the sample stage's output: y-up, centred, unit sphere
        pts = np.asarray(mesh.sample(1024, seed=i)) @ rot_zup  # back to y-up
        pts = pts - pts.mean(0)
        pts = pts / np.linalg.norm(pts, axis=1).max()
        ids.append(f"shape_{i}")
        splits.append("train" if i < 5 else "test")
        labels.append(kind)
        names.append(["box", "cylinder", "cone"][kind])
        sources.append(str(src))
        clouds.append(pts.astype(np.float32))
    paths.points_table("toy").parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(points_to_table(ids, splits, np.array(labels), names, sources, np.stack(clouds)),
                   paths.points_table("toy"))
    pq.write_table(points_to_table(ids[:3], splits[:3], np.array(labels[:3]), names[:3],
                                   [f"{tmp_path}/x.h5:{i}" for i in range(3)], np.stack(clouds[:3])),
                   paths.points_table("scan"))
    return tmp_path


@pytest.mark.slow
def test_render_stage_end_to_end(workspace):
    assert render_stage.main(["toy", "--no-progress"]) == 0
    m = shards.read_manifest(paths.manifest("toy"))
    assert m["has_rgb"] and m["class_names"] == ["box", "cylinder", "cone"]
    assert m["splits"]["train"]["count"] == 5 and m["splits"]["test"]["count"] == 2
    assert [s["count"] for s in m["splits"]["train"]["shards"]] == [2, 2, 1]  # bounded shards
    train = shards.load_split(m, "train")
    assert train["rgb"].shape == (5, 10, IMAGE, IMAGE, 3) and train["skipped"] == 0
    assert train["ids"] == [f"shape_{i}" for i in range(5)]
    # RGB and depth of the same shape look at it from the same direction, same framing
    depth = render_depth(torch.from_numpy(train["points"]), "pretrain10", 1.0, DepthConfig(IMAGE, 2)).numpy()
    for k in range(5):
        for v in (0, 1, 4, 8):
            a, b = foreground_mask(train["rgb"][k, v]), depth[k, v] < 1
            assert (a & b).sum() / (a | b).sum() >= 0.6, (k, v)

    assert contact_stage.main([]) == 0
    from PIL import Image

    sheet = Image.open(paths.contact_sheet())
    assert sheet.height == 3 * THUMB  # one shape per class
    assert sheet.width > 20 * THUMB  # 10 RGB + 10 depth thumbnails


def test_point_only_dataset_has_no_rgb(workspace):
    assert render_stage.main(["scan", "--no-progress"]) == 0
    m = shards.read_manifest(paths.manifest("scan"))
    assert not m["has_rgb"]
    data = shards.load_split(m, "train")
    assert data["rgb"] is None and len(data["ids"]) == 3


def test_unknown_dataset_and_missing_table(workspace, capsys):
    assert render_stage.main(["nope"]) == 1
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    paths.points_table("toy").unlink()
    assert render_stage.main(["toy"]) == 1
    assert "points table not found" in capsys.readouterr().err
    assert not paths.shards_dir("toy").exists()  # nothing half-written


def test_ranks_write_own_shards_and_rank0_merges(workspace, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "t1")
    monkeypatch.setattr(render_job, "CHUNK", 2)
    p = yaml.safe_load(params_mod.params_file().read_text())
    p["render"]["workers"] = 0  # inline rendering keeps this test quick
    params_mod.params_file().write_text(yaml.safe_dump(p))
    monkeypatch.setenv("RANK", "1")
    assert render_stage.main(["toy", "--no-progress"]) == 0
    assert not paths.shards_dir("toy").exists()  # only rank 0 publishes
    monkeypatch.setenv("RANK", "0")
    assert render_stage.main(["toy", "--no-progress"]) == 0
    m = shards.read_manifest(paths.manifest("toy"))
    urls = [s["url"] for s in m["splits"]["train"]["shards"]]
    assert any("-r000-" in u for u in urls) and any("-r001-" in u for u in urls)
    ids = shards.load_split(m, "train")["ids"] + shards.load_split(m, "test")["ids"]
    assert sorted(ids) == sorted(f"shape_{i}" for i in range(7))  # every shape once, across ranks
    assert not list(paths.shards_dir("toy").glob("part-*.json"))


RECYCLE_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
import _pool_fakes
from pipeline import render_job
render_job.CHUNK, render_job.MAX_TASKS_PER_CHILD = 1, 2
src = [f"s{{i}}" for i in range(14)]
out = list(render_job.iter_rgb(list(range(14)), src, np.zeros((14, 4, 3), np.float32), {{}}, 2,
                               fn=_pool_fakes.pid_per_source))
assert [o[0].decode() for o in out] == src, out
print(len({{o[1] for o in out}}))
"""


def test_workers_are_recycled_without_a_hang():
    """14 one-shape tasks, 2 workers, 2 tasks per worker: 4 pool generations, results in order.

    Regression: with the executor's own ``max_tasks_per_child`` the pool hung (or broke) once a worker
    exited at its limit with tasks queued (python/cpython#115634), which killed the 800-shape benchmark.
    """
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).parent)
    proc = subprocess.run([sys.executable, "-c", RECYCLE_SCRIPT.format(tests=tests)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) >= 5  # workers were replaced: more pids than the 2 of one pool


def test_dead_worker_fails_naming_its_shapes(monkeypatch):
    import _pool_fakes

    monkeypatch.setattr(render_job, "CHUNK", 1)
    src = ["a", "b", "bad", "c"]
    it = render_job.iter_rgb(list(range(4)), src, np.zeros((4, 4, 3), np.float32), {}, workers=1,
                             fn=_pool_fakes.die_on_bad)
    with pytest.raises(StageError, match=r"worker process died while rendering bad\b.*lower render.workers"):
        list(it)


def test_pool_column_becomes_a_shard_member(workspace):
    """sample.pool_points > 0: the points table's pool travels into each sample as ``pool.npy``."""
    from clip2point.schema import table_points

    t = pq.read_table(paths.points_table("scan"))
    pools = [np.full((50 + i, 3), i, np.float32) for i in range(t.num_rows)]
    pq.write_table(points_to_table(t.column("id").to_pylist(), t.column("split").to_pylist(),
                                   t.column("label").to_numpy(), t.column("label_name").to_pylist(),
                                   t.column("source").to_pylist(), table_points(t), pool=pools),
                   paths.points_table("scan"))
    assert render_stage.main(["scan", "--no-progress"]) == 0
    m = shards.read_manifest(paths.manifest("scan"))
    assert m["pool_points"] == 52
    rows = list(shards.iter_shards(shards.manifest_urls(m, "train")))
    for r in rows:
        i = int(r["id"].split("_")[1])
        np.testing.assert_array_equal(r["pool"], pools[i])
    assert shards.index_split(m, "train").has("pool.npy")
