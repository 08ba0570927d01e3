"""Programs with per-tensor reductions (norm, rms, mean) on the fused kernel: against the reference
backend in float64, by hand, across thread counts, and without falling back."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from discover import ProgramOptimizer, parse
from discover.compile import compile_step, fused
from _stepcheck import assert_close, needs_compiler, run

PROGRAMS = {
    # a LAMB-like trust ratio, a reduction feeding scalar state, rms in the update
    "trust": "def trust(w, g, step, m=0, s: scalar = 1, *, lr=0.1, beta=0.9):\n"
             "    m = interp(g, m, beta)\n"
             "    s = s * beta + mean(g * g)\n"
             "    return lr * m * norm(w) / (norm(m) + 1e-3) / sqrt(1 - beta ** step) + lr * rms(g) * s * 0.01, m, s\n",
    # a reduction of a value that needs another reduction first (two passes), and a per-tensor condition
    "nested": "def nested(w, g, *, lr=0.1):\n"
              "    c = g - mean(g)\n"
              "    n = norm(c)\n"
              "    return where(n > 1, lr * c / n, lr * c), \n",
    # the update itself is a per-tensor value
    "per_tensor_update": "def per_tensor_update(w, g, *, lr=0.01):\n    return lr * rms(g) + 0 * w, \n",
}


def _no_fallback(monkeypatch):
    def refuse(program):
        def step(*args):
            raise AssertionError("fell back to foreach")
        return step
    monkeypatch.setattr(fused, "compile_foreach", refuse)


@needs_compiler
@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_reference_backend(name, dtype, monkeypatch):
    program = parse(PROGRAMS[name])
    expected, ref_opt = run(program, "reference", dtype=dtype, steps=12)  # steps differ between params
    _no_fallback(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning either
        got, opt = run(program, "fused", dtype=dtype, steps=12)
    assert_close(got, expected, dtype)
    for p, q in zip(got, expected):
        for key, value in ref_opt.state[q].items():
            mine = opt.state[p][key]
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                assert_close([mine], [value], dtype)
            elif key != "step":
                assert float(mine) == pytest.approx(float(value), rel=1e-12 if dtype == torch.float64 else 1e-5)


@needs_compiler
def test_normalized_gradient_by_hand(monkeypatch):
    _no_fallback(monkeypatch)
    step = compile_step(parse("def f(w, g, *, lr=0.1):\n    return lr * g / norm(g)\n"), "fused")
    p = torch.tensor([3.0, 4.0], dtype=torch.float64)
    q = torch.zeros(5, dtype=torch.float64)
    step([p, q], [torch.tensor([3.0, 4.0], dtype=torch.float64), torch.full((5,), 2.0, dtype=torch.float64)],
         {}, [1, 1], {"lr": 1.0})
    assert p.tolist() == [3.0 - 0.6, 4.0 - 0.8]  # each tensor has its own norm
    torch.testing.assert_close(q, torch.full((5,), -1 / math.sqrt(5), dtype=torch.float64))


@needs_compiler
def test_mean_of_an_empty_tensor_is_nan_for_that_tensor_only(monkeypatch):
    _no_fallback(monkeypatch)
    step = compile_step(parse("def f(w, g, s: scalar = 0, *, lr=0.1):\n    s = mean(g)\n    return lr * g, s\n"),
                        "fused")
    out = step([torch.zeros(0), torch.zeros(4)], [torch.zeros(0), torch.arange(4.0)], {"s": [0.0, 0.0]}, [1, 1],
               {"lr": 0.1})
    assert math.isnan(out["s"][0]) and out["s"][1] == 1.5


@needs_compiler
def test_thread_count_does_not_change_the_bits():
    program = parse(PROGRAMS["trust"])
    gen = torch.Generator().manual_seed(3)
    start = [torch.randn(150_000, generator=gen), torch.randn(70_001, generator=gen)]
    grads = [torch.randn(s.shape, generator=gen) for s in start]
    results = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            params = [torch.nn.Parameter(s.clone()) for s in start]
            opt = ProgramOptimizer(params, program, backend="fused")
            for _ in range(3):
                for p, g in zip(params, grads):
                    p.grad = g
                opt.step()
            results.append([p.detach().clone() for p in params])
    finally:
        torch.set_num_threads(old)
    assert all(torch.equal(a, b) for a, b in zip(*results))


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_buckets_with_reductions(dtype, monkeypatch):
    program = parse(PROGRAMS["trust"])
    expected, _ = run(program, "reference", dtype=torch.float64, steps=3, skip=False)
    _no_fallback(monkeypatch)
    got, _ = run(program, "fused", dtype=dtype, steps=3, skip=False)
    for x, y in zip(got, expected):  # float32 opmath, stored in 8 / 11 mantissa bits
        torch.testing.assert_close(x.detach().double(), y.detach(), rtol=0,
                                   atol=4 * torch.finfo(dtype).eps * float(y.detach().abs().max()))
