"""Algebraic rewrites with sympy, under real-valued assumptions.

A statement and the single-use values that only it reads form a formula
tree. `simplify_statement` turns the tree into a sympy expression (each op's
symbolic form comes from the op table; leaves are `Symbol`s with
``real=True``; nothing is ever parsed from text), simplifies it, and writes
the result back as IR when that takes fewer operations. Besides sympy's own
simplification it knows ``x / |x| = sign(x)`` (which sympy leaves alone), and
recognises ``a * x + (1 - a) * y`` as one `interp`.

`merge_interp` rewrites ``interp(x, interp(x, y, a), b)`` into
``interp(x, y, a * b)`` (nested EMAs of the same input are one EMA), even
when the inner EMA is also used elsewhere; sympy proves the identity.

Every rewrite is only a proposal: `discover.analysis.simplify` keeps it only
when the probe traces before and after agree. Rewrites that are exact for
real numbers but not at a few IEEE points (``x / sqrt(x * x)`` is NaN at 0,
``sign(x)`` is 0) come with a caveat naming those points.

Example:
    >>> from discover import parse
    >>> from discover.lang.passes import to_ssa
    >>> p = to_ssa(parse("def f(w, g, *, lr=0.1):\\n    return lr * (g / sqrt(g * g))\\n"))
    >>> r = simplify_statement(p, len(p.body) - 1)
    >>> [s.op for s in r.new_stmts], r.caveats
    (['sign', 'mul'], ['equal except where g == 0, where the original gave NaN'])
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import count
from typing import Any

from ..lang.ir import Const, Operand, Program, Ref, Stmt, is_temp
from ..lang.ops import OPS
from ..lang.passes import base_name

_MAX_OPS_FOR_SIMPLIFY = 40
_fresh = count()


class Unsupported(Exception):
    """A sympy expression with no IR form here (the rewrite is then skipped)."""


def _sp():
    import sympy

    return sympy


@lru_cache(maxsize=None)
def _inverse() -> tuple[dict[str, str], dict[str, str], dict[Any, str]]:
    """How sympy expressions map back to ops, read off the op table's sympy forms: ops that are
    one sympy function of their arguments (``Abs(x)``, ``Mod(x, y)``), comparisons (``Piecewise``
    of a relation) and powers of their argument (``x**2`` is ``square``)."""
    sp = _sp()
    funcs: dict[str, str] = {}
    relations: dict[str, str] = {}
    powers: dict[Any, str] = {}
    for name, op in OPS.items():
        args = [sp.Symbol(f"x{k}", real=True) for k in range(op.arity)]
        e = op.sympy(*args)
        if isinstance(e, sp.Function) and tuple(e.args) == tuple(args) and not isinstance(e, (sp.Min, sp.Max)):
            funcs.setdefault(type(e).__name__, name)
        elif isinstance(e, sp.Piecewise) and len(e.args) == 2 and (e.args[0].expr, e.args[1].expr) == (1, 0) \
                and tuple(e.args[0].cond.args) == tuple(args):
            relations.setdefault(type(e.args[0].cond).__name__, name)
        elif op.arity == 1 and e.is_Pow and e.base == args[0] and e.exp.is_Number:
            powers.setdefault(e.exp, name)
    return funcs, relations, powers


def nice_float(x: float) -> float:
    """`x`, or a float with a shorter decimal form within 4 ulp of it (0.9970009999999999 -> 0.997001)."""
    if not math.isfinite(x) or x == 0:
        return x
    for digits in range(1, 16):
        y = float(f"{x:.{digits}g}")
        if abs(y - x) <= 4 * math.ulp(x):
            return y
    return x


# ------------------------------------------------------------------ IR -> sympy
def symbol(name: str):
    """The real symbol standing for the IR name `name` (sympy never parses it)."""
    return _sp().Symbol(name, real=True)


def const(value: float):
    sp = _sp()
    if math.isnan(value):
        raise Unsupported("NaN constant")
    if math.isinf(value):
        return sp.oo if value > 0 else -sp.oo
    if value.is_integer():
        return sp.Integer(int(value))
    return sp.Rational(value)  # exact: the binary value of the float


@dataclass
class Tree:
    """The formula of one statement: its sympy expression and the statements only it reads."""

    expr: Any
    owned: list[int]  # indices of inlined statements (they die when the root is rewritten)
    leaves: set[str]


def build_tree(program: Program, index: int, uses: Counter | None = None, inline: set[str] | None = None,
               constant=None) -> Tree:
    """The sympy formula of statement `index`, inlining values used only by this formula.

    `inline` adds names to inline even when they are used elsewhere; `constant`
    (float -> sympy number) replaces the exact conversion of literals.
    """
    constant = constant or const
    uses = uses if uses is not None else Counter(program.refs())
    defs = {s.target: i for i, s in enumerate(program.body)}
    owned: list[int] = []
    leaves: set[str] = set()
    inline = inline or set()

    def operand(arg: Operand):
        if isinstance(arg, Const):
            return constant(arg.value)
        i = defs.get(arg.name)
        if i is not None and (uses[arg.name] == 1 or arg.name in inline or program.body[i].op == "copy"):
            owned.append(i)
            return node(program.body[i])
        leaves.add(arg.name)
        return symbol(arg.name)

    def node(stmt: Stmt):
        return OPS[stmt.op].sympy(*(operand(a) for a in stmt.args))

    expr = node(program.body[index])
    return Tree(expr, owned, leaves)


# ------------------------------------------------------------------ sympy -> IR
class Emitter:
    """Writes a sympy expression as IR statements (with sharing of repeated sub-expressions)."""

    def __init__(self, front: "set[str] | None" = None) -> None:
        self.stmts: list[Stmt] = []
        self.cache: dict[Any, Operand] = {}
        self.front = front or set()  # names written first in products (hyperparameters: `lr * g`)

    def op(self, name: str, *args: Operand) -> Operand:
        target = f"_a{next(_fresh)}#alg"
        self.stmts.append(Stmt(target, name, tuple(args)))
        return Ref(target)

    def emit(self, expr) -> Operand:
        if expr in self.cache:
            return self.cache[expr]
        out = self._emit(expr)
        self.cache[expr] = out
        return out

    def _emit(self, e) -> Operand:
        sp = _sp()
        if e.is_Symbol:
            return Ref(e.name)
        if e.is_Number or e in (sp.oo, -sp.oo):
            if e is sp.nan or e is sp.zoo:
                raise Unsupported("undefined number")
            value = float(e)
            if math.isnan(value):
                raise Unsupported("NaN")
            return Const(nice_float(value) if isinstance(e, sp.Float) else value)
        if e.is_Add:
            return self._add(e)
        if e.is_Mul:
            return self._mul(e)
        if e.is_Pow:
            return self._pow(*e.as_base_exp())
        name = type(e).__name__
        funcs = _inverse()[0]
        if isinstance(e, (sp.Min, sp.Max)):
            return self._minmax(e)
        if name in funcs and len(e.args) == OPS[funcs[name]].arity:
            return self.op(funcs[name], *(self.emit(a) for a in e.args))
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e)
        raise Unsupported(name)

    def _add(self, e) -> Operand:
        terms = list(e.as_ordered_terms())
        if len(terms) == 2:
            (c1, r1), (c2, r2) = (t.as_coeff_Mul() for t in terms)
            if c1.is_Number and c2.is_Number and c1 not in (0, 1) and c2 not in (0, 1) \
                    and abs(float(c1 + c2) - 1) < 1e-15 and r1 != r2:
                (cx, rx), (cy, ry) = sorted([(c1, r1), (c2, r2)], key=lambda t: abs(float(t[0])))
                return self.op("interp", self.emit(rx), self.emit(ry), self.emit(cy))
        pos = [t for t in terms if not t.could_extract_minus_sign()]
        neg = [-t for t in terms if t.could_extract_minus_sign()]
        if pos:
            acc = self.emit(pos[0])
            for t in pos[1:]:
                acc = self.op("add", acc, self.emit(t))
        else:
            acc = self.op("neg", self.emit(neg.pop(0)))
        for t in neg:
            acc = self.op("sub", acc, self.emit(t))
        return acc

    def _mul(self, e) -> Operand:
        c, rest = e.as_coeff_Mul()
        num, den = [], []
        for f in _sp().Mul.make_args(rest):
            b, x = f.as_base_exp()
            if x.is_Number and x < 0:
                den.append(b if x == -1 else b ** (-x))
            else:
                num.append(f)
        num.sort(key=lambda f: 0 if (f.is_Symbol and f.name in self.front) else 1)
        acc: Operand | None = None
        for f in num:
            acc = self.emit(f) if acc is None else self.op("mul", acc, self.emit(f))
        if c == -1 and acc is not None:
            acc = self.op("neg", acc)
        elif c != 1:
            acc = Const(float(c)) if acc is None else self.op("mul", self.emit(c), acc)
        if den:
            d = self.emit(den[0])
            for f in den[1:]:
                d = self.op("mul", d, self.emit(f))
            acc = self.op("div", Const(1.0) if acc is None else acc, d)
        return acc if acc is not None else Const(1.0)

    def _pow(self, b, x) -> Operand:
        sp = _sp()
        if b == sp.E:
            return self.op("exp", self.emit(x))
        for exponent, name in _inverse()[2].items():  # x**2 -> square(x), x**(1/2) -> sqrt(x), ...
            if x == exponent:
                return self.op(name, self.emit(b))
        return self.op("pow", self.emit(b), self.emit(x))

    def _minmax(self, e) -> Operand:
        sp = _sp()
        args = list(e.args)
        if isinstance(e, sp.Min) and len(args) == 2:  # clip(x, c) = Min(Max(x, -c), c)
            for inner, c in ((args[0], args[1]), (args[1], args[0])):
                if isinstance(inner, sp.Max) and len(inner.args) == 2 and -c in inner.args:
                    x = inner.args[0] if inner.args[1] == -c else inner.args[1]
                    return self.op("clip", self.emit(x), self.emit(c))
        name = "minimum" if isinstance(e, sp.Min) else "maximum"
        acc = self.emit(args[0])
        for a in args[1:]:
            acc = self.op(name, acc, self.emit(a))
        return acc

    def _piecewise(self, e) -> Operand:
        sp = _sp()
        if len(e.args) == 2 and e.args[1].cond == sp.true:
            (a, cond), (b, _) = e.args
            kind = type(cond).__name__
            relations = _inverse()[1]
            if a == 1 and b == 0 and kind in relations:
                return self.op(relations[kind], self.emit(cond.lhs), self.emit(cond.rhs))
            if kind == "Unequality" and cond.rhs == 0:
                return self.op("where", self.emit(cond.lhs), self.emit(a), self.emit(b))
        raise Unsupported("Piecewise")


def emit(expr, front: "set[str] | None" = None) -> tuple[list[Stmt], Operand]:
    """IR statements computing `expr`, and the operand holding its value."""
    em = Emitter(front)
    out = em.emit(expr)
    return em.stmts, out


def cost(stmts: list[Stmt]) -> int:
    return sum(1 for s in stmts if s.op != "copy")


# ------------------------------------------------------------------ rules
def sign_rule(expr):
    """``x / |x|`` and ``|x| / x`` -> ``sign(x)`` (exact for real x != 0)."""
    sp = _sp()

    def fix(m):
        powers = m.as_powers_dict()
        changed = False
        for base, x in list(powers.items()):
            if isinstance(base, sp.Abs):
                u = base.args[0]
                if x == -1 and powers.get(u, 0) == 1 or x == 1 and powers.get(u, 0) == -1:
                    del powers[base], powers[u]
                    powers[sp.sign(u)] = powers.get(sp.sign(u), 0) + 1
                    changed = True
        if not changed:
            return m
        return sp.Mul(*(b ** x for b, x in powers.items()))

    return expr.replace(lambda e: e.is_Mul, fix)


def candidates(expr) -> list[Any]:
    """The expression and its simplified forms, to be costed against each other."""
    sp = _sp()
    out = [expr, sign_rule(expr)]
    if sp.count_ops(expr) <= _MAX_OPS_FOR_SIMPLIFY:
        try:
            simple = sp.simplify(expr)
            out += [simple, sign_rule(simple)]
        except Exception:  # sympy can fail on exotic expressions: keep what we have
            pass
    return out


def _denominators(expr) -> set:
    dens = set()
    for node in _sp().preorder_traversal(expr):
        if node.is_Pow and node.exp.is_Number and node.exp < 0:
            dens.add(node.base)
    return dens


def caveats(old, new, describe) -> list[str]:
    """Where `new` differs from `old` in IEEE arithmetic: at zeros of denominators that `new` lost."""
    sp = _sp()
    notes = []
    kept = _denominators(new)
    for den in _denominators(old):
        if den in kept or sp.Abs(den) in kept:
            continue
        syms = sorted(den.free_symbols, key=lambda s: s.name)
        where = f"{_sp().sstr(den)} == 0"
        value = None
        if len(syms) == 1:
            try:
                zeros = sp.solveset(den, syms[0], domain=sp.S.Reals)
            except Exception:
                zeros = None
            if isinstance(zeros, sp.FiniteSet) and len(zeros) == 1:
                point = next(iter(zeros))
                where = f"{describe(syms[0].name)} == {sp.sstr(point)}"
                try:
                    value = old.subs(syms[0], point)
                except Exception:
                    value = None
        if value is sp.nan:
            gave = ", where the original gave NaN"
        elif value is not None and value in (sp.zoo, sp.oo, -sp.oo):
            gave = ", where the original gave inf"
        else:
            gave = ", where the original divided by zero"
        text = f"equal except where {where}{gave}"
        for s in syms:
            text = text.replace(s.name, describe(s.name))
        notes.append(text)
    return notes


# ------------------------------------------------------------------ rewrites
@dataclass
class Rewrite:
    """A proposed replacement of statement `index` by `new_stmts` (the last one defines its target)."""

    index: int
    new_stmts: list[Stmt]
    old_cost: int
    new_cost: int
    before: Any = None
    after: Any = None
    caveats: list[str] = field(default_factory=list)
    rule: str = "algebra"

    def apply(self, program: Program) -> Program:
        body = list(program.body)
        body[self.index:self.index + 1] = self.new_stmts
        return program.with_(body=tuple(body))


def _finish(stmts: list[Stmt], out: Operand, target: str) -> list[Stmt]:
    """Make the emitted statements define `target`."""
    if stmts and isinstance(out, Ref) and out.name == stmts[-1].target:
        last = stmts[-1]
        rename = {last.target: target}
        return stmts[:-1] + [Stmt(target, last.op, tuple(Ref(rename.get(a.name, a.name)) if isinstance(a, Ref) else a
                                                         for a in last.args))]
    return stmts + [Stmt(target, "copy", (out,))]


def simplify_statement(program: Program, index: int, uses: Counter | None = None) -> Rewrite | None:
    """A cheaper formula for statement `index` of an SSA program, or None."""
    stmt = program.body[index]
    if stmt.op == "copy":
        return None
    try:
        tree = build_tree(program, index, uses)
    except Unsupported:
        return None
    old_cost = 1 + sum(1 for i in tree.owned if program.body[i].op != "copy")
    best = None
    for cand in candidates(tree.expr):
        try:
            stmts, out = emit(cand, set(program.hparam_names) | {"step"})
        except (Unsupported, TypeError, ValueError, OverflowError):
            continue
        c = cost(stmts)
        if c < old_cost and (best is None or c < best[0]):
            best = (c, cand, stmts, out)
    if best is None:
        return None
    c, cand, stmts, out = best
    describe = _describer(program)
    return Rewrite(index, _finish(stmts, out, stmt.target), old_cost, c, tree.expr, cand,
                   caveats(tree.expr, cand, describe))


def _describer(program: Program):
    from .render import expr_text

    def describe(name: str) -> str:
        return expr_text(program, Ref(name)) if is_temp(name) else base_name(name)

    return describe


def merge_interp(program: Program, index: int) -> Rewrite | None:
    """``interp(x, interp(x, y, a), b)`` -> ``interp(x, y, a * b)`` for statement `index`, or None."""
    sp = _sp()
    stmt = program.body[index]
    if stmt.op != "interp" or not isinstance(stmt.args[1], Ref):
        return None
    defs = {s.target: s for s in program.body}
    inner = defs.get(stmt.args[1].name)
    if inner is None or inner.op != "interp" or inner.args[0] != stmt.args[0]:
        return None
    x, (y, a), b = stmt.args[0], inner.args[1:], stmt.args[2]
    # the identity, proved symbolically
    X, Y, A, B = (sp.Symbol(n, real=True) for n in "XYAB")
    f = OPS["interp"].sympy
    if sp.expand(f(X, f(X, Y, A), B) - f(X, Y, A * B)) != 0:  # pragma: no cover - a broken op table
        return None
    new: list[Stmt] = []
    if isinstance(a, Const) and isinstance(b, Const):
        coef: Operand = Const(nice_float(a.value * b.value))
    else:
        coef = Ref(f"_a{next(_fresh)}#alg")
        new.append(Stmt(coef.name, "mul", (a, b)))
    new.append(Stmt(stmt.target, "interp", (x, y, coef)))
    return Rewrite(index, new, 1, 1, rule="merge-interp")
