"""The CI sanity checks: margins come from the spread, failures name the finding and the numbers."""

import json
import math

import pytest

from pipeline import findings, paths


def _write(root, key, obj):
    """A stage's outputs in the real layout: its details, and the headline metrics derived from them."""
    from pipeline.headline import headline

    for p, o in ((root / "results" / key / "details.json", obj), (root / "metrics" / f"{key}.json",
                                                                   headline(key, obj))):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(o))


def _row(accs):
    m = sum(accs) / len(accs)
    s = math.sqrt(sum((a - m) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
    return {"acc": m, "acc_std": s, "n_seeds": len(accs)}


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path))
    return tmp_path


def test_binomial_margin_is_three_standard_errors():
    assert findings.binomial_margin(0.1, 100) == pytest.approx(3 * math.sqrt(0.1 * 0.9 / 100))


def test_diff_margin_from_seed_spread():
    a, b = _row([0.5, 0.6, 0.7]), _row([0.3])
    expected = 2 * math.sqrt(a["acc_std"] ** 2 / 3 + 0.0)
    assert findings.diff_margin(a, b) == pytest.approx(expected)


def test_pretraining_finding_passes_and_fails_by_margin(data_root):
    rows = {"without_pretraining": _row([0.30]), "with_pretraining": _row([0.50, 0.52, 0.48])}
    _write(data_root, "zeroshot/ds", {"rows": rows})
    (f,) = [x for x in findings.evaluate("ds", "pool") if x.key == "zeroshot_pretraining_helps"]
    assert f.passed and f.checked
    # same mean gain, but a seed spread so wide that the gain is inside two standard errors
    rows["with_pretraining"] = _row([0.05, 0.50, 0.95])
    _write(data_root, "zeroshot/ds", {"rows": rows})
    (f,) = [x for x in findings.evaluate("ds", "pool") if x.key == "zeroshot_pretraining_helps"]
    assert not f.passed
    assert "with_pretraining" in f.detail and "margin" in f.detail


def test_rgb_above_chance(data_root):
    _write(data_root, "clip_bootstrap",
           {"zeroshot": {"ds/test": {"rgb_multi_view": 0.13, "chance": 0.1, "n": 100}}})
    (f,) = [x for x in findings.evaluate("ds", "pool") if x.key == "clip_rgb_above_chance"]
    assert not f.passed  # 13% on 100 samples is within 3 SE (9%) of 10% chance
    _write(data_root, "clip_bootstrap",
           {"zeroshot": {"ds/test": {"rgb_multi_view": 0.45, "chance": 0.1, "n": 100}}})
    (f,) = [x for x in findings.evaluate("ds", "pool") if x.key == "clip_rgb_above_chance"]
    assert f.passed


