"""The random-access reader (pre-training's): :func:`index_split` scans the tar headers of a split once (no
member data is read) into a :class:`ShardIndex`, a few numpy arrays (shard number, byte offset and size of each
member) in the order of the sorted sample keys: independent of how the samples were laid out in shards, or of
how many ranks rendered them. :meth:`ShardIndex.read` then reads one sample's members on demand (a seek and a
read per member), so memory does not grow with the pool's RGB; the index pickles cheaply into DataLoader
workers, which is how pre-training spreads reading over processes (shards are not split between ranks or
workers)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clip2point.shards.checks import Expect, check_layout, check_sample, expectation
from clip2point.shards.errors import ShardError
from clip2point.shards.manifest import manifest_counts, manifest_urls, read_manifest
from clip2point.shards.samples import decode_png, decode_points
from clip2point.shards.tar import _check_count, _Member, _read_members, _scan_tar

log = logging.getLogger("clip2point.shards")  # the name the readers logged under as one module


@dataclass
class ShardIndex:
    """Where every sample of a split lives: an in-memory index for random access (no sample data).

    Rows are the samples in the order of their sorted keys. ``offset[i, j]`` / ``size[i, j]`` locate member
    ``columns[j]`` (e.g. ``points.npy``, ``rgb.03.png``) of sample ``i`` inside shard ``urls[shard[i]]``;
    ``-1`` where the sample has no such member. A few numpy arrays (tens of bytes per sample), cheap to
    pickle into DataLoader workers.
    """

    urls: list[str]
    keys: np.ndarray  # (M,) str, sorted
    shard: np.ndarray  # (M,) int32
    columns: tuple[str, ...]
    offset: np.ndarray  # (M, E) int64
    size: np.ndarray  # (M, E) int64
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    expect: Expect | None = None  # the manifest's, checked by :meth:`sample`

    def __len__(self) -> int:
        return len(self.keys)

    def column(self, ext: str) -> int:
        try:
            return self.columns.index(ext)
        except ValueError:
            raise KeyError(f"no sample of this split has a '{ext}' member (has {list(self.columns)})") from None

    @property
    def rgb_views(self) -> int:
        """Number of RGB views ``rgb.00.png`` … held by every sample (0 without RGB)."""
        v = 0
        while f"rgb.{v:02d}.png" in self.columns and bool((self.size[:, self.column(f"rgb.{v:02d}.png")]
                                                            >= 0).all()):
            v += 1
        return v

    def read(self, i: int, exts: Iterable[str]) -> dict[str, bytes]:
        """The raw bytes of members ``exts`` of sample ``i`` (one open, a seek and a read per member)."""
        url = self.urls[int(self.shard[i])]
        members: dict[str, _Member] = {}
        for ext in exts:
            j = self.column(ext)
            if self.size[i, j] < 0:
                raise ShardError(f"shard {url}: sample {self.keys[i]} has no {ext}")
            members[ext] = _Member(f"{self.keys[i]}.{ext}", int(self.offset[i, j]), int(self.size[i, j]))
        try:
            with open(url, "rb") as f:
                return _read_members(f, url, members)
        except FileNotFoundError:
            raise ShardError(f"shard {url}: file not found") from None
        except OSError as e:
            raise ShardError(f"shard {url}: cannot be read ({e})") from None

    def has(self, ext: str) -> bool:
        """Whether every sample of the split has a member ``ext`` (e.g. ``pool.npy``)."""
        return ext in self.columns and bool((self.size[:, self.column(ext)] >= 0).all())

    def pool(self, i: int) -> np.ndarray:
        """(P, 3) float32 resampling pool of sample ``i`` (:class:`ShardError` when it has none)."""
        return decode_points(self.read(i, ["pool.npy"])["pool.npy"], self.urls[int(self.shard[i])],
                             str(self.keys[i]), "pool.npy")

    def points(self, i: int) -> np.ndarray:
        """(N, 3) float32 points of sample ``i``."""
        return decode_points(self.read(i, ["points.npy"])["points.npy"], self.urls[int(self.shard[i])],
                              str(self.keys[i]))

    def sample(self, i: int, views: Iterable[int] | None = None, with_rgb: bool = True,
               with_points: bool = True) -> dict[str, Any]:
        """Sample ``i`` decoded: key, label, points (N,3) (None without ``with_points``) and, with
        ``with_rgb``, the RGB views ``views`` (all by default) as (V', H, W, 3) uint8 (else None). A member
        that does not decode raises :class:`ShardError` naming the shard and the sample (random access
        never skips a sample: batches keep their composition)."""
        url, key = self.urls[int(self.shard[i])], str(self.keys[i])
        views = list(range(self.rgb_views) if views is None else views) if with_rgb else []
        meta = ["json"] if "json" in self.columns and self.size[i, self.column("json")] >= 0 else []
        exts = ["cls", *meta, *(f"rgb.{v:02d}.png" for v in views)] + (["points.npy"] if with_points else [])
        files = self.read(i, exts)
        try:
            label = int(files["cls"].decode().strip())
            info = json.loads(files["json"].decode()) if meta else {}
            rgb = np.stack([decode_png(files[f"rgb.{v:02d}.png"]) for v in views]) if views else None
        except Exception as e:  # noqa: BLE001 - any decode failure names the sample
            raise ShardError(f"shard {url}: sample {key} does not decode ({type(e).__name__}: {e})") from None
        points = decode_points(files["points.npy"], url, key) if with_points else None
        check_sample(url, key, label, info if isinstance(info, dict) else {}, self.expect, points)
        return {"key": key, "points": points, "label": label, "rgb": rgb}


def index_split(manifest: dict[str, Any] | str | os.PathLike, split: str,
                require: tuple[str, ...] = ("points.npy", "cls")) -> ShardIndex:
    """Index one split for random access: scan each shard's tar headers (no data), check each shard's sample
    count against the manifest, sort the samples by key.

    Samples lacking a ``require``-d member are left out, counted in ``skipped`` and logged. A key found
    twice (in one shard or two), or a sample whose RGB members disagree with the manifest
    (:func:`check_layout`), raises :class:`ShardError` naming them; :meth:`ShardIndex.sample` cross-checks the
    rest (:func:`check_sample`) as it reads.
    """
    m = manifest if isinstance(manifest, dict) else read_manifest(manifest)
    urls, counts = manifest_urls(m, split), manifest_counts(m, split)
    expect = expectation(m, split)
    rows: list[tuple[str, int, dict[str, _Member]]] = []
    skipped, errors = 0, []
    for s, (url, count) in enumerate(zip(urls, counts, strict=True)):
        groups = _scan_tar(url)
        _check_count(url, len(groups), count)
        for key, members in groups:
            check_layout(url, key, members, expect)
            missing = [e for e in require if e not in members]
            if missing:
                skipped += 1
                msg = f"shard {url}: sample {key} skipped (missing {', '.join(missing)})"
                errors.append(msg)
                log.warning(msg)
                continue
            rows.append((key, s, members))
    rows.sort(key=lambda r: r[0])
    for a, b in zip(rows, rows[1:], strict=False):
        if a[0] == b[0]:
            raise ShardError(f"sample key {a[0]} appears twice: in shard {urls[a[1]]} and in shard {urls[b[1]]}")
    columns = tuple(sorted({ext for _, _, members in rows for ext in members}))
    col = {c: j for j, c in enumerate(columns)}
    offset = np.full((len(rows), len(columns)), -1, dtype=np.int64)
    size = np.full((len(rows), len(columns)), -1, dtype=np.int64)
    for i, (_, _, members) in enumerate(rows):
        for ext, mem in members.items():
            offset[i, col[ext]] = mem.offset
            size[i, col[ext]] = mem.size
    return ShardIndex(urls=urls, keys=np.array([r[0] for r in rows], dtype=str),
                      shard=np.array([r[1] for r in rows], dtype=np.int32), columns=columns, offset=offset,
                      size=size, skipped=skipped, errors=errors, expect=expect)
