"""RGB backend: silhouettes agree with the depth projector, white background, mesh colours, renderer reuse."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import trimesh

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
pytest.importorskip("pyrender")

from clip2point.render.depth import DepthConfig, render_depth  # noqa: E402
from clip2point.render.rgb import (  # noqa: E402
    RgbRenderer,
    align_mesh_to_points,
    foreground_mask,
    make_renderer,
    process_renderer,
)
from clip2point.render.views import VIEW_SETS, ViewSet, y_up_matrix  # noqa: E402


@pytest.fixture(scope="module")
def renderer():
    r = make_renderer("pyrender")
    yield r
    r.close()


def l_shape() -> trimesh.Trimesh:
    """An asymmetric, coloured L (so mirrored or rotated views would not match)."""
    a = trimesh.creation.box(extents=(1.0, 0.35, 0.5))
    b = trimesh.creation.box(extents=(0.35, 0.9, 0.5))
    b.apply_translation((0.325, 0.45, 0.0))
    a.visual.face_colors = [220, 40, 40, 255]
    b.visual.face_colors = [40, 60, 220, 255]
    m = trimesh.util.concatenate([a, b])
    m.apply_translation(-m.bounds.mean(0))
    m.apply_scale(0.95 / np.linalg.norm(m.vertices, axis=1).max())
    return m


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("projection", ["orthographic", "perspective"])
def test_silhouette_matches_depth_views(renderer, projection):
    mesh = l_shape()
    size = 64
    rgb = renderer.render(mesh, "pretrain10", size, distance=1.0, projection=projection)
    assert rgb.shape == (10, size, size, 3) and rgb.dtype == np.uint8
    pts = torch.tensor(mesh.sample(6000, seed=0), dtype=torch.float32)[None]
    depth = render_depth(pts, "pretrain10", 1.0, DepthConfig(size, 1, projection=projection))[0].numpy()
    for v in range(10):
        assert iou(foreground_mask(rgb[v]), depth[v] < 1) >= 0.8, v
    # a mirrored depth view must NOT match (the test can fail on a flipped axis)
    flipped = depth[0, :, ::-1] < 1
    assert iou(foreground_mask(rgb[0]), flipped) < 0.8


def test_white_background_and_mesh_colours(renderer):
    rgb = renderer.render(l_shape(), ViewSet((0,), (0,)), 48)[0]
    corners = np.stack([rgb[0, 0], rgb[0, -1], rgb[-1, 0], rgb[-1, -1]])
    assert (corners == 255).all()
    fg = rgb[foreground_mask(rgb)].astype(int)
    reds = (fg[:, 0] > fg[:, 2] + 60).sum()
    blues = (fg[:, 2] > fg[:, 0] + 60).sum()
    assert reds > 50 and blues > 50  # both parts keep their own colours, shaded


def test_vertex_coloured_mesh_and_untextured_mesh(renderer):
    m = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
    m.visual.vertex_colors = np.tile([30, 200, 30, 255], (len(m.vertices), 1))
    g = renderer.render(m, ViewSet((0,), (0,)), 32)[0]
    fg = g[foreground_mask(g)].astype(int)
    assert (fg[:, 1] > fg[:, 0] + 40).mean() > 0.9
    plain = trimesh.creation.icosphere(subdivisions=1, radius=0.8)
    p = renderer.render(plain, ViewSet((0,), (0,)), 32)[0]
    assert foreground_mask(p).sum() > 200


def test_renderer_is_reused(renderer):
    assert isinstance(renderer, RgbRenderer)
    renderer.render(l_shape(), "zeroshot6", 32)
    ctx = renderer._renderer
    nodes = len(renderer._scene.nodes)
    for _ in range(3):
        renderer.render(l_shape(), "zeroshot6", 32)
    assert renderer._renderer is ctx  # one OSMesa context for the renderer's life
    assert len(renderer._scene.nodes) == nodes == 0  # nothing left behind in the scene
    renderer.render(l_shape(), "zeroshot6", 40)  # a size change keeps the context too
    assert renderer._renderer is ctx
    assert process_renderer() is process_renderer()
    with pytest.raises(ValueError):
        make_renderer("blender")


def test_align_mesh_to_points():
    mesh = l_shape()
    pts = np.asarray(mesh.sample(3000, seed=1))
    pts = (pts - pts.mean(0)) / np.linalg.norm(pts - pts.mean(0), axis=1).max()
    zup = mesh.copy()
    zup.vertices = zup.vertices @ y_up_matrix("z")  # the inverse rotation: a z-up source of the same shape
    zup.apply_scale(3.0)
    zup.apply_translation((5, -2, 1))
    fitted, misfit = align_mesh_to_points(zup, pts, y_up_matrix("z"))
    assert misfit < 0.05
    np.testing.assert_allclose(fitted.bounds, np.stack([pts.min(0), pts.max(0)]), atol=0.05)
    _, bad = align_mesh_to_points(zup, pts, None)  # forgetting the rotation is visible in the misfit
    assert bad > 0.1


def test_views_sets_render_distinct_views(renderer):
    rgb = renderer.render(l_shape(), VIEW_SETS["zeroshot6"], 32)
    masks = foreground_mask(rgb)
    assert not np.array_equal(masks[0], masks[2])  # front vs back of an L differ (mirror images)
    np.testing.assert_array_equal(masks[0], masks[2][:, ::-1])  # … and are mirrors of each other


def test_shader_programs_compile_once_and_render_the_same_pixels(monkeypatch):
    """Regression: pyrender's cache keyed programs by an OSMesa context pointer object that is new on every
    call, so each render compiled fresh programs (+3 MB resident per view; the 800-shape benchmark's render
    workers died of OOM at ~340 shapes each). The stable cache compiles each program once, same pixels."""
    from clip2point.render import rgb

    meshes = [l_shape(), trimesh.creation.icosphere(subdivisions=2, radius=0.8)]
    r = make_renderer("pyrender")
    for m in meshes:  # each mesh's material may need its own program (defines)
        r.render(m, "zeroshot6", 32)
    cache = r._renderer._renderer._program_cache._program_cache  # pyrender's own dict of compiled programs
    n_programs = len(cache)
    ours = [r.render(m, "zeroshot6", 32) for m in meshes * 3]
    assert len(cache) == n_programs  # six more renders, no new program
    r.close()

    monkeypatch.setattr(rgb, "stable_program_cache", lambda offscreen: None)  # pyrender's cache as shipped
    ref = make_renderer("pyrender")
    for m in meshes:
        ref.render(m, "zeroshot6", 32)
    theirs = [ref.render(m, "zeroshot6", 32) for m in meshes * 3]
    assert len(ref._renderer._renderer._program_cache._program_cache) > n_programs  # the bug is still upstream
    ref.close()
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
