"""End-to-end: the ``synth`` and ``sample`` stages on a tiny params file, in-process (``$CLIP2POINT_DATA``
and ``$CLIP2POINT_PARAMS`` pointed at the test's folders for each run)."""

from __future__ import annotations

import contextlib
import importlib
import io
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import trimesh
import yaml

from clip2point.io import write_off
from clip2point.schema import table_points

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["bowl", "chair", "lamp"]


def _params(tmp: Path, **sample) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["synth"].update(
        classes=CLASSES,
        pretrain_train_per_class=2,
        pretrain_val_per_class=1,
        benchmark_train_per_class=2,
        benchmark_test_per_class=2,
    )
    data = tmp / "data"
    raw["data"] = {
        "pretrain": {
            "name": "tiny_pretrain",
            "kind": "synth",
            "root": str(data / "synth/pretrain"),
            "up_axis": "y",
        },
        "benchmarks": [
            {"name": "tiny_bench", "kind": "synth", "root": str(data / "synth/benchmark"), "up_axis": "y"},
            {"name": "zup", "kind": "modelnet10", "root": str(tmp / "zup"), "up_axis": "z"},
            {
                "name": "scan",
                "kind": "scanobjectnn",
                "root": str(tmp / "scan"),
                "variant": "OBJ_ONLY",
                "up_axis": "y",
            },
        ],
    }
    raw["sample"] = {
        "num_points": 64,
        "dense_points": 500,
        "max_reject_fraction": 0.05,
        "workers": 2,
        **sample,
    }
    path = tmp / f"params-{len(list(tmp.glob('params-*')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _run(stage: str, *args: str, params: Path, data: Path) -> subprocess.CompletedProcess:
    """``python -m stages.<stage> <args>`` with ``params`` and ``data``, run in this process."""

    main = importlib.import_module(f"stages.{stage}").main
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setenv("CLIP2POINT_PARAMS", str(params))
        mp.setenv("CLIP2POINT_DATA", str(data))
        code = main(list(args))
    return subprocess.CompletedProcess([stage, *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stage")
    params = _params(tmp)
    r = _run("synth", params=params, data=tmp / "data")
    assert r.returncode == 0, r.stderr
    return tmp, params


def test_synth_stage_layout(synth_data):
    tmp, _ = synth_data
    for pool, splits in (("pretrain", {"train": 2, "val": 1}), ("benchmark", {"train": 2, "test": 2})):
        root = tmp / "data/synth" / pool
        assert (root / "classes.txt").read_text().split() == CLASSES
        for c in CLASSES:
            for split, n in splits.items():
                files = sorted((root / c / split).glob(f"{c}_*.off"))
                assert len(files) == n
        assert not list(root.parent.glob(".*tmp"))  # no leftovers of the atomic write
    # the pools are disjoint: no mesh of one appears in the other
    a = {p.read_bytes() for p in (tmp / "data/synth/pretrain").rglob("*.off")}
    b = {p.read_bytes() for p in (tmp / "data/synth/benchmark").rglob("*.off")}
    assert not a & b


def test_sample_stage_points_table(synth_data):
    tmp, params = synth_data
    data = tmp / "data"
    r = _run("sample", "tiny_bench", params=params, data=data)
    assert r.returncode == 0, r.stderr
    table = pq.read_table(data / "points/tiny_bench.parquet")
    assert table.num_rows == len(CLASSES) * 4
    assert table.column_names == ["id", "split", "label", "label_name", "source", "points"]
    rows = table.to_pylist()
    for row in rows:
        src = Path(row["source"])
        assert src.is_file()
        assert row["label_name"] == src.parent.parent.name == CLASSES[row["label"]]
        assert row["split"] == src.parent.name
    pts = table_points(table)
    assert pts.shape == (len(rows), 64, 3) and pts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(pts, axis=2).max(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(pts.mean(1), 0, atol=1e-5)
    assert pq.read_table(data / "points/tiny_bench.rejected.parquet").num_rows == 0


def _copy_pool(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst)


def test_bad_items_are_rejected_and_threshold_fails(synth_data, tmp_path):
    tmp, _ = synth_data
    data = tmp_path / "data"
    _copy_pool(tmp / "data/synth/benchmark", data / "synth/benchmark")
    root = data / "synth/benchmark"
    files = sorted(root.rglob("*.off"))
    files[0].write_text("this is not an OFF file\n")
    files[3].write_text("")
    text = files[5].read_text().splitlines()
    text[2] = "nan 0 0"
    files[5].write_text("\n".join(text) + "\n")
    bad_ids = {files[i].stem for i in (0, 3, 5)}

    lenient = _params(tmp_path, max_reject_fraction=0.5)
    r = _run("sample", "tiny_bench", params=lenient, data=data)
    assert r.returncode == 0, r.stderr
    rej = pq.read_table(data / "points/tiny_bench.rejected.parquet").to_pylist()
    assert {row["id"] for row in rej} == bad_ids
    for row in rej:
        assert row["source"] in row["reason"] and "\n" not in row["reason"]
    reasons = " ".join(row["reason"] for row in rej).lower()
    assert "not an off" in reasons and "empty" in reasons and "non-finite" in reasons
    table = pq.read_table(data / "points/tiny_bench.parquet")
    assert table.num_rows == len(files) - 3
    assert not bad_ids & set(table.column("id").to_pylist())

    strict = _params(tmp_path, max_reject_fraction=0.1)  # 3/12 = 25% rejected
    data2 = tmp_path / "data2"
    _copy_pool(root, data2 / "synth/benchmark")
    strict.write_text(strict.read_text().replace(str(data), str(data2)))
    r = _run("sample", "tiny_bench", params=strict, data=data2)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("sample:")]
    assert len(lines) == 1 and "3 of 12" in lines[0] and "max_reject_fraction" in lines[0]
    out = data2 / "points"
    assert not out.exists() or not any(out.iterdir())  # no partial output, no temp files


def test_unknown_dataset_and_missing_root(synth_data, tmp_path):
    tmp, params = synth_data
    r = _run("sample", "nope", params=params, data=tmp_path / "d")
    assert r.returncode == 2 and "unknown dataset 'nope'" in r.stderr and "tiny_bench" in r.stderr
    missing = tmp_path / "params-missing.yaml"
    missing.write_text(params.read_text().replace(str(tmp / "zup"), str(tmp_path / "absent")))
    r = _run("sample", "zup", params=missing, data=tmp_path / "d")
    assert r.returncode == 2 and "not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_z_up_dataset_is_rotated_to_y_up(synth_data):
    tmp, params = synth_data
    # a ModelNet-style dataset of tall z-up columns: after sampling, the long axis must be y
    for split in ("train", "test"):
        col = trimesh.creation.box(extents=(0.2, 0.3, 2.0))
        col.apply_translation((0, 0, 1.0))
        p = tmp / "zup" / "column" / split / f"column_{split}.off"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_off(col, p)
    r = _run("sample", "zup", params=params, data=tmp / "data")
    assert r.returncode == 0, r.stderr
    pts = table_points(pq.read_table(tmp / "data/points/zup.parquet"))
    ext = np.ptp(pts, axis=1)  # (M, 3)
    assert (ext[:, 1] > 3 * ext[:, 0]).all() and (ext[:, 1] > 3 * ext[:, 2]).all()
    assert (ext[:, 2] > ext[:, 0]).all()  # old y (0.3) became z, old x (0.2) stayed x


def test_point_cloud_dataset_is_fps_subsampled(synth_data):
    tmp, params = synth_data
    rng = np.random.default_rng(0)
    base = tmp / "scan/h5_files/main_split_nobg"
    base.mkdir(parents=True)
    clouds = {}
    for split, n in (("training", 3), ("test", 2)):
        data = rng.normal(size=(n, 64, 3)).astype(np.float32) * 5 + 3
        if split == "test":
            data = data[:, :40]  # fewer points than num_points: rejected
        clouds[split] = data
        with h5py.File(base / f"{split}_objectdataset.h5", "w") as f:
            f.create_dataset("data", data=data)
            f.create_dataset("label", data=np.array([[1], [4], [14]])[:n])
    params2 = tmp / "params-scan.yaml"
    params2.write_text(params.read_text().replace("max_reject_fraction: 0.05", "max_reject_fraction: 0.5"))
    r = _run("sample", "scan", params=params2, data=tmp / "data")
    assert r.returncode == 0, r.stderr
    table = pq.read_table(tmp / "data/points/scan.parquet")
    assert table.column("label_name").to_pylist() == ["bin", "chair", "toilet"]
    pts = table_points(table)
    for i in range(3):  # 64 of 64 points: the output is the input, centred and scaled, in some order
        src = clouds["training"][i].astype(np.float64)
        src = src - src.mean(0)
        src /= np.linalg.norm(src, axis=1).max()
        np.testing.assert_allclose(np.sort(pts[i], axis=0), np.sort(src, axis=0), atol=1e-5)
    rej = pq.read_table(tmp / "data/points/scan.rejected.parquet").to_pylist()
    assert len(rej) == 2 and all("fewer points" in row["reason"] for row in rej)


def test_pool_points_add_a_pool_column_and_keep_the_points(synth_data, tmp_path):
    """sample.pool_points > 0: an extra ``pool`` column in the points' frame; the points are byte-identical."""
    from clip2point.schema import table_pool

    tmp, params = synth_data
    data = tmp / "data"
    assert _run("sample", "tiny_bench", params=params, data=data).returncode == 0
    plain = pq.read_table(data / "points/tiny_bench.parquet")
    with_pool = _params(tmp, pool_points=300)
    out = tmp_path / "data"  # the dataset roots in params are absolute: only the outputs move
    r = _run("sample", "tiny_bench", params=with_pool, data=out)
    assert r.returncode == 0, r.stderr
    table = pq.read_table(out / "points/tiny_bench.parquet")
    assert table.column_names == [*plain.column_names, "pool"]
    assert table.select(plain.column_names).equals(plain)
    pools = table_pool(table)
    assert all(p.shape == (300, 3) and np.abs(p).max() < 1.1 for p in pools)
    bad = _params(tmp, pool_points=10)
    r = _run("sample", "tiny_bench", params=bad, data=out)
    assert r.returncode == 2 and "pool_points 10 is below sample.num_points 64" in r.stderr
