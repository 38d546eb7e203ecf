"""`make gpu-smoke` in its CPU form: every section runs (or says why not) and the checks hold, so the script
a person with a GPU for ten minutes runs cannot rot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_smoke_runs_on_cpu_and_reports_every_section(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "benchmarks" / "gpu_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    out = tmp_path / "smoke.json"
    rc = smoke.main(["--device", "cpu", "--out", str(out), "--budget-s", "120"])
    report = json.loads(out.read_text())
    assert rc == 0, report
    assert set(report) == {"versions", "distributed", "render", "pretrain", "syncs", "determinism", "cpu_vs_gpu"}
    assert report["distributed"]["ok"] and report["distributed"]["backend"] == "gloo"
    for p in ("fp32", "tf32", "bf16"):
        row = report["pretrain"][p]
        assert row["finite"] and row["samples_per_s"] > 0 and set(row["ms_per_phase"]) == {
            "data_wait", "render", "forward_backward", "optimizer"}
    assert report["syncs"]["ok"] and all(v == 0 for v in report["syncs"]["syncs_per_nonlogging_step"].values())
    assert report["determinism"]["default"]["resume_max_diff"] < 1e-5
    assert report["render"] == {"skipped": "no CUDA device", "seconds": report["render"]["seconds"]}
    table = capsys.readouterr().out
    assert "gpu_smoke: passed" in table and "pretrain" in table


def test_gpu_smoke_fails_on_a_failed_check(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_smoke2", ROOT / "benchmarks" / "gpu_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    monkeypatch.setattr(smoke, "pretrain_throughput", lambda dev, tiny: {"fp32": {"finite": False}, "ok": False})
    for name in ("distributed", "syncs", "determinism"):
        monkeypatch.setattr(smoke, name, lambda *a: {"ok": True})
    out = tmp_path / "smoke.json"
    assert smoke.main(["--device", "cpu", "--out", str(out)]) == 1
    assert json.loads(out.read_text())["pretrain"]["ok"] is False
