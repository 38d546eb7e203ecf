"""The manifest of a sharded dataset (``manifest.json``): writing, reading, and its per-split shard urls and
counts; :func:`merge_manifests` joins the manifests of ranks that rendered disjoint shards."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clip2point.files import atomic_file, json_default
from clip2point.shards.errors import ShardError

MANIFEST_FORMAT = 1


def write_manifest(path: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Write a manifest (atomically); keys: dataset, class_names, splits {split: {count, shards}}."""
    data = {"format": MANIFEST_FORMAT, **manifest}
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=json_default) + "\n")


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Load a manifest; adds ``root`` (its directory) for resolving shard urls."""
    path = Path(path)
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise ShardError(f"manifest {path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ShardError(f"manifest {path}: not valid JSON ({e})") from None
    if m.get("format") != MANIFEST_FORMAT or "splits" not in m:
        raise ShardError(f"manifest {path}: unknown format {m.get('format')!r}")
    m["root"] = str(path.parent)
    return m


def manifest_urls(manifest: dict[str, Any] | str | os.PathLike, split: str) -> list[str]:
    """Absolute shard paths of one split."""
    m = manifest if isinstance(manifest, dict) else read_manifest(manifest)
    if split not in m["splits"]:
        raise KeyError(f"split {split!r} not in manifest (has {sorted(m['splits'])})")
    return [str(Path(m["root"]) / s["url"]) for s in m["splits"][split]["shards"]]


def manifest_counts(manifest: dict[str, Any] | str | os.PathLike, split: str) -> list[int]:
    """The manifest's sample count of each shard of one split, aligned with :func:`manifest_urls`."""
    m = manifest if isinstance(manifest, dict) else read_manifest(manifest)
    if split not in m["splits"]:
        raise KeyError(f"split {split!r} not in manifest (has {sorted(m['splits'])})")
    return [int(s["count"]) for s in m["splits"][split]["shards"]]


def merge_manifests(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge per-rank manifests (same dataset and settings, disjoint shards) into one."""
    if not parts:
        raise ValueError("no manifests to merge")
    merged = {k: v for k, v in parts[0].items() if k not in ("splits", "rank", "root")}
    splits: dict[str, dict[str, Any]] = {}
    for p in sorted(parts, key=lambda p: p.get("rank", 0)):
        for name, s in p["splits"].items():
            dst = splits.setdefault(name, {"count": 0, "shards": []})
            dst["count"] += s["count"]
            dst["shards"].extend(s["shards"])
    merged["splits"] = {k: splits[k] for k in sorted(splits)}
    return merged
