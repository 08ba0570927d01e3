"""Symbolic shapes of tensor values: what matrix ops and row/column reductions need to type-check.

Every tensor value of a program has a *symbolic shape* ``(rows, cols)``, each ``"1"``, ``"R"``
(the parameter's number of rows: its second-to-last dimension) or ``"C"`` (its number of columns:
its last dimension). The parameter itself, its gradient and ordinary state are ``("R", "C")``
(`FULL`); ``row_mean(g)``, one value per row, is ``("R", "1")`` (`PER_ROW`); ``col_mean(g)``,
one value per column, is ``("1", "C")`` (`PER_COL`); ``transpose(g)`` is ``("C", "R")``;
``matmul(g, transpose(g))`` is ``("R", "R")``.

The rules are torch's broadcasting and matrix rules on symbols:

- elementwise ops broadcast: per dimension, ``"1"`` gives way to the other side, and ``"R"``
  against ``"C"`` is an error (the parameter's rows and columns differ in general);
- ``matmul(x, y)`` needs x's columns to be y's rows (the same symbol) and gives (x's rows, y's cols);
- ``transpose`` swaps the two; ``row_mean``/``col_mean`` make columns/rows ``"1"``.

A program is checked once for every parameter shape: a parameter with more than two dimensions
is a batch of matrices over its last two (as torch's Adafactor and ``matmul`` see it), a 1-D
parameter of n values is one row (1 x n), a 0-d one is 1 x 1. `concrete` turns a symbolic shape
into the torch shape for a given parameter (state buffers are allocated with it).

Example:
    >>> join(FULL, PER_ROW), join(PER_ROW, PER_COL)
    (('R', 'C'), ('R', 'C'))
    >>> join(FULL, ("C", "R")) is None
    True
    >>> concrete(PER_ROW, (4, 3)), concrete(PER_COL, (4, 3)), concrete(PER_ROW, (5,))
    ((4, 1), (1, 3), (1,))
"""
from __future__ import annotations

from typing import Optional

Shape = tuple[str, str]
FULL: Shape = ("R", "C")
"""Shaped like the parameter."""
PER_ROW: Shape = ("R", "1")
"""One value per row (the mean over the last dimension, kept as a dimension of size 1)."""
PER_COL: Shape = ("1", "C")
"""One value per column (the mean over the second-to-last dimension)."""

STATE_SHAPES: dict[str, Shape] = {"per_row": PER_ROW, "per_col": PER_COL}
"""Annotations a tensor state may take for a shape other than the parameter's (``v: per_row = 0``)."""

_WORDS = {"1": "1", "R": "rows", "C": "columns"}


def label(shape: Shape) -> str:
    """How messages name a shape: ``tensor`` for the parameter's, else ``(rows x 1) tensor``."""
    if shape == FULL:
        return "tensor"
    return f"({_WORDS[shape[0]]} x {_WORDS[shape[1]]}) tensor"


def _dim(a: str, b: str) -> Optional[str]:
    if a == b or b == "1":
        return a
    if a == "1":
        return b
    return None


def join(a: Shape, b: Shape) -> Optional[Shape]:
    """The broadcast shape of `a` and `b`, or None when they do not broadcast."""
    r, c = _dim(a[0], b[0]), _dim(a[1], b[1])
    return None if r is None or c is None else (r, c)


def fits(value: Shape, target: Shape) -> bool:
    """Whether a value of shape `value` can be stored in a buffer of shape `target` (it broadcasts
    to exactly `target`)."""
    return join(value, target) == target


def concrete(shape: Shape, param_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The torch shape of a value of symbolic `shape` for a parameter of shape `param_shape`
    (leading dimensions of a parameter with more than two are kept as a batch)."""
    dims = tuple(param_shape)
    if len(dims) >= 2:
        sizes = {"1": 1, "R": dims[-2], "C": dims[-1]}
        return dims[:-2] + (sizes[shape[0]], sizes[shape[1]])
    if len(dims) == 1:  # one row of n values: only the columns are a dimension of the tensor
        return ({"1": 1, "R": 1, "C": dims[0]}[shape[1]],)
    return ()
