"""The streaming reader: the decoded samples of shards in order (:func:`iter_shards`) and a whole split in
memory (:func:`load_split`). A sample whose files do not decode (or lacks points / cls) is skipped, counted in
:class:`ReadStats` and logged with its shard and key; a sample whose members disagree is an error
(:mod:`clip2point.shards.checks`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clip2point.shards.checks import Expect, check_layout, check_sample, expectation
from clip2point.shards.errors import ShardError
from clip2point.shards.manifest import manifest_counts, manifest_urls, read_manifest
from clip2point.shards.samples import decode_sample
from clip2point.shards.tar import _check_count, _read_members, _scan_tar

log = logging.getLogger("clip2point.shards")  # the name the readers logged under as one module


@dataclass
class ReadStats:
    """Counts of one read: samples yielded, samples skipped (corrupt) and why."""

    samples: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def _iter_tar_groups(url: str, expected: int | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) groups of a shard; ShardError naming the shard if it cannot be read whole or
    holds another number of samples than ``expected`` (the manifest's count)."""
    groups = _scan_tar(url)
    _check_count(url, len(groups), expected)
    try:
        with open(url, "rb") as f:
            for key, members in groups:
                yield key, _read_members(f, url, members)
    except OSError as e:
        raise ShardError(f"shard {url}: cannot be read ({e})") from None


def iter_shards(urls: list[str], *, stats: ReadStats | None = None, counts: list[int] | None = None,
                expect: Expect | None = None) -> Iterator[dict[str, Any]]:
    """Decoded samples ``dict(id, key, points, label, rgb, meta)`` of the shards ``urls``, in order.

    Corrupt samples are skipped and counted in ``stats``; an unreadable shard raises :class:`ShardError`,
    and so does a shard holding another number of samples than its entry in ``counts`` (the manifest's
    per-shard counts, aligned with ``urls``), or a sample whose members disagree with each other or with
    ``expect`` (:func:`check_sample`; the manifest's side only when ``expect`` is given).
    """
    if counts is not None and len(counts) != len(urls):
        raise ValueError(f"counts has {len(counts)} entries for {len(urls)} shards")
    expected = dict(zip(urls, counts, strict=True)) if counts is not None else {}
    stats = stats if stats is not None else ReadStats()
    for url in urls:
        for key, files in _iter_tar_groups(url, expected.get(url)):
            check_layout(url, key, files, expect)
            try:
                sample = decode_sample(key, files)
            except Exception as e:  # noqa: BLE001 - any decode failure makes the sample corrupt
                stats.skipped += 1
                msg = f"shard {url}: sample {key} skipped ({type(e).__name__}: {e})"
                stats.errors.append(msg)
                log.warning(msg)
                continue
            check_sample(url, key, sample["label"], sample["meta"], expect, sample["points"])
            stats.samples += 1
            yield sample


def load_split(manifest: dict[str, Any] | str | os.PathLike, split: str, with_rgb: bool = True,
               ) -> dict[str, Any]:
    """A whole split in memory (small datasets only: pre-training streams through :func:`index_split`): ids,
    points (M,N,3), labels (M,), rgb (M,V,H,W,3) or None, meta list, and
    ``skipped`` / ``errors`` of corrupt samples. Shard order; shard counts checked against the manifest."""
    stats = ReadStats()
    m = manifest if isinstance(manifest, dict) else read_manifest(manifest)
    rows = list(iter_shards(manifest_urls(m, split), stats=stats, counts=manifest_counts(m, split),
                            expect=expectation(m, split)))
    have_rgb = with_rgb and rows and all(r["rgb"] is not None for r in rows)
    return {
        "ids": [r["id"] for r in rows],
        "points": np.stack([r["points"] for r in rows]) if rows else np.zeros((0, 0, 3), np.float32),
        "labels": np.array([r["label"] for r in rows], dtype=np.int64),
        "rgb": np.stack([r["rgb"] for r in rows]) if have_rgb else None,
        "meta": [r["meta"] for r in rows],
        "skipped": stats.skipped,
        "errors": stats.errors,
    }
