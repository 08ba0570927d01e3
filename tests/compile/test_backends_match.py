"""Every built-in (and composite) program under the foreach and fused backends matches the
reference backend and, where one exists, torch.optim."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from discover import builtin_names, load
from _stepcheck import assert_close, run

PROGRAMS = [n for n in builtin_names() if not load(n).is_wrapper] + ["lookahead+adam", "lookahead+rmsprop",
                                                                 "cautious+adamw", "cautious+lion"]
BACKENDS = ["foreach", "fused"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("program", PROGRAMS)
def test_matches_reference_float64_with_uneven_steps(program, backend):
    # matrix programs (muon) read the vectors and the 3-d tensor among these parameters as diagonal matrices
    hp = {"non_matrix": "diagonal"} if program == "muon" else {}
    ref, _ = run(program, "reference", lr=1e-2, **hp)
    out, _ = run(program, backend, lr=1e-2, **hp)
    assert_close(out, ref, torch.float64)
    assert not torch.equal(ref[0], run(program, "reference", steps=0, **hp)[0][0])  # the steps did move w


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("program", ["adam", "adamw", "lion", "momentum", "nadam", "radam", "lookahead+adam"])
def test_matches_reference_float32(program, backend):
    ref, _ = run(program, "reference", dtype=torch.float32, steps=30, lr=1e-2)
    out, _ = run(program, backend, dtype=torch.float32, steps=30, lr=1e-2)
    assert_close(out, ref, torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_dtypes_in_one_group(backend):
    dtypes = [torch.float32, torch.float64, torch.float32, torch.float64, torch.float32]
    ref, _ = run("nadam", "reference", dtypes=dtypes, lr=1e-2)
    out, _ = run("nadam", backend, dtypes=dtypes, lr=1e-2)
    for x, y in zip(out, ref):
        assert x.dtype == y.dtype
        assert_close([x], [y], x.dtype)


def _torch_twin(program, params):
    if program == "adam":
        return torch.optim.Adam(params, lr=1e-2, weight_decay=0.1)
    if program == "adamw":
        return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    if program == "momentum":
        return torch.optim.SGD(params, lr=1e-2, momentum=0.9, weight_decay=0.1)
    if program == "rmsprop":
        return torch.optim.RMSprop(params, lr=1e-2, weight_decay=0.1)
    if program == "nadam":
        return torch.optim.NAdam(params, lr=1e-2, weight_decay=0.1)
    raise KeyError(program)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("program", ["adam", "adamw", "momentum", "rmsprop", "nadam"])
def test_matches_torch_optim(program, backend):
    from discover import ProgramOptimizer

    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(s, generator=gen) for s in [(16, 8), (8,), (33,)]]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    theirs = [torch.nn.Parameter(t.clone()) for t in init]
    opt = ProgramOptimizer(ours, program, backend=backend, lr=1e-2, weight_decay=0.1)
    twin = _torch_twin(program, theirs)
    for _ in range(100):
        grads = [torch.randn(t.shape, generator=gen) for t in init]
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        twin.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lion_matches_hand_written_rule(backend):
    from discover import ProgramOptimizer

    w0 = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    w = torch.nn.Parameter(w0.clone())
    opt = ProgramOptimizer([w], "lion", backend=backend, lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.5)
    m = torch.zeros(4, dtype=torch.float64)
    expected = w0.clone()
    for g in ([0.3, -0.1, 0.0, 2.0], [-1.0, -0.2, 0.4, 0.1]):
        g = torch.tensor(g, dtype=torch.float64)
        w.grad = g
        opt.step()
        c = 0.9 * m + 0.1 * g
        expected = expected - 0.1 * (torch.sign(c) + 0.5 * expected)
        m = 0.99 * m + 0.01 * g
    torch.testing.assert_close(w.detach(), expected, rtol=1e-14, atol=1e-14)
