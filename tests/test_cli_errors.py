"""Every way of calling ``clip2point`` wrongly ends with one stderr line and the documented exit code.

Issues 10 and 11: usage errors (bad numbers, unknown options, missing arguments), bad files and folders,
an invalid ``params.yaml``, unwritable outputs, a full disk and Ctrl-C. Each case checks the message text
(it names the bad value or file), that stderr is exactly one ``error:`` line (no traceback), the exit code
(``docs/cli.md``: 0 ok, 1 user/usage error, 2 internal error, 130 interrupted), and for the output-writing
cases that no partial file is left. Models are a randomly initialised ``c2p-tiny`` CLIP.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import trimesh
import yaml
from cli_support import TINY, TINY_QUICK, isolated, released_args, released_dpa_files, run  # noqa: F401 (autouse)

LABELS = ["--labels", "chair,table"]
REPO_PARAMS = (Path(__file__).resolve().parents[1] / "params.yaml").read_text()
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    out: dict[str, Path] = {}
    trimesh.creation.box(extents=(1.0, 2.0, 0.5)).export(d / "box.off")
    out["off"] = d / "box.off"
    np.save(d / "cloud.npy", np.random.default_rng(0).normal(size=(600, 3)).astype(np.float32))
    out["npy"] = d / "cloud.npy"
    (d / "empty.off").write_bytes(b"")
    out["empty"] = d / "empty.off"
    (d / "corrupt.off").write_text("OFF\n8 12 0\n0 0 0\n1 1\n")
    out["corrupt"] = d / "corrupt.off"
    (d / "shape.foo").write_text("1 2 3\n")
    out["foo"] = d / "shape.foo"
    (d / "empty_folder").mkdir()
    out["empty_folder"] = d / "empty_folder"
    (d / "a_file").write_text("not a folder\n")
    out["a_file"] = d / "a_file"
    with h5py.File(d / "scans.h5", "w") as f:
        f["data"] = np.zeros((2, 50, 3), np.float32)
    out["h5"] = d / "scans.h5"
    (d / "empty.pt").write_bytes(b"")
    out["empty_pt"] = d / "empty.pt"
    out["missing"] = d / "nope.ply"
    # issue 22.15
    os.symlink(d / "loop_b.ply", d / "loop_a.ply")
    os.symlink(d / "loop_a.ply", d / "loop_b.ply")
    out["loop"] = d / "loop_a.ply"
    os.symlink(d / "gone.npy", d / "dangling.npy")
    out["dangling"] = d / "dangling.npy"
    os.mkfifo(d / "pipe.npy")
    out["fifo"] = d / "pipe.npy"
    np.save(d / "complex.npy", np.ones((50, 3)) + 1j)
    out["complex"] = d / "complex.npy"
    np.save(d / "huge.npy", np.full((50, 3), 1e39))
    out["huge"] = d / "huge.npy"
    for ext in ("stl", "obj"):
        (d / f"noise.{ext}").write_bytes(np.random.default_rng(1).bytes(4096))
        out[f"noise_{ext}"] = d / f"noise.{ext}"
    return out


def one_error(res, code: int = 1) -> str:
    """The single stderr line of a failed run (asserting there is exactly one, and the exit code)."""
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(
    "args, message",
    [
        (["classify", "x.ply", *LABELS, "--top-k", "0"],
         "invalid value for '--top-k' / '-k': must be at least 1, got 0"),
        (["classify", "x.ply", *LABELS, "--top-k", "abc"], "invalid value for '--top-k' / '-k':"),
        (["classify", "x.ply", *LABELS, "-k", "-3"], "must be at least 1, got -3"),
        (["classify", "x.ply", *LABELS, "--batch-size", "0"],
         "invalid value for '--batch-size': must be at least 1, got 0"),
        (["classify", "x.ply", "--no-such-option"], "no such option: --no-such-option"),
        (["classify"], "missing argument 'files'"),
        (["render"], "missing argument 'file'"),
        (["render", "x.ply", "--dilation", "0"], "invalid value for '--dilation': must be between 1 and 64, got 0"),
        (["render", "x.ply", "--dilation", "65"], "must be between 1 and 64, got 65"),
        (["render", "x.ply", "--size", "100000"], "invalid value for '--size': must be between 8 and 8192, got 100000"),
        (["render", "x.ply", "--views", "many"], "invalid value for '--views':"),
        (["prepare", "modelnet10"], "missing option '--root'"),
        (["info", "--bogus"], "no such option: --bogus"),
        (["frobnicate"], "no such command 'frobnicate'"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_naming_the_value(args: list[str], message: str) -> None:
    line = one_error(run(*args))
    assert message in line
    if "invalid value" in message and "got" not in message:
        assert f"(got {args[-1]!r})" in line  # typer's own message does not name the value: we add it
    if args[0] in ("classify", "render", "prepare", "info"):
        assert f"(see 'clip2point {args[0]} --help')" in line


def test_usage_error_of_the_installed_command() -> None:
    """The real entry point (sys.argv, not the test runner): one line, exit 1."""
    exe = Path(sys.executable).with_name("clip2point")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli"]
    proc = subprocess.run([*cmd, "classify", "x.ply", "--top-k", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: invalid value for '--top-k' / '-k': must be at least 1, got 0 (see 'clip2point classify --help')"
    ]


# ------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "key, message",
    [
        ("missing", "nope.ply: no such file"),
        ("empty", "empty.off: empty file"),
        ("foo", "shape.foo: unsupported extension '.foo'"),
        ("corrupt", "corrupt.off: truncated"),
        ("empty_folder", "empty_folder: folder holds no supported files"),
        ("h5", "scans.h5: name one entry of the HDF5 file"),
        # issue 22.15: each was worded wrongly (or, for the complex file, accepted) before
        ("loop", "loop_a.ply: is a symlink loop (too many levels of symbolic links)"),
        ("dangling", "dangling.npy: is a symlink to "),
        ("fifo", "pipe.npy: is not a regular file (a FIFO)"),
        ("complex", "complex.npy: complex-valued coordinates (dtype complex128)"),
        ("huge", "huge.npy: coordinates out of float32 range (largest |value| 1e+39 > 3.4e+38)"),
        ("noise_stl", "noise.stl: not a valid STL file"),
        ("noise_obj", "noise.obj: not a valid OBJ file"),
    ],
)
def test_classify_one_bad_input_is_one_line(files: dict[str, Path], key: str, message: str) -> None:
    line = one_error(run("classify", files[key], *LABELS, *TINY, "-q"))
    assert message in line and str(files[key]) in line


def test_classify_missing_file_fails_before_any_model_loads(files: dict[str, Path]) -> None:
    res = run("classify", files["missing"], *LABELS, "--clip", "NoSuchNet")  # the model would fail too
    assert one_error(res) == f"error: {files['missing']}: no such file"  # no notes: nothing was loaded


def test_bad_hdf5_entry_names_the_syntax(files: dict[str, Path]) -> None:
    line = one_error(run("classify", f"{files['h5']}:abc", *LABELS, *TINY, "-q"))
    assert f"{files['h5']}:abc: bad HDF5 entry (expected FILE.h5:INDEX" in line


def test_render_a_folder_instead_of_a_file(files: dict[str, Path]) -> None:
    line = one_error(run("render", files["empty_folder"], "--out", "x.png"))
    assert line == f"error: {files['empty_folder']}: is a folder, not a file"


def test_several_bad_inputs_one_line_each_and_a_summary(files: dict[str, Path]) -> None:
    res = run("classify", files["missing"], files["foo"], *LABELS, *TINY, "-q")
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith("error: ") for ln in lines)
    assert "nope.ply" in lines[0] and "shape.foo" in lines[1] and "none of the 2 inputs" in lines[2]


def test_bad_folder_in_a_batch_is_reported_and_the_rest_classified(files: dict[str, Path]) -> None:
    res = run("classify", files["empty_folder"], files["npy"], *LABELS, *TINY, "--json", "-q")
    assert res.exit_code == 1
    rows = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert [r["file"] for r in rows if "prediction" in r] == [str(files["npy"])]
    assert [r["file"] for r in rows if "error" in r] == [str(files["empty_folder"])]


def _deny(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """``target`` behaves like a folder without read permission (works as root, where chmod does not)."""
    real_iterdir, real_stat = Path.iterdir, Path.stat

    def iterdir(self: Path):
        if self == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_iterdir(self)

    def stat(self: Path, **kw):  # what exists(), is_dir() and is_file() call
        if self.parent == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_stat(self, **kw)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    monkeypatch.setattr(Path, "stat", stat)


def test_unreadable_folder_and_file_inside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    np.save(locked / "c.npy", np.ones((10, 3), np.float32))
    _deny(monkeypatch, locked)
    line = one_error(run("classify", locked, *LABELS, *TINY, "-q"))
    assert line == f"error: {locked}: cannot list the folder (permission denied)"
    line = one_error(run("classify", locked / "c.npy", *LABELS, *TINY, "-q"))
    assert line == f"error: {locked / 'c.npy'}: cannot access it (permission denied)"


@pytest.mark.skipif(IS_ROOT, reason="permission bits do not apply to root")
def test_unreadable_folder_for_real(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    np.save(locked / "c.npy", np.ones((10, 3), np.float32))
    locked.chmod(0)
    try:
        line = one_error(run("classify", locked, *LABELS, *TINY, "-q"))
        assert line == f"error: {locked}: cannot list the folder (permission denied)"
        line = one_error(run("classify", locked / "c.npy", *LABELS, *TINY, "-q"))
        assert line == f"error: {locked / 'c.npy'}: cannot access it (permission denied)"
        line = one_error(run("render", locked / "c.npy", "--out", tmp_path / "s.png"))
        assert line == f"error: {locked / 'c.npy'}: cannot access it (permission denied)"
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("opt", ["--encoder", "--checkpoint", "--pretrained"])
def test_weights_that_are_missing_empty_or_a_folder(files: dict[str, Path], tmp_path: Path, opt: str) -> None:
    line = one_error(run("classify", files["off"], *LABELS, *TINY, opt, tmp_path / "none.pt", "-q"))
    assert "not found" in line and "none.pt" in line
    if opt != "--pretrained":
        line = one_error(run("classify", files["off"], *LABELS, *TINY, opt, files["empty_folder"], "-q"))
        assert line.endswith(f"{files['empty_folder']} is a folder, not a file")
        line = one_error(run("classify", files["off"], *LABELS, *TINY, opt, files["empty_pt"], "-q"))
        assert "is not a readable PyTorch checkpoint" in line and "empty.pt" in line


def test_missing_run_weights(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "data"))
    line = one_error(run("classify", files["off"], *LABELS, "-q"))
    assert "clip_bootstrap" in line and "--clip NAME" in line


# ------------------------------------------------------------------------------------------ params.yaml


@pytest.mark.parametrize(
    "text, named",
    [
        ("seed: [\n", ["is not valid YAML"]),
        ("- a list\n", ["must hold a mapping"]),
        ("depth: {dilaton: 3}\n", ["unknown key(s) ['dilaton']", "depth"]),
        ("depth: {dilation: two}\n", ["depth.dilation", "must be an integer", "'two'"]),
        ("depth: {dilation: 0}\n", ["depth.dilation", "0"]),  # pipeline/params.py's range
        ("depth: {dilation: 100}\n", ["'depth.dilation' must be <= 64; got 100"]),  # the renderer's range
        ("depth: {image_size: 10000}\n", ["'depth.image_size' must be <= 8192; got 10000"]),
        ("depth: {mode: max}\n", ["depth.mode", "'max'"]),
        ("depth: {distance: 0}\n", ["depth.distance", "0"]),
        ("sample: {num_points: 0}\n", ["sample.num_points", "0"]),
        ("clip: {templates: []}\n", ["'clip.templates' is empty"]),
        ("clip: {templates: ['a {0} {1}']}\n", ["'clip.templates[0]' entry 'a {0} {1}' has 2 placeholders"]),
        # issue 22.1: accepted before (every class got the same text, so the same probability)
        ("clip: {templates: ['a photo']}\n", ["'clip.templates[0]' entry 'a photo' has no '{}' placeholder"]),
        ("clip: {templates: ['a {name}']}\n", ["'clip.templates[0]' entry 'a {name}'"]),
        ("pretrain: {seeds: []}\n", ["'pretrain.seeds' is empty"]),  # issue 22.7
    ],
)
def test_invalid_params_yaml_is_refused_not_ignored(files: dict[str, Path], text: str, named: list[str]) -> None:
    """The repository's params.yaml with one key broken, so that key (not a missing section) is named."""
    raw = yaml.safe_load(REPO_PARAMS)
    try:
        patch = yaml.safe_load(text)
    except yaml.YAMLError:
        patch = None
    if isinstance(patch, dict):
        for section, values in patch.items():
            raw[section].update(values)
        Path("params.yaml").write_text(yaml.safe_dump(raw))
    else:
        Path("params.yaml").write_text(text)
    for args in (
        ["classify", files["npy"], *LABELS, *TINY, "-q"],
        ["classify", files["npy"], "--dataset", "modelnet10", *TINY, "-q"],  # not "unknown dataset"
        ["render", files["npy"], "--out", "s.png", "-q"],
    ):
        line = one_error(run(*args))
        assert line.startswith("error: invalid params.yaml: "), (args, line)
        for word in named:
            assert word in line, (args, line)
    assert not Path("s.png").exists()


