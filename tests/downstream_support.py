"""Shared downstream-stage fixtures: a tiny 4-class benchmark of anisotropic blobs, tiny random encoders, and a
feature store with a planted signal. Imported by the stage tests (``from downstream_support import …``)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
import yaml

import pipeline.paths as ppaths
from clip2point.schema import points_to_table
from pipeline import models as pmodels
from pipeline.feature_store import FeatureStore, write_store

ROOT = Path(__file__).resolve().parents[1]
DATASET = "tiny_bench"
CLASSES = ["rod_x", "rod_y", "rod_z", "ball"]
SCALES = [(1.0, 0.25, 0.25), (0.25, 1.0, 0.25), (0.25, 0.25, 1.0), (0.7, 0.7, 0.7)]
N_TRAIN, N_TEST, N_POINTS = 10, 5, 96
ENCODERS = ["clip", "intra_cross-seed0", "intra_cross-seed1"]


def _cloud(c: int, rng: np.random.Generator) -> np.ndarray:
    pts = rng.normal(size=(N_POINTS, 3)) * np.asarray(SCALES[c])
    pts -= pts.mean(0)
    return (pts / np.linalg.norm(pts, axis=1).max()).astype(np.float32)


def points_table() -> pa.Table:
    rng = np.random.default_rng(0)
    ids, splits, labels, names, clouds = [], [], [], [], []
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        for c, name in enumerate(CLASSES):
            for i in range(n):
                ids.append(f"{split}/{name}_{i}")
                splits.append(split)
                labels.append(c)
                names.append(name)
                clouds.append(_cloud(c, rng))
    return points_to_table(ids, splits, np.array(labels), names, ["-"] * len(ids), np.stack(clouds))


def use_workspace(monkeypatch, tmp_path: Path, raw: dict) -> Path:
    """Write ``raw`` to ``tmp_path/params.yaml`` and point the stages at it and at ``tmp_path/data``."""
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(f))
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "data"))
    return f


def make_run_dir(tmp_path, monkeypatch) -> dict:
    """The 4-class benchmark's points table in ``tmp_path/data``, a params file pointing there (16² depth,
    2 seeds, 4-shot adapters) and ``pipeline.models.load_encoders`` returning tiny random encoders."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["benchmarks"] = {DATASET: {"kind": "synth", "root": str(tmp_path / "meshes"), "up_axis": "y"}}
    raw["depth"]["image_size"] = 16
    raw["pretrain"]["seeds"] = [0, 1]
    raw["adapter"].update({"k_shot": 4, "seeds": [0, 1], "epochs": 6, "val_fraction": 0.25})
    raw["zeroshot"]["batch_size"] = 16
    use_workspace(monkeypatch, tmp_path, raw)
    table = points_table()
    ppaths.points_table(DATASET).parent.mkdir(parents=True)
    pq.write_table(table, ppaths.points_table(DATASET))

    from clip2point.models.clip import create_clip

    torch.manual_seed(0)
    clip_model, tokenizer = create_clip("c2p-tiny")
    encoders = {"clip": clip_model.visual}
    for seed in (0, 1):
        other = copy.deepcopy(clip_model.visual)
        with torch.no_grad():
            for p in other.parameters():
                p.add_(0.05 * torch.randn_like(p))
        encoders[f"intra_cross-seed{seed}"] = other

    def fake_load(variants, seeds, device="cpu", external=()):
        chosen = {k: v for k, v in encoders.items() if k == "clip" or k.split("-")[0] in variants}
        return chosen, clip_model, tokenizer

    monkeypatch.setattr(pmodels, "load_encoders", fake_load)
    return {"tmp": tmp_path, "table": table, "encoders": encoders, "params": raw}


def write_signal_store(root: Path, seed: int = 0, c: int = 16) -> FeatureStore:
    """A cache whose pretrained features point at the class's text feature (plus noise), CLIP's are noise."""
    g = torch.Generator().manual_seed(seed)
    k = len(CLASSES)
    text = F.normalize(torch.randn(k, c, generator=g), dim=-1)
    labels = {"train": np.repeat(np.arange(k), N_TRAIN), "test": np.repeat(np.arange(k), N_TEST)}
    feats: dict = {}
    for split, y in labels.items():
        feats[split] = {}
        for enc in ENCODERS:
            signal = 0.0 if enc == "clip" else 1.0
            x = signal * text[y][:, None, :] + 0.3 * torch.randn(len(y), 10, c, generator=g)
            x = F.normalize(x, dim=-1).half()
            feats[split][enc] = {"pretrain10": x, "zeroshot6": x[:, :6].contiguous()}
    index = pa.table({
        "id": [f"{s}{i}" for s, y in labels.items() for i in range(len(y))],
        "split": [s for s, y in labels.items() for _ in y],
        "label": pa.array(np.concatenate(list(labels.values())), pa.int32()),
        "label_name": [CLASSES[j] for y in labels.values() for j in y],
    })
    meta = {"dataset": DATASET, "class_names": CLASSES, "encoders": ENCODERS,
            "view_sets": {"pretrain10": 10, "zeroshot6": 6}, "splits": {s: len(y) for s, y in labels.items()},
            "dim": c, "logit_scale": 50.0, "depth": {"image_size": 16, "distance": 1.0}}
    write_store(root, meta, index, text, feats)
    return FeatureStore.open(root)
