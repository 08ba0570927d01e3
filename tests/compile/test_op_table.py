"""The op table is complete, and every backend computes what each op's reference function computes.

For every op of the language, one program applies it to every mix of operand kinds: a tensor
(``g``, ``w`` or ``z``), a hyperparameter (``c``), scalar state (``q``, a float64 number), a
per-tensor value from a reduction (``d = mean(h)``, a number in the tensor's dtype) and a constant;
each result is kept as a state. The program runs on every backend, in float64 and float32, on
parameters whose values pair up edge values (0, -0, inf, -inf, NaN, denormals, huge, tiny,
ordinary) with each other, while ``c`` and ``q`` take edge values in turn. The expected value of
each statement is what the reference interpreter computes: the op's reference function `op.fn`,
parameter by parameter.

Backends must agree with it exactly (same bits, same NaNs, infinities and signed zeros), except
for ops whose torch and C++ forms round differently in the last bits (`_APPROXIMATE`): those
within a few units in the last place.
"""
from __future__ import annotations

import importlib.util
import math
import os
from functools import lru_cache
from itertools import product

import pytest
import sympy
import torch

from discover.compile import compile_step
from discover.compile.population_torch import compile_batched
from discover.compile.lower import lower, run_prologue
from discover.compile.population_kernel import compile_population
from discover.lang.check import check
from discover.lang.ir import Const, HParam, Program, Ref, State, Stmt
from discover.lang.ops import ALL_OPS, GROUP, KERNEL_OPS, OPS, PER_PARAM, REDUCTION

# Ops computed by torch calls between passes (matrix, row/column, property and group ops) take tensors of
# their own kinds, not every mix of operands: tests/compile/test_staged_ops.py holds them to torch.
KERNEL_FORM_OPS = sorted(n for n, op in OPS.items() if not op.staged)
from _stepcheck import needs_compiler

EDGES = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1e-40, 1.0, -2.5, 1e30, -7e-8]
N = len(EDGES)
MEANS = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 2.0 ** -140, 1.0, -2.5, 0.5]  # N copies sum exactly
TENSORS = ("g", "w", "z")  # the tensor operand of each argument position
CONSTS = (0.5, -0.0, 3.0)  # the constant operand of each argument position

# Ops whose C++ form may round differently from torch in the last bits (libm against torch's own
# loops, which themselves differ between vectorized and scalar code; lerp's two formulas; sums
# in float64): compared within a few ulps, zeros of either sign equal. Every other op: exactly.
_APPROXIMATE = {"sqrt", "rsqrt", "pow", "exp", "log", "tanh", "sigmoid", "sin", "cos", "arcsin", "arctan",
                "cosh", "interp", "norm", "rms", "mean"}


@lru_cache(maxsize=None)
def _program(name: str) -> Program:
    """`name` applied to every mix of operand kinds, one state per mix."""
    op = OPS[name]
    # every kind of operand; a three-argument op takes its numbers from scalar state only (a
    # hyperparameter is a float64 number like it), to keep the program small; a reduction
    # reduces each source tensor
    kinds = ("TSPDC" if op.arity < 3 else "TPDC") if op.kind != REDUCTION else "GHWZ"
    body = [Stmt("d", "mean", (Ref("h"),))]
    for k, mix in enumerate(product(kinds, repeat=op.arity)):
        args = tuple({"T": Ref(TENSORS[j]), "S": Ref("c"), "P": Ref("q"), "D": Ref("d"), "C": Const(CONSTS[j]),
                      "G": Ref("g"), "H": Ref("h"), "W": Ref("w"), "Z": Ref("z")}[kind] for j, kind in enumerate(mix))
        body.append(Stmt(f"s{k}", name, args))
    outs = [s.target for s in body[1:]]
    states = (State("z"), State("h"), State("q", Const(0.0), scalar=True)) + tuple(State(o) for o in outs)
    program = Program(name=f"every_{name}", inputs=("w", "g", "step"), states=states,
                      hparams=(HParam("c", 0.5),), body=tuple(body),
                      returns=(Const(0.0), Ref("z"), Ref("h"), Ref("q")) + tuple(Ref(o) for o in outs))
    check(program)
    return program


def _numbers(dtype: torch.dtype) -> list[float]:
    """The edge values as numbers of `dtype` (a float32 program gets float32 hyperparameters)."""
    return [float(torch.tensor(x, dtype=dtype)) for x in EDGES]


