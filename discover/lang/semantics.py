"""Reference semantics of the ops: what each op of `discover.lang.ops` computes.

Tensors go through torch (which also decides broadcasting and dtype promotion);
plain numbers (constants, hyperparameters, ``step``, scalar state) through exact
IEEE float64 arithmetic: NaN and inf propagate, nothing raises. The op table points
at these functions; the reference interpreter, the probes and every backend's
scalar prologue call them, so "what an op means" is written once.

Example:
    >>> sqrt = unary(torch.sqrt, np.sqrt)
    >>> sqrt(-1.0) != sqrt(-1.0)   # NaN, not an exception
    True
    >>> interp(2.0, 4.0, 0.25)     # (1 - 0.25) * 2 + 0.25 * 4
    2.5
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

Value = Any  # a Tensor or a Python float

# --------------------------------------------------------------------------- scalars
# Python's math raises on sqrt(-1), 1/0, log(0) and returns complex numbers from
# (-8) ** (1/3); the language is exact IEEE arithmetic (NaN and inf propagate as in
# torch), so scalar arithmetic goes through numpy float64 with warnings silenced.


def ieee(fn: Callable[..., Any], fast: Callable[..., Any] | None = None) -> Callable[..., float]:
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


def is_tensor(*args: Value) -> bool:
    """Whether any argument is a tensor (then torch computes, in the tensors' dtype)."""
    return any(isinstance(a, Tensor) for a in args)


def tensor_like(value: Value, *refs: Value) -> Tensor:
    """`value` as a tensor with the dtype/device Python-scalar promotion would give."""
    if isinstance(value, Tensor):
        return value
    ref = next(r for r in refs if isinstance(r, Tensor))
    return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)


def unary(torch_fn: Callable[[Tensor], Tensor], np_fn: Callable[[Any], Any],
          fast: Callable[[Any], Any] | None = None) -> Callable[[Value], Value]:
    """A one-argument op: `torch_fn` on tensors, `np_fn` (IEEE, see `ieee`) on numbers."""
    scalar = ieee(np_fn, fast)

    def fn(x: Value) -> Value:
        return torch_fn(x) if isinstance(x, Tensor) else scalar(x)

    return fn


def binary(py_op: Callable[[Any, Any], Any], exact_in_python: bool = True) -> Callable[[Value, Value], Value]:
    """Arithmetic through Python operators: torch overloads them for tensor/float mixes.
    `exact_in_python`: Python's float operator gives numpy's bits where it returns a float."""
    scalar = ieee(py_op, py_op if exact_in_python else None)

    def fn(x: Value, y: Value) -> Value:
        return py_op(x, y) if isinstance(x, Tensor) or isinstance(y, Tensor) else scalar(x, y)

    return fn


def compare(py_op: Callable[[Any, Any], Any]) -> Callable[[Value, Value], Value]:
    """Comparisons give 1.0 / 0.0 in the arguments' floating dtype (no bool type)."""

    def fn(x: Value, y: Value) -> Value:
        if is_tensor(x, y):
            dtype = torch.result_type(x, y)
            return py_op(x, y).to(dtype)
        return 1.0 if py_op(float(x), float(y)) else 0.0

    return fn


def pair(torch_fn: Callable[[Tensor, Tensor], Tensor], np_fn: Callable[[Any, Any], Any]) -> Callable[[Value, Value], Value]:
    """A two-argument op with no Python operator: `torch_fn` on tensors (a number becomes a
    tensor of the other's dtype), `np_fn` (IEEE) on numbers."""
    scalar = ieee(np_fn)

    def fn(x: Value, y: Value) -> Value:
        if is_tensor(x, y):
            return torch_fn(tensor_like(x, y), tensor_like(y, x))
        return scalar(x, y)

    return fn


def where(c: Value, a: Value, b: Value) -> Value:
    """`a` where `c` != 0 else `b` (NaN counts as true, as in torch). A condition that is a
    number is tested as a number (float64), not after narrowing it to the tensors' dtype."""
    if not is_tensor(c, a, b):
        return a if c != 0 else b  # NaN != 0, as in torch
    # like every elementwise op, the result broadcasts over all arguments (the checker's
    # type is the widest of them), also when the condition is a number
    if isinstance(c, Tensor):
        cond = c != 0
    else:
        cond = torch.tensor(c != 0, device=next(t for t in (a, b) if isinstance(t, Tensor)).device)
    return torch.where(cond, tensor_like(a, c, b), tensor_like(b, c, a))


