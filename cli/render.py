"""``clip2point render``: the depth views of one file as a contact sheet PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cli._common import (
    CliError,
    Debug,
    Quiet,
    atomic_output,
    bounded,
    check_output_path,
    check_up_axis,
    config_range,
    err,
    handled,
    is_out_of_memory,
    memory_message,
)
from clip2point.configs import DepthConfig


def contact_sheet(depth: np.ndarray, titles: list[str], columns: int = 5, pad: int = 4):
    """A grey PIL image tiling depth maps ``(V, H, W)`` (values in [0, 1]; background 1.0 shows white)."""
    from PIL import Image, ImageDraw

    v, h, w = depth.shape
    cols = min(columns, v)
    rows = -(-v // cols)
    label_h = 12
    sheet = Image.new("L", (cols * (w + pad) + pad, rows * (h + pad + label_h) + pad), color=255)
    draw = ImageDraw.Draw(sheet)
    tiles = (np.clip(depth, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    for i in range(v):
        r, c = divmod(i, cols)
        x, y = pad + c * (w + pad), pad + r * (h + pad + label_h)
        draw.text((x, y), titles[i], fill=0)
        sheet.paste(Image.fromarray(tiles[i], mode="L"), (x, y + label_h))
        draw.rectangle([x - 1, y + label_h - 1, x + w, y + label_h + h], outline=160)
    return sheet


#: the options' ranges are DepthConfig's (clip2point.configs), not restated here
_DILATION = config_range(DepthConfig, "dilation")
_SIZE = config_range(DepthConfig, "image_size")

def render(
    file: Annotated[str, typer.Argument(help="A mesh or point cloud (same formats as classify).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("sheet.png"),
    views: Annotated[
        int, typer.Option(help="Number of views: 6 (zero-shot set) or 10 (pretraining set).")
    ] = 10,
    dilation: Annotated[
        int | None, typer.Option(callback=bounded(*_DILATION), help=f"Splat radius R, {_DILATION[0]}-{_DILATION[1]} "
                                 "(default: params.yaml).")
    ] = None,
    depth: Annotated[str | None, typer.Option("--depth", help="min (Eq. 14) or weighted (Eq. 12).")] = None,
    size: Annotated[
        int | None,
        typer.Option(callback=bounded(*_SIZE), help=f"Image side in pixels, {_SIZE[0]}-{_SIZE[1]} "
                     "(default: params.yaml)."),
    ] = None,
    up_axis: Annotated[
        str, typer.Option("--up-axis", help="Up axis of the file: y, z (ModelNet), x or z_released.")
    ] = "y",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Render the depth views of FILE (the pipeline's renderer and settings) as a contact sheet PNG.

    The PNG appears only when it is complete (no partial file on an error, a full disk or Ctrl-C).
    """
    with handled(debug):
        import torch

        from cli.inputs import BadInput, load_cloud
        from cli.settings import run_settings, view_set_for
        from clip2point.configs import MODES, DepthConfig
        from clip2point.render.depth import render_depth
        from clip2point.render.views import VIEW_SETS, to_y_up

        if depth is not None and depth not in MODES:
            raise CliError(f"--depth must be one of {', '.join(MODES)}, not {depth!r}")
        check_up_axis(up_axis)
        if out.suffix.lower() != ".png":
            raise CliError(f"--out must name a .png file, not {out}")
        check_output_path(out, "--out")
        name = view_set_for(views)
        settings = run_settings()
        cfg = dict(settings.depth)
        if depth is not None:
            cfg["mode"] = depth
        if dilation is not None:
            cfg["dilation"] = dilation
        if size is not None:
            cfg["image_size"] = size
        try:
            depth_cfg = DepthConfig(**cfg)
        except ValueError as e:  # the options are range-checked: only a new DepthConfig rule gets here
            raise CliError(f"bad rendering settings: {e}") from None
        try:
            cloud = load_cloud(file, settings.num_points, settings.n_dense)
        except BadInput as e:
            raise CliError(str(e)) from None
        pts = torch.as_tensor(to_y_up(cloud, up_axis), dtype=torch.float32)[None]
        vs = VIEW_SETS[name]
        side = depth_cfg.image_size
        try:
            maps = render_depth(pts, vs, settings.distance, depth_cfg)[0].numpy()
            titles = [f"{i}: e{e:g} a{a:g}" for i, (e, a) in enumerate(zip(vs.elev, vs.azim, strict=True))]
            sheet = contact_sheet(maps, titles)
        except (MemoryError, RuntimeError) as e:
            if not is_out_of_memory(e):
                raise
            asked = f"--size {side}" if size is not None else f"depth.image_size {side} of {settings.source}"
            what = f"{len(vs)} depth views of {side}x{side} pixels ({asked})"
            raise CliError(f"{memory_message(what, e)}; try a smaller --size") from None
        with atomic_output(out, "--out") as tmp:
            sheet.save(tmp, format="PNG")
        if not quiet:
            err(f"wrote {out} ({len(vs)} views '{name}', {cfg['image_size']}px, mode {cfg['mode']}, "
                f"dilation {cfg['dilation']})")  # fmt: skip
