"""The chunked foreach step (discover/compile/chunked.py): bit-identical to the whole-bucket
foreach step and to the reference backend, and Adam's peak temporary memory no higher than
torch.optim.Adam(foreach=True)'s."""
from __future__ import annotations

import pytest
import torch

from discover import ProgramOptimizer, load, parse
from discover.benchmarks.memory import peak_temporary_bytes
from discover.compile import chunked, compile_step, torch_source
from discover.compile.chunked import ALIGN, chunked_step, plan, sub_bucket_size
from discover.lang.ir import Const
from _stepcheck import assert_close

BUDGET = 1024 * 8  # bytes: 1024 float64 or 2048 float32 values per list per sub-bucket
SHAPES = [(3000,), (40, 70), (7,), (1024,), (2, 3, 5), (5001,), (0,), (1500,)]
STEPS = [1, 5, 3, 10, 1, 7, 2, 4]  # per parameter; lookahead syncs at 5 and 10

# sigmoid, cosh and float32 pow round differently in torch's vectorized and scalar CPU loops:
# pieces cut off the vector stride would change the last bit
TRANSCENDENTAL = parse("""
def odd(w, g, step, m=0, *, lr=0.01, beta=0.9):
    m = interp(g, m, beta)
    return lr * (sigmoid(m) - 0.5) * cosh(g) + lr * ((abs(m) + 1) ** g) / step, m
""")
REDUCTIONS = parse("""
def red(w, g, m=0, *, lr=0.1, beta=0.9):
    m = interp(g / (norm(g) + 1e-3), m, beta)
    return lr * m * rms(w), m
""")
PROGRAMS = ["adam", "adamw", "lion", "momentum", "rmsprop", "nadam", "lookahead+adam"]


def _bucket(program, shapes, dtype, seed=0, make=None):
    """Parameters, gradients, state lists as ProgramOptimizer initialises them, and hparams."""
    gen = torch.Generator().manual_seed(seed)
    make = make or (lambda s: torch.randn(s, generator=gen, dtype=torch.float64).to(dtype))
    params = [make(s) for s in shapes]
    grads = [make(s) for s in shapes]
    hp = {k: float(v) for k, v in program.defaults.items()}
    states = {}
    for s in program.states:
        if isinstance(s.init, Const):
            value = s.init.value
        elif s.init.name == "w":
            states[s.name] = [p.clone() for p in params]
            continue
        else:
            value = hp[s.init.name]
        states[s.name] = [float(value) for _ in params] if s.scalar else [torch.full_like(p, value) for p in params]
    return params, grads, states, hp


def _clone(bucket):
    params, grads, states, hp = bucket
    cl = lambda xs: [x.clone() if isinstance(x, torch.Tensor) else x for x in xs]  # noqa: E731
    return cl(params), cl(grads), {k: cl(v) for k, v in states.items()}, dict(hp)


def _counting(step):
    calls = []

    def counted(*args):
        calls.append(len(args[0]))
        return step(*args)
    return counted, calls


def _run(step, bucket, steps, rounds=3):
    params, grads, states, hp = bucket
    for r in range(rounds):
        new = step(params, grads, states, [s + r for s in steps], hp)
        for name, values in new.items():
            assert len(values) == len(params)
            states[name] = values
    return params, states


def _assert_equal(a, b):
    (pa, sa), (pb, sb) = a, b
    for x, y in zip(pa, pb):
        assert torch.equal(x, y)
    assert sa.keys() == sb.keys()
    for name in sa:
        for x, y in zip(sa[name], sb[name]):
            assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y or (x != x and y != y)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("spec", PROGRAMS + ["transcendental"])
def test_chunked_is_bit_identical_to_whole_bucket_and_reference(spec, dtype):
    program = TRANSCENDENTAL if spec == "transcendental" else load(spec)
    foreach = compile_step(program, "foreach").unchunked
    inner, calls = _counting(foreach)
    step = chunked_step(inner, program, budget_bytes=BUDGET)
    bucket = _bucket(program, SHAPES, dtype)
    got = _run(step, _clone(bucket), STEPS)
    assert len(calls) > 3 and max(calls) > 1  # split into several sub-buckets of several pieces
    _assert_equal(got, _run(foreach, _clone(bucket), STEPS))
    _assert_equal(got, _run(compile_step(program, "reference"), _clone(bucket), STEPS))


