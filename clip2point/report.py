"""Tables and figures for the run's report (pure: numbers in, markdown strings and matplotlib figures out)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


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
