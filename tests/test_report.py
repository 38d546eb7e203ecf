import math

import numpy as np
import pytest

from clip2point.report import bar_figure, fmt_pct, markdown_table, mean_std


def test_mean_std_matches_numpy():
    vals = [0.5, 0.7, 0.65]
    m, s = mean_std(vals)
    assert m == pytest.approx(np.mean(vals))
    assert s == pytest.approx(np.std(vals, ddof=1))
    assert mean_std([0.3]) == (0.3, 0.0)
    assert all(math.isnan(x) for x in mean_std([]))


def test_fmt_pct():
    assert fmt_pct(0.5) == "50.00"
    assert fmt_pct([0.5, 0.7]).startswith("60.00 ± 14.14")
    assert fmt_pct(None) == "–"


def test_markdown_table_shape_and_error():
    t = markdown_table(["a", "b"], [[1, 2], [3, 4]])
    lines = t.splitlines()
    assert len(lines) == 4 and lines[2] == "| 1 | 2 |"
    with pytest.raises(ValueError):
        markdown_table(["a"], [[1, 2]])


def test_bar_figure_has_one_bar_per_group():
    fig = bar_figure({"a": [0.1, 0.2], "b": [0.5]}, "t", chance=0.1)
    assert len(fig.axes[0].patches) == 2
