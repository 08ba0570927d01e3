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
    if batched and x.dim() == 1:  # 0-d members: dim=() would reduce over the population axis too
        return x.abs()
    return torch.linalg.vector_norm(x, dim=_dims(x, batched), keepdim=batched)


def rms(x: Tensor, batched: bool = False) -> Tensor:
    """norm / sqrt(number of values)."""
    count = x[0].numel() if batched else x.numel()
    return norm(x, batched) / math.sqrt(max(count, 1))


def mean(x: Tensor, batched: bool = False) -> Tensor:
    """Mean of the tensor's values."""
    if batched:
        return x.mean(dim=_dims(x, True), keepdim=True) if x.dim() > 1 else x
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
    """interp of two tensors of the same shape is ``lerp(y, x, 1 - a)``, with the weight
    computed as the reference does; with any other value in the tensor's dtype it is
    ``(1 - a) * x + a * y`` in that dtype."""
    kinds = low.kind(x), low.kind(y), low.kind(a)
    if kinds[0] in "tm" and kinds[1] in "tm" and low.shape(x) == low.shape(y):  # two tensors of one shape
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


# --------------------------------------------------------------------------- matrix ops
# A parameter with two dimensions is a matrix. Every other parameter (a vector of biases, a 0-d
# scalar, a 4-d convolution kernel) is taken as a *diagonal* matrix holding its values: a diagonal
# matrix is its own transpose, a product of two is the elementwise product, and Newton-Schulz on
# one runs the same polynomial on each value. So a program with matrix ops means one thing on
# every parameter (search trains such programs on models with biases), and `ProgramOptimizer`
# refuses non-2-D parameters for them unless asked for the diagonal reading (see its `non_matrix`).
# With `batched`, tensors carry a leading population axis (one member per index).


def is_matrix(x: Tensor, batched: bool = False) -> bool:
    """Whether `x` is a matrix value (two dimensions, after the population axis when `batched`)."""
    return x.dim() - (1 if batched else 0) == 2


def transpose(x: Tensor, batched: bool = False) -> Tensor:
    """The transpose of a matrix (a copy); a non-matrix parameter's value (diagonal) as it is."""
    return x.mT.contiguous() if is_matrix(x, batched) else x


def matmul(x: Tensor, y: Tensor, batched: bool = False) -> Tensor:
    """The matrix product; for a non-matrix parameter (diagonal matrices) the elementwise product."""
    if is_matrix(x, batched) and is_matrix(y, batched):
        return torch.matmul(x, y)
    return x * y


NS_DEFAULTS = (5.0, 3.4445, -4.775, 2.0315, 1e-7, 0.0)
"""newton_schulz's options (steps, a, b, c, eps, bf16) when a program leaves them out: torch.optim.Muon's
defaults (Keller Jordan's quintic), computed in the parameter's own dtype."""


def newton_schulz(x: Tensor, steps: float, a: float, b: float, c: float, eps: float, bf16: float,
                  batched: bool = False) -> Tensor:
    """Orthogonalise `x` by `steps` quintic Newton-Schulz iterations, exactly as torch.optim.Muon does:
    X = x / max(||x||_F, eps) (x transposed first when it has more rows than columns), then
    ``A = X X^T; B = b A + c A A; X = a X + B X`` `steps` times, transposed back. Computed in
    bfloat16 when `bf16` is not 0 (torch.optim.Muon's choice; the result is then widened back to x's
    dtype), else in x's dtype. `steps` must be a whole number from 0 to 99 (torch's limit); any other
    value gives NaN (ops never raise). On a non-matrix parameter (a diagonal matrix) the same
    iteration runs on each value: ``X = a X + b X^3 + c X^5`` after dividing by the norm.

    Example:
        >>> q = newton_schulz(torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64), 12, 1.875, -1.25, 0.375, 1e-7, 0)
        >>> torch.allclose(q, torch.eye(2, dtype=torch.float64))   # a convergent quintic ends at U V^T
        True
    """
    if not (steps == steps and float(steps).is_integer() and 0 <= steps < 100):
        return torch.full_like(x, math.nan)
    dtype = torch.bfloat16 if bf16 != 0 else x.dtype
    out = x.to(dtype)
    dims = tuple(range(1, out.dim())) if batched else None
    if not is_matrix(x, batched):  # a diagonal matrix: the iteration on each value
        scale = torch.linalg.vector_norm(out, dim=dims, keepdim=batched) if batched else out.norm()
        out = out / scale.clamp(min=eps)
        for _ in range(int(steps)):
            gram = out * out
            poly = gram * b + gram * gram * c
            out = out * a + poly * out
        return out.to(x.dtype)
    tall = out.size(-2) > out.size(-1)
    if tall:
        out = out.mT
    if not batched:  # torch.optim.Muon's own calls, so that the bits are its bits
        out = out / out.norm().clamp(min=eps)
        for _ in range(int(steps)):
            gram = out @ out.T
            poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
            out = torch.addmm(out, poly, out, beta=a)
    else:
        out = out / torch.linalg.vector_norm(out, dim=(-2, -1), keepdim=True).clamp(min=eps)
        for _ in range(int(steps)):
            gram = out @ out.mT
            poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
            out = torch.baddbmm(out, poly, out, beta=a)
    if tall:
        out = out.mT
    return out.contiguous().to(x.dtype)


