"""The tar layer of the shards, on the standard library's :mod:`tarfile` alone: the one writer
(:func:`write_shards`, USTAR, a sample's members in :func:`~clip2point.shards.samples.encode_sample`'s order)
and the one header parser (:func:`_scan_tar`, any tar format, pax and GNU included), which both readers
use, with :func:`_read_members` to read members at the offsets it found."""

from __future__ import annotations

import io
import itertools
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clip2point.files import atomic_file
from clip2point.shards.errors import ShardError
from clip2point.shards.samples import encode_sample, sample_key


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
