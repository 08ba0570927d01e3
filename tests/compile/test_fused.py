"""The fused backend: one C++ loop per program, compiled once; no recompilation for new
hyperparameters or steps; fallbacks to foreach that say why."""
from __future__ import annotations

import warnings

import pytest
import torch

from discover import ProgramOptimizer, load, parse
from discover.compile import compile_step, fused
from _stepcheck import needs_compiler


@needs_compiler
def test_no_recompilation_when_lr_changes_or_step_grows():
    compile_step(load("adam"), "fused")  # built (or loaded) once
    before = fused.compile_count()
    gen = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(10, generator=gen)) for _ in range(3)]
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    opt = ProgramOptimizer(ps, "adam", backend="fused", lr=0.1)
    ref = ProgramOptimizer(qs, "adam", backend="reference", lr=0.1)
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) for o in (opt, ref)]
    for _ in range(12):
        for p, q in zip(ps, qs):
            p.grad = torch.randn(10, generator=gen)
            q.grad = p.grad.clone()
        opt.step()
        ref.step()
        for s in scheds:
            s.step()
        opt.param_groups[0]["beta2"] = ref.param_groups[0]["beta2"] = opt.param_groups[0]["beta2"] * 0.999
    assert fused.compile_count() == before
    assert opt.param_groups[0]["lr"] < 0.1 / 8
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)  # and the new lr / beta2 were used


@needs_compiler
def test_kernel_is_shape_agnostic():
    step = compile_step(load("lion"), "fused")
    before = fused.compile_count()
    for shapes in ([(3,)], [(5, 7), (2,)], [(1000,)] * 3):
        params = [torch.randn(s) for s in shapes]
        grads = [torch.randn(s) for s in shapes]
        m = [torch.zeros(s) for s in shapes]
        expected = [p - 1e-2 * torch.sign(0.1 * g) for p, g in zip(params, grads)]
        step(params, grads, {"m": m}, [1] * len(shapes), {"lr": 1e-2, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.0})
        for p, e, mm, g in zip(params, expected, m, grads):
            torch.testing.assert_close(p, e)
            torch.testing.assert_close(mm, 0.01 * g)
    assert fused.compile_count() == before


@needs_compiler
def test_large_tensor_uses_threads_and_matches_reference():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(300_000))
    q = torch.nn.Parameter(p.detach().clone())
    a = ProgramOptimizer([p], "adamw", backend="fused", lr=1e-2)
    b = ProgramOptimizer([q], "adamw", backend="reference", lr=1e-2)
    for _ in range(3):
        p.grad = torch.randn(300_000)
        q.grad = p.grad.clone()
        a.step()
        b.step()
    torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@needs_compiler
def test_non_contiguous_buckets_fall_back_with_a_warning():
    # (bfloat16 and float16 buckets run the kernel: tests/compile/test_fused_lowp.py)
    fused._WARNED.clear()
    torch.manual_seed(0)
    base = torch.randn(6, 4)
    p = torch.nn.Parameter(base.t())  # non-contiguous parameter
    q = torch.nn.Parameter(base.t().clone())
    a = ProgramOptimizer([p], "adam", backend="fused", lr=1e-2)
    b = ProgramOptimizer([q], "adam", backend="reference", lr=1e-2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            g = torch.randn(4, 6)
            p.grad, q.grad = g.clone(), g.clone()
            a.step()
            b.step()
    assert any("non-contiguous" in str(w.message) for w in caught)
    torch.testing.assert_close(p, q)


def test_default_backend_is_registered():
    from discover.compile import DEFAULT_BACKEND, backend_names

    assert {"foreach", "fused", "reference", "auto"} <= set(backend_names())
    assert DEFAULT_BACKEND in backend_names()
