"""WebDataset-layout shards of rendered samples, their manifest, and their two readers: streaming
(:func:`iter_shards`, :func:`load_split`) and random access (:func:`index_split`).

A shard is a plain POSIX (USTAR) tar in WebDataset layout: the files of one sample are consecutive members
that share the basename up to the first dot, ``__key__``.

==================  =====================================================================================
file                content
==================  =====================================================================================
``<key>.points.npy``  (N, 3) float32 points, y-up, unit sphere
``<key>.cls``          class index, ASCII decimal
``<key>.rgb.VV.png``   RGB view VV (00, 01, …) uint8 PNG; absent for point-only datasets
``<key>.pool.npy``     optional (P, 3) float32 resampling pool, in the frame of the points
``<key>.json``         metadata: id, split, label, label_name, source, …
==================  =====================================================================================

``key`` is the sample id with ``.`` and ``/`` replaced (WebDataset splits keys at the first dot); the
true id is in the json. Shards hold at most ``maxcount`` samples.

Why not the ``webdataset`` package (issue 20): its ``TarWriter`` writes a sample's members in sorted name
order (these shards: points.npy, cls, rgb.*.png, pool.npy, json, as :func:`encode_sample` lists them), so
shards written through it would differ byte for byte from the ones the render stage has written (and DVC
would re-run everything downstream); its streaming reader and
``wids`` index do not check what this module's readers check (a shard's sample count against the manifest,
the end-of-archive marker, the members of a sample against each other and the manifest, below), and random
access needs each member's byte offset, which only a header scan gives. So shards are written and read with
the standard library's :mod:`tarfile` alone: one writer (:func:`write_shards`) and one header parser
(:func:`_scan_tar`, any tar format, pax and GNU included); the files stay readable by ``webdataset``.

Errors: a missing, truncated or corrupt tar raises :class:`ShardError` naming the shard. Every read checks
that the tar ends with its end-of-archive marker (a tar cut at a member boundary or inside a header is an
error, never a shorter shard) and, given the manifest's per-shard counts, that the shard holds exactly that
many samples (the error names the shard and both counts). A sample whose files do not decode (or lacks
points / cls) is skipped by the streaming reader, counted in :class:`ReadStats` and logged with its shard
and key.

Cross-checks (issue 22, item 4): the members of a sample must agree with each other and with the manifest
(:class:`Expect`, from :func:`expectation`), or the read raises :class:`ShardError` naming the shard, the
sample and the disagreeing members: the key is the json ``id``'s key, ``cls`` equals the json ``label``, the
label indexes the manifest's ``class_names`` and its name is the json ``label_name``, the json ``split`` is the
split read, the RGB members are ``rgb.00.png`` … ``rgb.<V-1>.png`` with V the manifest's view count (none
where it says ``has_rgb: false``), and ``points.npy`` holds the manifest's ``num_points``. Such a sample is
never skipped: a shard that contradicts itself is damaged, and an accuracy over what remains would be wrong.

Random access: :func:`index_split` scans the tar headers of a split once (no member data is read) into a
:class:`ShardIndex`, a few numpy arrays (shard number, byte offset and size of each member) in the order of
the sorted sample keys: independent of how the samples were laid out in shards, or of how many ranks
rendered them. :meth:`ShardIndex.read` then reads one sample's members on demand (a seek and a read per
member), so memory does not grow with the pool's RGB; the index pickles cheaply into DataLoader workers,
which is how pre-training spreads reading over processes (shards are not split between ranks or workers).
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clip2point.files import atomic_file, json_default

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
_RGB_RE = re.compile(r"^rgb\.(\d+)\.png$")


class ShardError(RuntimeError):
    """A shard cannot be read (missing, truncated, not a tar). The message names the shard."""


@dataclass
class ReadStats:
    """Counts of one read: samples yielded, samples skipped (corrupt) and why."""

    samples: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def sample_key(sample_id: str) -> str:
    """The WebDataset ``__key__`` of a sample id (no dots or slashes)."""
    return re.sub(r"[./\\]", "_", str(sample_id))


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def png_bytes(img: np.ndarray, compress_level: int = 3) -> bytes:
    """PNG bytes of a (H, W, 3) or (H, W) uint8 image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def encode_sample(sample: dict[str, Any]) -> dict[str, bytes]:
    """Files of one sample. ``sample``: id, points (N,3), label, optional rgb (V,H,W,3) uint8 or ``rgb_png``
    (list of PNG bytes), optional pool (P,3), optional meta dict."""
    files: dict[str, bytes] = {
        "points.npy": _npy_bytes(np.asarray(sample["points"], dtype=np.float32)),
        "cls": str(int(sample["label"])).encode(),
    }
    pngs = sample.get("rgb_png")
    if pngs is None and sample.get("rgb") is not None:
        pngs = [png_bytes(v) for v in np.asarray(sample["rgb"], dtype=np.uint8)]
    for i, data in enumerate(pngs or []):
        files[f"rgb.{i:02d}.png"] = data
    if sample.get("pool") is not None:
        files["pool.npy"] = _npy_bytes(np.asarray(sample["pool"], dtype=np.float32))
    meta = dict(sample.get("meta") or {})
    meta.setdefault("id", str(sample["id"]))
    meta.setdefault("label", int(sample["label"]))
    files["json"] = json.dumps(meta, sort_keys=True).encode()
    return files


