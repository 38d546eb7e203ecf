"""Tables and figures for the run's report (pure: numbers in, markdown strings and figures out).

:func:`mean_std` is the spread reported everywhere (mean ± sample std over seeds), :func:`fmt_pct` its text,
:func:`markdown_table`, :func:`bar_figure` and :func:`contact_sheet` (RGB views beside depth maps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def fmt_pct(values: Sequence[float] | float | None) -> str:
    """Accuracy in [0, 1] (one value or one per seed) as a percentage, ``mean ± std (n=k)`` for several."""
    if values is None:
        return "–"
    if isinstance(values, (int, float)):
        return f"{100 * values:.2f}"
    vals = list(values)
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{100 * vals[0]:.2f}"
    m, s = mean_std(vals)
    return f"{100 * m:.2f} ± {100 * s:.2f} (n={len(vals)})"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    if any(len(r) != len(headers) for r in rows):
        raise ValueError("every row must have one cell per header")
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def bar_figure(
    groups: dict[str, Sequence[float]], title: str, ylabel: str = "accuracy (%)", chance: float | None = None
):
    """Bars of mean accuracy with one-std error bars, one bar per named group of per-seed values in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    stats = [mean_std(groups[n]) for n in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(names)), 3.2), dpi=120)
    ax.bar(range(len(names)), [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats], capsize=4,
           color="#4c72b0")
    if chance is not None:
        ax.axhline(100 * chance, color="gray", ls="--", lw=1, label="chance")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 100)
    fig.tight_layout()
    return fig


THUMB = 64  # contact-sheet thumbnail size (pixels)
LABEL_W = 110  # contact-sheet label column width (pixels)


def contact_sheet(rows: Sequence[tuple[str, np.ndarray | None, np.ndarray]], thumb: int = THUMB) -> Image.Image:
    """Rows of (label, rgb (V,H,W,3) uint8 or None, depth (V,H,W) float in [0,1]) → one image: per row the
    label, the RGB views (when any row has them), then the depth maps (Eq. 12–14) of the same views."""
    from PIL import Image, ImageDraw

    nv = rows[0][2].shape[0]
    has_rgb = any(r[1] is not None for r in rows)
    cols = nv * (2 if has_rgb else 1)
    sheet = Image.new("RGB", (LABEL_W + cols * thumb + (8 if has_rgb else 0), len(rows) * thumb), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, rgb, depth) in enumerate(rows):
        y = i * thumb
        draw.text((4, y + thumb // 2 - 6), label[:16], fill=(0, 0, 0))
        x = LABEL_W
        if has_rgb:
            for v in range(nv):
                if rgb is not None:
                    sheet.paste(Image.fromarray(rgb[v]).resize((thumb, thumb)), (x, y))
                x += thumb
            x += 8
        for v in range(nv):
            g = (np.clip(depth[v], 0, 1) * 255).astype(np.uint8)
            sheet.paste(Image.fromarray(g).convert("RGB").resize((thumb, thumb)), (x, y))
            x += thumb
    return sheet
