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


@pytest.mark.parametrize("profile", sorted(p for p in (ROOT / "configs").glob("*.yaml")
                                            if p.name != "study.yaml"))  # study.yaml: tools.study's, not params
def test_profiles_load(profile):
    """Every params profile shipped in configs/ validates (an overlay, composed over paper.yaml)."""
    from pipeline.params import parse_yaml
    from pipeline.profiles import BASE_KEY, compose

    raw = parse_yaml(profile.read_text())
    if BASE_KEY in raw:
        compose(parse_yaml((ROOT / raw[BASE_KEY]).read_text()), raw)
    else:
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
    assert p.pretrain.precision == "fp32" and p.pretrain.log_every >= 10


@pytest.mark.parametrize(("section", "key", "value", "needle"), [
    ("pretrain", "epochs", -1, "'pretrain.epochs' must be >= 1; got -1"),
    ("pretrain", "epochs", 0, "'pretrain.epochs' must be >= 1; got 0"),
    ("pretrain", "batch_size", -32, "'pretrain.batch_size' must be >= 1; got -32"),
    ("pretrain", "lr", 0.0, "'pretrain.lr' must be > 0.0; got 0.0"),
    ("pretrain", "temperature", -0.07, "'pretrain.temperature' must be > 0.0"),
    ("pretrain", "variants", ["intra_cross", "intra_crss"], "'pretrain.variants' must be one of"),
    ("bootstrap", "epochs", 0, "'bootstrap.epochs' must be >= 1"),
    ("depth", "dilation", 0, "'depth.dilation' must be >= 1; got 0"),
    ("depth", "mode", "median", "'depth.mode' must be one of min, weighted; got 'median'"),
    ("depth", "projection", "fisheye", "'depth.projection' must be one of"),
    ("depth", "distance", 0.0, "'depth.distance' must be > 0.0"),
    ("depth", "jitter", 1.5, "'depth.jitter' must be < 1.0"),
    ("depth", "image_size", 4, "'depth.image_size' must be >= 8"),
    ("render", "workers", -1, "'render.workers' must be >= 0"),
    ("sample", "max_reject_fraction", 2.0, "'sample.max_reject_fraction' must be <= 1.0"),
    ("adapter", "k_shot", 0, "'adapter.k_shot' must be >= 1"),
    ("adapter", "val_fraction", 1.0, "'adapter.val_fraction' must be < 1.0"),
    ("adapter", "dropout", -0.1, "'adapter.dropout' must be >= 0.0"),
])
def test_out_of_range_values_are_refused_with_the_key_and_value(section, key, value, needle):
    raw = _raw()
    raw[section][key] = value
    with pytest.raises(ParamsError) as e:
        params_from_dict(raw)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_yaml_1_2_floats_without_a_dot_are_numbers(tmp_path):
    """``lr: 2e-3`` is a float in YAML 1.2 (DVC writes it so on ``-S``); PyYAML 1.1 read it as a string."""
    text = (ROOT / "params.yaml").read_text().replace("  lr: 0.002\n", "  lr: 2e-3\n", 1)
    assert "lr: 2e-3" in text
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").pretrain.lr == pytest.approx(2e-3)


def test_launch_section_is_optional_and_checked():
    assert params_from_dict(_raw()).launch.nproc_per_node == "auto"
    for bad in (0, "four", True):
        raw = _raw()
        raw["launch"] = {"nproc_per_node": bad}
        with pytest.raises(ParamsError, match="'launch.nproc_per_node' must be 'auto' or an integer >= 1"):
            params_from_dict(raw)


def test_precision_is_one_of_three_and_bf16_is_gone():
    raw = _raw()
    raw.setdefault("pretrain", {})["precision"] = "fp16"
    with pytest.raises(ParamsError, match="'pretrain.precision' must be one of fp32, tf32, bf16"):
        params_from_dict(raw)
    raw["pretrain"] = {"bf16": True}
    with pytest.raises(ParamsError, match="bf16"):
        params_from_dict(raw)


