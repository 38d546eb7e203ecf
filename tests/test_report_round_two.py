"""Issue 22, items 16 and 17, on a finished run fabricated in the real layout (every file where its stage
writes it, through the stages' own writers): the report has no empty table and no ``None`` / ``nan`` cell,
and ``dvc metrics`` sees a few dozen headline numbers while the details live in declared plain outputs."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import paths
from pipeline.adapter_grid import GRID
from pipeline.artifacts import write_json
from pipeline.family import FAMILY, row_key
from pipeline.headline import HEADLINE_LIMIT, headline
from pipeline.params import load_params
from pipeline.results import write_outputs
from pipeline.zeroshot_table import table_rows

ROOT = Path(__file__).resolve().parents[1]
DETAIL_KEYS = {"per_class_acc", "seeds", "val_curve", "val_zeroshot_curve", "sigma_trajectory", "findings", "protocol"}


def _row(i: int, classes: list[str], seeds: list[str], **extra: Any) -> dict[str, Any]:
    accs = [0.4 + 0.01 * i + 0.02 * k for k in range(len(seeds))]
    mean = sum(accs) / len(accs)
    return {**extra, "acc": mean, "acc_std": 0.02, "mean_class_acc": mean, "mean_class_acc_std": 0.02,
            "n_seeds": len(seeds), "per_class_acc": {c: mean for c in classes},
            "seeds": {s: {"acc": a, "mean_class_acc": a} for s, a in zip(seeds, accs, strict=True)}}


@pytest.fixture
def finished_run(tmp_path, monkeypatch):
    """Every stage's outputs of the default params, as a finished ``dvc repro`` leaves them."""
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "data"))
    params = load_params(ROOT / "params.yaml")
    classes = list(params.synth.classes)
    pool, seeds = params.data.pretrain.name, list(params.pretrain.seeds)
    rgb = {"n": 100, "chance": 1 / len(classes), "rgb_per_view": 0.41, "rgb_multi_view": 0.52}
    boot = {"mode": "bootstrap", "model": params.clip.model, "steps": 620, "val_rgb_best_per_view": 0.42,
            "best_step": 620, "val_curve": [{"step": s, "val_rgb_per_view": 0.4, "val_rgb_multi_view": 0.5}
                                            for s in (62, 124)], "final_loss": 2.7,
            "zeroshot": {f"{pool}/val": {**rgb, "skipped": 0}}}  # skipped: 0, as the committed run has it
    write_json(paths.details_file("clip_bootstrap"), boot)
    write_json(paths.metrics_file("clip_bootstrap"), headline("clip_bootstrap", boot))
    for variant, seed in itertools.product(params.pretrain.variants, seeds):
        key = paths.pretrain_key(variant, seed)
        m = {"variant": variant, "seed": seed, "steps": 48, "val_zeroshot_before": 0.41, "val_zeroshot_best": 0.5,
             "best_step": 36, "val_zeroshot_curve": [{"step": 0, "val_zeroshot": 0.41},
                                                     {"step": 36, "val_zeroshot": 0.5}],
             "sigma_init": 1.0, "sigma_final": 1.2, "sigma_trajectory": [[1, 1.0], [48, 1.2]], "final_loss": 6.3}
        write_json(paths.details_file(key), m)
        write_json(paths.metrics_file(key), headline(key, m))
        write_json(paths.timings_file(variant, seed), {"wall_s": 41.7 + seed, "train_wall_s": 40.0})
    for ds in params.data.benchmarks:
        write_json(paths.metrics_file(f"rgb_zeroshot/{ds.name}"), {"zeroshot": {f"{ds.name}/test": dict(rgb)}})
        enc = [f"intra_cross-seed{s}" for s in seeds]
        zs = {"dataset": ds.name, "split": "test", "views": "zeroshot6", "n_views": 6, "n": 200,
              "chance": 1 / len(classes), "findings": {"zeroshot_pretraining_helps": True},
              "rows": {r: _row(i, classes, ["clip"] if v == "clip" else enc, encoder=v)
                       for i, (r, v) in enumerate(table_rows().items())}}
        write_outputs(f"zeroshot/{ds.name}", zs, [], {}, classes)
        fam_rows = {}
        for i, (member, spec) in enumerate(FAMILY.items()):
            for rule in spec.rules:
                cols = {c: {"acc": 0.3 + 0.01 * i, "acc_std": s, "n_seeds": len(e),
                            "seeds": {k: {"acc": 0.3 + 0.01 * i} for k in e}}
                        for c, e, s in (("without_pretraining", ["clip"], None), ("with_pretraining", enc, 0.02))}
                fam_rows[row_key(member, rule)] = {"member": member, "label": spec.label, "rule": rule,
                                                   "views": spec.views, "weights": {}, **cols}
        fam = {"dataset": ds.name, "n": 200, "chance": 1 / len(classes), "rows": fam_rows,
               "protocol": {"test_split": "test", "val_split": "train", "val_fraction": 0.2, "val_seed": 0,
                            "n_val": 80, "templates": ["image of a {}."], "pretrained_on": "orthographic",
                            "pretrain_variant": "intra_cross"}}
        write_json(paths.details_file(f"family/{ds.name}"), fam)
        write_json(paths.metrics_file(f"family/{ds.name}"), headline(f"family/{ds.name}", fam))
        for mode in ("fewshot", "supervised"):
            fs = {"dataset": ds.name, "mode": mode, "views": "pretrain10", "n_views": 10, "k_shot": 16,
                  "n_test": 200, "chance": 1 / len(classes), "epochs": 100, "findings": {f"{mode}_x": True},
                  "rows": {r.key: _row(i, classes, [f"seed{s}" for s in params.adapter.seeds], adapter=r.adapter,
                                       paths=list(r.paths), note=r.note) for i, r in enumerate(GRID)}}
            write_outputs(f"{mode}/{ds.name}", fs, [], {}, classes)
    return {"params": params, "root": tmp_path / "data"}