@dataclass(frozen=True)
class Expect:
    """What a manifest says every sample of one split holds (None: not said, not checked)."""

    split: str | None = None
    class_names: tuple[str, ...] | None = None
    views: int | None = None  # RGB views per sample (0: none)
    num_points: int | None = None


def expectation(manifest: dict[str, Any], split: str) -> Expect:
    """The :class:`Expect` of one split of a manifest (its ``class_names``, ``has_rgb`` / ``views`` view set,
    ``num_points``); fields a manifest does not carry stay None."""
    names = manifest.get("class_names")
    views: int | None = None
    if manifest.get("has_rgb") is False:
        views = 0
    elif manifest.get("has_rgb") and manifest.get("views") is not None:
        from clip2point.render.views import get_views

        try:
            views = len(get_views(manifest["views"]).elev)
        except (ValueError, TypeError):
            views = None
    n = manifest.get("num_points")
    return Expect(split=split, class_names=tuple(names) if names else None, views=views,
                  num_points=int(n) if n else None)


def _disagree(url: str, key: str, what: str) -> ShardError:
    return ShardError(f"shard {url}: sample {key}: members disagree: {what}")


def check_layout(url: str, key: str, exts: Iterable[str], expect: Expect | None = None) -> None:
    """Cross-check a sample's member names (tar headers only): RGB views numbered 00 … V-1 without a gap, V
    the manifest's view count. :class:`ShardError` naming shard, sample and members."""
    views = sorted(int(m.group(1)) for e in exts if (m := _RGB_RE.match(e)))
    if views != list(range(len(views))):
        raise _disagree(url, key, f"RGB members rgb.{{{','.join(f'{v:02d}' for v in views)}}}.png are not "
                                  f"numbered 00 to {len(views) - 1:02d}")
    if expect is not None and expect.views is not None and len(views) != expect.views:
        raise _disagree(url, key, f"{len(views)} RGB members (rgb.NN.png) but the manifest says {expect.views} "
                                  "views per sample")


def check_sample(url: str, key: str, label: int, meta: dict[str, Any], expect: Expect | None = None,
                 points: np.ndarray | None = None) -> None:
    """Cross-check a decoded sample's members against each other and the manifest (the module docstring's
    list). :class:`ShardError` naming shard, sample and the disagreeing members."""
    if "id" in meta and sample_key(meta["id"]) != key:
        raise _disagree(url, key, f"json id {meta['id']!r} is sample key {sample_key(meta['id'])}, not the "
                                  f"members' key {key}")
    if "label" in meta and meta["label"] != label:
        raise _disagree(url, key, f"cls says {label} but json label says {meta['label']!r}")
    names = expect.class_names if expect is not None else None
    if names is not None:
        if not 0 <= label < len(names):
            raise _disagree(url, key, f"cls {label} is outside the manifest's {len(names)} class_names")
        if "label_name" in meta and meta["label_name"] != names[label]:
            raise _disagree(url, key, f"json label_name {meta['label_name']!r} but cls {label} is "
                                      f"{names[label]!r} in the manifest's class_names")
    elif label < 0:
        raise _disagree(url, key, f"cls {label} is negative")
    if expect is not None and expect.split is not None and "split" in meta and meta["split"] != expect.split:
        raise _disagree(url, key, f"json split {meta['split']!r} but the manifest lists it under "
                                  f"{expect.split!r}")
    if (expect is not None and expect.num_points is not None and points is not None
            and len(points) != expect.num_points):
        raise _disagree(url, key, f"points.npy holds {len(points)} points but the manifest says "
                                  f"num_points {expect.num_points}")