def _start(name: str, dtype: torch.dtype, q: float):
    """Parameters, gradients and states: N parameters of N values each. Across them g and w pair
    every edge value with every other, z varies along another diagonal, and h is constant in each
    parameter (so that ``d = mean(h)`` is exactly its value in every backend)."""
    e = torch.tensor(EDGES, dtype=dtype)
    j = torch.arange(N)
    g = [e.clone() for p in range(N)]
    w = [e[(j + p) % N].clone() for p in range(N)]
    states = {"z": [e[(2 * j + p + 3) % N].clone() for p in range(N)],
              "h": [torch.full((N,), MEANS[p % len(MEANS)], dtype=dtype) for p in range(N)],
              "q": [q] * N}
    for s in _program(name).states[3:]:
        states[s.name] = [torch.zeros(N, dtype=dtype) for _ in range(N)]
    return w, g, states


@lru_cache(maxsize=None)
def _expected(name: str, dtype: torch.dtype, c: float, q: float) -> dict[str, torch.Tensor]:
    """What the reference interpreter leaves in each state, all parameters' values in one tensor."""
    w, g, states = _start(name, dtype, q)
    compile_step(_program(name), "reference")(w, g, states, [1] * len(w), {"c": c})
    return {s.target: torch.stack(states[s.target]) for s in _program(name).body[1:]}


def _agree(got: torch.Tensor, want: torch.Tensor, ulps: int) -> torch.Tensor:
    """Elementwise: both NaN, or equal (with the same sign of zero when `ulps` is 0), or both finite
    and within `ulps` units in the last place of the larger."""
    info = torch.finfo(want.dtype)
    got, want = got.double(), want.double()
    nan = torch.isnan(got) & torch.isnan(want)
    same = (got == want) & ((torch.signbit(got) == torch.signbit(want)) | (ulps > 0))
    scale = torch.maximum(got.abs(), want.abs())
    ulp = torch.maximum(scale * info.eps, torch.full_like(scale, info.smallest_normal * info.eps))
    close = torch.isfinite(got) & torch.isfinite(want) & ((got - want).abs() <= ulps * ulp)
    return nan | same | close


def _check(name: str, backend: str, dtype: torch.dtype, states: dict, c: float, q: float, skip=None) -> None:
    """The states a backend left (one value per parameter) against `_expected`; statements `skip`
    picks (default: `known_difference`) are not compared."""
    skip = skip or known_difference
    want = _expected(name, dtype, c, q)
    ulps = 8 if name in _APPROXIMATE else 0
    w, g, start = _start(name, dtype, q)
    sources = {"g": g, "w": w, "z": start["z"], "h": start["h"]}
    for stmt in _program(name).body[1:]:
        if skip(stmt):
            continue
        got = torch.stack([torch.as_tensor(v, dtype=dtype).reshape(-1) for v in states[stmt.target]])
        values = {**{t: torch.stack(v) for t, v in sources.items()}, "c": c, "q": q,
                  "d": torch.stack(start["h"])}
        args = [a.value if isinstance(a, Const) else values[a.name] for a in stmt.args]
        ok = _agree(got, want[stmt.target], ulps) | _torch_quirks(name, dtype, args)
        if not bool(ok.all()):
            p, j = (int(i) for i in (~ok).nonzero()[0])
            operands = {**{t: float(sources[t][p][j]) for t in sources}, "c": c, "q": q,
                        "d": float(start["h"][p][0])}
            shown = ", ".join(f"const {a.value!r}" if isinstance(a, Const) else f"{a.name}={operands[a.name]!r}"
                              for a in stmt.args)
            raise AssertionError(f"{backend} {dtype}: {name}({shown}) gave {float(got[p, j])!r}, "
                                 f"the reference {float(want[stmt.target][p, j])!r}")


def _pattern(stmt: Stmt) -> str:
    """The operand letters of a statement of `_program` (t tensor, d reduction, n number)."""
    return "".join("n" if isinstance(a, Const) else {"d": "d", "c": "n", "q": "n"}.get(a.name, "t") for a in stmt.args)


def known_difference(stmt: Stmt) -> bool:
    """Where the backends compute a per-tensor value of a reduction (a 0-d tensor to the reference)
    as torch computes a Python number: ``div`` takes ``reciprocal(x) * c`` when the value is the
    numerator and not when a number is, ``pow`` takes torch's number-exponent special cases
    (``x ** 0.5`` is ``sqrt(x)``: NaN at -inf), ``interp`` of two of them is not ``lerp``.
    Aligning them changes search results (a per-tensor value divided by a tensor is common in
    evolved programs), so it is its own change; until then these are not compared."""
    pattern = _pattern(stmt)
    return ((stmt.op == "div" and "d" in pattern) or (stmt.op == "pow" and pattern[1] == "d")
            or (stmt.op == "interp" and pattern.startswith("dd")))