def interp(x: Value, y: Value, a: Value) -> Value:
    """(1 - a) * x + a * y; of two tensors as torch.optim writes EMAs, ``lerp(y, x, 1 - a)``,
    so that programs reproduce torch's rounding."""
    if isinstance(x, Tensor) and isinstance(y, Tensor) and x.shape == y.shape:
        return torch.lerp(y, x, 1 - a)
    if is_tensor(x, y, a):
        return (1 - a) * x + a * y
    return ieee(lambda x, y, a: (1 - a) * x + a * y)(x, y, a)


def clip(x: Value, c: Value) -> Value:
    """`x` clamped to [-c, c]."""
    if is_tensor(x, c):
        x, c = tensor_like(x, c), tensor_like(c, x)
        return torch.clamp(x, -c, c)
    return ieee(lambda x, c: np.minimum(np.maximum(x, -c), c))(x, c)


def sign(x: Value) -> Value:
    """-1, 0 or 1."""
    # torch.sign(NaN) is 0; scalars follow torch so that every backend agrees.
    return torch.sign(x) if isinstance(x, Tensor) else (0.0 if x != x else ieee(np.sign)(x))


def _dims(x: Tensor, batched: bool) -> tuple[int, ...] | None:
    return tuple(range(1, x.dim())) if batched else None


def norm(x: Tensor, batched: bool = False) -> Tensor:
    """L2 norm of the tensor (`batched`: of each member along the leading population axis)."""
    return torch.linalg.vector_norm(x, dim=_dims(x, batched), keepdim=batched)


def rms(x: Tensor, batched: bool = False) -> Tensor:
    """norm / sqrt(number of values)."""
    count = x[0].numel() if batched else x.numel()
    return norm(x, batched) / math.sqrt(max(count, 1))


def mean(x: Tensor, batched: bool = False) -> Tensor:
    """Mean of the tensor's values."""
    if batched:
        return x.mean(dim=_dims(x, True), keepdim=True)
    return x.mean()


def sym():
    """The sympy module, imported when first needed (it is slow to import)."""
    import sympy

    return sympy


def sym_fn(name: str) -> Callable[..., Any]:
    """An opaque sympy function `name(...)` (for ops sympy has no meaning for)."""
    return lambda *a: sym().Function(name)(*a)


def sym_cmp(rel: str) -> Callable[[Any, Any], Any]:
    """A comparison as sympy: ``Piecewise((1, rel(x, y)), (0, True))``."""

    def f(x: Any, y: Any) -> Any:
        sp = sym()
        cond = getattr(sp, rel)(x, y)
        return sp.Piecewise((1, cond), (0, True))

    return f


def lerp(start: Value, end: Value, weight: Value) -> Value:
    """torch.lerp: start + weight * (end - start) (torch's formula for tensors)."""
    if is_tensor(start, end, weight):
        return torch.lerp(tensor_like(start, end, weight), tensor_like(end, start, weight), weight)
    return ieee(lambda s, e, w: s + w * (e - s))(start, end, weight)


# --------------------------------------------------------------------------- lowering rules
# How an op is computed where the backends' plain forms would round differently from the
# reference above. A rule gets a `Lowering` (see `discover.lang.ops`) and the arguments;
# it returns the lowered value, or None to keep the op as it is.


def lower_interp(low: Any, x: Any, y: Any, a: Any) -> Any:
    """interp of two tensors shaped like the parameter is ``lerp(y, x, 1 - a)``, with the weight
    computed as the reference does; with any other value in the tensor's dtype it is
    ``(1 - a) * x + a * y`` in that dtype."""
    kinds = low.kind(x), low.kind(y), low.kind(a)
    if kinds[0] == kinds[1] == "t":
        return low.emit("lerp", y, x, low.emit("sub", 1.0, a, name="_weight"))
    if kinds != ("n", "n", "n"):
        c = low.emit("sub", 1.0, a, name="_one_minus")
        return low.emit("add", low.emit("mul", c, x, name="_x"), low.emit("mul", a, y, name="_y"))
    return None


def lower_where(low: Any, c: Any, a: Any, b: Any) -> Any:
    """A condition that is a float64 number (a constant, hyperparameter or step-derived value) is
    tested once, as a number, as the reference tests it (`where`), before a backend narrows numbers
    to the tensor's dtype (where 1e-50 != 0 would become 0 != 0). A rule's `emit` applies no rules."""
    if low.kind(c) == "n" and (low.kind(a) != "n" or low.kind(b) != "n"):
        return low.emit("where", low.emit("ne", c, 0.0, name="_cond"), a, b)
    return None
