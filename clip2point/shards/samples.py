"""One sample's files in a shard: its ``__key__`` (:func:`sample_key`), and encoding its members into bytes
(:func:`encode_sample`) and back (:func:`decode_sample`, :func:`decode_points`, PNG via :func:`png_bytes` /
:func:`decode_png`). The member names and contents are listed in :mod:`clip2point.shards`."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np

from clip2point.shards.errors import ShardError

_RGB_RE = re.compile(r"^rgb\.(\d+)\.png$")


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
