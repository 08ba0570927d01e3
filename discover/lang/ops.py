"""The op table: the single place that defines an operation of the language.

Each `Op` carries everything any part of discover needs to know about it:

- its name, arity, meaning (`doc`), *kind* (elementwise, or a reduction of a tensor
  to one number per tensor), how it prints and parses (`infix`, `prefix`,
  `precedence`), whether its arguments commute, and its mutation `weight`;
- its reference semantics `fn` (`discover.lang.semantics`: torch on tensors, exact
  IEEE float64 on numbers), and for reductions `batched_fn`, per member of a population;
- its symbolic form `sympy` (the algebra reads it both ways);
- its backend forms: `cxx`, a C++ expression over the compute type ``T`` (the fused
  and population kernels; `cxx_helpers` are C++ functions it calls, `cxx_reduce` the
  sum term and finish of a reduction), `triton`, a Triton expression in float32 (the CUDA
  step and population kernels; `triton_helpers` the ``@triton.jit`` functions it calls,
  `triton_reduce` a reduction's float64 term and finish), and `foreach`, the
  ``torch._foreach_*`` calls that compute it on lists of tensors;
- its `lowering` rule, where the backends' plain forms would round differently from
  the reference (``interp`` of two tensors is ``lerp``, as torch.optim computes EMAs).

Backend forms may depend on what the operands are, as torch's own semantics do: a form is
keyed by an operand *pattern*, one letter per argument: ``t`` a value shaped like the
parameter, ``d`` one number per tensor computed in the tensor's dtype (a reduction and what
follows from it: a 0-d tensor to the reference), ``n`` a number computed in float64 (a
constant, hyperparameter, step or scalar state: a Python float to the reference); in keys,
``s`` matches ``d`` or ``n`` and ``*`` anything. The first key that matches is used:
``div``'s ``st`` form is ``(1 / x) * c``, as torch computes ``c / tensor`` for a Python
number ``c``. (The forms treat ``d`` values like numbers, where the reference treats them
as 0-d tensors; ``tests/compile/test_op_table.py`` names the few places that differs.) A pattern with no ``foreach`` form runs per parameter through `fn` (`PER_PARAM`
says that no pattern has one).

`OPS` are the ops of the language; `KERNEL_OPS` the ones only lowering rules make
(``lerp``). Adding an elementwise op to the language is one entry in `_OPS` (and its
row in README's op table); ``tests/lang/test_op_table.py`` checks that every op has
every form and that every backend computes what `fn` computes.

Values have one of three types, ordered by how much they vary:

- ``SCALAR`` (S): the same number for a whole param group — constants and
  hyperparameters;
- ``PER_TENSOR`` (P): one number per parameter tensor — ``step``, scalar state,
  and reductions such as ``norm(x)``;
- ``TENSOR`` (T): shaped like the parameter.

An elementwise op's result has the widest type of its arguments; a reduction
takes a tensor and gives a per-tensor scalar that broadcasts back over it.

Example:
    >>> OPS["interp"].arity
    3
    >>> OPS["interp"].call(2.0, 4.0, 0.25)   # (1 - 0.25) * 2 + 0.25 * 4
    2.5
    >>> OPS["div"].cxx_form("nt")             # number / tensor, as torch computes it
    ('st', '((T(1) / {1}) * {0})')
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Callable, Mapping, Protocol

import numpy as np
import torch

from . import semantics as sem
from . import shapes
from .semantics import Value
from .shapes import Shape

ELEMENTWISE = "elementwise"
"""Kind of an op computed element by element (numbers broadcast over tensors)."""
REDUCTION = "reduction"
"""Kind of an op that reduces a whole tensor to one number per tensor."""
MATRIX = "matrix"
"""Kind of a matrix op (``matmul``, ``transpose``, ``newton_schulz``): a tensor of another shape,
computed by torch per parameter; a parameter that is not 2-D is read as a diagonal matrix."""
AXIS = "axis"
"""Kind of a row or column reduction (``row_mean``, ``col_mean``): a tensor with one value per row or column."""
PROPERTY = "property"
"""Kind of an op that reads a property of a tensor, not its values (``rows``, ``cols``, ``ndim``,
``epsilon``): one number per tensor."""
GROUP = "group"
"""Kind of a group reduction (``group_sum``, ``group_norm``): one number for the whole param group."""
STAGED = frozenset({MATRIX, AXIS, PROPERTY, GROUP})
"""Kinds computed by torch calls between passes over memory (per parameter, or over the group), not
inside the fused and population kernels: a program with one runs there on the foreach backend and the
torch batched step (its elementwise ops through their ``torch._foreach_*`` forms)."""

PER_PARAM: Mapping[str, str] = MappingProxyType({})
"""A `foreach` form with no ``torch._foreach_*`` call: the op runs per parameter through `fn`."""


class Type(IntEnum):
    """How much a value varies; wider types broadcast narrower ones."""

    SCALAR = 0
    PER_TENSOR = 1
    TENSOR = 2

    @property
    def label(self) -> str:
        return {0: "scalar", 1: "per-tensor scalar", 2: "tensor"}[int(self)]


class Lowering(Protocol):
    """What a lowering rule may ask about its arguments and do (`discover.compile.lower`
    implements it). Arguments are lowered values or float constants."""

    def kind(self, value: Any) -> str:
        """The operand letter of `value`: ``t`` shaped like the parameter, ``d`` one number per
        tensor computed in the tensor's dtype (a reduction and what follows from it), ``n`` a
        number computed in float64 (constants, hyperparameters, step, scalar state)."""

    def shape(self, value: Any) -> "Shape | None":
        """The symbolic shape of a tensor value (`discover.lang.shapes`); None for a number."""

    def emit(self, op: str, *args: Any, name: str = "") -> Any:
        """A new instruction (no rules applied; constants only are folded), and its value;
        `name` names the value in generated code."""


@dataclass(frozen=True)
class Op:
    """One operation of the language. See the module docstring."""

    name: str
    arity: int
    doc: str
    fn: Callable[..., Value]  # tensors and/or floats -> tensor or float
    sympy: Callable[..., Any]  # sympy expressions -> sympy expression
    kind: str = ELEMENTWISE
    infix: str | None = None  # '+', '<', ... for printing and parsing
    prefix: str | None = None  # '-' for neg
    precedence: int = 20  # Python precedence of the printed form (higher binds tighter)
    weight: float = 1.0  # relative probability of being chosen by mutations
    commutative: bool = False  # op(x, y) == op(y, x) for real numbers (common subexpressions)
    batched_fn: Callable[..., Value] | None = field(default=None, repr=False)  # reductions, per member
    cxx: "str | Mapping[str, str] | None" = field(default=None, repr=False)  # pattern -> C++ expression
    cxx_helpers: tuple[str, ...] = field(default=(), repr=False)  # C++ definitions the forms call
    cxx_reduce: tuple[str, str] | None = field(default=None, repr=False)  # reductions: (term, finish)
    foreach: "str | Mapping[str, str] | None" = field(default=None, repr=False)  # pattern -> calls
    triton: "str | Mapping[str, str] | None" = field(default=None, repr=False)  # pattern -> Triton expression
    triton_helpers: tuple[str, ...] = field(default=(), repr=False)  # @triton.jit functions the forms call
    triton_reduce: tuple[str, str] | None = field(default=None, repr=False)  # reductions: (term, finish)
    lowering: Callable[..., Any] | None = field(default=None, repr=False)  # rule(Lowering, *args)
    options: tuple[tuple[str, float], ...] = ()  # trailing number arguments: (name, default) each
    group_fn: Callable[..., Value] | None = field(default=None, repr=False)  # group ops: list -> value
    fallback: str = ""  # matrix ops: what they compute on a parameter that is not 2-D (README)

    @property
    def reduction(self) -> bool:
        """True for reductions (a tensor -> one number per tensor)."""
        return self.kind == REDUCTION

    @property
    def staged(self) -> bool:
        """True for ops computed by torch between passes over memory (`STAGED`), not in fused kernels."""
        return self.kind in STAGED

    @property
    def tensor_arity(self) -> int:
        """How many leading arguments are operands (the rest are `options`)."""
        return self.arity - len(self.options)

    def call(self, *args: Value) -> Value:
        """Apply the op to tensors and/or floats (the per-tensor reference semantics)."""
        return self.fn(*args)

    def result_type(self, arg_types: list[Type]) -> Type:
        """The type of the result; raises `TypeError` for arguments the op cannot take."""
        for k, (name, _) in enumerate(self.options):
            t = arg_types[self.tensor_arity + k]
            if t != Type.SCALAR:
                raise TypeError(f"{self.name}()'s {name} must be a number (a constant or a hyperparameter), "
                                f"not a {t.label}")
        if self.kind in (REDUCTION, PROPERTY, MATRIX, AXIS):
            for k, t in enumerate(arg_types[:self.tensor_arity]):
                if t != Type.TENSOR:
                    what = {REDUCTION: "reduces a tensor to one number per tensor",
                            PROPERTY: "reads a property of a tensor", AXIS: "reduces the rows or columns of a tensor",
                            MATRIX: "is a matrix op on tensors"}[self.kind]
                    nth = f"argument {k + 1}" if self.tensor_arity > 1 else "argument"
                    raise TypeError(f"{self.name}() {what}, but its {nth} is a {t.label}")
            return Type.TENSOR if self.kind in (MATRIX, AXIS) else Type.PER_TENSOR
        if self.kind == GROUP:
            if arg_types[0] == Type.SCALAR:
                raise TypeError(f"{self.name}() sums over the parameters of the group a tensor or a per-tensor "
                                f"value, but its argument is a {arg_types[0].label}")
            return Type.PER_TENSOR
        return max(arg_types, default=Type.SCALAR)

    def result_shape(self, arg_shapes: list[Shape | None]) -> Shape | None:
        """The symbolic shape (`discover.lang.shapes`) of the result, given each argument's (None for a
        number); raises `TypeError` for shapes the op cannot take. Call after `result_type`."""
        if self.kind in (REDUCTION, PROPERTY, GROUP):
            return None
        if self.name == "transpose":
            return arg_shapes[0][::-1]
        if self.name == "matmul":
            (r, inner), (inner2, c) = arg_shapes[0], arg_shapes[1]
            if inner != inner2:
                raise TypeError(f"matmul(x, y) needs x's columns to be y's rows, but x is a "
                                f"{shapes.label(arg_shapes[0])} and y a {shapes.label(arg_shapes[1])}")
            return (r, c)
        if self.name == "row_mean":
            return (arg_shapes[0][0], "1")
        if self.name == "col_mean":
            return ("1", arg_shapes[0][1])
        if self.kind == MATRIX:  # shape-preserving (newton_schulz)
            return arg_shapes[0]
        out: Shape | None = None
        for shape in arg_shapes:
            if shape is None:
                continue
            joined = shape if out is None else shapes.join(out, shape)
            if joined is None:
                raise TypeError(f"{self.name}() cannot combine a {shapes.label(out)} with a {shapes.label(shape)}: "
                                "their rows and columns differ (transpose one, or reduce it with row_mean/col_mean)")
            out = joined
        return out

    def cxx_form(self, pattern: str) -> tuple[str, str] | None:
        """(key, C++ expression) for operands of `pattern` (``"nt"``: a float64 number, then a
        tensor); the expression's ``{0}``, ``{1}``, ... are the arguments, ``T`` the compute type."""
        return _form(self.cxx, pattern)

    def cxx_forms(self) -> list[tuple[str, str]]:
        """Every (key, C++ expression) of the op, in order of preference."""
        return list(_forms(self.cxx, self.arity))

    def triton_form(self, pattern: str) -> tuple[str, str] | None:
        """(key, Triton expression) for operands of `pattern`, as `cxx_form`: computed in float32
        (blocks of values, or scalars), ``{0}``, ``{1}``, ... the arguments."""
        return _form(self.triton, pattern)

    def triton_forms(self) -> list[tuple[str, str]]:
        """Every (key, Triton expression) of the op, in order of preference."""
        return list(_forms(self.triton, self.arity))

    def foreach_form(self, pattern: str) -> str | None:
        """The ``torch._foreach_*`` calls for operands of `pattern`, or None (per parameter):
        ``"add(0, 1) | add(1, 0)"`` are alternatives (the first whose first list argument may be
        overwritten runs in place), ``"neg(1); add(_, 0)"`` a sequence (``_``: the result so far)."""
        found = _form(self.foreach, pattern)
        return found[1] if found else None


