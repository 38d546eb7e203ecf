"""What the real datasets of the paper (§5.1) look like once downloaded: counts, layouts, where to get them.

The facts here are the published split sizes and the on-disk layouts of the official downloads:

* ModelNet40 (Wu et al. 2015): 12,311 CAD meshes (OFF, z-up), 9,843 train / 2,468 test, 40 classes.
* ModelNet10: the 10-class subset, 3,991 train / 908 test.
* ShapeNet-55 (the Point-BERT split of ShapeNetCore v2 point clouds, 8,192 points each, ``.npy``):
  41,952 train / 10,518 test (52,470 objects, 55 categories). Used for pretraining (depth only: no meshes).
* ShapeNetCore v2 (Chang et al. 2015), the meshes the paper pre-trains on (RGB renders need textured meshes):
  52,460 models in 55 categories (synsets), ``<synset>/<model_id>/models/model_normalized.{obj,mtl}``, y-up.
  The paper splits them 41,943 train / 10,517 val following the ShapeNet classification benchmark; this
  repository uses Point-BERT's ``train.txt``/``test.txt`` when given, else an 80/20 split by a hash of the
  model id (:func:`clip2point.io.catalogues.shapenetcore_split`), so only the total (key :data:`TOTAL`) is
  checked.
* ScanObjectNN (Uy et al. 2019), 15 classes, HDF5: the main split has 2,309 train / 581 test objects in
  both ``OBJ_ONLY`` (``main_split_nobg``) and ``OBJ_BG`` (``main_split``); the hardest perturbed variant
  ``PB_T50_RS`` (``*_augmentedrot_scale75.h5``) has five perturbed copies of each: 11,416 / 2,882.

:func:`check_layout` compares a local download against these facts with the file system only (no mesh is
parsed) and names exactly what is missing, so a researcher can fix a partial download before the
pipeline spends hours on it. This module knows no paths of the pipeline and no ``params.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: A ``counts`` key standing for all splits together (datasets whose split is chosen locally).
TOTAL = "all"

MODELNET40_CLASSES: tuple[str, ...] = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp",
    "laptop", "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink",
    "sofa", "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox",
)  # fmt: skip
MODELNET10_CLASSES: tuple[str, ...] = (
    "bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet",
)  # fmt: skip
#: ScanObjectNN class names in the order of the integer labels stored in its HDF5 files.
SCANOBJECTNN_CLASSES: tuple[str, ...] = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table",
    "bed", "pillow", "sink", "sofa", "toilet",
)  # fmt: skip

SCANOBJECTNN_VARIANTS: dict[str, tuple[str, str]] = {
    "OBJ_ONLY": ("main_split_nobg/training_objectdataset.h5", "main_split_nobg/test_objectdataset.h5"),
    "OBJ_BG": ("main_split/training_objectdataset.h5", "main_split/test_objectdataset.h5"),
    "PB_T50_RS": (
        "main_split/training_objectdataset_augmentedrot_scale75.h5",
        "main_split/test_objectdataset_augmentedrot_scale75.h5",
    ),
}


@dataclass(frozen=True)
class DatasetInfo:
    """One real dataset: what ``clip2point prepare NAME`` expects to find under ``--root``."""

    name: str
    kind: str  # the catalogue kind in clip2point.io
    role: str  # "benchmark" (data.benchmarks) or "pretrain" (data.pretrain)
    up_axis: str
    classes: tuple[str, ...]
    #: expected items per split; for ScanObjectNN, per variant (``counts_for``)
    counts: dict[str, int] = field(default_factory=dict)
    variant_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    download: str = ""
    layout: str = ""
    #: non-empty when ``--variant`` may name a folder (what it holds); such datasets have no named variants
    variant_path: str = ""

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(self.variant_counts)

    def counts_for(self, variant: str = "") -> dict[str, int]:
        """Expected ``{split: count}`` (the variant's, for datasets that have variants)."""
        if self.variant_counts:
            if variant not in self.variant_counts:
                raise KeyError(
                    f"{self.name}: unknown variant '{variant}' (known: {', '.join(self.variants)})"
                )
            return dict(self.variant_counts[variant])
        return dict(self.counts)


DATASETS: dict[str, DatasetInfo] = {
    "modelnet40": DatasetInfo(
        name="modelnet40",
        kind="modelnet40",
        role="benchmark",
        up_axis="z",
        classes=MODELNET40_CLASSES,
        counts={"train": 9843, "test": 2468},
        # the released code reads the manually aligned release (datasets/modelnet40_align.py:31); Princeton's
        # original ModelNet40.zip is not consistently aligned, so the fixed views would see other sides
        download=(
            "the manually aligned ModelNet40 (Sedaghat et al., 'Orientation-boosted voxel nets', "
            "https://lmb.informatik.uni-freiburg.de/resources/datasets/ORION/modelnet40_manually_aligned.tar); "
            "pass the unpacked modelnet40_manually_aligned folder"
        ),
        layout="modelnet40_manually_aligned/<class>/{train,test}/<class>_NNNN.off",
    ),
    "modelnet10": DatasetInfo(
        name="modelnet10",
        kind="modelnet10",
        role="benchmark",
        up_axis="z",
        classes=MODELNET10_CLASSES,
        counts={"train": 3991, "test": 908},
        download="https://modelnet.cs.princeton.edu/ (ModelNet10.zip, ~450 MB; pass the unzipped ModelNet10)",
        layout="ModelNet10/<class>/{train,test}/<class>_NNNN.off",
    ),
    "shapenet55": DatasetInfo(
        name="shapenet55",
        kind="shapenet55",
        role="pretrain",
        up_axis="y",
        classes=(),  # 55 ShapeNetCore synsets; names come from the download
        counts={"train": 41952, "test": 10518},
        download=(
            "Point-BERT's ShapeNet55-34 archive, linked from "
            "https://github.com/lulutang0608/Point-BERT/blob/master/DATASET.md (ShapeNet terms of use apply)"
        ),
        layout="ShapeNet55-34/{shapenet_pc/<synset>-<model>.npy, ShapeNet-55/{train,test}.txt}",
    ),
    "shapenetcore": DatasetInfo(
        name="shapenetcore",
        kind="shapenetcore",
        role="pretrain",
        up_axis="y",
        classes=(),  # 55 synsets, named by clip2point.io.SHAPENET_SYNSETS
        counts={TOTAL: 52460},
        download=(
            "https://shapenet.org/ (register and accept the terms of use; ShapeNetCore v2) or the gated Hugging "
            "Face dataset https://huggingface.co/datasets/ShapeNet/ShapeNetCore (one zip per synset; unzip all "
            "into one folder)"
        ),
        layout="ShapeNetCore.v2/<synset>/<model_id>/models/model_normalized.{obj,mtl} (+ taxonomy.json)",
        variant_path=(
            "the folder holding Point-BERT's train.txt/test.txt (default: the root; without them an 80/20 split "
            "by sha256 of the model id)"
        ),
    ),
    "scanobjectnn": DatasetInfo(
        name="scanobjectnn",
        kind="scanobjectnn",
        role="benchmark",
        up_axis="y",
        classes=SCANOBJECTNN_CLASSES,
        variant_counts={
            "OBJ_ONLY": {"train": 2309, "test": 581},
            "OBJ_BG": {"train": 2309, "test": 581},
            "PB_T50_RS": {"train": 11416, "test": 2882},
        },
        download=(
            "https://hkust-vgd.github.io/scanobjectnn/ (fill in the terms-of-use form; h5_files.zip, "
            "pass the h5_files folder)"
        ),
        layout="h5_files/{main_split,main_split_nobg}/{training,test}_objectdataset[_augmentedrot_scale75].h5",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; unknown names list the known ones."""
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})") from None


@dataclass
class LayoutReport:
    """What :func:`check_layout` found: counts per split and the exact problems (empty when complete)."""

    dataset: str
    root: Path
    variant: str
    expected: dict[str, int]
    found: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: facts worth telling that do not make the download incomplete (e.g. which split rule applies)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(self.found.get(s, 0) == n for s, n in self.expected.items())

    def summary(self) -> str:
        """``train 9,843/9,843, test 2,468/2,468``."""
        return ", ".join(f"{s} {self.found.get(s, 0):,}/{n:,}" for s, n in self.expected.items())


def _listing(names: Iterable[str], limit: int = 8) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def _find_root(root: Path, candidates: Iterable[str]) -> Path:
    """``root`` itself, or the first named child that exists (users pass either level of the archive)."""
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    return root


def check_layout(name: str, root: str | Path, variant: str = "") -> LayoutReport:
    """Check a local download of ``name`` under ``root`` against the expected files and split sizes."""
    info = dataset_info(name)
    root = Path(root).expanduser()
    expected = info.counts_for(variant)
    report = LayoutReport(info.name, root, variant, expected)
    if not root.is_dir():
        report.problems.append(f"{root} is not a directory")
        return report
    if info.kind in ("modelnet40", "modelnet10"):
        _check_modelnet(info, root, report)
    elif info.kind == "shapenet55":
        _check_shapenet55(root, report)
    elif info.kind == "shapenetcore":
        _check_shapenetcore(root, variant, report)
    elif info.kind == "scanobjectnn":
        _check_scanobjectnn(root, variant, report)
    for split, n in expected.items():
        got = report.found.get(split, 0)
        if got != n:
            delta = f"{n - got:,} missing" if got < n else f"{got - n:,} more than expected"
            report.problems.append(f"{split}: found {got:,} of {n:,} ({delta})")
    return report


def _check_modelnet(info: DatasetInfo, root: Path, report: LayoutReport) -> None:
    title = "ModelNet40" if info.kind == "modelnet40" else "ModelNet10"
    root = _find_root(root, [title, title.lower()])
    report.root = root
    if (
        root / f"{info.kind}_shape_names.txt"
    ).is_file():  # PointNet++'s modelnet40_normal_resampled layout: lists of ids
        for split in report.expected:
            listing = root / f"{info.kind}_{split}.txt"
            if not listing.is_file():
                report.problems.append(f"missing split list {listing}")
                continue
            ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
            missing = [i for i in ids if not (root / i.rsplit("_", 1)[0] / f"{i}.txt").is_file()]
            report.found[split] = len(ids) - len(missing)
            if missing:
                report.problems.append(f"{split}: {len(missing):,} listed files missing: {_listing(missing)}")
        return
    absent = [c for c in info.classes if not (root / c).is_dir()]
    if absent:
        report.problems.append(f"missing class folders under {root}: {_listing(absent)}")
    unexpected = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in info.classes)
    if unexpected and len(absent) == len(info.classes):
        report.problems.append(
            f"no {title} class folders here (found: {_listing(unexpected)}); expected {info.layout}"
        )
    for split in report.expected:
        empty = []
        total = 0
        for c in info.classes:
            d = root / c / split
            n = sum(1 for _ in d.glob("*.off")) if d.is_dir() else 0
            total += n
            if n == 0 and c not in absent:
                empty.append(f"{c}/{split}")
        report.found[split] = total
        if empty:
            report.problems.append(f"no .off files in: {_listing(empty)}")


def _check_shapenet55(root: Path, report: LayoutReport) -> None:
    root = _find_root(root, ["ShapeNet55-34", "ShapeNet55"])
    report.root = root
    pc = root / "shapenet_pc"
    if not pc.is_dir():
        report.problems.append(f"missing folder {pc} (the .npy point clouds)")
    present = {p.name for p in pc.glob("*.npy")} if pc.is_dir() else set()
    for split in report.expected:
        # Point-BERT ships the lists in ShapeNet-55/; a flattened copy next to shapenet_pc/ is accepted too
        candidates = (root / f"{split}.txt", root / "ShapeNet-55" / f"{split}.txt")
        listing = next((c for c in candidates if c.is_file()), None)
        if listing is None:
            report.problems.append(f"missing split list {root / 'ShapeNet-55' / f'{split}.txt'}")
            continue
        ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        missing = [i for i in ids if (i if i.endswith(".npy") else f"{i}.npy") not in present]
        report.found[split] = len(ids) - len(missing)
        if missing and pc.is_dir():
            report.problems.append(
                f"{split}: {len(missing):,} listed files missing from {pc}: {_listing(missing)}"
            )


def _check_shapenetcore(root: Path, variant: str, report: LayoutReport) -> None:
    import re

    from clip2point.io.catalogues import SHAPENET_SYNSETS, SHAPENETCORE_MODEL

    root = _find_root(root, ["ShapeNetCore.v2", "ShapeNetCore"])
    report.root = root
    synsets = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{8}", p.name))
    if not synsets:
        report.problems.append(f"no synset folders (8-digit ids such as 02691156) under {root}")
        return
    absent = [f"{s} ({n})" for s, n in SHAPENET_SYNSETS.items() if not (root / s).is_dir()]
    if absent:
        report.problems.append(f"missing synset folders under {root}: {_listing(absent)}")
    no_obj, no_mtl, total = [], [], 0
    for sdir in synsets:
        for mdir in (p for p in sdir.iterdir() if p.is_dir()):
            obj = mdir / SHAPENETCORE_MODEL
            if not obj.is_file():
                no_obj.append(f"{sdir.name}/{mdir.name}")
                continue
            total += 1
            if not obj.with_suffix(".mtl").is_file():
                no_mtl.append(f"{sdir.name}/{mdir.name}")
    report.found[TOTAL] = total
    if no_obj:
        report.notes.append(f"{len(no_obj):,} model folders without {SHAPENETCORE_MODEL} (skipped): {_listing(no_obj)}")
    if no_mtl:
        report.notes.append(
            f"{len(no_mtl):,} models without model_normalized.mtl (rendered without materials): {_listing(no_mtl)}"
        )
    lists = Path(variant).expanduser() if variant else root
    present = [n for n in ("train.txt", "test.txt") if (lists / n).is_file()]
    if len(present) == 2:
        report.notes.append(
            f"split: Point-BERT's lists in {lists} (test.txt → val); models they do not name by model-id hash"
        )
    elif variant or present:
        missing = [n for n in ("train.txt", "test.txt") if n not in present]
        report.problems.append(f"missing split list {lists / missing[0]} (train.txt and test.txt go together)")
    else:
        report.notes.append(
            "split: 80/20 by sha256 of the model id (no train.txt/test.txt in the root; "
            "--variant DIR uses Point-BERT's lists)"
        )


def _check_scanobjectnn(root: Path, variant: str, report: LayoutReport) -> None:
    root = _find_root(root, ["h5_files"])
    report.root = root
    for split, rel in zip(("train", "test"), SCANOBJECTNN_VARIANTS[variant], strict=True):
        path = root / rel
        if not path.is_file():
            report.problems.append(f"missing {path} ({variant} {split} split)")
            continue
        try:
            import h5py

            with h5py.File(path, "r") as f:
                if "data" not in f or "label" not in f:
                    report.problems.append(
                        f"{path} has no 'data'/'label' datasets (not a ScanObjectNN file?)"
                    )
                    continue
                report.found[split] = int(f["data"].shape[0])
        except OSError as e:
            report.problems.append(f"cannot read {path}: {' '.join(str(e).split())}")
