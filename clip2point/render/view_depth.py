"""Depth maps of a batch of clouds, each in its own view: the on-the-fly renderer of pre-training (§3.2.1:
each sample is one random view of the training view set, its depth maps rendered from the points at the
step's distances)."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from clip2point.render.depth import render_depth
from clip2point.render.views import ViewSet, get_views, view_set_rotations


class DepthRenderFn(Protocol):
    def __call__(self, points: Tensor, view_idx: Tensor, distance: Tensor) -> Tensor:
        """points (B,N,3), view index (B,) into the training view set, distance (B,) → depth (B,H,W)."""
        ...



class ViewDepthRenderer:
    """:class:`DepthRenderFn` over ``clip2point.render.depth.render_depth``: one view per sample, one call.

    Each cloud is first rotated by its view's world→camera rotation (``view_rotations``), expressed in the
    front view's frame, so that one ``render_depth`` call with the single front view renders every sample
    in its own view (identical maps to rendering that view directly; one call instead of one per view).
    """

    def __init__(self, view_set: Any, depth_cfg: Any) -> None:
        self.cfg = depth_cfg
        self.front = ViewSet(elev=(0.0,), azim=(0.0,))
        r_views = view_set_rotations(get_views(view_set))  # (V, 3, 3)
        r_front = view_set_rotations(self.front)[0]
        self.rot = r_front.t() @ r_views  # (V, 3, 3): R_front · (this) = R_v
        self._rot_on: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def __call__(self, points: Tensor, view_idx: Tensor, distance: Tensor) -> Tensor:
        key = (points.device, points.dtype)
        if key not in self._rot_on:  # the rotations go to a device once per run, not once per step
            self._rot_on[key] = self.rot.to(points.device, points.dtype)
        rot = self._rot_on[key][view_idx.to(points.device, non_blocking=True)]  # (B, 3, 3)
        with torch.autocast(points.device.type, enabled=False):  # geometry at full precision, always
            rotated = torch.bmm(points.float(), rot.float().transpose(1, 2))
            dist = distance.view(-1, 1).float().to(points.device, non_blocking=True)
            return render_depth(rotated, self.front, dist, self.cfg)[:, 0]
