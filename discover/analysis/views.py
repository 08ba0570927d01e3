"""Views for ``discover show --as math|latex``: one formula per output, from the op table's sympy forms.

Each output (the update, then each state's new value) is written in terms of
the inputs, the state as it was before the step, and the hyperparameters.
Formulas are built from the IR (never by parsing text) and printed with
sympy's pretty printer or as LaTeX; literals print as short decimals.

Example:
    >>> from discover import load
    >>> print(math_view(load("sgd")))
    update = lr*(g + w*weight_decay)
"""
from __future__ import annotations

from fractions import Fraction

from ..lang.ir import Const, Operand, Program
from ..lang.printer import format_number
from .algebra import build_tree, symbol


def _sp():
    import sympy

    return sympy


def _number(value: float):
    sp = _sp()
    if value != value or value in (float("inf"), float("-inf")):
        return sp.nan if value != value else (sp.oo if value > 0 else -sp.oo)
    fr = Fraction(format_number(value))  # the shortest decimal that is exactly this float
    return sp.Rational(fr.numerator, fr.denominator)


def formulas(program: Program) -> list[tuple[str, object]]:
    """(output name, sympy expression) for the update and each state's new value."""
    from .canonical import to_ssa

    ssa = to_ssa(program)
    defs = {s.target: i for i, s in enumerate(ssa.body)}
    every = set(defs)
    out = []
    names = ["update"] + list(program.state_names)
    for name, arg in zip(names, ssa.returns):
        out.append((name, _expr(ssa, arg, defs, every)))
    return out


def _expr(ssa: Program, arg: Operand, defs: dict[str, int], every: set[str]):
    if isinstance(arg, Const):
        return _number(arg.value)
    if arg.name in defs:
        return build_tree(ssa, defs[arg.name], inline=every, constant=_number).expr
    return symbol(arg.name)


def math_view(program: Program) -> str:
    """Formulas in sympy's plain pretty-print (``m <- ...`` for a state's new value)."""
    sp = _sp()
    blocks = []
    for name, expr in formulas(program):
        lhs = "update = " if name == "update" else f"{name} <- "
        text = sp.pretty(expr, use_unicode=False, wrap_line=False)
        lines = text.splitlines()
        if len(lines) == 1:
            blocks.append(lhs + lines[0])
            continue
        base = _baseline(lines)
        pad = " " * len(lhs)
        blocks.append("\n".join((lhs if k == base else pad) + line for k, line in enumerate(lines)))
    return "\n\n".join(blocks) if any("\n" in b for b in blocks) else "\n".join(blocks)


def _baseline(lines: list[str]) -> int:
    """The line of a pretty-printed block that carries the fraction bar or the main line."""
    for k, line in enumerate(lines):
        if "---" in line:
            return k
    return len(lines) // 2


def latex_view(program: Program) -> str:
    """One LaTeX equation per output."""
    sp = _sp()
    lines = []
    for name, expr in formulas(program):
        lhs = r"\mathrm{update}" if name == "update" else sp.latex(symbol(name))
        rel = "=" if name == "update" else r"\leftarrow"
        lines.append(f"{lhs} {rel} {sp.latex(expr)}")
    return "\n".join(lines)


def _register() -> None:
    from ..commands.show import VIEWS

    VIEWS.setdefault("math", math_view)
    VIEWS.setdefault("latex", latex_view)


_register()