def _forms(spec: "str | Mapping[str, str] | None", arity: int):
    if spec is None:
        return ()
    if isinstance(spec, str):
        return (("*" * arity, spec),)
    return tuple(spec.items())


def _form(spec: "str | Mapping[str, str] | None", pattern: str) -> tuple[str, str] | None:
    for key, form in _forms(spec, len(pattern)):
        if len(key) == len(pattern) and all(k == p or k == "*" or (k == "s" and p in "dn")
                                            for k, p in zip(key, pattern)):
            return key, form
    return None


# --------------------------------------------------------------------------- C++ helpers
# Functions some C++ forms call (in the compute type T), gathered into each kernel's prelude.

_CXX_SIGN = "template <typename T> static inline T d_sign(T x) { return (T)((T(0) < x) - (x < T(0))); }"
_CXX_LERP = """template <typename T> static inline T d_lerp(T self, T end, T w) {
  // torch's vectorized lerp: fmadd(coeff, end - self, base)
  return std::abs(w) < T(0.5) ? std::fma(w, end - self, self) : std::fma(w - T(1), end - self, end);
}"""
_CXX_MIN = ("template <typename T> static inline T d_min(T x, T y) { "
            "return (x != x || y != y) ? std::numeric_limits<T>::quiet_NaN() : std::min(x, y); }")