def test_params_file_is_read_from_the_environment_when_asked(tmp_path, monkeypatch):
    """Lazy: ``CLIP2POINT_PARAMS`` set after import is honoured (stages no longer need a subprocess)."""
    import pipeline.params as pparams

    text = (ROOT / "params.yaml").read_text().replace("  dilation: 2\n", "  dilation: 3\n", 1)
    (tmp_path / "p.yaml").write_text(text)
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(tmp_path / "p.yaml"))
    assert pparams.params_file() == tmp_path / "p.yaml"
    assert load_params().depth.dilation == 3


def test_cache_depth_is_gone():
    """The option whose output nothing read was dropped (issue 13): an old params file names it clearly."""
    raw = _raw()
    raw["render"]["cache_depth"] = False
    with pytest.raises(ParamsError, match=r"unknown key\(s\) \['cache_depth'\] in 'render'"):
        params_from_dict(raw)


def test_variant_choices_are_the_registered_objectives():
    from clip2point.train.objective_info import OBJECTIVES

    raw = _raw()
    raw["pretrain"]["variants"] = ["intra_cross", "no_such_objective"]
    names = ", ".join(OBJECTIVES.names())
    with pytest.raises(ParamsError, match=rf"'pretrain.variants' must be one of {names}; got 'no_such_objective'"):
        params_from_dict(raw)
    raw["pretrain"]["variants"] = list(reversed(OBJECTIVES.names()))
    assert params_from_dict(raw).pretrain.variants == tuple(reversed(OBJECTIVES.names()))


# ------------------------------------------------------------------ issue 22: validated once, at load


@pytest.mark.parametrize(("template", "why"), [
    ("a photo", "has no '{}' placeholder"),
    ("image of a {0} {1}.", "has 2 placeholders"),
    ("a {} and a {}", "has 2 placeholders"),
    ("image of a {name}.", "has the placeholder '{name}'"),
    ("image of a {0}.", "has the placeholder '{0}'"),
    ("image of a {!r}.", "has the placeholder '{!r}'"),
    ("image of a {:>9}.", "has the placeholder '{:>9}'"),
    ("image of a {.", "is not a format string"),
    ("a {{}} literal", "has no '{}' placeholder"),
])
@pytest.mark.parametrize("section, key", [("clip", "templates"), ("bootstrap", "caption_templates")])
def test_a_template_without_exactly_one_placeholder_is_refused_at_load(section, key, template, why):
    """Issue 22.1/22.8: ``["a photo"]`` gave every class the same text (the same probability for all);
    ``{0} {1}`` crashed in clip_bootstrap after preflight had passed."""
    raw = _raw()
    raw[section][key] = ["image of a {}.", template]
    with pytest.raises(ParamsError) as e:
        params_from_dict(raw)
    msg = str(e.value)
    assert f"'{section}.{key}[1]' entry {template!r} {why}" in msg and "\n" not in msg


@pytest.mark.parametrize("template", ["image of a {}.", "{}", "a {{curly}} {}", "a {}: {{x}}"])
def test_a_template_with_one_placeholder_loads(template):
    raw = _raw()
    raw["clip"]["templates"] = [template]
    assert params_from_dict(raw).clip.templates == (template,)
    assert template.format("chair").count("chair") == 1  # the class name appears once


@pytest.mark.parametrize(("section", "key"), [
    ("clip", "templates"), ("bootstrap", "caption_templates"), ("pretrain", "seeds"), ("pretrain", "variants"),
    ("adapter", "seeds"), ("synth", "classes"),
])
def test_an_empty_list_is_refused_at_load(section, key):
    """Issue 22.7/22.8: ``pretrain.seeds: []`` ran a minute then ZeroDivisionError; ``clip.templates: []``
    passed preflight then failed in clip_bootstrap."""
    raw = _raw()
    raw[section][key] = []
    with pytest.raises(ParamsError, match=rf"^params: '{section}\.{key}' is empty; it needs at least one entry$"):
        params_from_dict(raw)


