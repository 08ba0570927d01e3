"""The exported optimizers' runtime (`discover.compile.standalone`) has the op table's semantics:
every op, on tensors and on Python floats (NaN, inf, zero, negative values), gives what
`OPS[op].fn` gives; and the runtime needs only torch and math."""
import ast
import inspect
import itertools
import math

import pytest
import torch

from discover.compile import standalone
from discover.lang.ops import ALL_OPS as OPS  # the lowering's own ops (lerp) too: generated steps call them

SCALARS = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-8, 1e30, math.inf, -math.inf, math.nan, 0.9, 7]


# Correctly rounded in IEEE arithmetic (and comparisons, selections): the same bits everywhere.
# The others go through a C library (math) here and numpy in the op table: 1 ulp apart at most.
LIBM = {"exp", "log", "tanh", "sigmoid", "sin", "cos", "arcsin", "arctan", "cosh"}


def _same(a, b, ulps: int = 0) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.isnan(), b.isnan()) \
            and bool((a[~a.isnan()] == b[~b.isnan()]).all())
    assert type(a) is type(b) and type(a) in (float, int), (a, b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or (math.isfinite(a) and abs(a - b) <= ulps * math.ulp(a))


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if not op.reduction and not op.staged))  # tensors only
def test_every_op_agrees_with_the_op_table_on_floats(name):
    op, mine = OPS[name], getattr(standalone, f"_F_{name}")
    for args in itertools.product(SCALARS, repeat=op.arity):
        ulps = 1 if name in LIBM else 0
        assert _same(mine(*args), op.fn(*args), ulps), (name, args, mine(*args), op.fn(*args))


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if not op.staged))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_op_agrees_with_the_op_table_on_tensors(name, dtype):
    op, mine = OPS[name], getattr(standalone, f"_F_{name}")
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(40, generator=gen) * 3, torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 0.5])])
    x = x.to(dtype)
    y, z = x.roll(7), x.roll(13)
    pools = [[x, 0.5, -2.0], [y, 0.25, 3.0], [z, 0.9]] if not op.reduction else [[x, y]]
    for args in itertools.product(*pools[:op.arity]):
        if op.reduction or any(isinstance(a, torch.Tensor) for a in args):
            assert _same(mine(*args), op.fn(*args)), (name, args)


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.staged))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_staged_op_agrees_with_the_op_table(name, dtype):
    """Matrix, row/column, property and group ops, on matrices (wide and tall), a vector, a 0-d and a
    3-d tensor, with their options at the defaults and at other values (bfloat16 Newton-Schulz too)."""
    op = OPS[name]
    gen = torch.Generator().manual_seed(1)
    tensors = [torch.randn(s, generator=gen).to(dtype) for s in [(4, 6), (6, 4), (5,), (), (2, 3, 4)]]
    options = [tuple(d for _, d in op.options), (3.0, 3.0, -3.2, 1.2, 1e-3, 1.0), (2.5, 1, 1, 1, 1, 0)][:3 if op.options else 1]
    if op.group_fn is not None:
        assert _same(getattr(standalone, f"_G_{name}")(tensors), op.group_fn(tensors))
    for x in tensors:
        for extra in options:
            args = [x, *([x.mT if x.dim() == 2 else x] if op.tensor_arity == 2 else []), *extra[:len(op.options)]]
            assert _same(getattr(standalone, f"_F_{name}")(*args), op.fn(*args)), (name, x.shape, extra)


def test_the_runtime_imports_only_torch_and_math():
    source = inspect.getsource(standalone).split("\n# --- exported runtime", 1)[1].split("\n", 1)[1]
    imported = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert imported == {"math", "torch"}
