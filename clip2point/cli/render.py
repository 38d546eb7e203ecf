"""``clip2point render``: the depth views of one file as a contact sheet PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from clip2point.cli._common import CliError, Debug, Quiet, err, handled


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


def render(
    file: Annotated[str, typer.Argument(help="A mesh or point cloud (same formats as classify).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("sheet.png"),
    views: Annotated[
        int, typer.Option(help="Number of views: 6 (zero-shot set) or 10 (pretraining set).")
    ] = 10,
    dilation: Annotated[
        int | None, typer.Option(min=0, help="Splat radius R (default: params.yaml).")
    ] = None,
    depth: Annotated[str | None, typer.Option("--depth", help="min (Eq. 14) or weighted (Eq. 12).")] = None,
    size: Annotated[
        int | None, typer.Option(min=8, help="Image side in pixels (default: params.yaml).")
    ] = None,
    up_axis: Annotated[str, typer.Option("--up-axis", help="Up axis of the file: y or z (ModelNet).")] = "y",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Render the depth views of FILE (the pipeline's renderer and settings) as a contact sheet PNG."""
    with handled(debug):
        import torch

        from clip2point.cli.engine import BadInput, load_cloud, run_settings, view_set_for
        from clip2point.render.depth import MODES, DepthConfig, render_depth
        from clip2point.render.views import VIEW_SETS, to_y_up

        settings = run_settings()
        cfg = dict(settings.depth)
        if depth is not None:
            if depth not in MODES:
                raise CliError(f"--depth must be one of {', '.join(MODES)}, not {depth!r}")
            cfg["mode"] = depth
        if dilation is not None:
            cfg["dilation"] = dilation
        if size is not None:
            cfg["image_size"] = size
        if up_axis not in ("x", "y", "z"):
            raise CliError(f"--up-axis must be x, y or z, not {up_axis!r}")
        if out.suffix.lower() != ".png":
            raise CliError(f"--out must name a .png file, not {out}")
        name = view_set_for(views)
        try:
            cloud = load_cloud(file, settings.num_points, settings.n_dense)
        except BadInput as e:
            raise CliError(str(e)) from None
        pts = torch.as_tensor(to_y_up(cloud, up_axis), dtype=torch.float32)[None]
        maps = render_depth(pts, VIEW_SETS[name], settings.distance, DepthConfig(**cfg))[0].numpy()
        vs = VIEW_SETS[name]
        titles = [f"{i}: e{e:g} a{a:g}" for i, (e, a) in enumerate(zip(vs.elev, vs.azim, strict=True))]
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            contact_sheet(maps, titles).save(out)
        except OSError as e:
            raise CliError(f"cannot write {out}: {e.strerror or e}") from None
        if not quiet:
            err(f"wrote {out} ({len(vs)} views '{name}', {cfg['image_size']}px, mode {cfg['mode']}, "
                f"dilation {cfg['dilation']})")  # fmt: skip
