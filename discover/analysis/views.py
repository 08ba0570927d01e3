"""Views for ``discover show --as math|latex [--numeric]``: one formula per output, from the op table's sympy forms.

Each output (the update, then each state's new value) is written in terms of
the inputs, the state as it was before the step, and the hyperparameters.
Formulas are built from the IR (never by parsing text) and printed with
sympy's pretty printer or as LaTeX; literals print as short decimals. With
``--numeric`` (`numeric_view`) hyperparameters take their default values and
constants fold, so a reader sees numbers: ``0.1*g``, not ``(1 - beta1)*g``.

Example:
    >>> from discover import load
    >>> print(math_view(load("sgd")))
    update = lr*(g + w*weight_decay)
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from ..lang.ir import Const, Operand, Program, Ref
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
    from ..lang.passes import to_ssa

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
    return _layout([(name, sp.pretty(expr, use_unicode=False, wrap_line=False)) for name, expr in formulas(program)])


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


# ------------------------------------------------------------------ --numeric
def with_values(program: Program) -> Program:
    """`program` with every hyperparameter replaced by its default value (no hyperparameters left),
    so formulas fold the constants: ``1 - beta1`` becomes ``0.1``.

    Example:
        >>> from discover import load
        >>> with_values(load("sgd")).hparam_names
        ()
    """
    values = {h.name: Const(h.default) for h in program.hparams}

    def sub(arg: Operand) -> Operand:
        return values.get(arg.name, arg) if isinstance(arg, Ref) else arg

    body = tuple(replace(s, args=tuple(sub(a) for a in s.args)) for s in program.body)
    states = tuple(replace(s, init=sub(s.init)) for s in program.states)
    return program.with_(hparams=(), body=body, states=states, returns=tuple(sub(a) for a in program.returns))


def _decimals(expr):
    """`expr` with its non-integer rationals as floats (exponents such as the 1/2 of sqrt kept)."""
    sp = _sp()
    if expr.is_Rational and not expr.is_Integer:
        return sp.Float(float(expr))
    if expr.is_Pow:
        exp = expr.exp if expr.exp.is_Rational else _decimals(expr.exp)
        return sp.Pow(_decimals(expr.base), exp)
    if expr.args and isinstance(expr, sp.Expr):
        return expr.func(*[_decimals(a) for a in expr.args])
    if isinstance(expr, sp.Basic) and expr.args:  # Piecewise pairs, relations
        return expr.func(*[_decimals(a) for a in expr.args])
    return expr


def short_number(value: float, digits: int = 6) -> str:
    """`value` with at most `digits` significant digits, as a person writes it.

    Example:
        >>> short_number(0.10000000000000009), short_number(1e-08), short_number(0.0029999)
        ('0.1', '1e-8', '0.0029999')
    """
    text = f"{value:.{digits}g}"
    mantissa, _, exp = text.partition("e")
    return mantissa + (f"e{int(exp)}" if exp else "")


def _numeric_printers():
    from sympy.printing.latex import LatexPrinter
    from sympy.printing.pretty.pretty import PrettyPrinter
    from sympy.printing.pretty.stringpict import prettyForm

    class Pretty(PrettyPrinter):
        def _print_Float(self, e):
            text = short_number(float(e))
            return prettyForm(text, binding=prettyForm.NEG if text.startswith("-") else prettyForm.ATOM)

    class Latex(LatexPrinter):
        def _print_Float(self, e):
            mantissa, _, exp = short_number(float(e)).partition("e")
            return mantissa + (rf" \cdot 10^{{{exp}}}" if exp else "")

    return Pretty, Latex


def numeric_view(program: Program, as_latex: bool = False) -> str:
    """The math (or LaTeX) view with hyperparameters at their defaults and constants folded,
    numbers as short decimals: ``discover show SPEC --as math --numeric``.

    Example:
        >>> from discover import load
        >>> print(numeric_view(load("lion")))
        with lr=0.0001, beta1=0.9, beta2=0.99, weight_decay=0
        update = 0.0001*sign(0.1*g + 0.9*m)
        m <- 0.01*g + 0.99*m
    """
    pretty_cls, latex_cls = _numeric_printers()
    header = "with " + ", ".join(f"{h.name}={short_number(h.default)}" for h in program.hparams) \
        if program.hparams else "no hyperparameters"
    numeric = [(name, _decimals(expr)) for name, expr in formulas(with_values(program))]
    if as_latex:
        printer = latex_cls()
        lines = [f"% {header}"]
        for name, expr in numeric:
            lhs = r"\mathrm{update}" if name == "update" else _sp().latex(symbol(name))
            rel = "=" if name == "update" else r"\leftarrow"
            lines.append(f"{lhs} {rel} {printer.doprint(expr)}")
        return "\n".join(lines)
    from sympy.printing.pretty.pretty_symbology import pretty_use_unicode

    printer = pretty_cls({"use_unicode": False, "wrap_line": False})
    before = pretty_use_unicode(False)  # what sympy.pretty(use_unicode=False) does around its printer
    try:
        rendered = [(name, printer.doprint(expr)) for name, expr in numeric]
    finally:
        pretty_use_unicode(before)
    return header + "\n" + _layout(rendered)


def _layout(rendered: list[tuple[str, str]]) -> str:
    """``update = ...`` / ``m <- ...`` blocks from pretty-printed text (multi-line blocks apart)."""
    blocks = []
    for name, text in rendered:
        lhs = "update = " if name == "update" else f"{name} <- "
        lines = text.splitlines()
        if len(lines) == 1:
            blocks.append(lhs + lines[0])
            continue
        base = _baseline(lines)
        pad = " " * len(lhs)
        blocks.append("\n".join((lhs if k == base else pad) + line for k, line in enumerate(lines)))
    return "\n\n".join(blocks) if any("\n" in b for b in blocks) else "\n".join(blocks)


def numeric_latex_view(program: Program) -> str:
    """`numeric_view` as LaTeX."""
    return numeric_view(program, as_latex=True)
