"""WebDataset shards of rendered samples, their manifest, and readers (single process, DDP, DataLoader
workers).

A shard is a plain POSIX tar in WebDataset layout (readable by ``webdataset.WebDataset`` too): the files
of one sample are consecutive and share the basename up to the first dot, ``__key__``.

==================  =====================================================================================
file                content
==================  =====================================================================================
``<key>.points.npy``  (N, 3) float32 points, y-up, unit sphere
``<key>.cls``          class index, ASCII decimal
``<key>.rgb.VV.png``   RGB view VV (00, 01, …) uint8 PNG; absent for point-only datasets
``<key>.depth.npy``    optional (V, H, W) float16 depth maps cached at the default distance
``<key>.json``         metadata: id, split, label, label_name, source, …
==================  =====================================================================================

``key`` is the sample id with ``.`` and ``/`` replaced (WebDataset splits keys at the first dot); the
true id is in the json. Shards hold at most ``maxcount`` samples.

Errors: a missing, truncated or corrupt tar raises :class:`ShardError` naming the shard. A sample whose
files do not decode (or lacks points / cls) is skipped, counted in :class:`ReadStats` and logged with its
shard and key.

Distribution: :func:`split_urls` gives a rank its shards ``urls[rank::world_size]`` and then a DataLoader
worker its share of those, ``[worker::num_workers]``; every shard goes to exactly one (rank, worker).
Ranks come from ``torch.distributed`` when initialised, else ``RANK`` / ``WORLD_SIZE``. Balance needs ≥
world_size × workers shards; ranks may see different sample counts (drop the remainder or use
``max_steps`` in DDP loops).
"""

from __future__ import annotations

import io
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
    (list of PNG bytes), optional depth (V,H,W), optional meta dict."""
    files: dict[str, bytes] = {
        "points.npy": _npy_bytes(np.asarray(sample["points"], dtype=np.float32)),
        "cls": str(int(sample["label"])).encode(),
    }
    pngs = sample.get("rgb_png")
    if pngs is None and sample.get("rgb") is not None:
        pngs = [png_bytes(v) for v in np.asarray(sample["rgb"], dtype=np.uint8)]
    for i, data in enumerate(pngs or []):
        files[f"rgb.{i:02d}.png"] = data
    if sample.get("depth") is not None:
        files["depth.npy"] = _npy_bytes(np.asarray(sample["depth"], dtype=np.float16))
    meta = dict(sample.get("meta") or {})
    meta.setdefault("id", str(sample["id"]))
    meta.setdefault("label", int(sample["label"]))
    files["json"] = json.dumps(meta, sort_keys=True).encode()
    return files


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
    depth = np.load(io.BytesIO(files["depth.npy"]), allow_pickle=False) if "depth.npy" in files else None
    return {"id": meta.get("id", key), "key": key, "points": points.astype(np.float32, copy=False),
            "label": label, "rgb": rgb, "depth": depth, "meta": meta}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shards(samples: Iterable[dict[str, Any]], out_dir: str | os.PathLike, prefix: str,
                 maxcount: int = 256) -> list[dict[str, Any]]:
    """Write samples into ``out_dir/<prefix>-NNNNNN.tar`` shards of at most ``maxcount`` samples each.

    Each shard is written to a temporary name and renamed when complete. Returns ``[{"url", "count"}]`` with
    urls relative to ``out_dir``.
    """
    if maxcount < 1:
        raise ValueError("maxcount must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, Any]] = []
    tar: tarfile.TarFile | None = None
    tmp: Path | None = None
    count = 0

    def close() -> None:
        nonlocal tar, tmp
        if tar is not None and tmp is not None:
            tar.close()
            final = out_dir / written[-1]["url"]
            os.replace(tmp, final)
        tar, tmp = None, None

    try:
        for sample in samples:
            if tar is None or count == maxcount:
                close()
                name = f"{prefix}-{len(written):06d}.tar"
                tmp = out_dir / f".{name}.tmp"
                tar = tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT)
                written.append({"url": name, "count": 0})
                count = 0
            key = sample_key(sample["id"])
            for ext, data in encode_sample(sample).items():
                _add(tar, f"{key}.{ext}", data)
            count += 1
            written[-1]["count"] = count
        close()
    finally:
        if tar is not None:
            tar.close()
        if tmp is not None and tmp.exists():
            tmp.unlink()
    return written


def _iter_tar_groups(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) groups of a shard; ShardError naming the shard if it cannot be read whole."""
    try:
        tar = tarfile.open(url, "r|")
    except FileNotFoundError:
        raise ShardError(f"shard {url}: file not found") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ShardError(f"shard {url}: not a readable tar ({e})") from None
    key: str | None = None
    group: dict[str, bytes] = {}
    try:
        with tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = os.path.basename(member.name)
                k, _, ext = base.partition(".")
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                if len(data) != member.size:
                    raise ShardError(f"shard {url}: truncated at {member.name}")
                if k != key:
                    if key is not None:
                        yield key, group
                    key, group = k, {}
                group[ext] = data
    except ShardError:
        raise
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ShardError(f"shard {url}: truncated or corrupt tar ({e})") from None
    if key is not None:
        yield key, group


