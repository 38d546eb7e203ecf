"""clip2point.configs: one config per concept, defaults written once, params sections converted by one function."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from clip2point.configs import BootstrapConfig, DepthConfig, PretrainConfig, TrainConfig, config_from
from pipeline.params import AdapterParams, BootstrapParams, DepthParams, PretrainParams, load_params

PAIRS = [(DepthParams, DepthConfig), (PretrainParams, PretrainConfig), (BootstrapParams, BootstrapConfig),
         (AdapterParams, TrainConfig)]


@pytest.mark.parametrize(("section", "config"), PAIRS, ids=lambda c: c.__name__)
def test_params_defaults_are_the_library_defaults(section, config):
    lib = {f.name: f.default for f in dataclasses.fields(config)}
    shared = [f for f in dataclasses.fields(section) if f.name in lib]
    assert shared, "a params section must share fields with the config it feeds"
    for f in shared:
        assert f.default == lib[f.name], f"{section.__name__}.{f.name}: {f.default!r} != {lib[f.name]!r}"


def test_config_from_copies_shared_fields_and_takes_overrides():
    pp = PretrainParams(lr=2e-3, temperature=0.2, optimizer="lamb_released", schedule="cosine_restarts")
    cfg = config_from(PretrainConfig, pp, variant="cross_only", seed=4, distance=1.5, jitter=0.0)
    # the fields the stage used to copy one by one, checked by name against the section
    for name in ("epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "temperature", "sigma_init",
                 "sigma_lr", "optimizer", "eval_every", "precision", "log_every", "compile", "max_steps",
                 "ckpt_every", "num_workers", "schedule", "param_groups"):
        assert getattr(cfg, name) == getattr(pp, name), name
    assert (cfg.variant, cfg.seed, cfg.distance, cfg.jitter) == ("cross_only", 4, 1.5, 0.0)
    assert cfg.eval_batch_size == PretrainConfig.eval_batch_size  # not in params: the config's default


def test_config_from_on_the_repository_params():
    p = load_params("params.yaml")
    depth = config_from(DepthConfig, p.depth)
    assert (depth.image_size, depth.dilation, depth.mode) == (p.depth.image_size, p.depth.dilation, p.depth.mode)
    train = config_from(TrainConfig, p.adapter, seed=7)
    assert (train.epochs, train.lr, train.decay, train.seed) == (p.adapter.epochs, p.adapter.lr, p.adapter.decay, 7)
    assert config_from(BootstrapConfig, p.bootstrap).epochs == p.bootstrap.epochs


def test_config_from_validates_through_the_config():
    with pytest.raises(ValueError, match="^depth: 'dilation' must be <= 64; got 100$"):
        config_from(DepthConfig, DepthParams(dilation=100))


def test_one_schema_the_params_sections_carry_the_configs_fields_and_rules(repo_params):
    """A range or a default is written once, on the library config; the params sections derived from it hold
    the same field (default and rules), and a value out of range is refused by both, each naming it its way."""
    from pipeline.params import AdapterParams, BootstrapParams, PretrainParams, params_from_dict
    from pipeline.params_fields import ParamsError

    pairs = ((DepthParams, DepthConfig, {"eps"}), (BootstrapParams, BootstrapConfig, {"eval_batch_size"}),
             (PretrainParams, PretrainConfig, {"variant", "seed", "distance", "jitter", "eval_batch_size",
                                               "min_lr_ratio"}),
             (AdapterParams, TrainConfig, {"seed", "refit", "device"}))
    for section, config, per_run in pairs:
        got = {f.name: f for f in dataclasses.fields(section)}
        for f in dataclasses.fields(config):
            if f.name in per_run:
                assert f.name not in got, (section.__name__, f.name)
                continue
            g = got[f.name]
            assert (g.default, g.default_factory, dict(g.metadata)) == (f.default, f.default_factory,
                                                                       dict(f.metadata)), f.name
    # depth.distance / depth.jitter are PretrainConfig's fields, also written once
    dist = {f.name: f for f in dataclasses.fields(DepthParams)}
    cfg = {f.name: f for f in dataclasses.fields(PretrainConfig)}
    assert all(dict(dist[k].metadata) == dict(cfg[k].metadata) for k in ("distance", "jitter"))
    assert params_from_dict(repo_params).pretrain.temperature == PretrainConfig.temperature == 0.07
    with pytest.raises(ValueError, match="^pretrain: 'lr' must be > 0.0; got 0.0$"):
        PretrainConfig(lr=0.0)
    doc = repo_params
    doc["pretrain"]["lr"] = 0.0
    with pytest.raises(ParamsError, match="^params: 'pretrain.lr' must be > 0.0; got 0.0$"):
        params_from_dict(doc)


def test_a_derived_section_refuses_to_drop_a_field_the_config_lacks():
    from pipeline.params_fields import derived_from

    with pytest.raises(TypeError, match=r"Toy: drop names \['nope'\], not fields of TrainConfig"):
        @derived_from(TrainConfig, drop=("nope",))
        class Toy:
            k: int = 1


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PretrainConfig().lr = 1.0  # type: ignore[misc]


def test_reading_params_does_not_import_torch():
    code = "import sys, clip2point.configs, pipeline.params; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
