"""The op table: the single place that defines an operation of the language.

Each `Op` carries its name, arity, meaning, how it types, its torch
implementation (which also accepts Python floats, for scalar arithmetic), its
exact IEEE scalar implementation, its symbolic (sympy) form, how it prints,
and its mutation weight. Adding an op to the language is one entry in `OPS`.

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
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor


class Type(IntEnum):
    """How much a value varies; wider types broadcast narrower ones."""

    SCALAR = 0
    PER_TENSOR = 1
    TENSOR = 2

    @property
    def label(self) -> str:
        return {0: "scalar", 1: "per-tensor scalar", 2: "tensor"}[int(self)]


Number = float
Value = Any  # a Tensor or a Python float


@dataclass(frozen=True)
class Op:
    """One operation of the language. See the module docstring."""

    name: str
    arity: int
    doc: str
    fn: Callable[..., Value]  # tensors and/or floats -> tensor or float
    sympy: Callable[..., Any]  # sympy expressions -> sympy expression
    reduction: bool = False
    infix: str | None = None  # '+', '<', ... for printing and parsing
    prefix: str | None = None  # '-' for neg
    precedence: int = 20  # Python precedence of the printed form (higher binds tighter)
    weight: float = 1.0  # relative probability of being chosen by mutations
    batched_fn: Callable[..., Value] | None = field(default=None, repr=False)

    def call(self, *args: Value) -> Value:
        """Apply the op to tensors and/or floats (the per-tensor reference semantics)."""
        return self.fn(*args)

    def result_type(self, arg_types: list[Type]) -> Type:
        """The type of the result; raises `TypeError` for arguments the op cannot take."""
        if self.reduction:
            if arg_types[0] != Type.TENSOR:
                raise TypeError(
                    f"{self.name}() reduces a tensor to one number per tensor, "
                    f"but its argument is a {arg_types[0].label}"
                )
            return Type.PER_TENSOR
        return max(arg_types, default=Type.SCALAR)


# --------------------------------------------------------------------------- scalars
# Python's math raises on sqrt(-1), 1/0, log(0) and returns complex numbers from
# (-8) ** (1/3); the language is exact IEEE arithmetic (NaN and inf propagate as in
# torch), so scalar arithmetic goes through numpy float64 with warnings silenced.


def _ieee(fn: Callable[..., Any], fast: Callable[..., Any] | None = None) -> Callable[..., float]:
    """`fn` on float64 with IEEE results (NaN/inf, never an exception).

    `fast`, where given, is a plain-Python form used whenever it returns a float: for the
    correctly rounded operations (+ - * / sqrt) it gives numpy's bits; for ``pow`` it is
    Python's float pow, the one torch.optim's bias corrections use (numpy's own pow can differ
    in the last bit). Its exceptions and complex results fall through to numpy. About 10x
    cheaper: scalar prologues run these once per step per optimizer (and per member in search).
    """
    def scalar(*args: float) -> float:
        if fast is not None:
            try:
                out = fast(*args)
                if out.__class__ is float:
                    return out
            except (ArithmeticError, ValueError):
                pass
        with np.errstate(all="ignore"):
            return float(fn(*(np.float64(a) for a in args)))

    scalar.__name__ = getattr(fn, "__name__", "scalar")
    return scalar


def _is_tensor(*args: Value) -> bool:
    return any(isinstance(a, Tensor) for a in args)


def _tensor_like(value: Value, *refs: Value) -> Tensor:
    """`value` as a tensor with the dtype/device Python-scalar promotion would give."""
    if isinstance(value, Tensor):
        return value
    ref = next(r for r in refs if isinstance(r, Tensor))
    return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)


def _unary(torch_fn: Callable[[Tensor], Tensor], np_fn: Callable[[Any], Any],
           fast: Callable[[Any], Any] | None = None) -> Callable[[Value], Value]:
    scalar = _ieee(np_fn, fast)

    def fn(x: Value) -> Value:
        return torch_fn(x) if isinstance(x, Tensor) else scalar(x)

    return fn


def _binary(py_op: Callable[[Any, Any], Any], exact_in_python: bool = True) -> Callable[[Value, Value], Value]:
    """Arithmetic through Python operators: torch overloads them for tensor/float mixes.
    `exact_in_python`: Python's float operator gives numpy's bits where it returns a float."""
    scalar = _ieee(py_op, py_op if exact_in_python else None)

    def fn(x: Value, y: Value) -> Value:
        return py_op(x, y) if isinstance(x, Tensor) or isinstance(y, Tensor) else scalar(x, y)

    return fn


def _compare(py_op: Callable[[Any, Any], Any]) -> Callable[[Value, Value], Value]:
    """Comparisons give 1.0 / 0.0 in the arguments' floating dtype (no bool type)."""

    def fn(x: Value, y: Value) -> Value:
        if _is_tensor(x, y):
            dtype = torch.result_type(x, y)
            return py_op(x, y).to(dtype)
        return 1.0 if py_op(float(x), float(y)) else 0.0

    return fn


