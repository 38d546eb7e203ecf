"""tools.study: the learning-curve study's config, budgets, knee and tables (the runs themselves are the real
``pretrain`` stage, tested in test_stage_pretrain.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import study


def _cfg(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(text)
    return p


def test_config_reads_and_sorts_budgets(tmp_path: Path) -> None:
    c = study.load_config(_cfg(tmp_path, "variants: [intra_cross]\nseeds: [0, 1]\nepochs: [16, 4]\n"))
    assert c.epochs == (4, 16) and c.seeds == (0, 1) and c.evals_per_run == 8 and c.knee_fraction == 0.8


@pytest.mark.parametrize("text,message", [
    ("variants: [intra]\nseeds: [0]\nepochs: [4]\n", "'variants' must be a non-empty list of"),
    ("variants: [intra_cross]\nseeds: [0]\nepochs: [0]\n", "'epochs' must be a non-empty list of integers >= 1"),
    ("variants: [intra_cross]\nseeds: [0, 0]\nepochs: [4]\n", "'seeds' lists a value twice"),
    ("variants: [intra_cross]\nseeds: [0]\nepochs: [4]\nknee_fraction: 2\n", "'knee_fraction' must be in (0, 1]"),
    ("variants: [intra_cross]\nseeds: [0]\nepochs: [4]\nepoch: 3\n", "unknown key(s) ['epoch']"),
    ("[1, 2]\n", "must hold a mapping"),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    p = _cfg(tmp_path, text)
    with pytest.raises(SystemExit) as e:
        study.load_config(p)
    assert message in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_eval_cadence_and_run_params() -> None:
    assert [study.eval_every(e, 8) for e in (4, 8, 16, 128)] == [1, 1, 2, 16]
    base = {"pretrain": {"epochs": 4, "eval_every": 1, "seeds": [0, 1, 2], "variants": ["a", "b"]}, "x": 1}
    got = study.run_params(base, 32, 8, "intra_cross", 2)
    assert got["pretrain"] == {"epochs": 32, "eval_every": 4, "seeds": [2], "variants": ["intra_cross"]}
    assert base["pretrain"]["epochs"] == 4  # the base profile is not modified


def test_knee_is_the_smallest_budget_reaching_the_fraction() -> None:
    assert study.knee([4, 8, 16, 32], [0.10, 0.17, 0.20, 0.19], 0.8) == 8  # 0.8 * 0.20 = 0.16
    assert study.knee([32, 4, 16, 8], [0.19, 0.10, 0.20, 0.15], 0.8) == 16  # order of the input does not matter
    assert study.knee([4, 8], [-0.01, 0.0], 0.8) is None


def test_workspace_links_the_dags_inputs_and_refuses_missing_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("shards", "models/clip"):
        (data / name).mkdir(parents=True)
    with pytest.raises(SystemExit, match="image_features is missing; build the DAG's inputs first"):
        study.workspace(tmp_path / "study", 8, data)
    (data / "image_features").mkdir()
    ws = study.workspace(tmp_path / "study", 8, data)
    assert ws.name == "e0008"
    assert (ws / "models" / "clip").resolve() == (data / "models" / "clip").resolve()
    assert not (ws / "models").is_symlink()  # the study's encoders never land in the DAG's models/pretrain


def _details(root: Path, e: int, v: str, s: int, curve: list[tuple[int, float]], best_step: int) -> None:
    p = study.details_path(root / f"e{e:04d}", v, s)
    p.parent.mkdir(parents=True)
    acc = dict(curve)
    p.write_text(json.dumps({"steps": curve[-1][0], "val_zeroshot_best": acc[best_step], "best_step": best_step,
                             "val_zeroshot_before": curve[0][1],
                             "val_zeroshot_curve": [{"step": a, "val_zeroshot": b} for a, b in curve]}))


def test_collect_tabulates_seeds_and_finds_the_knee(tmp_path: Path) -> None:
    cfg = study.StudyConfig(("intra_cross",), (0, 1), (4, 8), 8, 0.8)
    _details(tmp_path, 4, "intra_cross", 0, [(0, 0.3), (24, 0.40), (48, 0.45)], 48)
    _details(tmp_path, 4, "intra_cross", 1, [(0, 0.3), (24, 0.42), (48, 0.41)], 24)
    _details(tmp_path, 8, "intra_cross", 0, [(0, 0.3), (48, 0.50), (96, 0.49)], 48)
    s = study.collect(tmp_path, cfg)
    r4, r8 = s["table"]["intra_cross"]
    assert (r4["n_seeds"], r8["n_seeds"]) == (2, 1)
    assert r4["best_mean"] == pytest.approx((0.45 + 0.42) / 2)
    assert r4["gain_mean"] == pytest.approx((0.45 + 0.42) / 2 - 0.3)
    assert r4["selected_last"] == 1 and r8["selected_last"] == 0
    # gains 0.135 and 0.20: 0.135 < 0.8 * 0.20, so the knee is the 8-epoch budget
    assert s["knee"]["intra_cross"] == 8
    md = study.markdown(s)
    assert "## intra_cross (knee: 8 epochs)" in md and "43.50 ± 2.12" in md
    study.write_outputs(tmp_path, s)
    assert json.loads((tmp_path / "study.json").read_text())["knee"] == {"intra_cross": 8}
    assert (tmp_path / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_previous_runs_fill_what_this_root_lacks_and_are_not_rerun(tmp_path: Path) -> None:
    cfg = study.StudyConfig(("intra_cross",), (0, 1), (4, 8), 8, 0.8)
    old_root = tmp_path / "old"
    _details(old_root, 4, "intra_cross", 0, [(0, 0.3), (48, 0.40)], 48)
    _details(old_root, 4, "intra_cross", 1, [(0, 0.3), (48, 0.44)], 48)
    _details(old_root, 16, "intra_cross", 0, [(0, 0.3), (48, 0.60)], 48)  # a budget this config does not ask for
    study.write_outputs(old_root, study.collect(old_root, study.StudyConfig(("intra_cross",), (0, 1), (4, 16), 8, 0.8)))
    prev = study.previous_runs(old_root / "study.json", cfg)
    assert sorted(prev) == [(4, "intra_cross", 0), (4, "intra_cross", 1)]
    new_root = tmp_path / "new"
    _details(new_root, 4, "intra_cross", 1, [(0, 0.3), (48, 0.50)], 48)  # measured again here: this one counts
    _details(new_root, 8, "intra_cross", 0, [(0, 0.3), (96, 0.55)], 96)
    s = study.collect(new_root, cfg, prev)
    r4, r8 = s["table"]["intra_cross"]
    assert r4["n_seeds"] == 2 and r4["best_mean"] == pytest.approx((0.40 + 0.50) / 2)
    assert [r.get("source") for r in s["runs"] if r["epochs"] == 4] == ["previous", None]
    assert r8["n_seeds"] == 1
    with pytest.raises(SystemExit, match=r"cannot read previous runs from .*nope\.json"):
        study.previous_runs(tmp_path / "nope.json", cfg)


def test_report_quotes_the_committed_study_and_marks_this_runs_budget(tmp_path: Path, monkeypatch) -> None:
    from pipeline import paths, run_report
    from pipeline.params import load_params

    params = load_params("params.yaml")
    cfg = study.StudyConfig(("intra_cross",), (0,), (4, params.pretrain.epochs), 8, 0.8)
    for e in cfg.epochs:
        _details(tmp_path / "runs", e, "intra_cross", 0, [(0, 0.3), (e * 12, 0.3 + e / 100)], e * 12)
    s = study.collect(tmp_path / "runs", cfg)
    study.write_outputs(tmp_path, s)
    monkeypatch.setattr(paths, "study_summary", lambda: tmp_path / "study.json")
    out = tmp_path / "report"
    out.mkdir()
    md = "\n".join(run_report._study_section(params, out))
    assert f"| intra_cross | {params.pretrain.epochs} ← this run |" in md
    assert "| intra_cross | 4 |" in md and "knee" in md.lower()
    assert (out / "learning_curve.png").is_file()
    monkeypatch.setattr(paths, "study_summary", lambda: tmp_path / "absent.json")
    assert run_report._study_section(params, out) == []
