"""ShapeNet (Chang et al. 2015; §5.1, the pre-training data): the ShapeNetCore v2 meshes and Point-BERT's
ShapeNet-55 point clouds. Synset names, published counts, catalogues and layout checks.

* ``shapenet55`` — Point-BERT's ShapeNet-55 release (point clouds only, 8,192 points each, ``.npy``;
  41,952 train / 10,518 test, 55 categories): ``root/shapenet_pc/<synset>-<model>.npy`` with the split lists
  ``{train,test}.txt`` listing those file names either in ``root`` itself or, as Point-BERT's archive ships
  them, in ``root/ShapeNet-55/`` (so ``root`` may be the unpacked ``ShapeNet55-34`` folder). Labels are the
  synset ids in sorted order, named with :data:`SHAPENET_SYNSETS`. y-up. Depth only: no meshes.
* ``shapenetcore`` — the ShapeNetCore.v2 meshes (textured OBJ, what the paper renders RGB from; 52,460
  models in 55 synsets): ``root/<synset>/<model_id>/models/model_normalized.obj`` next to its
  ``model_normalized.mtl``. Classes are the synset folders (8 digits) holding at least one model, in sorted
  order; names come from :data:`SHAPENET_SYNSETS` (the same names as ``shapenet55``), and for a synset outside
  that table from the first synonym of its ``name`` in ``root/taxonomy.json``, else the synset id. The paper
  splits 41,943 train / 10,517 val; here Point-BERT's ``train.txt``/``test.txt`` when given, else
  :func:`shapenetcore_split` (so only the total, key ``TOTAL``, is checked). Item ids are
  ``<synset>-<model_id>`` (Point-BERT's naming). y-up.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from clip2point.datasets import base
from clip2point.io.errors import ReadError

#: ShapeNetCore v2 synset id → category name (the 55 classes of ShapeNet-55).
SHAPENET_SYNSETS: dict[str, str] = dict(base.class_table("shapenet_synsets"))

# ---------------------------------------------------------------- ShapeNet-55 (Point-BERT point clouds)

#: Where Point-BERT's ``ShapeNet55-34`` archive keeps the split lists, relative to the archive folder.
SHAPENET55_LIST_DIR = "ShapeNet-55"


def _shapenet55_files(root: Path) -> dict[str, list[str]]:
    base.require_dir(root)
    for folder in (root, root / SHAPENET55_LIST_DIR):
        if all((folder / f"{split}.txt").is_file() for split in ("train", "test")):
            return {split: base.read_list(folder / f"{split}.txt") for split in ("train", "test")}
    raise ReadError(
        root, f"split lists train.txt and test.txt not found (looked in the root and in {SHAPENET55_LIST_DIR}/)"
    )


def _shapenet55_synsets(files: dict[str, list[str]]) -> list[str]:
    return sorted({f.split("-", 1)[0] for names in files.values() for f in names})


def _shapenet55_names(root: Path, variant: str) -> list[str]:
    return [SHAPENET_SYNSETS.get(s, s) for s in _shapenet55_synsets(_shapenet55_files(root))]


@base.register_catalogue("shapenet55", names=_shapenet55_names)
def _shapenet55_items(root: Path, variant: str) -> list[base.Item]:
    files = _shapenet55_files(root)
    clouds = root / "shapenet_pc"
    if not clouds.is_dir():
        raise ReadError(clouds, "point-cloud folder not found (expected shapenet_pc/<synset>-<model>.npy)")
    index = {s: i for i, s in enumerate(_shapenet55_synsets(files))}
    items = []
    for split, names in files.items():
        for f in names:
            name = f if f.endswith(".npy") else f + ".npy"
            syn = name.split("-", 1)[0]
            label_name = SHAPENET_SYNSETS.get(syn, syn)
            items.append(base.Item(Path(name).stem, split, index[syn], label_name, str(clouds / name)))
    return items


# ---------------------------------------------------------------- ShapeNetCore.v2 (meshes)

#: A model's mesh, relative to ``root/<synset>/<model_id>/`` (its ``.mtl`` lies next to it).
SHAPENETCORE_MODEL = "models/model_normalized.obj"
#: Percentage of models put in ``val`` by :func:`shapenetcore_split` (the paper's split is about 80/20).
SHAPENETCORE_VAL_PERCENT = 20
_SYNSET_DIR = re.compile(r"\d{8}")


def shapenetcore_split(model_id: str) -> str:
    """The split (``"train"`` or ``"val"``) of a ShapeNetCore model that no split list names.

    The rule is stable across runs, machines and Python versions (unlike the salted built-in ``hash()``):
    the first 8 bytes of ``sha256(model_id.encode("utf-8"))``, read as a big-endian integer, modulo 100;
    values below :data:`SHAPENETCORE_VAL_PERCENT` (20) give ``"val"``, the rest ``"train"``. Only the model
    id is hashed, so a model filed under two synsets falls in the same split both times.
    """
    bucket = int.from_bytes(hashlib.sha256(model_id.encode("utf-8")).digest()[:8], "big") % 100
    return "val" if bucket < SHAPENETCORE_VAL_PERCENT else "train"


def _synset_dirs(root: Path) -> list[Path]:
    base.require_dir(root)
    return sorted(p for p in root.iterdir() if p.is_dir() and _SYNSET_DIR.fullmatch(p.name))


def _model_ids(synset_dir: Path) -> list[str]:
    return sorted(m.name for m in synset_dir.iterdir() if (m / SHAPENETCORE_MODEL).is_file())


def _has_model(synset_dir: Path) -> bool:
    return any((m / SHAPENETCORE_MODEL).is_file() for m in synset_dir.iterdir())


def _no_models(root: Path) -> ReadError:
    return ReadError(root, f"no ShapeNetCore models found (expected <synset>/<model_id>/{SHAPENETCORE_MODEL})")


def _taxonomy_names(path: Path) -> dict[str, str]:
    """synset id → first synonym of its ``name`` in ShapeNetCore's ``taxonomy.json`` (empty if absent)."""
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
        return {str(e["synsetId"]): str(e["name"]).split(",")[0].strip() for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReadError(path, f"not a ShapeNet taxonomy (a JSON list of {{synsetId, name}}): {e}") from None


def _synset_names(root: Path, synsets: list[str]) -> list[str]:
    unknown = [s for s in synsets if s not in SHAPENET_SYNSETS]
    taxonomy = _taxonomy_names(root / "taxonomy.json") if unknown else {}
    return [SHAPENET_SYNSETS.get(s) or taxonomy.get(s) or s for s in synsets]


def _shapenetcore_names(root: Path, variant: str) -> list[str]:
    synsets = [d.name for d in _synset_dirs(root) if _has_model(d)]
    if not synsets:
        raise _no_models(root)
    return _synset_names(root, synsets)


def _split_lists(root: Path, variant: str) -> dict[str, str] | None:
    """``"<synset>-<model_id>"`` → split from Point-BERT's ``train.txt``/``test.txt`` (test → ``val``), found in
    the folder named by ``variant`` or else in ``root``; ``None`` when ``root`` has neither (hash split)."""
    folder = Path(variant) if variant else root
    if variant and not folder.is_dir():
        raise ReadError(folder, "split-list folder (the dataset's variant) not found")
    lists = {"train": folder / "train.txt", "val": folder / "test.txt"}
    missing = [p for p in lists.values() if not p.is_file()]
    if not variant and len(missing) == len(lists):
        return None
    if missing:
        raise ReadError(missing[0], "split list not found (train.txt and test.txt are used together)")
    split_of: dict[str, str] = {}
    for split, path in lists.items():
        for line in base.read_list(path):
            key = line.removesuffix(".npy")
            synset, sep, model = key.partition("-")
            if not (sep and model and _SYNSET_DIR.fullmatch(synset)):
                raise ReadError(path, f"line {line!r} is not <synset>-<model_id>.npy")
            if split_of.setdefault(key, split) != split:
                raise ReadError(path, f"{key} is listed in both train.txt and test.txt")
    return split_of


@base.register_catalogue("shapenetcore", names=_shapenetcore_names)
def _shapenetcore_items(root: Path, variant: str) -> list[base.Item]:
    """Split by Point-BERT's lists when present; models on disk that no list names (and every model
    without lists) by :func:`shapenetcore_split`. Listed models absent from disk are skipped."""
    models = {d.name: ids for d in _synset_dirs(root) if (ids := _model_ids(d))}
    if not models:
        raise _no_models(root)
    split_of = _split_lists(root, variant)
    keys = [f"{s}-{m}" for s, ids in models.items() for m in ids]
    if split_of is not None and split_of.keys().isdisjoint(keys):
        where = Path(variant) if variant else root
        raise ReadError(where, f"none of the {len(split_of):,} models in train.txt/test.txt is under {root}")
    names = _synset_names(root, list(models))
    items = []
    for label, (synset, ids) in enumerate(models.items()):
        for model in ids:
            key = f"{synset}-{model}"
            split = (split_of or {}).get(key) or shapenetcore_split(model)
            items.append(base.Item(key, split, label, names[label], str(root / synset / model / SHAPENETCORE_MODEL)))
    return items


# ---------------------------------------------------------------- the real downloads

base.register_dataset(base.DatasetInfo(
    # 55 ShapeNetCore synsets; names come from the download
    name="shapenet55", kind="shapenet55", role="pretrain", up_axis="y", classes=(),
    counts={"train": 41952, "test": 10518},
    download=(
        "Point-BERT's ShapeNet55-34 archive, linked from "
        "https://github.com/lulutang0608/Point-BERT/blob/master/DATASET.md (ShapeNet terms of use apply)"
    ),
    layout="ShapeNet55-34/{shapenet_pc/<synset>-<model>.npy, ShapeNet-55/{train,test}.txt}",
))
base.register_dataset(base.DatasetInfo(
    # 55 synsets, named by SHAPENET_SYNSETS
    name="shapenetcore", kind="shapenetcore", role="pretrain", up_axis="y", classes=(),
    counts={base.TOTAL: 52460},
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
))


@base.register_layout_check("shapenet55")
def _check_shapenet55(info: base.DatasetInfo, root: Path, variant: str, report: base.LayoutReport) -> None:
    root = base.find_root(root, ["ShapeNet55-34", "ShapeNet55"])
    report.root = root
    pc = root / "shapenet_pc"
    if not pc.is_dir():
        report.problems.append(f"missing folder {pc} (the .npy point clouds)")
    present = {p.name for p in pc.glob("*.npy")} if pc.is_dir() else set()
    for split in report.expected:
        # Point-BERT ships the lists in ShapeNet-55/; a flattened copy next to shapenet_pc/ is accepted too
        candidates = (root / f"{split}.txt", root / SHAPENET55_LIST_DIR / f"{split}.txt")
        lst = next((c for c in candidates if c.is_file()), None)
        if lst is None:
            report.problems.append(f"missing split list {root / SHAPENET55_LIST_DIR / f'{split}.txt'}")
            continue
        ids = base.read_list(lst)
        missing = [i for i in ids if (i if i.endswith(".npy") else f"{i}.npy") not in present]
        report.found[split] = len(ids) - len(missing)
        if missing and pc.is_dir():
            report.problems.append(
                f"{split}: {len(missing):,} listed files missing from {pc}: {base.listing(missing)}"
            )


@base.register_layout_check("shapenetcore")
def _check_shapenetcore(info: base.DatasetInfo, root: Path, variant: str, report: base.LayoutReport) -> None:
    root = base.find_root(root, ["ShapeNetCore.v2", "ShapeNetCore"])
    report.root = root
    synsets = sorted(p for p in root.iterdir() if p.is_dir() and _SYNSET_DIR.fullmatch(p.name))
    if not synsets:
        report.problems.append(f"no synset folders (8-digit ids such as 02691156) under {root}")
        return
    absent = [f"{s} ({n})" for s, n in SHAPENET_SYNSETS.items() if not (root / s).is_dir()]
    if absent:
        report.problems.append(f"missing synset folders under {root}: {base.listing(absent)}")
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
    report.found[base.TOTAL] = total
    if no_obj:
        report.notes.append(
            f"{len(no_obj):,} model folders without {SHAPENETCORE_MODEL} (skipped): {base.listing(no_obj)}"
        )
    if no_mtl:
        report.notes.append(
            f"{len(no_mtl):,} models without model_normalized.mtl (rendered without materials): {base.listing(no_mtl)}"
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
