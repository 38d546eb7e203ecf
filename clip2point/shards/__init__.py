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
``wids`` index do not check what this package's readers check (a shard's sample count against the manifest,
the end-of-archive marker, the members of a sample against each other and the manifest, below), and random
access needs each member's byte offset, which only a header scan gives. So shards are written and read with
the standard library's :mod:`tarfile` alone: one writer (:func:`write_shards`) and one header parser
(:func:`~clip2point.shards.tar._scan_tar`, any tar format, pax and GNU included); the files stay readable by
``webdataset``.

Errors: a missing, truncated or corrupt tar raises :class:`ShardError` naming the shard. Every read checks
that the tar ends with its end-of-archive marker (a tar cut at a member boundary or inside a header is an
error, never a shorter shard) and, given the manifest's per-shard counts, that the shard holds exactly that
many samples (the error names the shard and both counts). A sample whose files do not decode (or lacks
points / cls) is skipped by the streaming reader, counted in :class:`ReadStats` and logged with its shard
and key. A sample whose members disagree with each other or with the manifest is never skipped: the read
raises :class:`ShardError` (:mod:`~clip2point.shards.checks` lists the cross-checks, issue 22, item 4).

Random access: :func:`index_split` scans the tar headers of a split once into a :class:`ShardIndex` whose
:meth:`ShardIndex.read` reads one sample's members on demand (:mod:`~clip2point.shards.index`).

Modules, in the direction of their imports: ``errors`` (:class:`ShardError`) ← ``samples`` (keys, encoding
and decoding of one sample's members) ← ``checks`` (:class:`Expect`, the cross-checks) ← ``tar`` (the writer
and the header parser) and ``manifest`` ← ``stream`` (:func:`iter_shards`, :func:`load_split`) and ``index``
(:class:`ShardIndex`, :func:`index_split`). Every public name is importable from this package.
"""

from __future__ import annotations

from clip2point.shards.checks import Expect, check_layout, check_sample, expectation
from clip2point.shards.errors import ShardError
from clip2point.shards.index import ShardIndex, index_split
from clip2point.shards.manifest import (
    MANIFEST_FORMAT,
    manifest_counts,
    manifest_urls,
    merge_manifests,
    read_manifest,
    write_manifest,
)
from clip2point.shards.samples import decode_png, decode_points, decode_sample, encode_sample, png_bytes, sample_key
from clip2point.shards.stream import ReadStats, iter_shards, load_split
from clip2point.shards.tar import write_shards

__all__ = [
    "MANIFEST_FORMAT",
    "Expect",
    "ReadStats",
    "ShardError",
    "ShardIndex",
    "check_layout",
    "check_sample",
    "decode_png",
    "decode_points",
    "decode_sample",
    "encode_sample",
    "expectation",
    "index_split",
    "iter_shards",
    "load_split",
    "manifest_counts",
    "manifest_urls",
    "merge_manifests",
    "png_bytes",
    "read_manifest",
    "sample_key",
    "write_manifest",
    "write_shards",
]
