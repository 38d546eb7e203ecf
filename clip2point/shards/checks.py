"""Cross-checks of a sample's members against each other and the manifest (issue 22, item 4).

The members of a sample must agree with each other and with the manifest (:class:`Expect`, from
:func:`expectation`), or the read raises :class:`ShardError` naming the shard, the sample and the disagreeing
members: the key is the json ``id``'s key, ``cls`` equals the json ``label``, the label indexes the manifest's
``class_names`` and its name is the json ``label_name``, the json ``split`` is the split read, the RGB members
are ``rgb.00.png`` … ``rgb.<V-1>.png`` with V the manifest's view count (none where it says ``has_rgb:
false``), and ``points.npy`` holds the manifest's ``num_points``. Such a sample is never skipped: a shard that
contradicts itself is damaged, and an accuracy over what remains would be wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from clip2point.shards.errors import ShardError
from clip2point.shards.samples import _RGB_RE, sample_key


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
