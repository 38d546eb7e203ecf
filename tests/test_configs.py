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
    with pytest.raises(ValueError, match="dilation must be in \\[1, 64\\], got 100"):
        config_from(DepthConfig, DepthParams(dilation=100))


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PretrainConfig().lr = 1.0  # type: ignore[misc]


def test_reading_params_does_not_import_torch():
    code = "import sys, clip2point.configs, pipeline.params; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
