"""Shared matplotlib set-up for the PNGs `discover` writes (`compare`, `plot`).

matplotlib is the optional ``plot`` extra: `pyplot` imports it headless (Agg) or raises a
`ValueError` saying how to install it. `loss_axis` chooses a linear or log y axis from the data
and labels log ticks as plain numbers (``3``, not ``3x10^0``).

Example:
    >>> smooth([1.0, 1.0, 4.0], window=2)[0]
    1.0
"""
from __future__ import annotations

import math
from typing import Any, Sequence


def pyplot(what: str = "the plot") -> Any:
    """``matplotlib.pyplot`` with the file-only Agg backend; a clear error without matplotlib."""
    from .extras import need

    matplotlib = need("matplotlib", "plot", what)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_axis(ax: Any, values: Sequence[float]) -> None:
    """A log y axis when the finite positive `values` span more than a factor of 20, else linear;
    tick labels are plain numbers either way."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 20:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def smooth(values: Sequence[float], window: int) -> list[float]:
    """An exponential moving average over about `window` points, bias-corrected at the start
    (the first value is kept as is, not pulled towards 0); non-finite values pass through."""
    if window <= 1:
        return list(values)
    beta = 1.0 - 1.0 / window
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        avg = beta * avg + (1 - beta) * v
        weight = beta * weight + (1 - beta)
        out.append(avg / weight)
    return out