@pytest.mark.parametrize(("section", "key", "value", "twice"), [
    ("pretrain", "seeds", [0, 1, 0], "0"), ("adapter", "seeds", [2, 2], "2"),
    ("pretrain", "variants", ["intra_cross", "intra_cross"], "'intra_cross'"),
    ("synth", "classes", ["chair", "table", "chair"], "'chair'"),
])
def test_a_list_naming_an_item_twice_is_refused(section, key, value, twice):
    raw = _raw()
    raw[section][key] = value
    with pytest.raises(ParamsError, match=rf"'{section}\.{key}' lists {twice} more than once"):
        params_from_dict(raw)


def _dup_dilation_text() -> tuple[str, int, int]:
    """The repository's params.yaml with ``depth.dilation`` written twice (2, then 8), and the two lines."""
    lines = (ROOT / "params.yaml").read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("  dilation:"))
    lines.insert(at + 3, "  dilation: 8")
    return "\n".join(lines) + "\n", at + 4, at + 1


def test_a_duplicate_key_is_refused_naming_file_key_and_line(tmp_path):
    """Issue 22.2: PyYAML kept the last of two equal keys (the CLI rendered with dilation 8); DVC refused."""
    text, line, first = _dup_dilation_text()
    f = tmp_path / "params.yaml"
    f.write_text(text)
    with pytest.raises(ParamsError) as e:
        load_params(f)
    assert str(e.value) == (f"params: {f} has a duplicate key 'depth.dilation' at line {line} "
                            f"(first at line {first}); a key may appear once")


def test_duplicate_keys_anywhere_and_merge_keys(tmp_path):
    from pipeline.params import DuplicateKeyError, parse_yaml

    with pytest.raises(DuplicateKeyError, match=r"duplicate key 'data\.benchmarks\.b' at line 4 \(first at line 3\)"):
        parse_yaml("data:\n  benchmarks:\n    b: {kind: synth}\n    b: {kind: synth}\n")
    with pytest.raises(DuplicateKeyError, match=r"'a\[1\]\.x' at line 1"):
        parse_yaml("a: [{x: 1}, {x: 1, x: 2}]\n")
    # a merge key overriding a merged value is not a duplicate
    assert parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n")["other"] == {"x": 3, "y": 2}


def test_the_cli_and_prepare_read_params_with_the_same_loader():
    """One loader: the CLI (``run_params``) and ``prepare`` (``read_params``) both go through
    :func:`pipeline.params.parse_yaml`, so a duplicate key is refused by every reader."""
    import inspect

    from cli import params_edit, prepare, settings

    assert "load_params(" in inspect.getsource(settings.run_params)
    assert "parse_yaml(" in inspect.getsource(prepare.read_params)
    assert "safe_load" not in "".join(inspect.getsource(m) for m in (settings, prepare, params_edit))


def test_a_benchmark_named_like_the_pretraining_pool_is_refused():
    """Issue 22.5: a benchmark ``synth_pretrain`` made ``dvc repro`` fail with "overlapping output"."""
    raw = _raw()
    raw["data"]["benchmarks"]["synth_pretrain"] = {"kind": "synth", "root": "data/synth/benchmark"}
    with pytest.raises(ParamsError, match="benchmark 'synth_pretrain' has the name of the pre-training pool"):
        params_from_dict(raw)


def test_benchmark_names_are_unique_stage_keys():
    raw = _raw()
    entry = {"kind": "synth", "root": "data/synth/benchmark"}
    raw["data"]["benchmarks"] = [{"name": "a", **entry}, {"name": "a", **entry}]
    with pytest.raises(ParamsError, match="'data.benchmarks' names 'a' more than once"):
        params_from_dict(raw)
    raw["data"]["benchmarks"] = {"model-net": entry}
    with pytest.raises(ParamsError, match=r"'data.benchmarks\[0\]' must be letters, digits and underscores"):
        params_from_dict(raw)