def test_a_duplicate_params_key_is_refused_by_the_cli_and_the_pipeline(files: dict[str, Path]) -> None:
    """Issue 22.2: ``depth.dilation`` written twice (2, then 8): ``render`` silently used 8 while ``dvc repro``
    refused the file. Now the one loader refuses it for both, naming the file, the key and the lines."""
    from pipeline.params import ParamsError, load_params

    lines = REPO_PARAMS.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("  dilation:"))
    lines.insert(at + 1, "  dilation: 8")
    Path("params.yaml").write_text("\n".join(lines) + "\n")
    want = f"has a duplicate key 'depth.dilation' at line {at + 2} (first at line {at + 1})"
    for args in (["render", files["npy"], "--out", "s.png", "-q"], ["classify", files["npy"], *LABELS, *TINY, "-q"]):
        line = one_error(run(*args))
        assert line.startswith("error: invalid params.yaml: ") and want in line, line
    assert not Path("s.png").exists()
    with pytest.raises(ParamsError, match=want.replace("(", r"\(").replace(")", r"\)")):
        load_params(Path("params.yaml"))  # what every stage (preflight first) calls


def test_params_that_are_a_folder_or_a_missing_explicit_file(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("params.yaml").mkdir()
    assert one_error(run("classify", files["npy"], *LABELS, *TINY, "-q")) == (
        "error: cannot read params.yaml: is a directory"
    )
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(tmp_path / "elsewhere.yaml"))
    assert one_error(run("render", files["npy"], "-q")) == (
        f"error: CLIP2POINT_PARAMS={tmp_path / 'elsewhere.yaml'}: no such file"
    )


