"""The op table's semantics in plain torch + math, for exported optimizers (`discover export`).

An exported optimizer file must run where discover is not installed, so it cannot
call the op table. This module is that file's runtime: ``_F_<op>`` for every op of
the language, written with torch (tensors) and Python/math floats falling back to
float64 torch scalars where Python raises (``1 / 0``, ``sqrt(-1)``) -- IEEE results,
never an exception, as the op table's scalar functions give. Its source is copied
verbatim into every exported file (everything after its ``exported runtime`` marker line), so
it imports only ``math`` and ``torch``. Tests hold every ``_F_<op>`` to the op table's
own function on tensors and on floats (NaN, inf, zero and negative values included).

Example:
    >>> _F_div(1.0, 0.0), _F_sqrt(-1.0) != _F_sqrt(-1.0), _F_interp(2.0, 4.0, 0.25)
    (inf, True, 2.5)
"""
# --- exported runtime: the op table's semantics for an exported optimizer (torch only)
import math

import torch


def _scalar(fast, slow):
    """A float function: `fast` (Python) when it returns a float, else `slow` on float64 torch
    scalars (IEEE inf/NaN where Python raises or returns a complex number)."""
    def fn(*args):
        if fast is not None:
            try:
                out = fast(*args)
                if out.__class__ is float:
                    return out
            except (ArithmeticError, ValueError):
                pass
        return float(slow(*(torch.tensor(float(a), dtype=torch.float64) for a in args)))
    return fn


def _is_tensor(*args):
    return any(isinstance(a, torch.Tensor) for a in args)


def _like(value, *refs):
    """`value` as a tensor with the dtype/device Python-scalar promotion would give."""
    if isinstance(value, torch.Tensor):
        return value
    ref = next(r for r in refs if isinstance(r, torch.Tensor))
    return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)


def _arith(py_op, exact_in_python=True):
    scalar = _scalar(py_op if exact_in_python else None, py_op)
    return lambda x, y: py_op(x, y) if _is_tensor(x, y) else scalar(x, y)


def _unary(torch_fn, fast=None, slow=None):
    scalar = _scalar(fast, slow or torch_fn)
    return lambda x: torch_fn(x) if isinstance(x, torch.Tensor) else scalar(x)


def _compare(py_op):
    def fn(x, y):
        if _is_tensor(x, y):
            return py_op(x, y).to(torch.result_type(x, y))
        return 1.0 if py_op(float(x), float(y)) else 0.0
    return fn


def _pair(torch_fn):
    scalar = _scalar(None, torch_fn)
    return lambda x, y: torch_fn(_like(x, y), _like(y, x)) if _is_tensor(x, y) else scalar(x, y)


def _F_where(c, a, b):
    if not _is_tensor(c, a, b):
        return a if c != 0 else b
    if isinstance(c, torch.Tensor):
        cond = c != 0
    else:  # a number is tested as a number, not narrowed to the tensors' dtype first
        cond = torch.tensor(c != 0, device=next(t for t in (a, b) if isinstance(t, torch.Tensor)).device)
    return torch.where(cond, _like(a, c, b), _like(b, c, a))


def _F_interp(x, y, a):
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape:
        return torch.lerp(y, x, 1 - a)
    if _is_tensor(x, y, a):
        return (1 - a) * x + a * y
    return _scalar(None, lambda x, y, a: (1 - a) * x + a * y)(x, y, a)


def _F_lerp(start, end, weight):
    if _is_tensor(start, end, weight):
        return torch.lerp(_like(start, end, weight), _like(end, start, weight), weight)
    return _scalar(None, lambda s, e, w: s + w * (e - s))(start, end, weight)


def _F_clip(x, c):
    if _is_tensor(x, c):
        x, c = _like(x, c), _like(c, x)
        return torch.clamp(x, -c, c)
    return _scalar(None, lambda x, c: torch.minimum(torch.maximum(x, -c), c))(x, c)


def _F_sign(x):
    if isinstance(x, torch.Tensor):
        return torch.sign(x)
    return 0.0 if x != x else _scalar(None, torch.sign)(x)


def _F_norm(x):
    return torch.linalg.vector_norm(x)


def _F_rms(x):
    return torch.linalg.vector_norm(x) / math.sqrt(max(x.numel(), 1))


def _F_mean(x):
    return x.mean()