def _tables(md: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(heading above, header cells, body rows) of every markdown table."""
    out, heading, lines = [], "", md.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i]
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            body, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                body.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            out.append((heading, header, body))
            continue
        i += 1
    return out


def test_report_of_a_finished_run_has_no_empty_table_and_no_none_or_nan_cell(finished_run, tmp_path):
    """Before: "The CLIP of this run" printed its header and no rows (every RGB zero-shot entry carries
    ``skipped: 0``, which the report took for a skipped dataset) and the pre-training ``wall s`` column read
    None (wall times moved to data/timings/)."""
    from pipeline.run_report import build_report

    out = tmp_path / "report"
    out.mkdir()
    md = build_report(finished_run["params"], out)
    tables = _tables(md)
    assert len(tables) >= 6
    for heading, header, body in tables:
        assert body, f"table under {heading!r} ({header}) has no rows"
        for row in body:
            for cell in row:
                assert cell and not re.search(r"\b(None|nan|NaN)\b", cell), (heading, header, row)
    family = next(b for h, _, b in tables if h.startswith("### Projection family"))
    assert [r[0] for r in family] == [row_key(m, rule) for m, spec in FAMILY.items() for rule in spec.rules]
    clip = next(b for h, _, b in tables if h == "## The CLIP of this run")
    assert {r[0] for r in clip} >= {f"{finished_run['params'].data.pretrain.name}/val", "synth_benchmark/test"}
    pre = next((hd, b) for h, hd, b in tables if h == "## Pre-training")
    walls = [r[pre[0].index("wall s")] for r in pre[1]]
    seeds = list(finished_run["params"].pretrain.seeds)
    assert walls == [f"{41.7 + s:.0f}" for _ in finished_run["params"].pretrain.variants for s in seeds]


def _resolve(text: str, raw: dict[str, Any], local: dict[str, Any]) -> str:
    def look(m: re.Match) -> str:
        name = m.group(1)
        if name in local:
            return str(local[name])
        v: Any = raw
        for part in name.split("."):
            v = v[part]
        return str(v)

    return re.sub(r"\$\{([^}]+)\}", look, text)


def _declared() -> list[tuple[str, list[str], list[str]]]:
    """(stage, outs, metrics) of every stage instance of dvc.yaml under the default params."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = []
    for name, st in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        if "foreach" in st:
            items = [{"key": k} for k in _items(st["foreach"], raw)]
            st = st["do"]
        elif "matrix" in st:
            axes = {k: _items(v, raw) for k, v in st["matrix"].items()}
            items = [{f"item.{k}": v for k, v in zip(axes, combo, strict=True)}
                     for combo in itertools.product(*axes.values())]
        else:
            items = [{}]
        for local in items:
            outs = [_resolve(next(iter(o)) if isinstance(o, dict) else o, raw, local) for o in st.get("outs", [])]
            mets = [_resolve(next(iter(o)) if isinstance(o, dict) else o, raw, local) for o in st.get("metrics", [])]
            out.append((name, outs, mets))
    return out


def _items(spec: Any, raw: dict[str, Any]) -> list[Any]:
    if isinstance(spec, str) and spec.startswith("${"):
        v: Any = raw
        for part in spec[2:-1].split("."):
            v = v[part]
        return list(v)
    return list(spec)


def _leaves(obj: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _leaves(v, f"{path}.{k}" if path else str(k))]
    return [(path, obj)]


def test_dvc_metrics_of_a_finished_run_are_a_few_dozen_headline_numbers(finished_run):
    """Before: ``dvc metrics show`` printed 793 numbers (per-class and per-seed details declared as metrics)."""
    root = finished_run["root"].parent
    files = [m for _, _, mets in _declared() for m in mets]
    assert len(files) >= 10
    numbers = 0
    for f in files:
        obj = json.loads((root / f).read_text())
        for path, v in _leaves(obj):
            assert not (set(path.split(".")) & DETAIL_KEYS), f"{f}: {path} is a detail, not a headline"
            assert isinstance(v, (int, float)) and not isinstance(v, bool), f"{f}: {path} = {v!r}"
            numbers += 1
    assert numbers <= HEADLINE_LIMIT, numbers


def test_details_live_in_declared_plain_outputs(finished_run):
    """Every stage with metrics and details declares its details file under one of its own outs (not as
    metrics), and the details hold what left the metrics (per class, per seed, curves)."""
    root = finished_run["root"].parent
    checked = 0
    for stage, outs, mets in _declared():
        for m in mets:
            key = Path(m).relative_to("data/metrics").with_suffix("").as_posix()
            details = paths.details_file(key)
            if stage == "rgb_zeroshot":
                assert not details.exists()  # four numbers: its metrics are all it has
                continue
            rel = details.relative_to(root).as_posix()
            assert any(rel == o or rel.startswith(o.rstrip("/") + "/") for o in outs), (stage, rel, outs)
            assert rel not in mets
            found = {p.split(".")[-1] for p, _ in _leaves(json.loads(details.read_text()))} | set(
                json.loads(details.read_text()))
            assert found & DETAIL_KEYS, (stage, sorted(found))
            checked += 1
    assert checked >= 10
