"""The registry helper and the objectives' own names: one :class:`Registry`, and each pre-training objective
declaring its loss terms, progress fields and report rows, which the loop and the pipeline read from it."""

from __future__ import annotations

import pytest
import torch

from clip2point.registry import Registry
from clip2point.train.objective_info import METHOD, OBJECTIVES, VARIANTS, ObjectiveInfo, objective_info
from clip2point.train.objectives import Objective, get_objective, step_loss
from clip2point.train.pretrain_run import DepthPretrainModel

# ------------------------------------------------------------------------------------------ Registry


def test_registry_keeps_registration_order_and_registers_by_call_or_decorator():
    reg: Registry[int] = Registry("toy")
    reg.register("b", 2)

    @reg.register("a")
    def a() -> int:
        return 1

    assert reg.names() == ("b", "a") and list(reg) == ["b", "a"] and len(reg) == 2
    assert reg.get("b") == 2 and reg.get("a") is a and "a" in reg and "c" not in reg
    assert reg.items() == [("b", 2), ("a", a)] and reg.values() == [2, a] and reg["b"] == 2
    other = reg.copy()
    other.register("c", 3)
    assert other.names() == ("b", "a", "c") and reg.names() == ("b", "a") and other.kind == "toy"


def test_registry_refuses_a_second_registration_and_an_empty_name():
    reg: Registry[int] = Registry("toy thing")
    reg.register("x", 1)
    with pytest.raises(ValueError, match=r"^toy thing 'x' is already registered$"):
        reg.register("x", 2)
    with pytest.raises(ValueError, match="toy thing names must be non-empty strings, got ''"):
        reg.register("", 3)
    assert reg.get("x") == 1


def test_unknown_name_is_one_line_naming_kind_value_and_known_names_in_the_registry_error_type():
    reg: Registry[int] = Registry("widget", error=KeyError, normalize=str.lower)
    reg.register("alpha", 1)
    reg.register("beta", 2)
    assert reg.get("ALPHA") == 1 and reg.get("gamma", None) is None and reg.get("Beta", 0) == 2
    with pytest.raises(KeyError) as e:
        reg.get("gamma")
    assert e.value.args[0] == "unknown widget 'gamma' (known: alpha, beta)"
    with pytest.raises(ValueError, match=r"^unknown pretraining variant 'nope' \(known: intra_cross, "):
        objective_info("nope")


def test_a_lazy_entry_is_imported_on_its_first_get_only():
    import subprocess
    import sys

    code = ("import sys; from clip2point.registry import Registry; r = Registry('codec'); "
            "r.lazy('hsv', 'colorsys:rgb_to_hsv'); a = 'colorsys' in sys.modules; "
            "f = r.get('hsv'); print(r.names(), a, 'colorsys' in sys.modules, f.__name__, r.get('hsv') is f)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('hsv',) False True rgb_to_hsv True"
    for bad in ("colorsys", "colorsys:", ":x", "a:b:c"):
        with pytest.raises(ValueError, match=r"a lazy registry entry must be 'module:attribute', got "):
            Registry("codec").lazy("x", bad)


def test_projections_and_footprints_are_lazy_entries_named_by_the_config():
    from clip2point.configs import FOOTPRINTS, PROJECTIONS, DepthConfig
    from clip2point.render import depth, realistic

    assert PROJECTIONS.get("orthographic") is depth.render_rasterised is PROJECTIONS.get("perspective")
    assert PROJECTIONS.get("realistic") is realistic.project_realistic
    assert FOOTPRINTS.get("square") is depth.rasterise_square and FOOTPRINTS.get("disc") is depth.rasterise_disc
    with pytest.raises(ValueError, match=r"^depth: 'projection' must be one of orthographic, perspective, "
                                         r"realistic; got 'fisheye'$"):
        DepthConfig(projection="fisheye")


def test_listing_the_objectives_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from clip2point.train.objective_info import OBJECTIVES; "
            "print(OBJECTIVES.names(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('intra_cross', 'cross_only', 'rgb_control') False"


# ------------------------------------------------------------------------------------------ objectives


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_info_loads_its_objective_and_the_loss_returns_exactly_the_declared_terms(variant):
    from clip2point.models.clip import create_clip, text_features
    from clip2point.train.distributed import DistInfo

    info = OBJECTIVES.get(variant)
    obj = get_objective(variant)
    assert isinstance(obj, Objective) and obj.name == variant and obj.info is info
    assert obj.log_keys == info.log_terms and obj.with_sigma == info.with_sigma
    assert {k for k, _ in info.progress} <= set(info.log_terms)

    torch.manual_seed(0)
    model, tok = create_clip("c2p-tiny", "")
    caps = text_features(model, tok, ["a", "b"], ["a {}."])
    g = torch.Generator().manual_seed(1)
    n, size = 4, 32
    batch = {"rgb": torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8),
             "depth1": torch.rand(n, size, size, generator=g), "depth2": torch.rand(n, size, size, generator=g),
             "depth": torch.rand(n, size, size, generator=g), "labels": torch.tensor([0, 1, 0, 1]),
             "flip": torch.tensor([True, False, False, True])}
    m = DepthPretrainModel(model.visual, with_sigma=obj.with_sigma)
    _, scalars = step_loss(variant, m, model.visual.eval(), m.sigma, batch, DistInfo(), size=size,
                           temperature=0.1, captions=caps, caption_labels=torch.tensor([0, 1]))
    assert tuple(scalars) == info.log_terms


