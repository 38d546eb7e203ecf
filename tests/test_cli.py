"""The ``clip2point`` command line through typer's runner: every command, every bad input of issue 7.

Models are a randomly initialised ``c2p-tiny`` CLIP (``--clip c2p-tiny``), so no pipeline output is needed;
fixtures are real files of each format, written in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import trimesh
import yaml
from cli_support import TINY, TINY_QUICK, isolated, released_args, released_dpa_files, run  # noqa: F401 (autouse)

from cli.params_edit import edit_params_text


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    out = {}
    # OFF written by hand, with ModelNet's "OFF<counts>" first-line quirk
    box = trimesh.creation.box(extents=(1.0, 2.0, 0.5))
    lines = [f"OFF{len(box.vertices)} {len(box.faces)} 0"]
    lines += [" ".join(f"{x:.6f}" for x in v) for v in box.vertices]
    lines += ["3 " + " ".join(str(i) for i in f) for f in box.faces]
    (d / "box.off").write_text("\n".join(lines) + "\n")
    out["off"] = d / "box.off"
    trimesh.creation.icosphere(subdivisions=2).export(d / "ball.ply")
    out["ply"] = d / "ball.ply"
    cloud = rng.normal(size=(1500, 3)).astype(np.float32)
    np.save(d / "cloud.npy", cloud)
    out["npy"] = d / "cloud.npy"
    np.savetxt(d / "small.xyz", cloud[:300])  # fewer points than 1,024: padded
    out["xyz"] = d / "small.xyz"
    with h5py.File(d / "scans.h5", "w") as f:
        f["data"] = rng.normal(size=(3, 800, 3)).astype(np.float32)
        f["label"] = np.array([0, 1, 2])
    out["h5"] = d / "scans.h5"
    # bad inputs
    np.save(d / "empty.npy", np.zeros((0, 3), np.float32))
    out["empty"] = d / "empty.npy"
    bad = cloud.copy()
    bad[5, 1] = np.nan
    np.save(d / "nan.npy", bad)
    out["nan"] = d / "nan.npy"
    (d / "corrupt.off").write_text("OFF\n8 12 0\n0 0 0\n1 1\n")
    out["corrupt"] = d / "corrupt.off"
    (d / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    out["garbage"] = d / "garbage.npy"
    (d / "shape.foo").write_text("1 2 3\n")
    out["foo"] = d / "shape.foo"
    out["missing"] = d / "nope.ply"
    return out


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ classify


def test_help_lists_every_command() -> None:
    res = run("--help")
    assert res.exit_code == 0
    for cmd in ("classify", "render", "prepare", "info"):
        assert cmd in res.output


def test_classify_every_format_as_a_table(files: dict[str, Path]) -> None:
    specs = [files["off"], files["ply"], files["npy"], files["xyz"], f"{files['h5']}:1"]
    res = run("classify", *specs, "--labels", "chair, table,lamp", *TINY, "--top-k", "2", "-q")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["FILE", "PREDICTION", "PROB"]
    assert len(lines) == 1 + len(specs)
    for spec, line in zip(specs, lines[1:], strict=True):
        assert line.startswith(Path(str(spec)).name)
        assert line.split()[1] in ("chair", "table", "lamp")
    assert res.stderr == ""  # --quiet: results only


def test_classify_json_lines_are_sorted_probabilities(files: dict[str, Path]) -> None:
    res = run("classify", files["off"], files["npy"], "--labels", "a,b,c,d", *TINY, "--json", "-k", "3", "-q")
    assert res.exit_code == 0, res.output
    rows = json_lines(res.stdout)
    assert [r["file"] for r in rows] == [str(files["off"]), str(files["npy"])]
    for r in rows:
        probs = [t["probability"] for t in r["top_k"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1.0 + 1e-6
        assert r["prediction"] == r["top_k"][0]["label"]


def test_batches_give_the_same_answers_as_single_files(files: dict[str, Path]) -> None:
    specs = [files["off"], files["ply"], files["npy"], f"{files['h5']}:0", f"{files['h5']}:2"]
    common = ["--labels", "chair,table,lamp,sofa", *TINY, "--json", "-k", "4", "-q"]
    together = json_lines(run("classify", *specs, *common, "--batch-size", "8").stdout)
    one_by_one = json_lines(run("classify", *specs, *common, "--batch-size", "1").stdout)
    assert len(together) == len(one_by_one) == len(specs)
    for a, b in zip(together, one_by_one, strict=True):
        pa = {t["label"]: t["probability"] for t in a["top_k"]}
        pb = {t["label"]: t["probability"] for t in b["top_k"]}
        assert pa.keys() == pb.keys()
        for k in pa:
            assert abs(pa[k] - pb[k]) < 1e-4


def test_dataset_names_the_labels(files: dict[str, Path]) -> None:
    from clip2point.datasets import MODELNET10_CLASSES

    res = run("classify", files["off"], "--dataset", "modelnet10", *TINY, "--json", "-k", "10", "-q")
    assert res.exit_code == 0, res.output
    labels = {t["label"] for t in json_lines(res.stdout)[0]["top_k"]}
    assert labels == set(MODELNET10_CLASSES)
    res = run("classify", files["off"], "--dataset", "no_such_set", *TINY)
    assert res.exit_code == 1 and "unknown dataset 'no_such_set'" in res.stderr


@pytest.mark.parametrize(
    "key, reason",
    [
        ("missing", "no such file"),
        ("corrupt", "corrupt.off"),
        ("garbage", "garbage.npy"),
        ("foo", "unsupported extension '.foo'"),
        ("empty", "empty"),
        ("nan", "non-finite"),
        ("h5", "name one entry"),
    ],
)
def test_each_bad_file_is_one_clear_line(files: dict[str, Path], key: str, reason: str) -> None:
    res = run("classify", files[key], "--labels", "chair,table", *TINY, "-q")
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert errors[0].startswith(f"error: {files[key]}") or str(files[key]) in errors[0]
    assert reason in errors[0]


def test_a_batch_classifies_the_good_files_and_reports_the_bad(files: dict[str, Path]) -> None:
    specs = [files["off"], files["nan"], files["npy"], files["missing"]]
    res = run("classify", *specs, "--labels", "chair,table", *TINY, "--json")
    assert res.exit_code == 1
    rows = json_lines(res.stdout)
    assert [r["file"] for r in rows if "prediction" in r] == [str(files["off"]), str(files["npy"])]
    assert {r["file"] for r in rows if "error" in r} == {str(files["nan"]), str(files["missing"])}
    assert "2 of 4 file(s) could not be classified" in res.stderr
    assert "Traceback" not in res.output


@pytest.mark.parametrize("labels", ["", " , ,", ","])
def test_empty_label_list_is_a_user_error(files: dict[str, Path], labels: str) -> None:
    res = run("classify", files["off"], "--labels", labels, *TINY)
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        f'error: empty label list {labels!r}: pass --labels "chair,table,..."'
    ]


def test_labels_are_required_and_exclusive(files: dict[str, Path]) -> None:
    res = run("classify", files["off"], *TINY)
    assert res.exit_code == 1 and "no class labels" in res.stderr
    res = run("classify", files["off"], "--labels", "a,b", "--dataset", "modelnet10", *TINY)
    assert res.exit_code == 1 and "either --labels or --dataset" in res.stderr
    res = run("classify", files["off"], "--labels", "a,b,A", *TINY)
    assert res.exit_code == 1 and "given twice" in res.stderr


def test_encoder_checkpoint_from_another_model(files: dict[str, Path], tmp_path: Path) -> None:
    from clip2point.models.clip import create_clip

    mini, _ = create_clip("c2p-mini")
    torch.save({"visual": mini.visual.state_dict()}, tmp_path / "mini_encoder.pt")
    res = run("classify", files["off"], "--labels", "a,b", *TINY, "--encoder", tmp_path / "mini_encoder.pt")
    assert res.exit_code == 1
    assert "does not fit CLIP model 'c2p-tiny'" in res.stderr and "Traceback" not in res.output
    tiny, _ = create_clip("c2p-tiny")  # a matching one loads (prefixed keys too)
    torch.save({f"visual.{k}": v for k, v in tiny.visual.state_dict().items()}, tmp_path / "tiny_encoder.pt")
    res = run(
        "classify", files["off"], "--labels", "a,b", *TINY, "--encoder", tmp_path / "tiny_encoder.pt", "-q"
    )
    assert res.exit_code == 0, res.output
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    res = run("classify", files["off"], "--labels", "a,b", *TINY, "--encoder", tmp_path / "junk.pt")
    assert res.exit_code == 1 and "not a readable PyTorch checkpoint" in res.stderr


def _adapter_ckpt(dim: int, views: str = "zeroshot6", n_views: int = 6) -> dict:
    from clip2point.models.adapters import adapter_state, create_adapter

    adapter = create_adapter("global_view", n_views=n_views, dim=dim)
    return {
        "adapter": adapter_state(adapter), "class_names": ["chair", "table", "lamp"],
        "text": torch.nn.functional.normalize(torch.randn(3, dim), dim=-1), "views": views, "distance": 1.0,
        "depth": {"image_size": 64, "dilation": 1, "mode": "min", "projection": "orthographic"},
        "paths": ["clip"],
    }  # fmt: skip


def test_adapter_checkpoint(files: dict[str, Path], tmp_path: Path) -> None:
    torch.save(_adapter_ckpt(32), tmp_path / "ok.pt")
    res = run(
        "classify", files["off"], files["npy"], "--checkpoint", tmp_path / "ok.pt", *TINY, "--json", "-q"
    )
    assert res.exit_code == 0, res.output
    rows = json_lines(res.stdout)
    assert {t["label"] for t in rows[0]["top_k"]} == {"chair", "table", "lamp"}  # the checkpoint's classes
    torch.save(_adapter_ckpt(128), tmp_path / "mini.pt")  # trained on c2p-mini's 128-d features
    res = run("classify", files["off"], "--checkpoint", tmp_path / "mini.pt", *TINY)
    assert res.exit_code == 1
    assert "expects 128-d features" in res.stderr and "another model" in res.stderr
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    res = run("classify", files["off"], "--checkpoint", tmp_path / "other.pt", *TINY)
    assert res.exit_code == 1 and "is not an adapter checkpoint" in res.stderr


def test_internal_errors_exit_2_and_debug_shows_the_traceback(files, monkeypatch) -> None:
    import cli.classify as cls

    def boom(*a, **k):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(cls, "load_cloud", boom)
    res = run("classify", files["off"], "--labels", "a,b", *TINY, "-q")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "internal error: RuntimeError: kaboom (rerun with --debug for the traceback)"
    ]
    res = run("classify", files["off"], "--labels", "a,b", *TINY, "-q", "--debug")
    assert res.exit_code == 2 and "Traceback" in res.stderr and "kaboom" in res.stderr


def test_usage_errors_exit_1() -> None:
    """One stderr line, no traceback (tests/test_cli_errors.py has every kind of usage error)."""
    res = run("classify", "x.ply", "--no-such-option")
    assert res.exit_code == 1
    assert res.stderr.splitlines() == ["error: no such option: --no-such-option (see 'clip2point classify --help')"]
    res = run("render")  # missing FILE
    assert res.exit_code == 1
    assert res.stderr.splitlines() == ["error: missing argument 'file' (see 'clip2point render --help')"]


def test_unknown_clip_and_missing_weights_are_user_errors(files: dict[str, Path], tmp_path: Path) -> None:
    res = run("classify", files["off"], "--labels", "a,b", "--clip", "NoSuchNet")
    assert res.exit_code == 1 and "unknown CLIP model 'NoSuchNet'" in res.stderr
    res = run("classify", files["off"], "--labels", "a,b", *TINY, "--pretrained", tmp_path / "none.pt")
    assert res.exit_code == 1 and "CLIP checkpoint not found" in res.stderr
    res = run("classify", files["off"], "--labels", "a,b", "--pretrained", "x.pt")
    assert res.exit_code == 1 and "--pretrained needs --clip" in res.stderr


def test_views_must_name_a_view_set(files: dict[str, Path]) -> None:
    res = run("classify", files["off"], "--labels", "a,b", *TINY, "--views", "7")
    assert res.exit_code == 1 and "no view set with 7 views" in res.stderr
    res = run("classify", files["off"], "--labels", "a,b", *TINY, "--views", "10", "-q")
    assert res.exit_code == 0, res.output


# ------------------------------------------------------------------------------------------ render


def test_render_writes_a_contact_sheet(files: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "sheets" / "box.png"
    res = run("render", files["off"], "--out", out, "--views", "10", "--size", "48", "--dilation", "1")
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(out))
    assert img.ndim == 2 and img.shape[1] > 5 * 48 and img.shape[0] > 2 * 48  # 5 columns, 2 rows
    assert img.min() < 120 and img.max() == 255  # dark foreground on a white background
    res = run(
        "render", files["npy"], "--out", tmp_path / "w.png", "--views", "6", "--depth", "weighted", "-q"
    )
    assert res.exit_code == 0 and res.output == ""
    assert Image.open(tmp_path / "w.png").size[0] > 5 * 112


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--depth", "max"], "--depth must be one of min, weighted"),
        (["--views", "3"], "no view set with 3 views"),
        (["--out", "sheet.jpg"], "must name a .png"),
    ],
)
def test_render_bad_options(files: dict[str, Path], extra: list[str], message: str) -> None:
    res = run("render", files["off"], *extra)
    assert res.exit_code == 1 and message in res.stderr


def test_render_bad_file(files: dict[str, Path]) -> None:
    res = run("render", files["corrupt"], "--out", "x.png")
    assert res.exit_code == 1 and str(files["corrupt"]) in res.stderr and "Traceback" not in res.output


# ------------------------------------------------------------------------------------------ prepare

PARAMS = """\
# top comment survives
seed: 0
data:
  pretrain: {name: synth_pretrain, kind: synth, root: data/synth/pretrain, up_axis: y}
  benchmarks:
    synth_benchmark: {kind: synth, root: data/synth/benchmark, up_axis: y}  # keep me
    old:
      kind: synth
      root: somewhere