_CXX_MAX = ("template <typename T> static inline T d_max(T x, T y) { "
            "return (x != x || y != y) ? std::numeric_limits<T>::quiet_NaN() : std::max(x, y); }")
_CXX_CLIP = """template <typename T> static inline T d_clip(T x, T c) {
  return (c != c) ? std::numeric_limits<T>::quiet_NaN() : std::min(std::max(x, -c), c);
}"""
_CXX_MOD = """template <typename T> static inline T d_mod(T a, T b) {
  T m = std::fmod(a, b);
  if ((m != 0) && ((b < 0) != (m < 0))) m += b;
  return m;
}"""
_CXX_POWK = """template <typename T> static inline T d_powk(T x, T e) {  // torch.pow(tensor, scalar) special cases
  if (e == T(2)) return x * x;
  if (e == T(0.5)) return std::sqrt(x);
  if (e == T(3)) return x * x * x;
  if (e == T(-0.5)) return T(1) / std::sqrt(x);
  if (e == T(-1)) return T(1) / x;
  if (e == T(-2)) return T(1) / (x * x);
  return std::pow(x, e);
}"""


# --------------------------------------------------------------------------- Triton helpers
# @triton.jit functions some Triton forms call (in float32), gathered into each generated kernel
# module after `discover.compile.triton_common.STORAGE` (which imports ``tl``, libdevice as ``_ld``,
# and defines ``_NAN``). libdevice: the accurate functions torch's CUDA kernels use (``tl.exp``,
# ``tl.sin``, ... are approximate on GPUs).

