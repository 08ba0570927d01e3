"""Matrix, row/column, property and group ops on every backend, against torch computed directly.

These ops are torch calls between passes over memory (`discover.lang.ops.STAGED`): the reference
interpreter, the foreach backend, the fused backend (which hands such programs to foreach), the
population step (which hands them to the torch batched step) and the torch batched step itself all
run them. Each test writes the expected value with torch on its own (``g @ w.T @ g``,
``x.mean(-1, keepdim=True)``, torch.optim.Muon's own Newton-Schulz function, an SVD), never with the
op table, on 2-D parameters (wide and tall), on a vector, on a 0-d tensor and on a 3-D tensor (a
batch of matrices for row and column means; a diagonal matrix for matrix ops).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.optim._muon import _zeropower_via_newtonschulz as torch_newton_schulz

import discover
from discover import parse
from discover.compile import compile_step
from discover.compile.batched import compile_batched, init_states
from discover.compile.population import population_step

BACKENDS = ["reference", "foreach", "fused"]
SHAPES = [(4, 6), (6, 4), (5,), (), (2, 3, 4)]


def _params(dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    g = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    return w, g


def _step(program, backend, w, g, hparams=None):
    """The update each parameter gets (w before minus w after) from one step of `backend`."""
    hp = {**program.defaults, **(hparams or {})}
    w = [x.clone() for x in w]
    before = [x.clone() for x in w]
    states = {s.name: [torch.zeros(()) for _ in w] for s in program.states}
    compile_step(program, backend)(w, g, states, [1] * len(w), hp)
    return [b - a for a, b in zip(w, before)]


def _population(program, w, g, hparams=None, members=3):
    """The update of member 0 and member 2 of a population of 3 identical members, per parameter,
    from the population step (the torch batched step for these programs) and the torch batched step."""
    hp = {**program.defaults, **(hparams or {})}
    out = []
    for make in (population_step, compile_batched):
        ws = [torch.stack([x] * members) for x in w]
        gs = [torch.stack([x] * members) for x in g]
        before = [x.clone() for x in ws]
        states = init_states(program, ws, hp)
        make(program)(ws, gs, states, 1, hp)
        out.append([[(b - a)[m] for a, b in zip(ws, before)] for m in (0, members - 1)])
    return out


def _close(got, want, rtol=1e-12):
    torch.testing.assert_close(got, want.to(got.dtype).expand_as(got), rtol=rtol, atol=rtol * 1e-3)


def _every_backend(program, w, g, expected, rtol=1e-12, hparams=None):
    for backend in BACKENDS:
        for got, want in zip(_step(program, backend, w, g, hparams), expected):
            _close(got, want, rtol)
    for population in _population(program, w, g, hparams):
        for member in population:
            for got, want in zip(member, expected):
                _close(got, want, rtol)


def _is_matrix(x):
    return x.dim() == 2


# ----------------------------------------------------------------------------- matrix ops


def test_matmul_and_transpose():
    program = parse("def f(w, g, *, lr=1):\n    return lr * matmul(matmul(g, transpose(w)), g)\n")
    w, g = _params()
    # a parameter that is not 2-D is a diagonal matrix: products are elementwise, transposes do nothing
    expected = [(gg @ ww.T @ gg) if _is_matrix(ww) else gg * ww * gg for ww, gg in zip(w, g)]
    _every_backend(program, w, g, expected)


def test_transpose_swaps_rows_and_columns():
    program = parse("def f(w, g, *, lr=1):\n    return lr * transpose(matmul(transpose(w), matmul(g, transpose(g))))\n")
    w, g = _params()
    expected = [(ww.T @ (gg @ gg.T)).T if _is_matrix(ww) else ww * gg * gg for ww, gg in zip(w, g)]
    _every_backend(program, w, g, expected)


def test_an_outer_product_of_row_and_column_means():
    program = parse("def f(w, g, *, lr=1):\n    return lr * matmul(row_mean(g), col_mean(w))\n")
    w, g = _params()
    expected = []
    for ww, gg in zip(w, g):
        if ww.dim() >= 2:
            rows, cols = gg.mean(-1, keepdim=True), ww.mean(-2, keepdim=True)
            expected.append(rows @ cols if _is_matrix(ww) else rows * cols)
        elif ww.dim() == 1:  # one row: the row mean is the mean, the column means are the values
            expected.append(gg.mean().reshape(1) * ww)
        else:
            expected.append(gg * ww)
    _every_backend(program, w, g, expected)


@pytest.mark.parametrize("shape", [(5, 8), (8, 5), (6, 6)])
def test_newton_schulz_in_bfloat16_is_torch_muons_own(shape):
    """ns bf16=1: the bits of torch.optim.Muon's own function (widened to the parameter's dtype)."""
    program = parse("def f(w, g, *, lr=1, k=3, a=3.4445, b=-4.775, c=2.0315):\n"
                    "    return lr * newton_schulz(g, k, a, b, c, 1e-7, 1)\n")
    gen = torch.Generator().manual_seed(3)
    for dtype in (torch.float64, torch.float32):
        g = [torch.randn(shape, generator=gen, dtype=dtype)]
        w = [torch.zeros(shape, dtype=dtype)]
        for k, coef in ((5, (3.4445, -4.775, 2.0315)), (3, (3.0, -3.2, 1.2))):
            want = torch_newton_schulz(g[0], coef, k, 1e-7).to(dtype)
            hp = dict(k=k, a=coef[0], b=coef[1], c=coef[2])
            for backend in BACKENDS:
                assert torch.equal(_step(program, backend, w, g, hp)[0], want), (backend, dtype, k)
            population, batched = _population(program, w, g, hp)
            for got in population + batched:  # batched matmuls (baddbmm): bfloat16 round-off of the same iteration
                torch.testing.assert_close(got[0], want, rtol=0.05, atol=0.02)


def test_newton_schulz_converges_to_the_orthogonal_factor():
    """With a convergent quintic (1.875, -1.25, 0.375) in float64, the result is U V^T of the SVD;
    on a vector (a diagonal matrix) it is the sign of each value."""
    program = parse("def f(w, g, *, lr=1):\n    return lr * newton_schulz(g, 40, 1.875, -1.25, 0.375, 1e-7, 0)\n")
    gen = torch.Generator().manual_seed(4)
    u = torch.linalg.qr(torch.randn(7, 7, generator=gen, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64)).Q
    s = torch.tensor([3.0, 1.0, 0.5, 0.2], dtype=torch.float64)
    tall = u[:, :4] @ torch.diag(s) @ v.T  # singular values well away from 0
    vec = torch.tensor([0.5, -2.0, 1.0, -0.25], dtype=torch.float64)
    g = [tall, tall.T.contiguous(), vec]
    w = [torch.zeros_like(x) for x in g]
    expected = [u[:, :4] @ v.T, (u[:, :4] @ v.T).T, torch.sign(vec)]
    _every_backend(program, w, g, expected, rtol=1e-10)


def test_newton_schulz_with_an_invalid_step_count_is_nan():
    program = parse("def f(w, g, *, lr=1, k=2.5):\n    return lr * newton_schulz(g, k)\n")
    w, g = _params()
    for backend in BACKENDS:
        for k in (2.5, -1.0, 100.0, math.nan):
            assert all(bool(u.isnan().all()) for u in _step(program, backend, w, g, {"k": k}))


# ----------------------------------------------------------------------------- rows and columns


def test_row_and_column_means_broadcast_back():
    program = parse("def f(w, g, *, lr=1):\n    return lr * (row_mean(g) + 10 * col_mean(g * w))\n")
    w, g = _params()
    expected = []
    for ww, gg in zip(w, g):
        if ww.dim() >= 2:  # a batch of matrices over the last two dimensions, as torch's Adafactor
            expected.append(gg.mean(-1, keepdim=True) + 10 * (gg * ww).mean(-2, keepdim=True))
        elif ww.dim() == 1:
            expected.append(gg.mean().reshape(1) + 10 * gg * ww)
        else:
            expected.append(gg + 10 * gg * ww)
    _every_backend(program, w, g, expected)


def test_per_row_and_per_column_state_has_their_shape():
    program = parse("def f(w, g, r: per_row = 0, c: per_col = 0, *, lr=1):\n"
                    "    r = interp(row_mean(g), r, 0.5)\n    c = interp(col_mean(g), c, 0.5)\n"
                    "    return lr * r * c, r, c\n")
    w, g = _params()
    opt_params = [torch.nn.Parameter(x.clone()) for x in w]
    for backend in BACKENDS:
        opt = discover.ProgramOptimizer([p for p in opt_params], program, backend=backend)
        for p, gg in zip(opt_params, g):
            p.grad = gg.clone()
        opt.step()
        for p, gg in zip(opt_params, g):
            r, c = opt.state[p]["r"], opt.state[p]["c"]
            want_r = gg.mean(-1, keepdim=True) / 2 if gg.dim() else gg / 2
            want_c = gg.mean(-2, keepdim=True) / 2 if gg.dim() >= 2 else gg / 2
            assert r.shape == want_r.shape and c.shape == want_c.shape, (backend, p.shape, r.shape, c.shape)
            torch.testing.assert_close(r, want_r, rtol=1e-14, atol=0)
            torch.testing.assert_close(c, want_c, rtol=1e-14, atol=0)
    ws = [torch.stack([x, x]) for x in w]
    states = init_states(program, ws, program.defaults)
    assert [tuple(b.shape) for b in states["r"]] == [(2, 4, 1), (2, 6, 1), (2, 1), (2,), (2, 2, 3, 1)]
    assert [tuple(b.shape) for b in states["c"]] == [(2, 1, 6), (2, 1, 4), (2, 5), (2,), (2, 2, 1, 4)]


def test_properties_of_a_tensor():
    program = parse("def f(w, g, *, lr=1):\n"
                    "    return lr * g * (rows(g) + 100 * cols(g) + 10000 * ndim(g) + epsilon(g) * 1e16)\n")
    for dtype in (torch.float64, torch.float32):
        w, g = _params(dtype)
        expected = []
        for gg in g:
            r = gg.shape[-2] if gg.dim() >= 2 else 1
            c = gg.shape[-1] if gg.dim() >= 1 else 1
            expected.append(gg * (r + 100 * c + 10000 * gg.dim() + torch.finfo(dtype).eps * 1e16))
        _every_backend(program, w, g, expected, rtol=1e-6 if dtype == torch.float32 else 1e-12)


# ----------------------------------------------------------------------------- group reductions


def test_group_sum_and_group_norm_see_every_parameter():
    program = parse("def f(w, g, *, lr=1):\n    return lr * (g * group_sum(g * w) + w * group_norm(g) + group_sum(norm(w)))\n")
    w, g = _params()
    total = sum(float((gg * ww).sum()) for gg, ww in zip(g, w))
    norm = float(torch.linalg.vector_norm(torch.cat([gg.reshape(-1) for gg in g])))
    norms = sum(float(torch.linalg.vector_norm(ww)) for ww in w)
    expected = [gg * total + ww * norm + norms for gg, ww in zip(g, w)]
    _every_backend(program, w, g, expected)


def test_a_group_of_one_is_the_tensor_itself():
    program = parse("def f(w, g, *, lr=1):\n    return lr * g * group_sum(g)\n")
    w, g = _params()
    want = g[0] * g[0].sum()
    for backend in BACKENDS:
        torch.testing.assert_close(_step(program, backend, w[:1], g[:1])[0], want, rtol=1e-14, atol=0)


# ----------------------------------------------------------------------------- the optimizer's rules


def test_matrix_programs_refuse_parameters_that_are_not_matrices():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2, bias=False))
    with pytest.raises(ValueError, match=r"parameter 1 of param group 0 has shape \(4,\).*newton_schulz"):
        discover.ProgramOptimizer(model.parameters(), "muon")
    opt = discover.ProgramOptimizer([model[0].weight, model[1].weight], "muon")
    with pytest.raises(ValueError, match=r"parameter 0 of param group 1 has shape \(4,\)"):
        opt.add_param_group({"params": [model[0].bias]})
    opt = discover.ProgramOptimizer(model.parameters(), "muon", non_matrix="diagonal")
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    with pytest.raises(ValueError, match="non_matrix must be"):
        discover.ProgramOptimizer(model.parameters(), "muon", non_matrix="ignore")


def test_a_group_op_needs_one_device_and_dtype_per_group():
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = discover.ProgramOptimizer([a, b], "prodigy")
    a.grad, b.grad = torch.ones(3), torch.ones(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="group_sum sum over a param group.*separate|put each device and dtype"):
        opt.step()
    discover.ProgramOptimizer([{"params": [a]}, {"params": [b]}], "prodigy").step()
