"""The pre-training objectives by name, and everything each one reports, torch-free (paper §3.2.1, §5.6).

:data:`OBJECTIVES` is a lazy :class:`~clip2point.registry.Registry` of :class:`ObjectiveInfo`: the names are
the valid ``pretrain.variants`` / ``PretrainConfig.variant`` values (``pipeline.params`` reads them without
importing torch), and each info declares what the rest of the code shows of its objective: the loss terms it
logs (history and dvclive keys ``train/<term>``), the progress-bar fields, its zero-shot table row (Table 1 shape)
and its adapter-grid row. Its trainable part (the loss, what a batch must hold:
:class:`clip2point.train.objectives.Objective`) is imported on :meth:`ObjectiveInfo.load` only.

Adding an objective (worked example in ``docs/architecture.md``): its loss and ``Objective`` in
:mod:`clip2point.train.objectives`, its :class:`ObjectiveInfo` here, and a test. No other module names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clip2point.registry import Registry, import_target


@dataclass(frozen=True)
class ObjectiveInfo:
    """What one pre-training objective is called and reports.

    ``log_terms``: the loss terms its loss returns besides the total (history keys, dvclive ``train/<term>``);
    ``progress``: (term, short label) pairs shown on the progress bar; ``zero_shot_row`` / ``zero_shot_label``:
    its row of the zero-shot table and the report's label for it; ``adapter_row``: the note of the adapter-grid
    row with its encoder as the DPA's second path (``None``: no such row, e.g. the method itself, whose rows are
    Table 4's); ``with_sigma``: it learns Eq. 11's σ (trained, and its trajectory plotted); ``target``:
    ``module:attribute`` of its :class:`~clip2point.train.objectives.Objective`.
    """

    name: str
    description: str
    target: str
    log_terms: tuple[str, ...]
    progress: tuple[tuple[str, str], ...]
    zero_shot_row: str
    zero_shot_label: str
    adapter_row: str | None = None
    with_sigma: bool = False

    def load(self) -> Any:
        """The :class:`~clip2point.train.objectives.Objective` (imports torch)."""
        obj = import_target(self.target)
        if obj.name != self.name:
            raise ValueError(f"objective '{self.name}': {self.target} is named '{obj.name}'")
        return obj


#: Every pre-training objective, in registration order (that of ``pretrain.variants``' default).
OBJECTIVES: Registry[ObjectiveInfo] = Registry("pretraining variant")

_LOSSES = "clip2point.train.objectives"
for _info in (
    ObjectiveInfo(
        "intra_cross", "CLIP2Point (Eq. 11)", f"{_LOSSES}:INTRA_CROSS",
        log_terms=("l_intra", "l_cross"), progress=(("l_intra", "intra"), ("l_cross", "cross")),
        zero_shot_row="with_pretraining",
        zero_shot_label="CLIP2Point depth encoder, intra + cross (w/ pre-training)", with_sigma=True),
    ObjectiveInfo(
        "cross_only", "§5.6 ablation (Eq. 10 only)", f"{_LOSSES}:CROSS_ONLY",
        log_terms=("l_cross",), progress=(("l_cross", "cross"),),
        zero_shot_row="cross_only", zero_shot_label="ablation §5.6: cross-modality only",
        adapter_row="5.6: DPA with the cross-only encoder"),
    ObjectiveInfo(
        "rgb_control", "equal-compute image–text control on RGB", f"{_LOSSES}:RGB_CONTROL",
        log_terms=("l_rgb",), progress=(("l_rgb", "rgb"),),
        zero_shot_row="rgb_control",
        zero_shot_label="control: CLIP image encoder trained further on RGB only (equal compute)",
        adapter_row="control: second path pretrained on RGB only"),
):
    OBJECTIVES.register(_info.name, _info)
del _info

#: The objective names (``pretrain.variants`` choices), in registration order.
VARIANTS: tuple[str, ...] = OBJECTIVES.names()

#: The variant whose encoder is the method's (CLIP2Point): Table 4's rows and the DPA's second path.
METHOD = "intra_cross"


def objective_info(name: str) -> ObjectiveInfo:
    """The :class:`ObjectiveInfo` of ``name`` (``ValueError`` listing the known variants)."""
    return OBJECTIVES.get(name)