def _tr_jit(name: str, args: str, body: str) -> str:
    return f"@triton.jit\ndef {name}({args}):\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())


_TR_SIGN = _tr_jit("d_sign", "x", "return tl.where(x > 0.0, 1.0, tl.where(x < 0.0, -1.0, 0.0))  # 0 at NaN, as torch.sign")
_TR_LERP = _tr_jit("d_lerp", "s, e, w", """
# torch's lerp: fma(w, e - s, s) for |w| < 0.5, else fma(w - 1, e - s, e)
d = e - s
return tl.where(tl.abs(w) < 0.5, tl.fma(w, d, s), tl.fma(w - 1.0, d, e))""")
_TR_MIN = _tr_jit("d_min", "x, y", "return tl.minimum(x, y, propagate_nan=tl.PropagateNan.ALL)")
_TR_MAX = _tr_jit("d_max", "x, y", "return tl.maximum(x, y, propagate_nan=tl.PropagateNan.ALL)")
_TR_CLIP = _tr_jit("d_clip", "x, c", """
r = tl.minimum(tl.maximum(x, -c, propagate_nan=tl.PropagateNan.ALL), c, propagate_nan=tl.PropagateNan.ALL)
return tl.where(c != c, _NAN, r)""")
_TR_MOD = _tr_jit("d_mod", "a, b", """
m = _ld.fmod(a, b)
return tl.where((m != 0.0) & ((b < 0.0) != (m < 0.0)), m + b, m)  # the sign of b, as torch.remainder""")
_TR_POW = _tr_jit("d_pow", "x, y", "return _ld.pow(x, y)")
_TR_POWK = _tr_jit("d_powk", "x, e", """
# torch.pow(tensor, number): its special cases, then pow
r = tl.where(e == 2.0, x * x, _ld.pow(x, e))
r = tl.where(e == 0.5, tl.sqrt_rn(x), r)
r = tl.where(e == 3.0, x * x * x, r)
r = tl.where(e == -0.5, tl.div_rn(1.0, tl.sqrt_rn(x)), r)
r = tl.where(e == -1.0, tl.div_rn(1.0, x), r)
return tl.where(e == -2.0, tl.div_rn(1.0, x * x), r)""")


def _tr_libdevice(name: str, fn: str) -> str:
    return _tr_jit(name, "x", f"return _ld.{fn}(x)")


def _tr_cmp(symbol: str) -> str:
    return f"tl.where({{0}} {symbol} {{1}}, 1.0, 0.0)"


def _cmp_cxx(symbol: str) -> str:
    return f"({{0}} {symbol} {{1}} ? T(1) : T(0))"


def _op(name: str, arity: int, doc: str, fn, sympy, **kw) -> Op:
    return Op(name=name, arity=arity, doc=doc, fn=fn, sympy=sympy, **kw)


def _one_group(group_fn: Callable[[list], Value]) -> Callable[[Value], Value]:
    """A group op's `fn`: the group of one parameter (what a program means on a lone tensor)."""
    return lambda x: group_fn([x])