def decode_sample(key: str, files: dict[str, bytes]) -> dict[str, Any]:
    """Inverse of :func:`encode_sample`; raises ValueError on a missing or undecodable file."""
    if "points.npy" not in files or "cls" not in files:
        raise ValueError(f"missing {'points.npy' if 'points.npy' not in files else 'cls'}")
    points = np.load(io.BytesIO(files["points.npy"]), allow_pickle=False)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points.npy has shape {points.shape}, expected (N, 3)")
    label = int(files["cls"].decode().strip())
    meta = json.loads(files["json"].decode()) if "json" in files else {}
    rgb_names = sorted((int(m.group(1)), k) for k in files if (m := _RGB_RE.match(k)))
    rgb = np.stack([decode_png(files[k]) for _, k in rgb_names]) if rgb_names else None
    out = {"id": meta.get("id", key), "key": key, "points": points.astype(np.float32, copy=False),
           "label": label, "rgb": rgb, "meta": meta}
    if "pool.npy" in files:  # only when present: samples without a pool decode as before
        pool = np.load(io.BytesIO(files["pool.npy"]), allow_pickle=False)
        if pool.ndim != 2 or pool.shape[1] != 3:
            raise ValueError(f"pool.npy has shape {pool.shape}, expected (P, 3)")
        out["pool"] = pool.astype(np.float32, copy=False)
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shards(samples: Iterable[dict[str, Any]], out_dir: str | os.PathLike, prefix: str,
                 maxcount: int = 256) -> list[dict[str, Any]]:
    """Write samples into ``out_dir/<prefix>-NNNNNN.tar`` shards of at most ``maxcount`` samples each.

    Each shard is written atomically (:func:`clip2point.files.atomic_file`): a shard whose samples fail to
    come leaves nothing behind, the ones before it stay complete. Returns ``[{"url", "count"}]`` with urls
    relative to ``out_dir``.
    """
    if maxcount < 1:
        raise ValueError("maxcount must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, Any]] = []
    it = iter(samples)
    for first in it:  # a shard is opened only when a sample for it has come
        name = f"{prefix}-{len(written):06d}.tar"
        count = 0
        with atomic_file(out_dir / name) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for sample in itertools.chain([first], itertools.islice(it, maxcount - 1)):
                key = sample_key(sample["id"])
                for ext, data in encode_sample(sample).items():
                    _add(tar, f"{key}.{ext}", data)
                count += 1
        written.append({"url": name, "count": count})
    return written


@dataclass
class _Member:
    name: str
    offset: int  # byte offset of the member's data
    size: int


def _scan_tar(url: str) -> list[tuple[str, dict[str, _Member]]]:
    """(key, {ext: member}) groups of a shard from its tar headers alone (no data is read): the one tar
    parser of this module (:mod:`tarfile`, any tar format).

    Raises :class:`ShardError` naming the shard if the tar is missing, not a tar, cut inside a header or
    inside a member's data (naming the member), cut at a member boundary (no end-of-archive marker), or has a
    corrupt header. (:mod:`tarfile` itself stops quietly at any of these after the first member, so the
    block where it stopped is checked to be the end-of-archive marker.)
    """
    members: list[_Member] = []
    end = 0  # where the header after the last member starts
    try:
        fsize = os.path.getsize(url)
        try:
            with tarfile.open(url, "r:") as tar:
                for m in tar:
                    if m.offset_data + m.size > fsize:
                        raise ShardError(f"shard {url}: truncated inside member {m.name} "
                                         f"({max(0, fsize - m.offset_data)} of {m.size} bytes)")
                    end = m.offset_data + -(-m.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                    if m.isfile():
                        members.append(_Member(m.name, m.offset_data, m.size))
        except (tarfile.TarError, EOFError) as e:
            raise ShardError(f"shard {url}: truncated or not a readable tar ({e})") from None
        with open(url, "rb") as f:
            f.seek(end)
            block = f.read(tarfile.BLOCKSIZE)
    except FileNotFoundError:
        raise ShardError(f"shard {url}: file not found") from None
    except OSError as e:
        raise ShardError(f"shard {url}: cannot be read ({e})") from None
    groups: list[tuple[str, dict[str, _Member]]] = []
    for m in members:
        k, _, ext = os.path.basename(m.name).partition(".")
        if not groups or groups[-1][0] != k:
            groups.append((k, {}))
        groups[-1][1][ext] = m
    if len(block) == 0:
        last = f" after {groups[-1][0]}" if groups else ""
        raise ShardError(f"shard {url}: truncated at a member boundary{last} (no end-of-archive marker at "
                         f"byte {end})")
    if len(block) < tarfile.BLOCKSIZE:
        raise ShardError(f"shard {url}: truncated inside a tar header at byte {end} ({len(block)} of "
                         f"{tarfile.BLOCKSIZE} bytes)")
    if block.count(0) != tarfile.BLOCKSIZE:
        raise ShardError(f"shard {url}: corrupt tar header at byte {end}")
    return groups


def _check_count(url: str, found: int, expected: int | None) -> None:
    if expected is not None and found != int(expected):
        raise ShardError(f"shard {url}: holds {found} samples but the manifest says {int(expected)}")


def _read_members(f: Any, url: str, members: dict[str, _Member]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for ext, m in members.items():
        f.seek(m.offset)
        data = f.read(m.size)
        if len(data) != m.size:
            raise ShardError(f"shard {url}: truncated at {m.name} ({len(data)} of {m.size} bytes)")
        out[ext] = data
    return out


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


def decode_points(data: bytes, url: str, key: str, member: str = "points.npy") -> np.ndarray:
    """(N, 3) float32 points of a ``points.npy`` (or ``pool.npy``) member; :class:`ShardError` naming shard
    and sample."""
    try:
        points = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise ShardError(f"shard {url}: sample {key} {member} does not decode ({e})") from None
    if points.ndim != 2 or points.shape[1] != 3:
        raise ShardError(f"shard {url}: sample {key} {member} has shape {points.shape}, expected (N, 3)")
    return points.astype(np.float32, copy=False)


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