# --------------------------------------------------------------------------- row and column means
# Over the parameter's last dimension (one value per row) and its second-to-last (one per column),
# kept as dimensions of size 1 so they broadcast back, as torch's Adafactor computes its factors. A
# 1-D parameter is one row (its row mean is its mean, its column means are its values); a 0-d one is
# 1 x 1. With `batched`, the leading population axis is not a dimension of the parameter.


def _param_dim(x: Tensor, batched: bool) -> int:
    return x.dim() - (1 if batched else 0)


def row_mean(x: Tensor, batched: bool = False) -> Tensor:
    """The mean of each row (over the last dimension), kept as a dimension of size 1."""
    return x.mean(dim=-1, keepdim=True) if _param_dim(x, batched) >= 1 else x


def col_mean(x: Tensor, batched: bool = False) -> Tensor:
    """The mean of each column (over the second-to-last dimension), kept as a dimension of size 1."""
    return x.mean(dim=-2, keepdim=True) if _param_dim(x, batched) >= 2 else x


def rows(x: Tensor, batched: bool = False) -> Tensor:
    """The number of rows (second-to-last dimension; 1 for a vector or a 0-d tensor), in x's dtype."""
    n = x.shape[-2] if _param_dim(x, batched) >= 2 else 1
    return _count(x, n, batched)


def cols(x: Tensor, batched: bool = False) -> Tensor:
    """The number of columns (last dimension; 1 for a 0-d tensor), in x's dtype."""
    n = x.shape[-1] if _param_dim(x, batched) >= 1 else 1
    return _count(x, n, batched)


def ndim(x: Tensor, batched: bool = False) -> Tensor:
    """The number of dimensions of the parameter (2 for a matrix, 1 for a vector), in x's dtype."""
    return _count(x, _param_dim(x, batched), batched)


def epsilon(x: Tensor, batched: bool = False) -> Tensor:
    """The machine epsilon of x's dtype (torch.finfo(x.dtype).eps), in x's dtype."""
    return _count(x, torch.finfo(x.dtype).eps, batched)


def _count(x: Tensor, n: float, batched: bool) -> Tensor:
    if batched:
        return torch.full((x.shape[0],) + (1,) * (x.dim() - 1), float(n), dtype=x.dtype, device=x.device)
    return torch.tensor(float(n), dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------- group reductions
# Over every parameter of a param group (the parameters one step updates together): a per-tensor
# value that is the same for every tensor of the group. They take a list, one value per parameter
# (tensors, per-tensor 0-d tensors or numbers); with `batched`, each value has the population axis
# first and the result is one value per member, shaped (n,).


def _sums(xs: list, batched: bool) -> list[Tensor]:
    if batched:
        return [x.reshape(x.shape[0], -1).sum(dim=1) if isinstance(x, Tensor) else torch.tensor(float(x), dtype=torch.float64)
                for x in xs]
    return [x.sum() if isinstance(x, Tensor) else torch.tensor(float(x), dtype=torch.float64) for x in xs]


def group_sum(xs: list, batched: bool = False) -> Tensor:
    """The sum of every value of every parameter of the group, added parameter by parameter in order
    (each parameter's own sum first), in the parameters' dtype."""
    total = None
    for s in _sums(xs, batched):
        total = s if total is None else total + s
    return total


def group_norm(xs: list, batched: bool = False) -> Tensor:
    """The L2 norm over every value of every parameter of the group: the norm of the parameters'
    norms, as torch.nn.utils.clip_grad_norm_ computes its total norm."""
    if batched:
        norms = [torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1) for x in xs]
        return torch.linalg.vector_norm(torch.stack(norms, dim=1), dim=1)
    norms = [torch.linalg.vector_norm(x) if isinstance(x, Tensor) else torch.tensor(abs(float(x)), dtype=torch.float64)
             for x in xs]
    return torch.linalg.vector_norm(torch.stack(norms))