sample:
  num_points: 1024
"""


def test_edit_params_text_touches_only_the_entry() -> None:
    new = edit_params_text(
        PARAMS, "benchmarks", "old", {"kind": "modelnet10", "root": "/d/M 10", "up_axis": "z"}
    )
    assert "# top comment survives" in new and "# keep me" in new
    raw = yaml.safe_load(new)
    assert raw["data"]["benchmarks"]["old"] == {"kind": "modelnet10", "root": "/d/M 10", "up_axis": "z"}
    assert raw["sample"] == {"num_points": 1024}
    added = edit_params_text(
        PARAMS, "benchmarks", "mn40", {"kind": "modelnet40", "root": "r", "up_axis": "z"}
    )
    assert list(yaml.safe_load(added)["data"]["benchmarks"]) == ["synth_benchmark", "old", "mn40"]
    pre = edit_params_text(PARAMS, "pretrain", "", {"name": "shapenet55", "kind": "shapenet55", "root": "s"})
    assert yaml.safe_load(pre)["data"]["pretrain"]["name"] == "shapenet55"
    assert pre.splitlines()[4:] == PARAMS.splitlines()[4:]


REPO_PARAMS = (Path(__file__).resolve().parents[1] / "params.yaml").read_text()


def _modelnet10(root: Path, drop: str | None = None) -> Path:
    from clip2point.datasets import MODELNET10_CLASSES, dataset_info

    counts = dataset_info("modelnet10").counts
    base = root / "ModelNet10"
    for split, total in counts.items():
        per = np.full(len(MODELNET10_CLASSES), total // len(MODELNET10_CLASSES))
        per[: total % len(MODELNET10_CLASSES)] += 1
        for c, n in zip(MODELNET10_CLASSES, per, strict=True):
            if c == drop:
                continue
            d = base / c / split
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (d / f"{c}_{split}_{i:04d}.off").touch()  # the catalogue lists files, it does not parse them
    return base


def test_prepare_wires_a_complete_download(tmp_path: Path) -> None:
    base = _modelnet10(tmp_path / "dl")
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    res = run("prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params)
    assert res.exit_code == 0, res.output
    assert "train 3,991/3,991, test 908/908" in res.stderr
    from pipeline.params import load_params

    entry = load_params(params).data.benchmark("modelnet10")
    assert (entry.kind, entry.root, entry.up_axis) == ("modelnet10", "dl/ModelNet10", "z")
    old, new = REPO_PARAMS.splitlines(), params.read_text().splitlines()
    assert set(old) <= set(new)  # every original line (comments included) kept
    assert len(new) == len(old) + 1
    before = params.read_text()
    res = run("prepare", "modelnet10", "--root", base, "--params", params, "--up-axis", "y", "-q")
    assert res.exit_code == 1 and params.read_text() == before  # issue 22.5: an existing entry is kept
    assert res.stderr.strip() == (
        "error: data.benchmarks.modelnet10 'modelnet10' already exists; pass --replace to overwrite it, "
        "or --name another name"
    )
    res = run("prepare", "modelnet10", "--root", base, "--params", params, "--up-axis", "y", "-q", "--replace")
    assert res.exit_code == 0
    assert load_params(params).data.benchmark("modelnet10").up_axis == "y"  # updated, not duplicated
    assert params.read_text().count("modelnet10:") == 1


def test_prepare_says_exactly_what_is_missing(tmp_path: Path) -> None:
    _modelnet10(tmp_path / "dl", drop="sofa")
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    res = run("prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params)
    assert res.exit_code == 1
    assert "missing class folders" in res.stderr and "sofa" in res.stderr
    assert "train: found 3,592 of 3,991 (399 missing)" in res.stderr
    assert "modelnet.cs.princeton.edu" in res.stderr
    assert "--allow-incomplete" in res.stderr.splitlines()[-1]  # the way to use it as a subset
    assert params.read_text() == REPO_PARAMS  # nothing written


def test_prepare_scanobjectnn_variants(tmp_path: Path) -> None:
    h5dir = tmp_path / "h5_files" / "main_split"
    h5dir.mkdir(parents=True)
    for name, n in (("training_objectdataset.h5", 2309), ("test_objectdataset.h5", 581)):
        with h5py.File(h5dir / name, "w") as f:
            f["data"] = np.zeros((n, 4, 3), np.float32)
            f["label"] = np.arange(n) % 15
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    res = run("prepare", "scanobjectnn", "--root", tmp_path, "--variant", "OBJ_BG", "--params", params)
    assert res.exit_code == 0, res.output
    from pipeline.params import load_params

    entry = load_params(params).data.benchmark("scanobjectnn_obj_bg")
    assert (entry.kind, entry.variant) == ("scanobjectnn", "OBJ_BG")
    res = run("prepare", "scanobjectnn", "--root", tmp_path, "--variant", "PB_T50_RS", "--params", params)
    assert res.exit_code == 1
    assert (
        "training_objectdataset_augmentedrot_scale75.h5" in res.stderr
        and "train: found 0 of 11,416" in res.stderr
    )
    res = run("prepare", "scanobjectnn", "--root", tmp_path, "--params", params)
    assert res.exit_code == 1 and "needs --variant" in res.stderr


def test_prepare_bad_arguments(tmp_path: Path) -> None:
    res = run("prepare", "imagenet", "--root", tmp_path)
    assert res.exit_code == 1 and "unknown dataset 'imagenet'" in res.stderr
    from clip2point.datasets import dataset_info

    res = run("prepare", "modelnet40", "--root", tmp_path / "nowhere")
    assert res.exit_code == 1 and "does not exist" in res.stderr
    assert dataset_info("modelnet40").download in res.stderr  # where to get it
    res = run("prepare", "shapenet55", "--root", tmp_path, "--check-only")
    assert res.exit_code == 1 and "shapenet_pc" in res.stderr and "train.txt" in res.stderr


def _shapenetcore(base: Path) -> Path:
    """One empty model per ShapeNetCore synset (the catalogue lists files, it does not parse them)."""
    from clip2point.io import SHAPENET_SYNSETS

    for synset in SHAPENET_SYNSETS:
        d = base / synset / f"model{synset}" / "models"
        d.mkdir(parents=True)
        (d / "model_normalized.obj").touch()
        (d / "model_normalized.mtl").touch()
    return base


def _expect(monkeypatch: pytest.MonkeyPatch, dataset: str, counts: dict[str, int]) -> None:
    """Shrink a dataset's expected counts to the fixture's, keeping everything else of its description."""
    from dataclasses import replace

    from clip2point import datasets

    monkeypatch.setitem(datasets.DATASETS._entries, dataset, replace(datasets.DATASETS[dataset], counts=counts))


def test_prepare_shapenetcore_is_the_pretrain_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clip2point.datasets import TOTAL
    from pipeline.params import load_params

    base = _shapenetcore(tmp_path / "dl" / "ShapeNetCore.v2")
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    res = run("prepare", "shapenetcore", "--root", tmp_path / "dl", "--params", params, "--check-only")
    assert res.exit_code == 1  # the real expected size
    assert "all: found 55 of 52,460 (52,405 missing)" in res.stderr and "shapenet.org" in res.stderr
    assert params.read_text() == REPO_PARAMS
    _expect(monkeypatch, "shapenetcore", {TOTAL: 55})
    res = run("prepare", "shapenetcore", "--root", tmp_path / "dl", "--params", params)
    assert res.exit_code == 0, res.output
    assert "all 55/55; splits: train " in res.stderr and "80/20 by sha256" in res.stderr
    pre = load_params(params).data.pretrain
    assert (pre.name, pre.kind, pre.root, pre.variant, pre.up_axis) == (
        "shapenetcore", "shapenetcore", "dl/ShapeNetCore.v2", "", "y"
    )
    assert len(params.read_text().splitlines()) == len(REPO_PARAMS.splitlines())  # replaced, not added
    lists = tmp_path / "ShapeNet-55"
    lists.mkdir()
    synsets = sorted(p.name for p in base.iterdir())
    (lists / "train.txt").write_text("".join(f"{s}-model{s}.npy\n" for s in synsets[:40]))
    (lists / "test.txt").write_text("".join(f"{s}-model{s}.npy\n" for s in synsets[40:]))
    res = run("prepare", "shapenetcore", "--root", base, "--variant", lists, "--params", params, "--replace")
    assert res.exit_code == 0, res.output
    assert "splits: train 40, val 15" in res.stderr and "Point-BERT's lists" in res.stderr
    assert load_params(params).data.pretrain.variant == "ShapeNet-55"  # relative to the params file
    res = run("prepare", "shapenetcore", "--root", base, "--variant", tmp_path / "nowhere", "--params", params)
    assert res.exit_code == 1 and "is not a folder" in res.stderr


def test_prepare_shapenet55_point_bert_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the archive as unpacked: ShapeNet55-34/{shapenet_pc/, ShapeNet-55/{train,test}.txt}
    root = tmp_path / "ShapeNet55-34"
    (root / "shapenet_pc").mkdir(parents=True)
    (root / "ShapeNet-55").mkdir()
    for split, names in (("train", ["02691156-a", "03001627-b"]), ("test", ["03001627-c"])):
        (root / "ShapeNet-55" / f"{split}.txt").write_text("".join(f"{n}.npy\n" for n in names))
        for n in names:
            np.save(root / "shapenet_pc" / f"{n}.npy", np.zeros((8, 3), np.float32))
    _expect(monkeypatch, "shapenet55", {"train": 2, "test": 1})
    res = run("prepare", "shapenet55", "--root", tmp_path, "--check-only")
    assert res.exit_code == 0, res.output
    assert "train 2/2, test 1/1" in res.stderr


# ------------------------------------------------------------------------------------------ info


def test_info_reports_versions_device_weights_outputs() -> None:
    res = run("info")
    assert res.exit_code == 0, res.output
    for word in ("torch", "device", "openai ViT-B-32", "run CLIP", "outputs"):
        assert word in res.stdout
    data = json.loads(run("info", "--json").stdout)
    assert data["device"]["device"] in ("cpu", "cuda")
    assert data["versions"]["torch"] == torch.__version__.split("+")[0]
    assert "missing" in data["outputs"]["models"]  # an empty folder has no pipeline outputs


# ------------------------------------------------------------------------------------------ the run's models


def test_default_models_are_the_runs_artifacts(
    files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clip2point.models.clip import create_clip
    from pipeline import paths

    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "data"))
    res = run("classify", files["off"], "--labels", "a,b")
    assert res.exit_code == 1 and "clip_bootstrap" in res.stderr and "--clip" in res.stderr

    model, _ = create_clip("c2p-tiny")
    clip_dir = paths.clip_dir()
    clip_dir.mkdir(parents=True)
    torch.save(model.state_dict(), clip_dir / "weights.pt")
    (clip_dir / "clip.json").write_text(
        json.dumps({"model": "c2p-tiny", "pretrained": "", "weights": "weights.pt"})
    )
    res = run("classify", files["off"], "--labels", "a,b")
    assert res.exit_code == 0, res.output
    assert "no pretrained depth encoder" in res.stderr  # zero-shot falls back to CLIP's image encoder

    enc_dir = paths.pretrain_dir("intra_cross", 0)
    enc_dir.mkdir(parents=True)
    torch.save(model.visual.state_dict(), enc_dir / "encoder.pt")
    res = run("classify", files["off"], "--labels", "a,b", "--json")
    assert res.exit_code == 0, res.output
    assert "depth encoder intra_cross-seed0" in res.stderr
    assert json_lines(res.stdout)[0]["prediction"] in ("a", "b")
    info = json.loads(run("info", "--json").stdout)
    assert info["weights"]["pretrained depth encoders"] == "intra_cross-seed0"


def test_adapter_checkpoint_loads_the_encoder_it_names(files: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """A dual-path checkpoint trained on intra_cross-seed2 is served with that very encoder, not seed 0."""
    import copy

    import pipeline.models as pm
    from clip2point.models.adapters import adapter_state, create_adapter

    asked: list[tuple[str, int]] = []

    def fake_load(variant: str, seed: int, device="cpu", clip_model=None):
        asked.append((variant, seed))
        return copy.deepcopy(clip_model.visual)

    monkeypatch.setattr(pm, "load_depth_encoder", fake_load)
    ckpt = _adapter_ckpt(32)
    ckpt["adapter"] = adapter_state(create_adapter("dual_path", n_views=6, dim=32))
    ckpt["paths"] = ["clip", "intra_cross-seed2"]
    ckpt["encoders"] = {"clip": {"variant": "clip"}, "intra_cross-seed2": {"variant": "intra_cross", "seed": 2}}
    torch.save(ckpt, tmp_path / "dpa.pt")
    res = run("classify", files["off"], "--checkpoint", tmp_path / "dpa.pt", *TINY, "--json", "-q")
    assert res.exit_code == 0, res.output
    assert asked == [("intra_cross", 2)]


# ------------------------------------------------------------------ issue 12: the released DPA checkpoint


def _released_by_hand(paths: dict[str, Path], spec: Path, names: list[str], up_axis: str) -> torch.Tensor:
    """The released few-shot forward (models/dpa.py + fewshot.py), written out: 10 views, disc footprint,
    raw encoder outputs into adapter1 (pre_model) / adapter2 (ori_model), cosine with 'image of a ' + name."""
    import open_clip
    import torch.nn.functional as F

    from cli.inputs import load_cloud
    from clip2point.models.adapters import SimplifiedAdapter
    from clip2point.models.clip import depth_to_clip_input, image_size
    from clip2point.predict import unit_sphere
    from clip2point.render.depth import DepthConfig, render_depth
    from clip2point.render.views import VIEW_SETS, to_y_up
    from pipeline.params import DepthParams, SampleParams
    from pipeline.stage import depth_settings

    state = torch.load(paths["dpa"], weights_only=True)
    part = lambda p: {k[len(p):]: v for k, v in state.items() if k.startswith(p)}  # noqa: E731
    clip = open_clip.create_model(TINY_QUICK, pretrained=None)
    clip.load_state_dict(torch.load(paths["clip"], weights_only=True))
    clip.eval()
    pre, ori = open_clip.create_model(TINY_QUICK).visual, open_clip.create_model(TINY_QUICK).visual
    pre.load_state_dict(part("pre_model."))
    ori.load_state_dict(part("ori_model."))
    dim = int(clip.text_projection.shape[-1])
    a1, a2 = SimplifiedAdapter(10, dim), SimplifiedAdapter(10, dim)
    a1.load_state_dict(part("adapter1."))
    a2.load_state_dict(part("adapter2."))
    sample = SampleParams()
    pts = torch.from_numpy(load_cloud(str(spec), sample.num_points, sample.dense_points))[None]
    pts = unit_sphere(torch.as_tensor(to_y_up(pts, up_axis)).float())
    cfg = DepthConfig(**{**depth_settings(DepthParams()), "footprint": "disc", "radius": 0.02})
    depth = render_depth(pts, VIEW_SETS["pretrain10"], DepthParams().distance, cfg)
    imgs = depth_to_clip_input(depth.reshape(-1, *depth.shape[2:]), image_size(pre))
    with torch.no_grad():
        for m in (pre, ori, a1, a2):
            m.eval()
        f1 = a1(pre(imgs).view(1, 10, -1))
        f2 = a2(ori(imgs).view(1, 10, -1))
        g = F.normalize((f1 + f2) * 0.5, dim=-1)
        tokenizer = open_clip.get_tokenizer(TINY_QUICK)
        text = F.normalize(clip.encode_text(tokenizer(["image of a " + n.replace("_", " ") for n in names])), dim=-1)
        return (g @ text.t()).softmax(dim=-1)[0]


def test_released_dpa_checkpoint_classifies_like_the_released_code(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clip2point.datasets import MODELNET40_CLASSES

    paths = released_dpa_files(tmp_path, monkeypatch)
    res = run("classify", files["npy"], *released_args(paths), "--json", "-k", "40")
    assert res.exit_code == 0, res.output
    assert "released DPA checkpoint: views pretrain10" in res.stderr
    row = json_lines(res.stdout)[0]
    got = {t["label"]: t["probability"] for t in row["top_k"]}
    names = sorted(MODELNET40_CLASSES)
    assert sorted(got) == names  # ModelNet40's 40 classes by default
    want = _released_by_hand(paths, files["npy"], names, "z_released")
    assert max(abs(got[n] - float(p)) for n, p in zip(names, want, strict=True)) < 2e-6
    assert got[row["prediction"]] == max(got.values())

    # --labels and --up-axis are honoured
    res = run("classify", files["npy"], *released_args(paths), "--json", "-q", "--labels", "chair,flower_pot",
              "--up-axis", "y")  # fmt: skip
    assert res.exit_code == 0, res.output
    got = {t["label"]: t["probability"] for t in json_lines(res.stdout)[0]["top_k"]}
    want = _released_by_hand(paths, files["npy"], ["chair", "flower_pot"], "y")
    assert abs(got["chair"] - float(want[0])) < 2e-6 and abs(got["flower_pot"] - float(want[1])) < 2e-6