def test_an_info_whose_target_is_another_objective_is_refused():
    bad = ObjectiveInfo("toy", "t", "clip2point.train.objectives:CROSS_ONLY", log_terms=("l_cross",),
                        progress=(), zero_shot_row="toy", zero_shot_label="toy")
    with pytest.raises(ValueError, match=r"objective 'toy': clip2point.train.objectives:CROSS_ONLY is named "
                                         r"'cross_only'"):
        bad.load()


def test_a_registered_objective_gets_its_rows_in_the_tables_the_pipeline_builds(monkeypatch):
    """What "adding an objective touches its own module" rests on: the zero-shot table, the report's labels and
    the adapter grid are built from the registry, so a new entry appears in each without editing them."""
    from pipeline import adapter_grid, run_report, zeroshot_table

    toy = ObjectiveInfo("toy", "a toy objective", "tests.nowhere:TOY", log_terms=("l_toy",),
                        progress=(("l_toy", "toy"),), zero_shot_row="toy_row", zero_shot_label="the toy encoder",
                        adapter_row="toy as the DPA's second path")
    before = zeroshot_table.table_rows()
    monkeypatch.setitem(OBJECTIVES._entries, "toy", toy)
    rows = zeroshot_table.table_rows()
    assert rows == {**before, "toy_row": "toy"} and next(iter(rows)) == "without_pretraining"
    assert ("toy_row", "the toy encoder") in run_report.zs_rows({})
    grid = {r.key: r.note for r in adapter_grid.objective_rows()}
    assert grid["dual_path@clip+toy"] == "toy as the DPA's second path"
    assert f"dual_path@clip+{METHOD}" not in grid  # the method's rows are Table 4's, listed once


def test_default_grid_and_zero_shot_rows_as_the_report_names_them():
    """Transcribed from the report's tables: Table 1's rows and the grid's nine rows (docstring of
    ``pipeline.adapter_grid``), the objectives' two DPA rows last."""
    from pipeline import adapter_grid, zeroshot_table

    assert zeroshot_table.table_rows() == {"without_pretraining": "clip", "with_pretraining": "intra_cross",
                                           "cross_only": "cross_only", "rgb_control": "rgb_control"}
    assert [r.key for r in adapter_grid.GRID] == [
        "global_view@clip", "inter_view@clip", "inter_view@intra_cross", "global_view@intra_cross",
        "dual_path_inter_view@clip+intra_cross", "dual_path@clip+intra_cross", "dual_path@clip+clip",
        "dual_path@clip+cross_only", "dual_path@clip+rgb_control"]


# ------------------------------------------------------------------------------------------ the worked example


