"""``jetport bench --plot FILE``: the ratios of a two-target comparison as a bar chart,
so a run can be looked at as well as read.  matplotlib is the optional extra ``plot``;
without it the option fails with a message saying how to install it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .model import REGISTRY, Result
from .report import ratios

MISSING = ("--plot needs matplotlib, which is optional: pip install 'jetport[plot]' "
           "(or pip install matplotlib)")
FORMATS = (".png", ".svg")


class PlotError(RuntimeError):
    """The chart cannot be drawn (no matplotlib, a format it does not write, no ratios)."""


def bars(rows: Sequence[tuple[str, str]], targets: Sequence[str],
         results: Sequence[Result]) -> list[tuple[str, float, bool]]:
    """(label, ratio, higher is better) for each metric both targets measured."""
    by_key = {(r.label, r.target): r for r in results}
    out = []
    for label, name in rows:
        cols = REGISTRY[name].columns
        many = sum(c.ratio for c in cols) > 1
        for col, value in ratios(by_key.get((label, targets[0])),
                                 by_key.get((label, targets[1])), cols):
            if value is not None:
                out.append((f"{label} {col.label}" if many else label, value, col.higher))
    return out


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotError(MISSING) from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def check(path: str) -> None:
    """Refuse a chart that cannot be drawn before the benchmark runs, not after."""
    if Path(path).suffix.lower() not in FORMATS:
        raise PlotError(f"--plot writes PNG or SVG: name the file .png or .svg, not {path!r}")
    _pyplot()


def plot(path: str, rows: Sequence[tuple[str, str]], targets: Sequence[str],
         results: Sequence[Result]) -> None:
    """A horizontal bar per metric: the first target's result over the second's, with
    the line at 1 where they are equal; green where the first target does better."""
    check(path)
    if len(targets) != 2:
        raise PlotError("--plot draws the ratios of two targets (e.g. --compare)")
    data = bars(rows, targets, results)
    if not data:
        raise PlotError("no metric was measured on both targets: nothing to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(data) + 1.4))
    labels = [f"{label}{'' if higher else ' (lower is better)'}" for label, _v, higher in data]
    values = [v for _l, v, _h in data]
    colours = ["#2e8b57" if (v >= 1) == higher else "#c0504d" for _l, v, higher in data]
    y = list(range(len(data)))[::-1]
    ax.barh(y, values, color=colours)
    ax.axvline(1.0, color="#333333", linewidth=1)
    ax.set_yticks(y, labels)
    for yi, v in zip(y, values, strict=True):
        ax.text(v, yi, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel(f"{targets[0]} / {targets[1]}")
    ax.set_title(f"jetport bench: {targets[0]} over {targets[1]}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
