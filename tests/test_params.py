"""params.yaml is validated into typed objects; bad keys and types fail with the key named."""

from pathlib import Path

import pytest
import yaml

from pipeline.params import ParamsError, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]


def _raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_default_params_load():
    p = load_params(ROOT / "params.yaml")
    assert p.depth.mode in {"min", "weighted"}
    assert p.depth.dilation == _raw()["depth"]["dilation"]
    assert isinstance(p.synth.classes, tuple) and len(p.synth.classes) >= 10
    assert [b.name for b in p.data.benchmarks] == list(_raw()["data"]["benchmarks"])
    assert p.data.benchmark("synth_benchmark").root == _raw()["data"]["benchmarks"]["synth_benchmark"]["root"]


@pytest.mark.parametrize("profile", sorted((ROOT / "configs").glob("*.yaml")))
def test_profiles_load(profile):
    """Every params profile shipped in configs/ validates."""
    load_params(profile)


def test_unknown_key_is_named():
    raw = _raw()
    raw["depth"]["dilaton"] = 4
    with pytest.raises(ParamsError, match=r"dilaton.*depth"):
        params_from_dict(raw)


def test_wrong_type_is_named():
    raw = _raw()
    raw["depth"]["dilation"] = "two"
    with pytest.raises(ParamsError, match=r"depth\.dilation"):
        params_from_dict(raw)


def test_missing_required_is_named():
    raw = _raw()
    del raw["data"]["pretrain"]["root"]
    with pytest.raises(ParamsError, match=r"data\.pretrain\.root"):
        params_from_dict(raw)


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_unknown_dataset_is_named():
    p = params_from_dict(_raw())
    with pytest.raises(ParamsError, match="no dataset named 'modelnet99'"):
        p.data.benchmark("modelnet99")


def test_yaml_12_booleans_like_dvc(tmp_path):
    """`dvc exp run -S` rewrites params.yaml without quotes: `off` must stay a string, `true` a bool."""
    text = (ROOT / "params.yaml").read_text().replace('mesh_format: "off"', "mesh_format: off")
    assert "mesh_format: off" in text
    f = tmp_path / "params.yaml"
    f.write_text(text)
    p = load_params(f)
    assert p.synth.mesh_format == "off"
    assert p.render.cache_depth is False and p.pretrain.bf16 is True