def depth_only_loss(x):
    """docs/architecture.md's worked example: Eq. 5–7 alone (D_{i,d1} vs D_{i,d2}), no image."""
    from clip2point.losses import intra_modality_loss
    from clip2point.models.clip import depth_to_clip_input
    from clip2point.train.distributed import all_reduce_sum, gather_with_grad

    f1, f2 = x.encoder(depth_to_clip_input(torch.cat([x.batch["depth1"], x.batch["depth2"]]), x.size)).float().chunk(2)
    f1_all, off = gather_with_grad(f1, x.info)
    f2_all, _ = gather_with_grad(f2, x.info)
    l_intra = intra_modality_loss(f1, f2, x.temperature, f1_all, f2_all, off)
    return l_intra, {"l_intra": all_reduce_sum(l_intra.detach(), x.info)}


DEPTH_ONLY = Objective("depth_only", depth_only_loss, depth=(("depth1", "d1"), ("depth2", "d2")), needs_rgb=False)


def test_the_worked_example_objective_runs_through_params_the_loop_and_the_tables(tiny, monkeypatch, repo_params):
    """Adding an objective is its ``Objective`` and one ``ObjectiveInfo``: here both live in this test, and the
    params, the real pre-training loop and the pipeline's tables take it without another edit."""
    from pretrain_support import fake_render, make_data, pretrain_cfg

    from clip2point.configs import PretrainConfig
    from clip2point.train.pretrain import pretrain
    from pipeline import adapter_grid, zeroshot_table
    from pipeline.params import params_from_dict

    info = ObjectiveInfo("depth_only", "intra-modality only (Eq. 5–7)", "test_registries:DEPTH_ONLY",
                         log_terms=("l_intra",), progress=(("l_intra", "intra"),), zero_shot_row="depth_only",
                         zero_shot_label="ablation: intra-modality only",
                         adapter_row="DPA with the depth-only encoder")
    monkeypatch.setitem(OBJECTIVES._entries, "depth_only", info)
    assert get_objective("depth_only") is DEPTH_ONLY
    raw = repo_params
    raw["pretrain"]["variants"] = ["intra_cross", "depth_only"]
    assert params_from_dict(raw).pretrain.variants == ("intra_cross", "depth_only")
    model, text = tiny
    data, val = make_data()
    seen: list[dict] = []
    cfg = pretrain_cfg(variant="depth_only", max_steps=3)
    assert isinstance(cfg, PretrainConfig)
    res = pretrain(model.visual, data, val, text, cfg, fake_render, progress=False,
                   on_step=lambda step, sc: seen.append(sc))
    assert set(res.history) == {"step", "loss", "l_intra", "sigma", "lr"} and len(res.history["l_intra"]) == 3
    assert res.history["loss"] == res.history["l_intra"]  # the objective's loss is L_intra alone
    logged = [sc for sc in seen if sc]  # the logging steps (log_every) carry the scalars
    assert logged and all("l_intra" in sc for sc in logged)
    assert zeroshot_table.table_rows()["depth_only"] == "depth_only"
    assert "dual_path@clip+depth_only" in {r.key for r in adapter_grid.objective_rows()}


def project_flat(points, views, distance, cfg, out=None):
    """A toy projection for the registry test: every pixel at the mean depth of the cloud's z."""
    b, v, s = points.shape[0], len(views), int(cfg.image_size)
    return points[..., 2].mean(-1).view(b, 1, 1, 1).expand(b, v, s, s).contiguous()


def test_the_worked_example_projection_is_taken_by_the_config_and_render_depth(monkeypatch):
    """docs/architecture.md: a projection is its renderer plus one ``PROJECTIONS.lazy`` line."""
    from clip2point.configs import PROJECTIONS, DepthConfig
    from clip2point.render.depth import render_depth

    reg = PROJECTIONS.copy()
    reg.lazy("flat", "test_registries:project_flat")
    monkeypatch.setattr(PROJECTIONS, "_entries", reg._entries)
    pts = torch.randn(2, 50, 3)
    out = render_depth(pts, "zeroshot6", 1.0, DepthConfig(image_size=8, projection="flat"))
    assert out.shape == (2, 6, 8, 8) and torch.equal(out[:, 3, 4, 4], pts[..., 2].mean(-1))