def _pair(torch_fn: Callable[[Tensor, Tensor], Tensor], np_fn: Callable[[Any, Any], Any]) -> Callable[[Value, Value], Value]:
    scalar = _ieee(np_fn)

    def fn(x: Value, y: Value) -> Value:
        if _is_tensor(x, y):
            return torch_fn(_tensor_like(x, y), _tensor_like(y, x))
        return scalar(x, y)

    return fn


def _where(c: Value, a: Value, b: Value) -> Value:
    if not _is_tensor(c, a, b):
        return a if c != 0 else b  # NaN != 0, as in torch
    # like every elementwise op, the result broadcasts over all arguments (the checker's
    # type is the widest of them), also when the condition is a number
    c = _tensor_like(c, a, b)
    return torch.where(c != 0, _tensor_like(a, c, b), _tensor_like(b, c, a))


def _interp(x: Value, y: Value, a: Value) -> Value:
    # (1 - a) * x + a * y, written as torch.optim writes EMAs (lerp towards x by 1 - a)
    # so that programs reproduce torch's rounding.
    if isinstance(x, Tensor) and isinstance(y, Tensor) and x.shape == y.shape:
        return torch.lerp(y, x, 1 - a)
    if _is_tensor(x, y, a):
        return (1 - a) * x + a * y
    return _ieee(lambda x, y, a: (1 - a) * x + a * y)(x, y, a)


def _clip(x: Value, c: Value) -> Value:
    if _is_tensor(x, c):
        x, c = _tensor_like(x, c), _tensor_like(c, x)
        return torch.clamp(x, -c, c)
    return _ieee(lambda x, c: np.minimum(np.maximum(x, -c), c))(x, c)


def _sign(x: Value) -> Value:
    # torch.sign(NaN) is 0; scalars follow torch so that every backend agrees.
    return torch.sign(x) if isinstance(x, Tensor) else (0.0 if x != x else _ieee(np.sign)(x))


def _dims(x: Tensor, batched: bool) -> tuple[int, ...] | None:
    return tuple(range(1, x.dim())) if batched else None


def _norm(x: Tensor, batched: bool = False) -> Tensor:
    return torch.linalg.vector_norm(x, dim=_dims(x, batched), keepdim=batched)


def _rms(x: Tensor, batched: bool = False) -> Tensor:
    count = x[0].numel() if batched else x.numel()
    return _norm(x, batched) / math.sqrt(max(count, 1))


def _mean(x: Tensor, batched: bool = False) -> Tensor:
    if batched:
        return x.mean(dim=_dims(x, True), keepdim=True)
    return x.mean()


def _sym():
    import sympy

    return sympy


def _sym_fn(name: str) -> Callable[..., Any]:
    return lambda *a: _sym().Function(name)(*a)


def _sym_cmp(rel: str) -> Callable[[Any, Any], Any]:
    def f(x: Any, y: Any) -> Any:
        sp = _sym()
        cond = getattr(sp, rel)(x, y)
        return sp.Piecewise((1, cond), (0, True))

    return f



def _op(name: str, arity: int, doc: str, fn, sympy, **kw) -> Op:
    return Op(name=name, arity=arity, doc=doc, fn=fn, sympy=sympy, **kw)


