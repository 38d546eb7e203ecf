"""``synth``: the procedural benchmark (:mod:`clip2point.synth`) as written by the ``synth`` stage: the
ModelNet folder layout ``root/<class>/<split>/<class>_NNNN.<off|ply>`` with any split names
(``train``/``val``/``test``) and a ``classes.txt`` fixing the label order. y-up."""

from __future__ import annotations

from pathlib import Path

from clip2point.datasets.base import Item, folder_catalogue, folder_classes, register_catalogue, require_dir


def _synth_names(root: Path, variant: str) -> list[str]:
    require_dir(root)
    return folder_classes(root)


@register_catalogue("synth", names=_synth_names)
def _synth_items(root: Path, variant: str) -> list[Item]:
    require_dir(root)
    return folder_catalogue(root)