def test_optimizer_uses_the_chunked_step_by_default(monkeypatch):
    monkeypatch.setitem(chunked.CHUNK_BYTES, "cpu", BUDGET)
    results = []
    for backend in ("foreach", "reference"):
        gen = torch.Generator().manual_seed(1)
        params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in SHAPES]
        opt = ProgramOptimizer(params, "nadam", backend=backend)
        for it in range(4):
            for j, p in enumerate(params):  # some parameters skip steps: steps differ
                p.grad = None if j % 3 == 1 and it % 2 else torch.randn(p.shape, generator=gen, dtype=torch.float64)
            opt.step()
        results.append((params, [opt.state[p] for p in params]))
    (pa, sa), (pb, sb) = results
    assert all(torch.equal(x, y) for x, y in zip(pa, pb))
    assert all(torch.equal(x["m"], y["m"]) and x["mu_product"] == y["mu_product"] for x, y in zip(sa, sb))


def test_programs_with_reductions_are_not_chunked():
    foreach = compile_step(REDUCTIONS, "foreach")
    assert not hasattr(foreach, "unchunked")
    step = chunked_step(foreach, REDUCTIONS, budget_bytes=BUDGET)
    assert step is foreach
    bucket = _bucket(REDUCTIONS, SHAPES, torch.float64)
    got, _ = _run(step, _clone(bucket), STEPS)
    want, _ = _run(compile_step(REDUCTIONS, "reference"), _clone(bucket), STEPS)
    assert_close(got, want, torch.float64)


def test_non_contiguous_buckets_run_whole():
    program = load("adam")
    foreach = compile_step(program, "foreach").unchunked
    inner, calls = _counting(foreach)
    step = chunked_step(inner, program, budget_bytes=BUDGET)
    gen = torch.Generator().manual_seed(2)
    make = lambda s: torch.randn(tuple(reversed(s)), generator=gen, dtype=torch.float64).t()  # noqa: E731
    bucket = _bucket(program, [(60, 50), (3000, 2)], torch.float64, make=make)
    assert not bucket[0][0].is_contiguous()
    got = _run(step, _clone(bucket), [1, 2])
    assert calls == [2, 2, 2]  # one whole-bucket call per round
    _assert_equal(got, _run(foreach, _clone(bucket), [1, 2]))
    _assert_equal(got, _run(compile_step(program, "reference"), _clone(bucket), [1, 2]))


def test_small_buckets_are_passed_through():
    program = load("lion")
    inner, calls = _counting(compile_step(program, "foreach").unchunked)
    step = chunked_step(inner, program, budget_bytes=BUDGET)
    _run(step, _bucket(program, [(1000,), (1000,)], torch.float64), [1, 1], rounds=1)  # 2000 <= 2 x 1024
    assert calls == [2]


def test_plan_covers_every_value_once_with_aligned_cuts():
    numels = (3000, 7, 0, 5001, 1024, 2048, 1)
    total = sum(numels)
    size = sub_bucket_size(total, 2048)
    subs = plan(numels, size)
    assert len(subs) == -(-total // 2048)
    covered = {i: [] for i in range(len(numels))}
    for sub in subs:
        assert sum(b - a for _, a, b in sub) <= size <= 2048
        for i, a, b in sub:
            covered[i].append((a, b))
            assert a % ALIGN == 0 and (b % ALIGN == 0 or b == numels[i])
    for i, n in enumerate(numels):
        assert covered[i][0][0] == 0 and covered[i][-1][1] == n
        assert all(x[1] == y[0] for x, y in zip(covered[i], covered[i][1:]))


def test_generated_source_and_attributes_are_kept():
    program = load("adam")
    step = compile_step(program, "foreach")
    assert step.__source__ == torch_source(program) == step.unchunked.__source__
    assert compile_step(program, "fused").fallback.__source__ == torch_source(program)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_peak_temporary_memory_no_higher_than_torch_foreach_adam(weight_decay):
    # the default CPU budget, on a bucket several budgets large (12 MB per list)
    gen = torch.Generator().manual_seed(3)
    peaks = {}
    for name in ("discover", "torch"):
        params = [torch.nn.Parameter(torch.randn(n, generator=gen)) for n in (2_000_000, 700_000, 299_000, 1000)]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt = (ProgramOptimizer(params, "adam", backend="foreach", weight_decay=weight_decay) if name == "discover"
               else torch.optim.Adam(params, weight_decay=weight_decay, foreach=True))
        opt.step()  # state is allocated on the first step
        peaks[name] = peak_temporary_bytes(opt.step)
    list_bytes = 3_000_000 * 4
    assert peaks["torch"] >= list_bytes  # torch keeps at least one list of temporaries
    assert peaks["discover"] <= peaks["torch"], peaks