_F_add = _arith(lambda x, y: x + y)
_F_sub = _arith(lambda x, y: x - y)
_F_mul = _arith(lambda x, y: x * y)
_F_div = _arith(lambda x, y: x / y)
_F_pow = _arith(lambda x, y: x ** y)
_F_mod = _arith(lambda x, y: x % y, exact_in_python=False)
_F_neg = lambda x: -x  # noqa: E731
_F_lt = _compare(lambda x, y: x < y)
_F_le = _compare(lambda x, y: x <= y)
_F_gt = _compare(lambda x, y: x > y)
_F_ge = _compare(lambda x, y: x >= y)
_F_eq = _compare(lambda x, y: x == y)
_F_ne = _compare(lambda x, y: x != y)
# Floats: Python's correctly rounded + - * / and sqrt give the op table's (numpy's) bits;
# transcendental functions use the C library's (math), which may differ from numpy's in the
# last bit: float round-off, nothing more.
_F_abs = _unary(torch.abs, fast=lambda x: abs(float(x)))
_F_sqrt = _unary(torch.sqrt, fast=math.sqrt)
_F_rsqrt = _unary(torch.rsqrt, fast=lambda x: 1 / math.sqrt(x), slow=lambda x: 1 / torch.sqrt(x))
_F_square = _unary(torch.square, fast=lambda x: float(x) * float(x))
_F_exp = _unary(torch.exp, fast=math.exp)
_F_log = _unary(torch.log, fast=math.log)
_F_tanh = _unary(torch.tanh, fast=math.tanh)
_F_sigmoid = _unary(torch.sigmoid, fast=lambda x: 1 / (1 + math.exp(-x)), slow=lambda x: 1 / (1 + torch.exp(-x)))
_F_sin = _unary(torch.sin, fast=math.sin)
_F_cos = _unary(torch.cos, fast=math.cos)
_F_arcsin = _unary(torch.asin, fast=math.asin)
_F_arctan = _unary(torch.atan, fast=math.atan)
_F_cosh = _unary(torch.cosh, fast=math.cosh)
_F_reciprocal = _unary(torch.reciprocal, fast=lambda x: 1 / x, slow=lambda x: 1 / x)
_F_minimum = _pair(torch.minimum)
_F_maximum = _pair(torch.maximum)
_F_copy = lambda x: x  # noqa: E731


# Matrix ops: a 2-D parameter is a matrix; any other is a diagonal matrix of its values.
def _F_transpose(x):
    return x.mT.contiguous() if x.dim() == 2 else x


def _F_matmul(x, y):
    return torch.matmul(x, y) if x.dim() == 2 and y.dim() == 2 else x * y


def _F_newton_schulz(x, steps, a, b, c, eps, bf16):
    if not (steps == steps and float(steps).is_integer() and 0 <= steps < 100):
        return torch.full_like(x, math.nan)
    out = x.to(torch.bfloat16 if bf16 != 0 else x.dtype)
    if x.dim() != 2:  # a diagonal matrix: the iteration on each value
        out = out / out.norm().clamp(min=eps)
        for _ in range(int(steps)):
            gram = out * out
            out = out * a + (gram * b + gram * gram * c) * out
        return out.to(x.dtype)
    tall = out.size(-2) > out.size(-1)
    if tall:
        out = out.mT
    out = out / out.norm().clamp(min=eps)
    for _ in range(int(steps)):
        gram = out @ out.T
        out = torch.addmm(out, torch.addmm(gram, gram, gram, beta=b, alpha=c), out, beta=a)
    if tall:
        out = out.mT
    return out.contiguous().to(x.dtype)


# Row and column means (over the last and second-to-last dimension; a vector is one row).
def _F_row_mean(x):
    return x.mean(dim=-1, keepdim=True) if x.dim() >= 1 else x


def _F_col_mean(x):
    return x.mean(dim=-2, keepdim=True) if x.dim() >= 2 else x


def _count(x, n):
    return torch.tensor(float(n), dtype=x.dtype, device=x.device)


def _F_rows(x):
    return _count(x, x.shape[-2] if x.dim() >= 2 else 1)


def _F_cols(x):
    return _count(x, x.shape[-1] if x.dim() >= 1 else 1)


def _F_ndim(x):
    return _count(x, x.dim())


def _F_epsilon(x):
    return _count(x, torch.finfo(x.dtype).eps)


# Group reductions: over a list of every parameter's value (tensors, 0-d tensors or numbers).
def _G_group_sum(xs):
    total = None
    for x in xs:
        s = x.sum() if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=torch.float64)
        total = s if total is None else total + s
    return total


def _G_group_norm(xs):
    norms = [torch.linalg.vector_norm(x) if isinstance(x, torch.Tensor) else torch.tensor(abs(float(x)), dtype=torch.float64)
             for x in xs]
    return torch.linalg.vector_norm(torch.stack(norms))


def _F_group_sum(x):
    return _G_group_sum([x])


def _F_group_norm(x):
    return _G_group_norm([x])