def node_info() -> tuple[int, int]:
    """(rank, world_size): torch.distributed if initialised, else ``RANK`` / ``WORLD_SIZE``, else (0, 1)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:  # pragma: no cover
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def worker_info() -> tuple[int, int]:
    """(worker_id, num_workers) of the current torch DataLoader worker, (0, 1) outside one."""
    try:
        from torch.utils.data import get_worker_info
    except ImportError:  # pragma: no cover
        return 0, 1
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def split_urls(urls: list[str], rank: int = 0, world_size: int = 1, worker: int = 0,
               num_workers: int = 1) -> list[str]:
    """Shards of one (rank, worker): ``urls[rank::world_size][worker::num_workers]`` (a partition)."""
    if not (0 <= rank < world_size and 0 <= worker < num_workers):
        raise ValueError(f"bad split: rank {rank}/{world_size}, worker {worker}/{num_workers}")
    return list(urls)[rank::world_size][worker::num_workers]


def iter_shards(urls: list[str], split_by_node: bool = True, split_by_worker: bool = True,
                stats: ReadStats | None = None, rank: int | None = None, world_size: int | None = None,
                ) -> Iterator[dict[str, Any]]:
    """Decoded samples ``dict(id, key, points, label, rgb, depth, meta)`` of this node's / worker's shards.

    Corrupt samples are skipped and counted in ``stats``; an unreadable shard raises :class:`ShardError`.
    """
    stats = stats if stats is not None else ReadStats()
    r, w = node_info() if split_by_node else (0, 1)
    if rank is not None:
        r = rank
    if world_size is not None:
        w = world_size
    wid, nw = worker_info() if split_by_worker else (0, 1)
    for url in split_urls(urls, r, w, wid, nw):
        for key, files in _iter_tar_groups(url):
            try:
                sample = decode_sample(key, files)
            except Exception as e:  # noqa: BLE001 - any decode failure makes the sample corrupt
                stats.skipped += 1
                msg = f"shard {url}: sample {key} skipped ({type(e).__name__}: {e})"
                stats.errors.append(msg)
                log.warning(msg)
                continue
            stats.samples += 1
            yield sample


def write_manifest(path: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Write a manifest (atomically); keys: dataset, class_names, splits {split: {count, shards}}."""
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    data = {"format": MANIFEST_FORMAT, **manifest}
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


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
    """A whole split in memory (small datasets): ids, points (M,N,3), labels (M,), rgb (M,V,H,W,3) or None,
    depth (M,V,H,W) or None, meta list, and ``skipped`` / ``errors`` of corrupt samples."""
    stats = ReadStats()
    rows = list(iter_shards(manifest_urls(manifest, split), split_by_node=False, split_by_worker=False,
                            stats=stats))
    have_rgb = with_rgb and rows and all(r["rgb"] is not None for r in rows)
    have_depth = rows and all(r["depth"] is not None for r in rows)
    return {
        "ids": [r["id"] for r in rows],
        "points": np.stack([r["points"] for r in rows]) if rows else np.zeros((0, 0, 3), np.float32),
        "labels": np.array([r["label"] for r in rows], dtype=np.int64),
        "rgb": np.stack([r["rgb"] for r in rows]) if have_rgb else None,
        "depth": np.stack([r["depth"] for r in rows]) if have_depth else None,
        "meta": [r["meta"] for r in rows],
        "skipped": stats.skipped,
        "errors": stats.errors,
    }


try:  # a torch IterableDataset wrapper when torch is present
    import torch.utils.data as _tud

    class ShardDataset(_tud.IterableDataset):
        """Samples of a manifest split, split by node and DataLoader worker (see :func:`iter_shards`)."""

        def __init__(self, manifest: dict[str, Any] | str | os.PathLike, split: str) -> None:
            super().__init__()
            self.urls = manifest_urls(manifest, split)
            self.stats = ReadStats()

        def __iter__(self) -> Iterator[dict[str, Any]]:
            return iter_shards(self.urls, stats=self.stats)

except ImportError:  # pragma: no cover
    pass
