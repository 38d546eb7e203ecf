"""Profiles: the rehearsal is the paper profile with only sizes changed; composition rules."""

from pathlib import Path

import pytest
import yaml

from pipeline.params import ParamsError, parse_yaml
from pipeline.profiles import compose, merge, overridden_keys

ROOT = Path(__file__).resolve().parents[1]

#: what the rehearsal may change: sizes, the fabricated data roots, random weights, the process count
REHEARSAL_MAY_CHANGE = {
    "data", "sample.dense_points", "sample.workers", "render.workers", "render.samples_per_shard",
    "clip.pretrained", "pretrain.epochs", "pretrain.max_steps", "pretrain.batch_size", "pretrain.warmup_steps",
    "pretrain.seeds", "pretrain.variants", "pretrain.num_workers", "zeroshot.batch_size", "adapter.k_shot",
    "adapter.seeds", "adapter.epochs", "adapter.resample_epochs", "launch", "launch.nproc_per_node",
}


def _load(name: str) -> dict:
    return parse_yaml((ROOT / "configs" / name).read_text())


def test_rehearsal_changes_only_sizes_of_the_paper_profile():
    paper, overlay = _load("paper.yaml"), _load("rehearsal.yaml")
    composed = compose(paper, overlay)
    changed = {k.split(".")[0] if k.startswith("data.") else k for k in overridden_keys(paper, composed)}
    assert changed <= REHEARSAL_MAY_CHANGE, sorted(changed - REHEARSAL_MAY_CHANGE)
    for key in ("depth", "render", "clip", "adapter", "zeroshot"):  # settings the paper's numbers rest on
        for k, v in paper[key].items():
            if f"{key}.{k}" not in REHEARSAL_MAY_CHANGE:
                assert composed[key][k] == v, f"{key}.{k}"
    assert composed["clip"]["model"] == "ViT-B-32-quickgelu" and composed["depth"]["image_size"] == 224


def test_merge_and_replace_rules():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": {"k": 1}, "c": 3}
    assert merge(base, {"a": {"y": [3]}}) == {"a": {"x": 1, "y": [3]}, "b": {"k": 1}, "c": 3}
    assert overridden_keys(base, merge(base, {"a": {"x": 2}, "c": 3})) == ["a.x"]


def test_compose_validates_the_result():
    paper = _load("paper.yaml")
    with pytest.raises(ParamsError, match="'pretrain.epochs' must be >= 1"):
        compose(paper, {"pretrain": {"epochs": 0}})


def _dvc_param_keys(dvc: dict, raw: dict) -> set[str]:
    """Every params key a stage of ``dvc.yaml`` reads (``params:`` entries and ``${...}`` interpolations, with
    ``foreach`` items substituted as DVC does), for the params ``raw``."""
    import re

    def look(path: str):
        node = raw
        for part in path.split("."):
            node = node[part]
        return node

    keys: set[str] = set()
    for stage in dvc["stages"].values():
        body, items = stage, [None]
        if "foreach" in stage:
            ref = re.fullmatch(r"\$\{(.+)\}", stage["foreach"])
            keys.add(ref.group(1))
            try:
                found = look(ref.group(1))
            except (KeyError, TypeError):  # reported as missing below
                found = []
            items = list(found) if isinstance(found, (dict, list)) else []
            body = stage["do"]
        text = yaml.safe_dump(body)
        for item in items:
            local = text.replace("${key}", str(item)) if item is not None else text
            keys |= {k for k in re.findall(r"\$\{([^}]+)\}", local) if k != "key" and k.split(".")[0] != "item"}
            for p in yaml.safe_load(local).get("params", []) or []:
                keys |= {p} if isinstance(p, str) else set()
    return keys


@pytest.mark.parametrize("profile", ["params.yaml", "configs/ci.yaml", "configs/paper.yaml", "configs/released.yaml",
                                     "configs/rehearsal.yaml"])
def test_every_profile_has_every_key_dvc_yaml_reads(profile):
    """Issue 19's CI failure: configs/ci.yaml lacked ``pretrain.external``, so ``dvc repro`` could not even parse
    dvc.yaml (``foreach: ${pretrain.external}``); a stage's ``params:`` key missing from a profile fails the same
    way at run time. Every profile (composed over its base, as scripts do) must hold every key."""
    def load(rel: str) -> dict:
        d = parse_yaml((ROOT / rel).read_text())
        return compose(load(d["overlay_of"]), d) if "overlay_of" in d else d

    raw = load(profile)
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    missing = []
    for key in sorted(_dvc_param_keys(dvc, raw)):
        node = raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
    assert not missing, f"{profile} lacks {missing}"