_SP = sem.sym
_OPS: list[Op] = [
    # arithmetic
    _op("add", 2, "x + y", sem.binary(lambda x, y: x + y), lambda x, y: x + y, infix="+", precedence=11, weight=3,
        commutative=True, cxx="({0} + {1})",
        foreach={"tt": "add(0, 1) | add(1, 0)", "ts": "add(0, 1)", "st": "add(1, 0)"},
        triton="({0} + {1})"),
    _op("sub", 2, "x - y", sem.binary(lambda x, y: x - y), lambda x, y: x - y, infix="-", precedence=11, weight=3,
        cxx="({0} - {1})", foreach={"tt": "sub(0, 1)", "ts": "sub(0, 1)", "st": "neg(1); add(_, 0)"},
        triton="({0} - {1})"),
    _op("mul", 2, "x * y", sem.binary(lambda x, y: x * y), lambda x, y: x * y, infix="*", precedence=12, weight=3,
        commutative=True, cxx="({0} * {1})",
        foreach={"tt": "mul(0, 1) | mul(1, 0)", "ts": "mul(0, 1)", "st": "mul(1, 0)"},
        triton="({0} * {1})"),
    _op("div", 2, "x / y (exact: x / 0 is inf or NaN)", sem.binary(lambda x, y: x / y), lambda x, y: x / y,
        infix="/", precedence=12, weight=2,
        cxx={"st": "((T(1) / {1}) * {0})", "**": "({0} / {1})"},  # number / tensor is reciprocal(x) * c in torch
        foreach={"tt": "div(0, 1)", "ts": "div(0, 1)", "st": "reciprocal(1); mul(_, 0)"},
        triton={"st": "(tl.div_rn(1.0, {1}) * {0})", "**": "tl.div_rn({0}, {1})"}),
    _op("pow", 2, "x ** y (exact: a negative base with a fractional power is NaN)", sem.binary(lambda x, y: x**y),
        lambda x, y: x**y, infix="**", precedence=14, weight=0.5,
        cxx={"*s": "d_powk({0}, {1})", "**": "std::pow({0}, {1})"}, cxx_helpers=(_CXX_POWK,),
        foreach={"tt": "pow(0, 1)", "ts": "pow(0, 1)"},
        triton={"*s": "d_powk({0}, {1})", "**": "d_pow({0}, {1})"}, triton_helpers=(_TR_POWK, _TR_POW)),
    _op("mod", 2, "x % y, with the sign of y (Python and torch.remainder semantics)",
        sem.binary(lambda x, y: x % y, exact_in_python=False), lambda x, y: _SP().Mod(x, y), infix="%",
        precedence=12, weight=0.2, cxx="d_mod({0}, {1})", cxx_helpers=(_CXX_MOD,), foreach=PER_PARAM,
        triton="d_mod({0}, {1})", triton_helpers=(_TR_MOD,)),
    _op("neg", 1, "-x", lambda x: -x, lambda x: -x, prefix="-", precedence=13, weight=1,
        cxx="(-{0})", foreach={"t": "neg(0)"},
        triton="(-{0})"),
    # comparisons: 1.0 where true, else 0.0
    _op("lt", 2, "1 where x < y else 0", sem.compare(lambda x, y: x < y), sem.sym_cmp("Lt"), infix="<",
        precedence=6, weight=0.2, cxx=_cmp_cxx("<"), foreach=PER_PARAM,
        triton=_tr_cmp("<")),
    _op("le", 2, "1 where x <= y else 0", sem.compare(lambda x, y: x <= y), sem.sym_cmp("Le"), infix="<=",
        precedence=6, weight=0.2, cxx=_cmp_cxx("<="), foreach=PER_PARAM,
        triton=_tr_cmp("<=")),
    _op("gt", 2, "1 where x > y else 0", sem.compare(lambda x, y: x > y), sem.sym_cmp("Gt"), infix=">",
        precedence=6, weight=0.2, cxx=_cmp_cxx(">"), foreach=PER_PARAM,
        triton=_tr_cmp(">")),
    _op("ge", 2, "1 where x >= y else 0", sem.compare(lambda x, y: x >= y), sem.sym_cmp("Ge"), infix=">=",
        precedence=6, weight=0.2, cxx=_cmp_cxx(">="), foreach=PER_PARAM,
        triton=_tr_cmp(">=")),
    _op("eq", 2, "1 where x == y else 0", sem.compare(lambda x, y: x == y), sem.sym_cmp("Eq"), infix="==",
        precedence=6, weight=0.1, commutative=True, cxx=_cmp_cxx("=="), foreach=PER_PARAM,
        triton=_tr_cmp("==")),
    _op("ne", 2, "1 where x != y else 0", sem.compare(lambda x, y: x != y), sem.sym_cmp("Ne"), infix="!=",
        precedence=6, weight=0.1, commutative=True, cxx=_cmp_cxx("!="), foreach=PER_PARAM,
        triton=_tr_cmp("!=")),
    # selection and interpolation
    _op("where", 3, "a where c != 0 else b", sem.where,
        lambda c, a, b: _SP().Piecewise((a, _SP().Ne(c, 0)), (b, True)), weight=0.3,
        cxx="(({0} != T(0)) ? {1} : {2})", foreach=PER_PARAM, lowering=sem.lower_where,
        triton="tl.where({0} != 0.0, {1}, {2})"),
    _op("interp", 3, "(1 - a) * x + a * y: an EMA step when y is the average and a its decay", sem.interp,
        lambda x, y, a: (1 - a) * x + a * y, weight=3, foreach=PER_PARAM, lowering=sem.lower_interp),
    # elementwise functions
    _op("abs", 1, "absolute value", sem.unary(torch.abs, np.abs), lambda x: _SP().Abs(x), weight=1,
        cxx="std::abs({0})", foreach={"t": "abs(0)"},
        triton="tl.abs({0})"),
    _op("sign", 1, "-1, 0 or 1 (0 at NaN, as torch.sign)", sem.sign, lambda x: _SP().sign(x), weight=1.5,
        cxx="d_sign({0})", cxx_helpers=(_CXX_SIGN,), foreach={"t": "sign(0)"},
        triton="d_sign({0})", triton_helpers=(_TR_SIGN,)),
    _op("sqrt", 1, "square root (NaN below 0)", sem.unary(torch.sqrt, np.sqrt, math.sqrt), lambda x: _SP().sqrt(x),
        weight=2, cxx="std::sqrt({0})", foreach={"t": "sqrt(0)"},
        triton="tl.sqrt_rn({0})"),
    _op("rsqrt", 1, "1 / sqrt(x)", sem.unary(torch.rsqrt, lambda x: 1 / np.sqrt(x)), lambda x: 1 / _SP().sqrt(x),
        weight=1, cxx="(T(1) / std::sqrt({0}))", foreach={"t": "rsqrt(0)"},
        triton="tl.div_rn(1.0, tl.sqrt_rn({0}))"),
    _op("square", 1, "x * x", sem.unary(torch.square, np.square), lambda x: x**2, weight=1.5,
        cxx="({0} * {0})", foreach={"t": "mul(0, 0)"},
        triton="({0} * {0})"),
    _op("exp", 1, "e ** x", sem.unary(torch.exp, np.exp), lambda x: _SP().exp(x), weight=0.5,
        cxx="std::exp({0})", foreach={"t": "exp(0)"},
        triton="d_exp({0})", triton_helpers=(_tr_libdevice("d_exp", "exp"),)),
    _op("log", 1, "natural log (-inf at 0, NaN below)", sem.unary(torch.log, np.log), lambda x: _SP().log(x),
        weight=0.5, cxx="std::log({0})", foreach={"t": "log(0)"},
        triton="d_log({0})", triton_helpers=(_tr_libdevice("d_log", "log"),)),
    _op("tanh", 1, "hyperbolic tangent", sem.unary(torch.tanh, np.tanh), lambda x: _SP().tanh(x), weight=0.5,
        cxx="std::tanh({0})", foreach={"t": "tanh(0)"},
        triton="d_tanh({0})", triton_helpers=(_tr_libdevice("d_tanh", "tanh"),)),
    _op("sigmoid", 1, "1 / (1 + exp(-x))", sem.unary(torch.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
        lambda x: 1 / (1 + _SP().exp(-x)), weight=0.3, cxx="(T(1) / (T(1) + std::exp(-{0})))",
        foreach={"t": "sigmoid(0)"},
        triton="tl.div_rn(1.0, 1.0 + d_exp(-{0}))", triton_helpers=(_tr_libdevice("d_exp", "exp"),)),
    _op("sin", 1, "sine", sem.unary(torch.sin, np.sin), lambda x: _SP().sin(x), weight=0.2,
        cxx="std::sin({0})", foreach={"t": "sin(0)"},
        triton="d_sin({0})", triton_helpers=(_tr_libdevice("d_sin", "sin"),)),
    _op("cos", 1, "cosine", sem.unary(torch.cos, np.cos), lambda x: _SP().cos(x), weight=0.2,
        cxx="std::cos({0})", foreach={"t": "cos(0)"},
        triton="d_cos({0})", triton_helpers=(_tr_libdevice("d_cos", "cos"),)),
    _op("arcsin", 1, "inverse sine (NaN outside [-1, 1])", sem.unary(torch.asin, np.arcsin),
        lambda x: _SP().asin(x), weight=0.2, cxx="std::asin({0})", foreach={"t": "asin(0)"},
        triton="d_asin({0})", triton_helpers=(_tr_libdevice("d_asin", "asin"),)),
    _op("arctan", 1, "inverse tangent", sem.unary(torch.atan, np.arctan), lambda x: _SP().atan(x), weight=0.3,
        cxx="std::atan({0})", foreach={"t": "atan(0)"},
        triton="d_atan({0})", triton_helpers=(_tr_libdevice("d_atan", "atan"),)),
    _op("cosh", 1, "hyperbolic cosine", sem.unary(torch.cosh, np.cosh), lambda x: _SP().cosh(x), weight=0.2,
        cxx="std::cosh({0})", foreach={"t": "cosh(0)"},
        triton="d_cosh({0})", triton_helpers=(_tr_libdevice("d_cosh", "cosh"),)),
    _op("reciprocal", 1, "1 / x", sem.unary(torch.reciprocal, lambda x: 1 / x), lambda x: 1 / x, weight=0.5,
        cxx="(T(1) / {0})", foreach={"t": "reciprocal(0)"},
        triton="tl.div_rn(1.0, {0})"),
    _op("clip", 2, "x clamped to [-c, c]", sem.clip, lambda x, c: _SP().Min(_SP().Max(x, -c), c), weight=1,
        cxx="d_clip({0}, {1})", cxx_helpers=(_CXX_CLIP,), foreach=PER_PARAM,
        triton="d_clip({0}, {1})", triton_helpers=(_TR_CLIP,)),
    _op("minimum", 2, "the smaller of x and y (NaN propagates)", sem.pair(torch.minimum, np.minimum),
        lambda x, y: _SP().Min(x, y), weight=0.5, commutative=True, cxx="d_min({0}, {1})",
        cxx_helpers=(_CXX_MIN,), foreach={"tt": "minimum(0, 1)"},
        triton="d_min({0}, {1})", triton_helpers=(_TR_MIN,)),
    _op("maximum", 2, "the larger of x and y (NaN propagates)", sem.pair(torch.maximum, np.maximum),
        lambda x, y: _SP().Max(x, y), weight=0.5, commutative=True, cxx="d_max({0}, {1})",
        cxx_helpers=(_CXX_MAX,), foreach={"tt": "maximum(0, 1)"},
        triton="d_max({0}, {1})", triton_helpers=(_TR_MAX,)),
    # per-tensor reductions (a per-tensor scalar that broadcasts back over the tensor); the C++
    # form sums a term of each value in float64, then finishes the sum {0} of {1} values
    _op("norm", 1, "L2 norm of the whole tensor", sem.norm, sem.sym_fn("norm"), kind=REDUCTION, weight=0.5,
        batched_fn=lambda x: sem.norm(x, True), cxx_reduce=("{0} * {0}", "T(std::sqrt({0}))"),
        foreach={"t": "norm(0)"},
        triton_reduce=("{0} * {0}", "tl.sqrt({0}).to(tl.float32)")),
    _op("rms", 1, "root mean square of the tensor: norm(x) / sqrt(numel)", sem.rms, sem.sym_fn("rms"),
        kind=REDUCTION, weight=0.5, batched_fn=lambda x: sem.rms(x, True),
        cxx_reduce=("{0} * {0}", "T(T(std::sqrt({0})) / T(std::sqrt(double(std::max<int64_t>({1}, 1)))))"),
        foreach=PER_PARAM,
        triton_reduce=("{0} * {0}", "tl.div_rn(tl.sqrt({0}).to(tl.float32), tl.sqrt(tl.maximum({1}, 1).to(tl.float64)).to(tl.float32))")),
    _op("mean", 1, "mean of the tensor's values", sem.mean, sem.sym_fn("mean"), kind=REDUCTION, weight=0.3,
        batched_fn=lambda x: sem.mean(x, True), cxx_reduce=("{0}", "T({0} / double({1}))"), foreach=PER_PARAM,
        triton_reduce=("{0}", "({0} / {1}.to(tl.float64)).to(tl.float32)")),
    # (no C++ form: the fused and population kernels leave such programs to the foreach backend and
    # the torch batched step). sympy: opaque functions (a product of sympy's real symbols commutes,
    # a matrix product does not).
    _op("matmul", 2, "matrix product x @ y (x's columns must be y's rows)", sem.matmul, sem.sym_fn("matmul"),
        kind=MATRIX, weight=0.3, batched_fn=lambda x, y: sem.matmul(x, y, True), foreach=PER_PARAM,
        fallback="x * y"),
    _op("transpose", 1, "the transpose: rows become columns", sem.transpose, sem.sym_fn("transpose"), kind=MATRIX,
        weight=0.3, batched_fn=lambda x: sem.transpose(x, True), foreach=PER_PARAM, fallback="x"),
    _op("newton_schulz", 7, "x orthogonalised by Newton-Schulz iterations (torch.optim.Muon's): about U V^T "
        "for x = U S V^T", sem.newton_schulz, sem.sym_fn("newton_schulz"), kind=MATRIX, weight=1.0,
        batched_fn=lambda x, *o: sem.newton_schulz(x, *o, batched=True), foreach=PER_PARAM,
        options=tuple(zip(("steps", "a", "b", "c", "eps", "bf16"), sem.NS_DEFAULTS)),
        fallback="the same iteration on each value: x / norm(x), then x = a x + b x^3 + c x^5"),
    # row and column reductions (Adafactor's factored moments): one value per row or per column,
    # broadcast back over the tensor
    _op("row_mean", 1, "the mean of each row (over the last dimension), one value per row", sem.row_mean,
        sem.sym_fn("row_mean"), kind=AXIS, weight=0.5, batched_fn=lambda x: sem.row_mean(x, True),
        foreach=PER_PARAM),
    _op("col_mean", 1, "the mean of each column (over the second-to-last dimension), one value per column",
        sem.col_mean, sem.sym_fn("col_mean"), kind=AXIS, weight=0.5, batched_fn=lambda x: sem.col_mean(x, True),
        foreach=PER_PARAM),
    # the tensor's shape as numbers (Muon's lr adjustment reads rows / cols)
    _op("rows", 1, "the number of rows (second-to-last dimension; 1 for a vector)", sem.rows, sem.sym_fn("rows"),
        kind=PROPERTY, weight=0.05, batched_fn=lambda x: sem.rows(x, True), foreach=PER_PARAM),
    _op("cols", 1, "the number of columns (last dimension)", sem.cols, sem.sym_fn("cols"), kind=PROPERTY, weight=0.05,
        batched_fn=lambda x: sem.cols(x, True), foreach=PER_PARAM),
    _op("ndim", 1, "the number of dimensions of the parameter (2 for a matrix)", sem.ndim, sem.sym_fn("ndim"),
        kind=PROPERTY, weight=0.0, batched_fn=lambda x: sem.ndim(x, True), foreach=PER_PARAM),
    _op("epsilon", 1, "the machine epsilon of the tensor's dtype (2.2e-16 for float64, 1.2e-7 for float32)",
        sem.epsilon, sem.sym_fn("epsilon"), kind=PROPERTY, weight=0.0, batched_fn=lambda x: sem.epsilon(x, True),
        foreach=PER_PARAM),
    # group reductions: over every parameter of the param group (Prodigy's d estimate, global clipping)
    _op("group_sum", 1, "the sum of x over every parameter of the param group", _one_group(sem.group_sum),
        sem.sym_fn("group_sum"), kind=GROUP, weight=0.2, group_fn=sem.group_sum, foreach=PER_PARAM),
    _op("group_norm", 1, "the L2 norm of x over every parameter of the param group", _one_group(sem.group_norm),
        sem.sym_fn("group_norm"), kind=GROUP, weight=0.2, group_fn=sem.group_norm, foreach=PER_PARAM),
    # plain assignment `x = y` (kept so copies are statements like any other)
    _op("copy", 1, "x itself (a plain assignment)", lambda x: x, lambda x: x, weight=0.0,
        cxx="{0}", foreach=PER_PARAM,
        triton="{0}"),
]

_KERNEL_OPS: list[Op] = [
    # torch.lerp(start, end, weight), the form of `interp` of two tensors
    _op("lerp", 3, "start + weight * (end - start), as torch.lerp", sem.lerp,
        lambda s, e, w: s + w * (e - s), weight=0.0, cxx="d_lerp({0}, {1}, {2})", cxx_helpers=(_CXX_LERP,),
        foreach={"tt*": "lerp(0, 1, 2)"},
        triton="d_lerp({0}, {1}, {2})", triton_helpers=(_TR_LERP,)),
]

OPS: dict[str, Op] = {op.name: op for op in _OPS}
"""All ops of the language by name."""

KERNEL_OPS: dict[str, Op] = {op.name: op for op in _KERNEL_OPS}
"""Ops that only lowering rules make (not in the language: programs cannot name them)."""

ALL_OPS: dict[str, Op] = {**OPS, **KERNEL_OPS}
"""Every op a lowered program may contain, by name (what backends generate code for)."""

INFIX_OPS: dict[str, str] = {op.infix: op.name for op in _OPS if op.infix}
"""Infix symbol -> op name."""

SEARCH_OP_SETS: dict[str, tuple[str, ...]] = {"matrix": (MATRIX, AXIS, PROPERTY), "group": (GROUP,)}
"""Op sets a search may add to its default space (``discover search --ops matrix,group``), by the op
kinds they hold. The default space is every op that is not `STAGED` (so runs made before these ops
existed draw the same children): search's mutations draw ops by their ``weight`` from it."""


def search_ops(extra: "tuple[str, ...] | list[str]" = ()) -> dict[str, float]:
    """The ops search may insert, with their mutation weights: the default space (every op with a
    weight that is not `STAGED`), plus the ops of each named `SEARCH_OP_SETS` entry in `extra`.

    Example:
        >>> "newton_schulz" in search_ops(), "newton_schulz" in search_ops(["matrix"])
        (False, True)
    """
    unknown = [name for name in extra if name not in SEARCH_OP_SETS]
    if unknown:
        raise ValueError(f"unknown op set(s) {', '.join(map(repr, unknown))}; the op sets are "
                         f"{', '.join(SEARCH_OP_SETS)}")
    kinds = {k for name in extra for k in SEARCH_OP_SETS[name]}
    return {op.name: op.weight for op in _OPS if op.weight > 0 and (not op.staged or op.kind in kinds)}


CALLABLE_OPS: list[str] = sorted(n for n, op in OPS.items() if not op.infix and not op.prefix and n != "copy")
"""Ops written as function calls in program text, e.g. ``sqrt(v)``."""


def op_defaults(name: str) -> tuple[float, ...]:
    """The defaults of `name`'s `options` (``newton_schulz(x)`` is ``newton_schulz(x, 5, 3.4445, ...)``)."""
    return tuple(d for _, d in OPS[name].options)
