"""The report stage turns metrics files into the paper-shaped tables and figures."""

import json
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def _write(root, key, obj):
    """A stage's outputs in the real layout: its details, and the headline metrics derived from them."""
    from pipeline.headline import headline

    for p, o in ((root / "results" / key / "details.json", obj), (root / "metrics" / f"{key}.json",
                                                                   headline(key, obj))):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(o))


def _row(accs: list[float]) -> dict:
    import numpy as np

    return {"acc": float(np.mean(accs)), "acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "n_seeds": len(accs), "mean_class_acc": float(np.mean(accs)),
            "seeds": {f"s{i}": {"acc": a} for i, a in enumerate(accs)}}


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path))
    return tmp_path


def test_report_tables_from_metrics(run_dir):
    from pipeline.run_report import build_report

    params = load_params(ROOT / "params.yaml")
    ds = params.data.benchmarks[0].name
    _write(run_dir, "clip_bootstrap", {"mode": "bootstrap", "model": "c2p-mini", "zeroshot": {
        f"{ds}/test": {"n": 200, "chance": 0.1, "rgb_per_view": 0.42, "rgb_multi_view": 0.56}}})
    _write(run_dir, f"zeroshot/{ds}", {"n": 200, "n_views": 6, "chance": 0.1, "rows": {
        "without_pretraining": _row([0.41]), "with_pretraining": _row([0.52, 0.54, 0.55])}})
    _write(run_dir, f"fewshot/{ds}", {"n_test": 200, "n_views": 10, "chance": 0.1, "k_shot": 16, "rows": {
        "global_view@intra_cross": _row([0.80, 0.82, 0.81]), "inter_view@intra_cross": _row([0.7, 0.72, 0.71]),
        "dual_path@clip+intra_cross": _row([0.83, 0.84, 0.85]), "global_view@clip": _row([0.6, 0.62, 0.61])}})
    _write(run_dir, "pretrain/intra_cross-seed0", {
        "val_zeroshot_before": 0.4, "val_zeroshot_best": 0.54, "best_step": 36, "sigma_init": 1.0,
        "sigma_final": 1.43, "wall_s": 30.0, "val_zeroshot_curve": [{"step": 0, "val_zeroshot": 0.4},
                                                                    {"step": 12, "val_zeroshot": 0.5}],
        "sigma_trajectory": [[1, 1.0], [12, 1.2]]})
    out = run_dir / "report"
    out.mkdir()
    text = build_report(params, out)
    assert "| synth_benchmark/test | 42.00 | 56.00 | 41.00 | 10.00 |" in text  # depth from the zeroshot stage
    assert "53.67 ± 1.53 (n=3)" in text  # mean ± sample std of 0.52, 0.54, 0.55
    assert "| single path | 71.00 ± 1.00 (n=3) | 81.00 ± 1.00 (n=3) |" in text
    assert "1.000 → 1.430" in text
    assert "| the miniature CLIP classifies RGB renders well above chance | checked | yes |" in text
    for png in ("zeroshot_synth_benchmark.png", "fewshot_synth_benchmark.png", "pretrain_curves.png"):
        assert (out / png).stat().st_size > 1000


def test_report_stage_without_metrics_still_writes(run_dir, monkeypatch):
    from stages import report

    monkeypatch.setenv("CLIP2POINT_PARAMS", str(ROOT / "params.yaml"))
    assert report.main([]) == 0
    text = (run_dir / "report" / "report.md").read_text()
    assert "no `clip_bootstrap` metrics" in text


def test_setting_describes_real_datasets_subsets_and_loaded_weights(run_dir):
    """Regression (issue 10): the Setting section described the synthetic pools for real datasets, and said a
    loaded CLIP was "trained"."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    from pipeline.params import params_from_dict
    from pipeline.run_report import build_report

    raw = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    raw["data"]["benchmarks"] = {"modelnet40": {"kind": "modelnet40", "root": "/data/mn40", "up_axis": "z",
                                                "subset": {"train": [80, 9843], "test": [40, 2468]}}}
    params = params_from_dict(raw)
    tbl = paths.points_table("modelnet40")
    tbl.parent.mkdir(parents=True)
    pq.write_table(pa.table({"split": ["train"] * 80 + ["test"] * 40}), tbl)
    _write(run_dir, "clip_bootstrap", {"mode": "pointer", "model": "ViT-B-32", "zeroshot": {}})
    out = run_dir / "report"
    out.mkdir()
    text = build_report(params, out)
    assert "Benchmark `modelnet40`: `modelnet40` from `/data/mn40`, z-up; samples test 40, train 80" in text
    assert "test: subset: 40 of 2,468; train: subset: 80 of 9,843" in text
    assert "procedural" not in text.split("## The CLIP")[0]
    assert "loaded from the configured weights (not trained here)" in text and "trained in" not in text