def test_no_params_yaml_means_defaults(files: dict[str, Path]) -> None:
    res = run("classify", files["npy"], *LABELS, *TINY, "-q")
    assert res.exit_code == 0 and res.stderr == ""


def test_info_reports_an_invalid_params_yaml() -> None:
    raw = yaml.safe_load(REPO_PARAMS)
    raw["depth"]["dilaton"] = 3
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    res = run("info", "--json")
    assert res.exit_code == 0  # info is the diagnosis: it reports, classify/render refuse
    assert "unknown key(s) ['dilaton']" in json.loads(res.stdout)["params"]["error"]


def test_info_with_an_unreadable_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "models" / "pretrain").mkdir(parents=True)
    _deny(monkeypatch, tmp_path / "data" / "models" / "pretrain")
    res = run("info", "--json")
    assert res.exit_code == 0, res.output
    assert "unreadable" in json.loads(res.stdout)["weights"]["pretrained depth encoders"]


# ------------------------------------------------------------------------------------------ render output


@pytest.mark.parametrize(
    "out, message",
    [
        ("a_file/sheet.png", "--out {out}: {parent} is a file, not a folder"),
        ("a_file/deeper/sheet.png", "--out {out}: {parent} is a file, not a folder"),
        ("folder.png", "--out {out} is a folder; name a file"),
        ("sheet.jpg", "--out must name a .png file, not {out}"),
    ],
)
def test_render_refuses_an_unwritable_out_before_rendering(
    files: dict[str, Path], tmp_path: Path, out: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clip2point.render.depth as depth

    (tmp_path / "a_file").write_text("x")
    (tmp_path / "folder.png").mkdir()
    monkeypatch.setattr(depth, "render_depth", lambda *a, **k: pytest.fail("rendered before checking --out"))
    line = one_error(run("render", files["npy"], "--out", tmp_path / out))
    assert line == "error: " + message.format(out=tmp_path / out, parent=tmp_path / "a_file")


def test_render_creates_a_missing_out_folder(files: dict[str, Path], tmp_path: Path) -> None:
    res = run("render", files["npy"], "--out", tmp_path / "new" / "sub" / "s.png", "--size", "16", "-q")
    assert res.exit_code == 0 and res.output == ""
    assert (tmp_path / "new" / "sub" / "s.png").stat().st_size > 0


@pytest.mark.skipif(IS_ROOT, reason="permission bits do not apply to root")
def test_render_into_a_read_only_folder(files: dict[str, Path], tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = one_error(run("render", files["npy"], "--out", ro / "s.png", "--size", "16"))
        assert line.startswith(f"error: cannot write {ro / 's.png'}: permission denied")
    finally:
        ro.chmod(0o755)


def _failing_save(exc: BaseException):
    """A PIL ``Image.save`` that writes half a file, then fails with ``exc``."""

    def save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG partial")
        raise exc

    return save


@pytest.mark.parametrize(
    "exc, code, message",
    [
        (OSError(errno.ENOSPC, "No space left on device"), 1, "cannot write {out}: no space left on device"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_render_full_disk_or_ctrl_c_leaves_no_partial_png(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc, code: int, message: str
) -> None:
    from PIL import Image

    out = tmp_path / "out" / "s.png"
    monkeypatch.setattr(Image.Image, "save", _failing_save(exc))
    line = one_error(run("render", files["npy"], "--out", out, "--size", "16"), code=code)
    assert message.format(out=out) in line
    assert leftovers(out.parent) == []  # neither s.png nor the temporary file


def test_render_keeps_the_previous_png_on_failure(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    out = tmp_path / "s.png"
    out.write_bytes(b"previous sheet")
    monkeypatch.setattr(Image.Image, "save", _failing_save(OSError(errno.ENOSPC, "No space left on device")))
    one_error(run("render", files["npy"], "--out", out, "--size", "16"))
    assert out.read_bytes() == b"previous sheet" and leftovers(tmp_path) == ["s.png"]


# ------------------------------------------------------------------------------------------ classify output


def test_classify_ctrl_c_is_one_line_and_130(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import cli.classify as cls

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cls, "load_cloud", interrupted)
    assert one_error(run("classify", files["npy"], *LABELS, *TINY, "-q"), code=130) == "error: interrupted"


def test_classify_full_disk_on_stdout(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(typer, "echo", full)
    assert one_error(run("classify", files["npy"], *LABELS, *TINY, "-q")) == "error: no space left on device"


def test_classify_into_a_closed_pipe_is_silent(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    def closed(*a, **k):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(typer, "echo", closed)
    res = run("classify", files["npy"], *LABELS, *TINY, "-q")
    assert res.exit_code == 1 and res.stderr == ""


# ------------------------------------------------------------------------------------------ prepare


def _modelnet10_subset(base: Path, per_class: dict[str, int], classes: tuple[str, ...] | None = None) -> Path:
    """A ModelNet10 folder with ``per_class[split]`` empty .off files per class (``classes``: a subset)."""
    from clip2point.datasets import MODELNET10_CLASSES

    root = base / "ModelNet10"
    for c in classes or MODELNET10_CLASSES:
        for split, n in per_class.items():
            d = root / c / split
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (d / f"{c}_{i:04d}.off").touch()
    return root


def test_prepare_allow_incomplete_records_the_subset(tmp_path: Path) -> None:
    from pipeline.params import load_params

    _modelnet10_subset(tmp_path / "dl", {"train": 3, "test": 1})
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    res = run("prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params)
    assert res.exit_code == 1 and params.read_text() == REPO_PARAMS  # refused without the flag
    assert res.stderr.strip().splitlines()[-1].endswith("--allow-incomplete uses it as a recorded subset")
    res = run("prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params, "--allow-incomplete", "-q")
    assert res.exit_code == 0, res.output
    assert res.stderr.strip().splitlines() == [
        "modelnet10: subset: train 30 of 3,991",
        "modelnet10: subset: test 10 of 908",
    ]
    assert "subset: {train: [30, 3991], test: [10, 908]}" in res.stdout
    raw = yaml.safe_load(params.read_text())["data"]["benchmarks"]["modelnet10"]
    assert raw["subset"] == {"train": [30, 3991], "test": [10, 908]}
    entry = load_params(params).data.benchmark("modelnet10")
    assert entry.subset == {"train": [30, 3991], "test": [10, 908]}
    assert len(params.read_text().splitlines()) == len(REPO_PARAMS.splitlines()) + 1  # one line added


@pytest.mark.parametrize("replace", [[], ["--replace"]])
def test_prepare_refuses_a_name_that_collides_with_the_pretraining_pool(tmp_path: Path, replace: list[str]) -> None:
    """Issue 22.5: ``--name synth_pretrain`` wrote an entry that made ``dvc repro`` fail with "overlapping
    output"; refused now, with or without ``--replace``, before the check of the download."""
    _modelnet10_subset(tmp_path / "dl", {"train": 1, "test": 1})
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    line = one_error(run("prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params,
                         "--allow-incomplete", "-q", "--name", "synth_pretrain", *replace))  # fmt: skip
    assert line == ("error: --name synth_pretrain is the pre-training pool's name (data.pretrain.name): both "
                    "would write data/points/synth_pretrain.parquet; pick another --name")
    assert params.read_text() == REPO_PARAMS


def test_prepare_refuses_to_replace_an_existing_benchmark_without_replace(tmp_path: Path) -> None:
    """Issue 22.5: ``--name synth_benchmark`` silently replaced the shipped benchmark entry (rc 0)."""
    from pipeline.params import load_params

    _modelnet10_subset(tmp_path / "dl", {"train": 1, "test": 1})
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    args = ["prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params, "--allow-incomplete", "-q",
            "--name", "synth_benchmark"]  # fmt: skip
    line = one_error(run(*args))
    assert line == ("error: data.benchmarks.synth_benchmark 'synth_benchmark' already exists; pass --replace to "
                    "overwrite it, or --name another name")
    assert params.read_text() == REPO_PARAMS
    res = run(*args, "--replace")
    assert res.exit_code == 0, res.output
    assert load_params(params).data.benchmark("synth_benchmark").kind == "modelnet10"


def test_prepare_refuses_a_pretraining_set_named_like_a_benchmark(tmp_path: Path, monkeypatch) -> None:
    from clip2point import datasets
    from clip2point.io import SHAPENET_SYNSETS

    for synset in SHAPENET_SYNSETS:
        d = tmp_path / "dl" / synset / "m" / "models"
        d.mkdir(parents=True)
        (d / "model_normalized.obj").touch()
    info = dataclasses.replace(datasets.DATASETS["shapenetcore"], counts={datasets.TOTAL: len(SHAPENET_SYNSETS)})
    monkeypatch.setitem(datasets.DATASETS._entries, "shapenetcore", info)
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    line = one_error(run("prepare", "shapenetcore", "--root", tmp_path / "dl", "--params", params,
                         "--name", "synth_benchmark", "--replace", "-q"))  # fmt: skip
    assert line.startswith("error: --name synth_benchmark is the name of benchmark data.benchmarks.synth_benchmark")
    assert params.read_text() == REPO_PARAMS


def test_prepare_allow_incomplete_with_missing_classes(tmp_path: Path) -> None:
    _modelnet10_subset(tmp_path / "dl", {"train": 2, "test": 2}, classes=("chair", "table"))
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    res = run("prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params, "--allow-incomplete")
    assert res.exit_code == 0, res.output
    assert "modelnet10: subset: train 4 of 3,991" in res.stderr and "subset at" in res.stderr
    raw = yaml.safe_load(params.read_text())["data"]["benchmarks"]["modelnet10"]
    assert raw["subset"] == {"train": [4, 3991], "test": [4, 908]}


def test_prepare_allow_incomplete_still_refuses_an_empty_split(tmp_path: Path) -> None:
    _modelnet10_subset(tmp_path / "dl", {"train": 2})  # no test items at all
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)
    res = run("prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params, "--allow-incomplete")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "modelnet10: test: no items at all (a subset needs at least one per split)" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: modelnet10 at ")
    assert params.read_text() == REPO_PARAMS


def test_prepare_allow_incomplete_refuses_listed_files_that_are_absent(tmp_path: Path) -> None:
    """ShapeNet-55's reader lists what train.txt names: a subset must trim the lists, not delete files."""
    root = tmp_path / "ShapeNet55-34"
    (root / "shapenet_pc").mkdir(parents=True)
    (root / "ShapeNet-55").mkdir()
    (root / "ShapeNet-55" / "train.txt").write_text("02691156-a.npy\n02691156-b.npy\n")
    (root / "ShapeNet-55" / "test.txt").write_text("02691156-c.npy\n")
    for n in ("02691156-a", "02691156-c"):
        np.save(root / "shapenet_pc" / f"{n}.npy", np.zeros((8, 3), np.float32))
    res = run("prepare", "shapenet55", "--root", tmp_path, "--check-only", "--allow-incomplete")
    assert res.exit_code == 1
    assert "train: 1 listed files missing" in res.stderr and "02691156-b" in res.stderr


def test_prepare_check_only_subset_prints_and_writes_nothing(tmp_path: Path) -> None:
    _modelnet10_subset(tmp_path / "dl", {"train": 1, "test": 1})
    res = run("prepare", "modelnet10", "--root", tmp_path / "dl", "--check-only", "--allow-incomplete", "-q")
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == ["modelnet10: subset: train 10 of 3,991", "modelnet10: subset: test 10 of 908"]
    assert res.stdout == "" and leftovers(tmp_path) == ["dl"]


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "cannot read {params}: no such file or directory"),
        ("folder", "--params {params} is a folder, not a params file"),
        ("yaml", "invalid {params}: not valid YAML"),
        ("invalid", "invalid {params} (fix it first): unknown key(s) ['dilaton'] in 'depth'"),
    ],
)
def test_prepare_bad_params_file_is_refused_before_the_check(
    tmp_path: Path, setup: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clip2point import datasets

    _modelnet10_subset(tmp_path / "dl", {"train": 1, "test": 1})
    params = tmp_path / "p.yaml"
    if setup == "folder":
        params.mkdir()
    elif setup == "yaml":
        params.write_text("data: [\n")
    elif setup == "invalid":
        raw = yaml.safe_load(REPO_PARAMS)
        raw["depth"]["dilaton"] = 3
        params.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(datasets, "check_layout", lambda *a, **k: pytest.fail("checked the download"))
    line = one_error(run("prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params))
    assert message.format(params=params) in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["prepare", "imagenet", "--root", "."], "error: unknown dataset 'imagenet' (choose from modelnet40,"),
        (["prepare", "modelnet10", "--root", "a_file"], "error: --root a_file is a file, not a folder"),
        (["prepare", "modelnet10", "--root", "nowhere"], "error: --root nowhere does not exist; download modelnet10"),
        (["prepare", "modelnet10", "--root", ".", "--name", "my-set"], "error: --name must be letters, digits"),
        (["prepare", "modelnet10", "--root", ".", "--variant", "X"], "error: modelnet10 has no variants"),
        (["prepare", "scanobjectnn", "--root", ".", "--variant", "NOPE"], "error: unknown scanobjectnn variant 'NOPE'"),
        (["prepare", "modelnet10", "--root", ".", "--up-axis", "w"], "error: --up-axis must be one of y, z, x,"),
    ],
)  # fmt: skip
def test_prepare_bad_arguments_are_one_line(args: list[str], message: str) -> None:
    Path("a_file").write_text("x")
    assert one_error(run(*args)).startswith(message)


@pytest.mark.parametrize(
    "exc, code, message",
    [
        (KeyboardInterrupt(), 130, "error: interrupted"),
        (OSError(errno.ENOSPC, "No space left on device"), 1, "error: cannot write {params}: no space left on device"),
    ],
)  # fmt: skip
def test_prepare_interrupted_or_full_disk_leaves_params_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException, code: int, message: str
) -> None:
    import shutil

    from clip2point.datasets import dataset_info

    _modelnet10_subset(tmp_path / "dl", {"train": 1, "test": 1})
    monkeypatch.setitem(
        __import__("clip2point.datasets", fromlist=["DATASETS"]).DATASETS._entries,
        "modelnet10",
        dataclasses.replace(dataset_info("modelnet10"), counts={"train": 10, "test": 10}),
    )
    params = tmp_path / "params.yaml"
    params.write_text(REPO_PARAMS)

    def fail(*a, **k):  # the new text is written to the temporary file; then the failure
        raise exc

    monkeypatch.setattr(shutil, "copymode", fail)
    line = one_error(run("prepare", "modelnet10", "--root", tmp_path / "dl", "--params", params, "-q"), code=code)
    assert line.startswith(message.format(params=params))
    assert params.read_text() == REPO_PARAMS
    assert leftovers(tmp_path) == ["dl", "params.yaml"]  # no temporary file left


def test_prepare_unreadable_download_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "dl" / "ModelNet10"
    root.mkdir(parents=True)
    _deny(monkeypatch, root)
    line = one_error(run("prepare", "modelnet10", "--root", tmp_path / "dl", "--check-only"))
    assert line.startswith(f"error: cannot read the download under --root {tmp_path / 'dl'}: {root}")
    assert line.endswith(": permission denied")


# ------------------------------------------------------------------------------------------ internal errors


def test_a_bug_is_still_an_internal_error(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """OS errors are user errors; anything else stays exit 2, so real bugs are not hidden."""
    import cli.classify as cls

    def bug(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cls, "load_cloud", bug)
    res = run("classify", files["npy"], *LABELS, *TINY, "-q")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "internal error: ZeroDivisionError: division by zero (rerun with --debug for the traceback)"
    ]


# ------------------------------------------------------------------ issue 12: the released DPA checkpoint


@pytest.mark.parametrize("key", ["pre_model.proj", "ori_model.ln_post.bias", "adapter2.fusion_ratio"])
def test_released_dpa_checkpoint_with_a_missing_key(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    import torch

    paths = released_dpa_files(tmp_path, monkeypatch)
    state = torch.load(paths["dpa"], weights_only=True)
    del state[key]
    torch.save({f"module.{k}": v for k, v in state.items()}, paths["dpa"])  # DataParallel prefix: still found
    line = one_error(run("classify", files["npy"], *released_args(paths)))
    assert f"released DPA checkpoint {paths['dpa']}" in line and f"1 missing key(s): {key}" in line


def test_released_dpa_checkpoint_needs_quick_gelu(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = released_dpa_files(tmp_path, monkeypatch)
    args = ["--checkpoint", paths["dpa"], "--clip", "c2p-tiny", "--pretrained", paths["clip"]]  # GELU
    line = one_error(run("classify", files["npy"], *args))
    assert "needs CLIP ViT-B/32 with QuickGELU" in line and "'c2p-tiny' uses GELU" in line
    assert "--clip ViT-B-32-quickgelu" in line


def test_released_dpa_checkpoint_option_conflicts(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = released_dpa_files(tmp_path, monkeypatch)
    line = one_error(run("classify", files["npy"], *released_args(paths), "--views", "6"))
    assert "trained on view set 'pretrain10'; drop --views" in line
    line = one_error(run("classify", files["npy"], *released_args(paths), "--encoder", paths["dpa"]))
    assert "--encoder does not apply to the released DPA checkpoint" in line
    import copy

    import open_clip
    from open_clip import factory

    cfg = copy.deepcopy(open_clip.get_model_config("c2p-mini"))
    monkeypatch.setitem(factory._MODEL_CONFIGS, "c2p-mini-quickgelu", {**cfg, "quick_gelu": True})
    line = one_error(run("classify", files["npy"], "--checkpoint", paths["dpa"], "--clip", "c2p-mini-quickgelu"))
    assert "does not fit CLIP 'c2p-mini-quickgelu'" in line and "pre_model.class_embedding (48,) vs (192,)" in line
    assert "pass --clip ViT-B-32-quickgelu" in line and len(line) < 400


# ------------------------------------------------------------------------------------------ issue 22


@pytest.mark.parametrize("exc", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to "
                 "allocate 2684354560 bytes."),
    # torch 2.x under `ulimit -v 6000000` (measured): the words of a real failed allocation
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                 "tried to allocate 2684354564 bytes. Error code 12 (Cannot allocate memory)"),
])
def test_render_out_of_memory_names_the_size_asked_for(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    """Issue 22.10: ``render --size 8192`` under a memory limit said "internal error: MemoryError" (rc 2)."""
    import clip2point.render.depth as depth

    def alloc(*a, **k):
        raise exc

    monkeypatch.setattr(depth, "render_depth", alloc)
    line = one_error(run("render", files["npy"], "--size", "8192", "--out", "s.png"))
    assert line.startswith("error: not enough memory for 10 depth views of 8192x8192 pixels (--size 8192)")
    assert line.endswith("; try a smaller --size")
    assert not Path("s.png").exists()


def test_an_allocation_failure_anywhere_is_a_user_error_not_a_bug(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import bundle

    def alloc(*a, **k):
        raise MemoryError

    monkeypatch.setattr(bundle, "classify_clouds", alloc)
    monkeypatch.setattr("cli.classify.classify_clouds", alloc)
    assert one_error(run("classify", files["npy"], *LABELS, *TINY, "-q")) == (
        "error: not enough memory for this command")


@pytest.mark.parametrize("key", ["loop", "fifo", "noise_stl"])
def test_render_of_an_input_that_is_no_file_or_no_mesh_is_one_line(files: dict[str, Path], key: str) -> None:
    line = one_error(run("render", files[key], "--out", "s.png"))
    assert str(files[key]) in line and "no such file" not in line and "empty" not in line
    assert not Path("s.png").exists()


@pytest.mark.parametrize("opt", ["--checkpoint", "--encoder"])
def test_a_fifo_or_a_symlink_loop_as_checkpoint_is_named_not_not_found(files: dict[str, Path], opt: str) -> None:
    """Issue 22.15: a FIFO as ``--checkpoint`` was "checkpoint not found" (and torch.load would block on it)."""
    line = one_error(run("classify", files["npy"], *LABELS, *TINY, opt, files["fifo"], "-q"))
    assert line.endswith(f"{files['fifo']} is not a regular file (a FIFO)") and "not found" not in line
    line = one_error(run("classify", files["npy"], *LABELS, *TINY, opt, files["loop"], "-q"))
    assert line.endswith(f"{files['loop']} is a symlink loop (too many levels of symbolic links)")


@pytest.mark.parametrize(("labels", "where"), [
    ("chair,,table", "item 2 of 3"), ("chair,table,", "item 3 of 3"), (",chair", "item 1 of 2"),
    ("chair, ,table", "item 2 of 3"),
])
def test_an_empty_label_is_refused(files: dict[str, Path], labels: str, where: str) -> None:
    """Issue 22.15: ``--labels "chair,,table"`` was accepted although docs/cli.md calls empty labels errors."""
    line = one_error(run("classify", files["npy"], "--labels", labels, *TINY, "-q"))
    assert line == f"error: --labels {labels!r} has an empty label ({where}); drop the extra comma"


def test_no_progress_bar_fragments_when_stderr_is_not_a_terminal(files: dict[str, Path]) -> None:
    """Issue 22.15: a bar's carriage-return fragments ended up in a log when stderr was a file or a pipe."""
    res = run("classify", files["npy"], files["off"], files["npy"], *LABELS, *TINY)  # no -q: notes come
    assert res.exit_code == 0, res.output
    assert "\r" not in res.stderr and "file/s" not in res.stderr and "%|" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("model: ") and lines[-1].startswith("classified 3 of 3 file(s)")


def test_a_terminal_still_gets_a_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from cli import _common

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    items = [1, 2, 3]
    bar = _common.progress(items, quiet=False, desc="x")
    assert bar is not items and list(bar) == items
    assert _common.progress(items, quiet=True, desc="x") is items


def test_prepare_help_shows_the_subset_record_whole() -> None:
    """Issue 22.15: ``prepare --help`` printed ``subset: {split: }.`` (rich markup ate ``[found, expected]``)."""
    res = run("prepare", "--help")
    assert res.exit_code == 0
    text = " ".join(res.output.replace("│", " ").split())
    assert "subset: {split: [found, expected]}." in text and "\\[" not in text