def test_strict_main_fails_with_message(data_root, monkeypatch, capsys, tmp_path):
    params = tmp_path / "params.yaml"
    from pathlib import Path

    params.write_text((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(params))
    name = "synth_benchmark"
    _write(data_root, f"zeroshot/{name}",
           {"rows": {"without_pretraining": _row([0.40]), "with_pretraining": _row([0.30, 0.31, 0.29])}})
    assert findings.main(["--strict"]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "with pre-training above without" in err
    assert findings.main([]) == 0


def test_no_metrics_is_a_failure_in_strict_mode(data_root, monkeypatch, tmp_path):
    from pathlib import Path

    params = tmp_path / "params.yaml"
    params.write_text((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(params))
    assert findings.main(["--strict"]) == 1


def test_compare_profiles_puts_two_runs_side_by_side(tmp_path, monkeypatch, capsys):
    """Each column is its own run's numbers and findings (the released-profile comparison of issue 12)."""
    from pathlib import Path

    from tools import compare_profiles

    monkeypatch.setenv("CLIP2POINT_PARAMS", str(Path(__file__).resolve().parents[1] / "params.yaml"))
    before = paths.data_root()
    runs = {}
    for name, with_acc in (("a", [0.50, 0.52, 0.48]), ("b", [0.31, 0.29, 0.30])):
        root = tmp_path / name
        _write(root, "zeroshot/synth_benchmark",
               {"rows": {"without_pretraining": _row([0.30]), "with_pretraining": _row(with_acc)}})
        runs[name] = root / "metrics"
    assert compare_profiles.main([f"a={runs['a']}", f"b={runs['b']}"]) == 0
    out = capsys.readouterr().out
    assert "| zero-shot, CLIP2Point (w/ pre-training) | 50.00 ± 2.00 | 30.00 ± 1.00 |" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("| zero-shot: with pre-training above without"))
    assert line.count("yes:") == 1 and line.count("no:") == 1
    assert paths.data_root() == before  # the data root is restored after reading each run
    assert compare_profiles.main(["a=/no/such"]) == 1


def _write_predictions(root, key, correct: dict[str, list[list[bool]]], seeds: dict[str, list[int]] | None = None):
    """``predictions.parquet`` in the real schema: per method and run, label 0 and pred 0 (right) or 1."""
    import numpy as np
    import pyarrow.parquet as pq

    from pipeline.results import prediction_rows, predictions_table

    rows = []
    for method, runs in correct.items():
        for i, run in enumerate(runs):
            n = len(run)
            ids = [f"s{j:04d}" for j in range(n)][::-1]  # not in id order: the reader must align by id
            ok = np.asarray(run[::-1])
            seed = (seeds or {}).get(method, list(range(len(runs))))[i]
            rows += prediction_rows(ids, np.zeros(n, int), np.where(ok, 0, 1), np.ones(n), method, seed, method,
                                    "ds", ["a", "b"])
    f = root / "results" / key / "predictions.parquet"
    f.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(predictions_table(rows), f)


def test_paired_finding_uses_the_predictions(data_root):
    """Paired on the same shapes: a gain of 12 of 400 shapes, every run agreeing, is resolved (the unpaired
    margin on these rows would not), and the finding carries effect, interval, paper effect and power."""
    import numpy as np

    from clip2point.stats import paired_bootstrap, power

    rng = np.random.default_rng(0)
    base = rng.random(400) < 0.5
    better = base.copy()
    better[np.flatnonzero(~base)[:12]] = True
    rows = {"without_pretraining": _row([base.mean()]),
            "with_pretraining": {**_row([better.mean()] * 3), "acc_std": 0.03}}  # a spread that hides 3 points
    _write(data_root, "zeroshot/ds", {"rows": rows})
    (unpaired,) = [x for x in findings.evaluate("ds", "pool") if x.key == "zeroshot_pretraining_helps"]
    assert not unpaired.passed and unpaired.effect is None
    _write_predictions(data_root, "zeroshot/ds", {"without_pretraining": [base.tolist()],
                                                  "with_pretraining": [better.tolist()] * 3})
    (f,) = [x for x in findings.evaluate("ds", "pool") if x.key == "zeroshot_pretraining_helps"]
    assert f.passed and f.effect == pytest.approx(12 / 400) and f.lo > 0
    d = paired_bootstrap(np.stack([better] * 3), base[None], n_boot=findings.N_BOOT, seed=0)
    assert (f.lo, f.hi) == pytest.approx((d.lo, d.hi))
    assert f.paper_effect == pytest.approx((49.38 - 29.71) / 100)
    assert f.power == pytest.approx(power(f.paper_effect, d.se))
    assert "paired difference 3.0%" in f.detail and "400 shapes × 3 / 1 runs" in f.detail


def test_paired_at_least_fails_only_when_significantly_worse(data_root):
    import numpy as np

    from pipeline.keys import DPA, RowKey

    rng = np.random.default_rng(1)
    single = rng.random(300) < 0.7
    worse = single.copy()
    worse[np.flatnonzero(single)[:40]] = False  # 40 of 300 shapes lost: significantly worse
    dpa, gv = str(DPA), str(RowKey("global_view", ("intra_cross",)))
    metrics = {"rows": {dpa: _row([worse.mean()]), gv: _row([single.mean()])}, "n_test": 300, "chance": 0.5}
    _write(data_root, "fewshot/ds", metrics)
    _write_predictions(data_root, "fewshot/ds", {dpa: [worse.tolist()], gv: [single.tolist()]})
    (f,) = [x for x in findings.evaluate("ds", "pool") if x.key == "fewshot_dpa_vs_single"]
    assert not f.passed and f.hi < 0
    _write_predictions(data_root, "fewshot/ds", {dpa: [single.tolist()], gv: [single.tolist()]})
    (f,) = [x for x in findings.evaluate("ds", "pool") if x.key == "fewshot_dpa_vs_single"]
    assert f.passed and f.effect == 0.0


def test_predictions_of_other_shapes_are_refused():
    rows = [{"method": "m", "seed": 0, "id": "a", "label": 0, "pred": 0},
            {"method": "m", "seed": 1, "id": "b", "label": 0, "pred": 0}]
    with pytest.raises(ValueError, match="predictions of 'm' seed 1 score other shapes than its first run"):
        findings.correct_by_row(rows)


def test_single_runs_get_the_exact_mcnemar_p(data_root):
    import numpy as np

    from clip2point.stats import mcnemar_exact

    rng = np.random.default_rng(2)
    a = rng.random(200) < 0.6
    b = a.copy()
    b[:30] = rng.random(30) < 0.3
    rows = {"without_pretraining": _row([b.mean()]), "with_pretraining": _row([a.mean()])}
    _write(data_root, "zeroshot/ds", {"rows": rows})
    _write_predictions(data_root, "zeroshot/ds",
                       {"without_pretraining": [b.tolist()], "with_pretraining": [a.tolist()]})
    (f,) = [x for x in findings.evaluate("ds", "pool") if x.key == "zeroshot_pretraining_helps"]
    assert f.p == pytest.approx(mcnemar_exact(a, b))