@pytest.mark.parametrize(("section", "key", "value"), [
    ("render", "views", "pretrain12"), ("zeroshot", "views", "six"), ("adapter", "views", "zeroshot7"),
    ("render", "backend", "blender"), ("bootstrap", "optimizer", "adam"),
])
def test_names_that_no_code_knows_are_refused_at_load(section, key, value):
    """Before: accepted at load, and a stage failed on them later (a view set, a renderer, an optimizer)."""
    raw = _raw()
    raw[section][key] = value
    with pytest.raises(ParamsError, match=rf"'{section}\.{key}' must be one of .*; got '{value}'"):
        params_from_dict(raw)


def test_a_dataset_kind_no_reader_knows_is_refused():
    raw = _raw()
    raw["data"]["benchmarks"]["synth_benchmark"]["kind"] = "modelnet41"
    with pytest.raises(ParamsError, match=r"'data\.benchmarks\[0\]\.kind' must be one of synth, modelnet40"):
        params_from_dict(raw)


@pytest.mark.parametrize("subset", [{"train": [0, 10]}, {"train": [11, 10]}, {"train": "all"}, {"train": [1]},
                                    [1, 2], {"test": [1.5, 3]}])
def test_a_malformed_subset_record_is_refused(subset):
    raw = _raw()
    raw["data"]["benchmarks"]["synth_benchmark"]["subset"] = subset
    with pytest.raises(ParamsError, match="subset"):
        params_from_dict(raw)


def test_the_names_spelled_in_params_are_the_codes_own():
    from clip2point.configs import OPTIMIZER_NAMES, SCHEDULE_NAMES
    from clip2point.io import KINDS
    from clip2point.render.rgb import BACKENDS
    from clip2point.render.views import VIEW_SETS
    from clip2point.train.optim import OPTIMIZERS, SCHEDULES
    from pipeline.params import DATASET_KINDS, RGB_BACKENDS, VIEW_SET_NAMES

    assert tuple(VIEW_SETS) == VIEW_SET_NAMES and tuple(KINDS) == DATASET_KINDS
    assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES and tuple(BACKENDS) == RGB_BACKENDS
    assert tuple(SCHEDULES) == SCHEDULE_NAMES


@pytest.mark.parametrize(("section", "key", "value", "needle"), [
    (None, "seed", -1, "'seed' must be >= 0; got -1"),
    ("synth", "seed", -3, "'synth.seed' must be >= 0; got -3"),
    ("bootstrap", "seed", -1, "'bootstrap.seed' must be >= 0"),
    ("pretrain", "seeds", [0, -1], "'pretrain.seeds' must be >= 0; got -1"),
    ("adapter", "seeds", [-2], "'adapter.seeds' must be >= 0; got -2"),
])
def test_a_negative_seed_is_refused_at_load(section, key, value, needle):
    """numpy's generators refuse negative seeds: a stage would fail on one after its inputs were read."""
    import numpy as np

    with pytest.raises(ValueError):
        np.random.default_rng(-1)
    raw = _raw()
    (raw if section is None else raw[section])[key] = value
    with pytest.raises(ParamsError) as e:
        params_from_dict(raw)
    assert needle in str(e.value)


@pytest.mark.parametrize(("section", "key", "value", "needle"), [
    ("clip", "templates", [], "'clip.templates' is empty"),
    ("clip", "templates", ["image of a {0} {1}."], "has 2 placeholders"),
    ("bootstrap", "caption_templates", ["a photo"], "has no '{}' placeholder"),
    ("pretrain", "seeds", [], "'pretrain.seeds' is empty"),
])
def test_preflight_refuses_bad_params_before_any_expensive_stage(tmp_path, monkeypatch, capsys, section, key, value,
                                                                 needle):
    """Issue 22.7/22.8: these passed ``preflight`` and failed a minute later (ZeroDivisionError, IndexError in
    clip_bootstrap). ``preflight`` loads the params (and tracks every key of params.yaml in dvc.yaml)."""
    from pipeline import paths
    from stages import preflight

    raw = _raw()
    raw[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(tmp_path / "params.yaml"))
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "data"))
    assert preflight.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and not paths.preflight_file().exists()
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["preflight"]
    assert {"params.yaml": None} in stage["params"]  # every key: any change of params reruns the check
