"""Multi-view rendering (§3.2.2, §5.2): view sets, points → depth maps (Eq. 12–14), meshes → RGB views.

``clip2point.render.rgb`` imports pyrender lazily (and sets ``PYOPENGL_PLATFORM=osmesa`` if unset), so
importing this package does not touch OpenGL.
"""

from clip2point.render.depth import DepthConfig, depth_workspace, jittered_distances, render_depth
from clip2point.render.views import VIEW_SETS, ViewSet, get_views, to_y_up, view_rotations

__all__ = [
    "VIEW_SETS",
    "DepthConfig",
    "ViewSet",
    "depth_workspace",
    "get_views",
    "jittered_distances",
    "render_depth",
    "to_y_up",
    "view_rotations",
]