def _torch_quirks(name: str, dtype: torch.dtype, args: list) -> torch.Tensor | bool:
    """Where torch itself gives different answers for one op (so no backend can match it always):
    its vectorized ``remainder`` computes ``a - b * floor(a / b)``, NaN when ``a / b`` overflows
    (a subnormal divisor), where its scalar loop (and the C++ kernels) give ``fmod``'s exact result;
    and it squares float32 values in float32 for ``norm`` (0 below about 1e-19), where the kernels
    sum the squares in float64."""
    if name == "mod":
        b = torch.as_tensor(args[1], dtype=torch.float64)
        return (b != 0) & (b.abs() < torch.finfo(dtype).tiny)
    if name in ("norm", "rms") and dtype == torch.float32:
        return torch.as_tensor(args[0], dtype=torch.float64).abs() < 1e-19
    return False


def _calls(dtype: torch.dtype):
    """(c, q) of each call: between them they take every edge value."""
    numbers = _numbers(dtype)
    return [(numbers[k], numbers[(k + (N + 1) // 2) % N]) for k in range((N + 1) // 2)]


# --------------------------------------------------------------------------- the table itself


@pytest.mark.parametrize("name", sorted(ALL_OPS))
def test_every_op_has_every_form(name):
    op = ALL_OPS[name]
    assert op.doc and callable(op.fn) and op.arity >= 1
    x = [sympy.Symbol(f"x{k}", real=True) for k in range(op.arity)]
    assert isinstance(op.sympy(*x), sympy.Basic), "sympy form"
    assert op.foreach is not None, "foreach form (PER_PARAM if no torch._foreach_* call computes it)"
    if op.staged:  # a torch call between passes: no kernel form, a population form (tests/compile/test_staged_ops.py)
        assert op.cxx is None and op.cxx_reduce is None and op.foreach is PER_PARAM
        assert (op.group_fn if op.kind == GROUP else op.batched_fn) is not None, "population form"
        return
    if op.reduction:
        assert op.batched_fn is not None and op.cxx_reduce is not None, "population and C++ forms of a reduction"
        assert op.triton_reduce is not None, "Triton form of a reduction"
        return
    if op.cxx is None:  # only an op its lowering rule always rewrites below the scalar prologue
        assert op.lowering is not None, "C++ form"
        assert op.triton is None
        return
    for pattern in map("".join, product("tdn", repeat=op.arity)):
        assert op.cxx_form(pattern) is not None, f"C++ form for operands {pattern}"
        # the same operand split as the C++ forms: both population interpreters share opcodes
        assert op.triton_form(pattern) is not None and op.triton_form(pattern)[0] == op.cxx_form(pattern)[0], \
            f"Triton form for operands {pattern}"


def test_kernel_ops_are_not_in_the_language():
    assert not set(KERNEL_OPS) & set(OPS)
    assert all(op.weight == 0 for op in KERNEL_OPS.values())


def test_per_param_is_a_declared_choice():
    declared = [n for n, op in ALL_OPS.items() if op.foreach is PER_PARAM]
    assert "where" in declared and "add" not in declared


def test_lowering_leaves_only_ops_with_forms():
    for name in KERNEL_FORM_OPS:
        for ins in lower(_program(name)).instrs:
            if ins.dst.level in ("T", "PD"):  # the scalar prologue runs `fn` itself
                op = ALL_OPS[ins.op]
                assert op.cxx_form(ins.pattern) or op.reduction, (name, ins.op, ins.pattern)


# --------------------------------------------------------------------------- every backend


@pytest.mark.parametrize("name", KERNEL_FORM_OPS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_foreach_matches_reference(name, dtype):
    step = compile_step(_program(name), "foreach")
    for c, q in _calls(dtype):
        w, g, states = _start(name, dtype, q)
        states.update(step(w, g, states, [1] * len(w), {"c": c}))
        _check(name, "foreach", dtype, states, c, q)


@needs_compiler
@pytest.mark.parametrize("name", KERNEL_FORM_OPS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_matches_reference(name, dtype, monkeypatch):
    from discover.compile import fused

    def refuse(program):
        def step(*args):
            raise AssertionError("the fused kernel fell back to foreach")
        return step

    monkeypatch.setattr(fused, "compile_foreach", refuse)
    step = compile_step(_program(name), "fused")
    for c, q in _calls(dtype):
        w, g, states = _start(name, dtype, q)
        states.update(step(w, g, states, [1] * len(w), {"c": c}))
        _check(name, "fused", dtype, states, c, q)


_TRITON = importlib.util.find_spec("triton") is not None and (torch.cuda.is_available()
                                                              or os.environ.get("TRITON_INTERPRET") == "1")
needs_triton = pytest.mark.skipif(not _TRITON, reason="triton is not installed (pip install -e '.[gpu]'), or no GPU "
                                                      "and no TRITON_INTERPRET")
# the interpreter is slow: a few ops in the default run, all of them with -m triton
_TRITON_DEFAULT = {"div", "pow", "mod", "where", "minimum", "rms"}


def _triton_param(name: str):
    marks = [pytest.mark.triton] + ([] if name in _TRITON_DEFAULT else [pytest.mark.triton_full])
    return pytest.param(name, marks=marks)


@needs_triton
@pytest.mark.parametrize("name", [_triton_param(n) for n in sorted(OPS)])
def test_triton_step_matches_reference(name):
    """The Triton step (float32: it covers float32, bfloat16 and float16) at every edge value;
    on CUDA tensors when there is a GPU, else in Triton's interpreter."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    step = compile_step(_program(name), "triton")
    for c, q in _calls(torch.float32):
        w, g, states = _start(name, torch.float32, q)
        moved = lambda xs: [x.to(device) if isinstance(x, torch.Tensor) else x for x in xs]  # noqa: E731
        w, g = moved(w), moved(g)
        states = {k: moved(v) for k, v in states.items()}
        states.update(step(w, g, states, [1] * len(w), {"c": c}))
        states = {k: [x.cpu() if isinstance(x, torch.Tensor) else x for x in v] for k, v in states.items()}
        _check(name, "triton", torch.float32, states, c, q)
    assert step.launches[0] >= len(_calls(torch.float32))  # the kernel ran, not a fallback


@needs_triton
@pytest.mark.triton
@pytest.mark.triton_full
@pytest.mark.parametrize("name", sorted(OPS))
def test_triton_population_kernel_matches_reference(name):
    from discover.compile.triton_population import compile_triton_population

    kernel = compile_triton_population(_program(name))
    step = kernel
    if torch.cuda.is_available():  # the kernel runs on CUDA tensors there: copies in and out
        def step(params, grads, states, k, hp):
            moved = {key: [b.cuda() for b in bufs] for key, bufs in states.items()}
            kernel([p.cuda() for p in params], [g.cuda() for g in grads], moved, k, hp)
            for key, bufs in states.items():
                for b, m in zip(bufs, moved[key]):
                    b.copy_(m.cpu())
    for c, q in _calls(torch.float32):
        _check(name, "triton population", torch.float32, _population(name, step, torch.float32, c, q), c, q)
    assert kernel.launches[0] >= len(_calls(torch.float32))


def _population(name: str, step, dtype: torch.dtype, c: float, q: float, same: bool = True) -> dict[str, list]:
    """Two members with the same values (each parameter (2, N)); member 0's states. With `same`,
    member 1's must be the same bits."""
    program = _program(name)
    w, g, states = _start(name, dtype, q)
    two = {s.name: [torch.stack([x, x]) if isinstance(x, torch.Tensor) else torch.full((2, 1), x, dtype=dtype)
                    for x in states[s.name]] for s in program.states}
    step([torch.stack([x, x]) for x in w], [torch.stack([x, x]) for x in g], two, 1, {"c": c})
    for bufs in two.values() if same else ():
        assert bool(_agree(torch.cat([b[0] for b in bufs]), torch.cat([b[1] for b in bufs]), 0).all())
    return {name: [b[0] for b in bufs] for name, bufs in two.items()}


@needs_compiler
@pytest.mark.parametrize("name", KERNEL_FORM_OPS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_population_kernel_matches_reference(name, dtype):
    step = compile_population(_program(name))
    for c, q in _calls(dtype):
        _check(name, "population", dtype, _population(name, step, dtype, c, q), c, q)


@pytest.mark.parametrize("name", KERNEL_FORM_OPS)
def test_torch_batched_step_matches_reference(name):
    # Known differences of the torch batched step (the population step where the kernel cannot run):
    # it holds scalar state as tensors and computes with it in the tensors' dtype, through torch,
    # and it keeps reductions as (n, 1, ...) tensors, which `interp` of a tensor and a reduction
    # then sees as two tensors of one shape. Those statements are not compared. (Its members need
    # not give the same bits either: torch's vectorized and scalar loops differ for `mod`.)
    def known(stmt: Stmt) -> bool:
        names = {a.name for a in stmt.args if isinstance(a, Ref)}
        return "q" in names or (stmt.op == "interp" and "d" in names) or known_difference(stmt)

    step = compile_batched(_program(name))
    for c, q in _calls(torch.float64):
        _check(name, "batched", torch.float64, _population(name, step, torch.float64, c, q, same=False), c, q,
               skip=known)


def test_prologue_tells_signed_zeros_of_scalar_state_apart():
    # 0.0 == -0.0, so a memo of prologue results keyed by the numbers would give one parameter's
    # 1 / state to another: every distinct state must be computed on its own
    pre = lambda step, q: (1 / q if q else math.copysign(math.inf, q),)  # noqa: E731
    out = run_prologue(pre, (), [1, 1, 1], [[0.0, -0.0, 0.0]], 3)
    assert out == ([math.inf, -math.inf, math.inf],)