_OPS: list[Op] = [
    # arithmetic
    _op("add", 2, "x + y", _binary(lambda x, y: x + y), lambda x, y: x + y, infix="+", precedence=11, weight=3),
    _op("sub", 2, "x - y", _binary(lambda x, y: x - y), lambda x, y: x - y, infix="-", precedence=11, weight=3),
    _op("mul", 2, "x * y", _binary(lambda x, y: x * y), lambda x, y: x * y, infix="*", precedence=12, weight=3),
    _op("div", 2, "x / y (exact: x / 0 is inf or NaN)", _binary(lambda x, y: x / y), lambda x, y: x / y, infix="/", precedence=12, weight=2),
    _op("pow", 2, "x ** y (exact: a negative base with a fractional power is NaN)", _binary(lambda x, y: x**y), lambda x, y: x**y, infix="**", precedence=14, weight=0.5),
    _op("mod", 2, "x % y, with the sign of y (Python and torch.remainder semantics)", _binary(lambda x, y: x % y, exact_in_python=False), lambda x, y: _sym().Mod(x, y), infix="%", precedence=12, weight=0.2),
    _op("neg", 1, "-x", lambda x: -x, lambda x: -x, prefix="-", precedence=13, weight=1),
    # comparisons: 1.0 where true, else 0.0
    _op("lt", 2, "1 where x < y else 0", _compare(lambda x, y: x < y), _sym_cmp("Lt"), infix="<", precedence=6, weight=0.2),
    _op("le", 2, "1 where x <= y else 0", _compare(lambda x, y: x <= y), _sym_cmp("Le"), infix="<=", precedence=6, weight=0.2),
    _op("gt", 2, "1 where x > y else 0", _compare(lambda x, y: x > y), _sym_cmp("Gt"), infix=">", precedence=6, weight=0.2),
    _op("ge", 2, "1 where x >= y else 0", _compare(lambda x, y: x >= y), _sym_cmp("Ge"), infix=">=", precedence=6, weight=0.2),
    _op("eq", 2, "1 where x == y else 0", _compare(lambda x, y: x == y), _sym_cmp("Eq"), infix="==", precedence=6, weight=0.1),
    _op("ne", 2, "1 where x != y else 0", _compare(lambda x, y: x != y), _sym_cmp("Ne"), infix="!=", precedence=6, weight=0.1),
    # selection and interpolation
    _op("where", 3, "a where c != 0 else b", _where, lambda c, a, b: _sym().Piecewise((a, _sym().Ne(c, 0)), (b, True)), weight=0.3),
    _op("interp", 3, "(1 - a) * x + a * y: an EMA step when y is the average and a its decay", _interp, lambda x, y, a: (1 - a) * x + a * y, weight=3),
    # elementwise functions
    _op("abs", 1, "absolute value", _unary(torch.abs, np.abs), lambda x: _sym().Abs(x), weight=1),
    _op("sign", 1, "-1, 0 or 1 (0 at NaN, as torch.sign)", _sign, lambda x: _sym().sign(x), weight=1.5),
    _op("sqrt", 1, "square root (NaN below 0)", _unary(torch.sqrt, np.sqrt, math.sqrt), lambda x: _sym().sqrt(x), weight=2),
    _op("rsqrt", 1, "1 / sqrt(x)", _unary(torch.rsqrt, lambda x: 1 / np.sqrt(x)), lambda x: 1 / _sym().sqrt(x), weight=1),
    _op("square", 1, "x * x", _unary(torch.square, np.square), lambda x: x**2, weight=1.5),
    _op("exp", 1, "e ** x", _unary(torch.exp, np.exp), lambda x: _sym().exp(x), weight=0.5),
    _op("log", 1, "natural log (-inf at 0, NaN below)", _unary(torch.log, np.log), lambda x: _sym().log(x), weight=0.5),
    _op("tanh", 1, "hyperbolic tangent", _unary(torch.tanh, np.tanh), lambda x: _sym().tanh(x), weight=0.5),
    _op("sigmoid", 1, "1 / (1 + exp(-x))", _unary(torch.sigmoid, lambda x: 1 / (1 + np.exp(-x))), lambda x: 1 / (1 + _sym().exp(-x)), weight=0.3),
    _op("sin", 1, "sine", _unary(torch.sin, np.sin), lambda x: _sym().sin(x), weight=0.2),
    _op("cos", 1, "cosine", _unary(torch.cos, np.cos), lambda x: _sym().cos(x), weight=0.2),
    _op("arcsin", 1, "inverse sine (NaN outside [-1, 1])", _unary(torch.asin, np.arcsin), lambda x: _sym().asin(x), weight=0.2),
    _op("arctan", 1, "inverse tangent", _unary(torch.atan, np.arctan), lambda x: _sym().atan(x), weight=0.3),
    _op("cosh", 1, "hyperbolic cosine", _unary(torch.cosh, np.cosh), lambda x: _sym().cosh(x), weight=0.2),
    _op("reciprocal", 1, "1 / x", _unary(torch.reciprocal, lambda x: 1 / x), lambda x: 1 / x, weight=0.5),
    _op("clip", 2, "x clamped to [-c, c]", _clip, lambda x, c: _sym().Min(_sym().Max(x, -c), c), weight=1),
    _op("minimum", 2, "the smaller of x and y (NaN propagates)", _pair(torch.minimum, np.minimum), lambda x, y: _sym().Min(x, y), weight=0.5),
    _op("maximum", 2, "the larger of x and y (NaN propagates)", _pair(torch.maximum, np.maximum), lambda x, y: _sym().Max(x, y), weight=0.5),
    # per-tensor reductions (a per-tensor scalar that broadcasts back over the tensor)
    _op("norm", 1, "L2 norm of the whole tensor", _norm, _sym_fn("norm"), reduction=True, weight=0.5, batched_fn=lambda x: _norm(x, True)),
    _op("rms", 1, "root mean square of the tensor: norm(x) / sqrt(numel)", _rms, _sym_fn("rms"), reduction=True, weight=0.5, batched_fn=lambda x: _rms(x, True)),
    _op("mean", 1, "mean of the tensor's values", _mean, _sym_fn("mean"), reduction=True, weight=0.3, batched_fn=lambda x: _mean(x, True)),
    # plain assignment `x = y` (kept so copies are statements like any other)
    _op("copy", 1, "x itself (a plain assignment)", lambda x: x, lambda x: x, weight=0.0),
]

OPS: dict[str, Op] = {op.name: op for op in _OPS}
"""All ops by name."""

INFIX_OPS: dict[str, str] = {op.infix: op.name for op in _OPS if op.infix}
"""Infix symbol -> op name."""

CALLABLE_OPS: list[str] = sorted(n for n, op in OPS.items() if not op.infix and not op.prefix and n != "copy")
"""Ops written as function calls in program text, e.g. ``sqrt(v)``."""
