"""The fused backend on bfloat16 and float16 parameters: loaded in the storage dtype, computed
in float32, every stored value rounded once to nearest even, as torch's fused optimizers do.

References are independent of the kernel: torch's own dtype conversions, the reference
backend in float64, and ``torch.optim.Adam(fused=True)``.
"""
from __future__ import annotations

import contextlib
import ctypes
import warnings
from typing import Iterator

import pytest
import torch

from discover import ProgramOptimizer, load
from discover.compile import compile_step, cxx, cxx_forms, fused
from _stepcheck import DYADIC, LOWP, needs_compiler, ordered_bits

PROGRAMS = ["adam", "adamw", "lion", "momentum", "rmsprop"]
# sizes not divisible by 8 or 16 (vector tails), a 1-element tensor, and a bucket above the
# kernel's threading threshold so the multi-threaded split runs too
SHAPES = [(37,), (4, 33), (1,), (1003,), (70_001,)]
POSITIVE_STATES = {"v", "sq"}  # second-moment states, nonnegative by construction


def ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """Largest distance between `a` and `b` in units in the last place of their (16-bit) dtype."""
    assert a.dtype == b.dtype and a.dtype in LOWP
    assert not a.isnan().any() and not b.isnan().any()
    return int((ordered_bits(a) - ordered_bits(b)).abs().max())


def _hparams(program, **overrides: float) -> dict[str, float]:
    hp = {h.name: float(h.default) for h in program.hparams}
    hp.update(overrides)
    return hp


# --------------------------------------------------------------------------- conversions

_CONVERT = r"""
extern "C" void widen_bf16(const d_bf16* a, float* b, int64_t n) { for (int64_t i = 0; i < n; ++i) b[i] = d_ld(a[i]); }
extern "C" void narrow_bf16(const float* a, d_bf16* b, int64_t n) { for (int64_t i = 0; i < n; ++i) d_put(b[i], a[i]); }
extern "C" void widen_f16(const d_half* a, float* b, int64_t n) { d_widen(a, b, n); }
extern "C" void narrow_f16(const float* a, d_half* b, int64_t n) { d_narrow(a, b, n); }
extern "C" void widen_f16_bits(const d_half* a, float* b, int64_t n) { for (int64_t i = 0; i < n; ++i) b[i] = d_ld(a[i]); }
extern "C" void narrow_f16_bits(const float* a, d_half* b, int64_t n) { for (int64_t i = 0; i < n; ++i) d_put(b[i], a[i]); }
"""
# what the kernels use: bfloat16 in the body; float16 by blocks (F16C where the CPU has it),
# and the bit-manipulation float16 conversion that CPUs without F16C use
_CONVERTERS = [(torch.bfloat16, "bf16"), (torch.float16, "f16"), (torch.float16, "f16_bits")]


def _converters() -> ctypes.CDLL:
    """The kernel prelude's own conversions, compiled exactly as in a kernel."""
    args = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    names = [f"{way}_{tag}" for way in ("widen", "narrow") for _, tag in _CONVERTERS]
    return cxx.build(cxx_forms.STORAGE + _CONVERT, {name: (args, None) for name in names})


def _every_value(dtype: torch.dtype) -> torch.Tensor:
    return torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(dtype)


def _hard_floats(dtype: torch.dtype) -> torch.Tensor:
    """float32 values that stress rounding to `dtype`: every value of the dtype, every midpoint
    between neighbours (ties, exact in float32), one float32 step either side of each, the
    overflow threshold, float32 subnormals, infinities, and random floats over many scales."""
    finite = _every_value(dtype)
    finite = finite[finite.isfinite()].double().unique()  # sorted; -0 merged with +0
    mids = ((finite[1:] + finite[:-1]) / 2).float()  # ties: float32 holds 9 (bf16) / 12 (f16) bits
    big, ulp = finite[-1].item(), (finite[-1] - finite[-2]).item()
    # just below, at (a tie: big is odd, so it goes up) and above the threshold to inf
    overflow = torch.tensor([big + ulp / 4, big + ulp / 2, big + ulp * 3 / 4, big + ulp, 3.0e38]).float()
    specials = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-45, -1e-45, 1e-40, 3.4e38])  # subnormal floats too
    gen = torch.Generator().manual_seed(0)
    scaled = torch.randn(20_000, generator=gen) * torch.exp2(torch.randint(-40, 40, (20_000,), generator=gen).float())
    parts = [finite.float(), mids, mids.nextafter(torch.tensor(float("inf"))),
             mids.nextafter(torch.tensor(float("-inf"))), overflow, -overflow, specials, scaled]
    return torch.cat(parts).contiguous()


@needs_compiler
@pytest.mark.parametrize("dtype, tag", _CONVERTERS, ids=[tag for _, tag in _CONVERTERS])
def test_conversions_match_torch_round_to_nearest_even(dtype, tag):
    lib = _converters()
    # widening: all 65536 bit patterns, exactly as torch widens them
    every = _every_value(dtype)
    wide = torch.empty(every.numel(), dtype=torch.float32)
    getattr(lib, f"widen_{tag}")(every.data_ptr(), wide.data_ptr(), every.numel())
    expected = every.float()
    assert torch.equal(wide.isnan(), expected.isnan())
    finite = ~expected.isnan()
    assert torch.equal(wide[finite].view(torch.int32), expected[finite].view(torch.int32))  # bitwise: -0 too
    # narrowing: torch's float32 -> 16-bit conversion rounds to nearest even
    x = _hard_floats(dtype)
    # NaNs, signalling and quiet, whose payload is only in bits that rounding drops
    nans = torch.tensor([0x7F800001, 0x7FFFFFFF, 0x7FC00000, 0x7F801000, -0x7FFFFF, -1], dtype=torch.int32)
    x = torch.cat([x, nans.view(torch.float32)])
    narrow = torch.empty(x.numel(), dtype=dtype)
    getattr(lib, f"narrow_{tag}")(x.data_ptr(), narrow.data_ptr(), x.numel())
    expected = x.to(dtype)
    assert torch.equal(narrow.isnan(), x.isnan())  # NaN stays NaN, nothing else becomes NaN
    keep = ~x.isnan()
    assert torch.equal(narrow[keep].view(torch.int16), expected[keep].view(torch.int16))


# --------------------------------------------------------------------------- one step vs float64


def _start(program, dtype: torch.dtype, seed: int = 0):
    """Random params, grads and tensor state of `dtype` (nonzero state, so its load is exercised)."""
    gen = torch.Generator().manual_seed(seed)
    rnd = lambda s: torch.randn(s, generator=gen, dtype=torch.float64)  # noqa: E731
    params = [rnd(s).to(dtype) for s in SHAPES]
    grads = [rnd(s).to(dtype) for s in SHAPES]
    states = {}
    for st in program.states:
        assert not st.scalar
        make = (lambda s: (rnd(s) * 0.1).square()) if st.name in POSITIVE_STATES else (lambda s: rnd(s) * 0.1)
        states[st.name] = [make(s).to(dtype) for s in SHAPES]
    return params, grads, states


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@needs_compiler
@pytest.mark.parametrize("dtype", LOWP, ids=str)
@pytest.mark.parametrize("name", PROGRAMS)
def test_one_step_is_float64_rounded_once(name, dtype):
    program = load(name)
    params, grads, states = _start(program, dtype)
    before = [p.clone() for p in params]
    up = lambda xs: [x.double() for x in xs]  # noqa: E731 - exact: every 16-bit float is a double
    ref_params, ref_grads = up(params), up(grads)
    ref_states = {k: up(v) for k, v in states.items()}
    steps = [3, 1, 7, 2, 5]  # per-tensor steps: bias corrections (and momentum's first step) differ
    hp = {k: v for k, v in DYADIC.items() if k in _hparams(program)}
    fused_step = compile_step(program, "fused")
    with threads(2):  # the kernel's multi-threaded split (tests run with 1 thread: tests/conftest.py)
        fused_step(params, grads, states, steps, hp)
    compile_step(program, "reference")(ref_params, ref_grads, ref_states, steps, hp)
    pairs = list(zip(params, ref_params)) + [(s, r) for key in states for s, r in zip(states[key], ref_states[key])]
    for got, want in pairs:
        assert got.dtype == dtype
        assert ulps(got, want.to(dtype)) <= 1
    # and nearly always exactly it: float32 round-off only matters within a float32 ulp or
    # so of a tie (truncating, or rounding after every op, would miss far more often)
    inexact = sum(int((got != want.to(dtype)).sum()) for got, want in pairs)
    assert inexact <= 1e-3 * sum(got.numel() for got, _ in pairs)
    moved = sum(int((p != b).sum()) for p, b in zip(params, before))
    assert moved > 0.5 * sum(p.numel() for p in params)  # the step did move them (a no-op would not)


# --------------------------------------------------------------------------- many steps vs torch


@needs_compiler
def test_twenty_adam_steps_match_torch_fused_adam_on_bfloat16():
    gen = torch.Generator().manual_seed(1)
    shapes = [(37,), (64, 65), (1,), (1003,)]
    start = [torch.randn(s, generator=gen).to(torch.bfloat16) for s in shapes]
    # fixed random grads per step: both optimizers see the same gradients, so no chaos
    grads = [[torch.randn(s, generator=gen).to(torch.bfloat16) for s in shapes] for _ in range(20)]
    ours = [torch.nn.Parameter(x.clone()) for x in start]
    theirs = [torch.nn.Parameter(x.clone()) for x in start]
    hp = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)
    a = ProgramOptimizer(ours, "adam", backend="fused", lr=hp["lr"], beta1=0.9, beta2=0.99, eps=hp["eps"],
                         weight_decay=hp["weight_decay"])
    b = torch.optim.Adam(theirs, fused=True, **hp)
    for gs in grads:
        for p, q, g in zip(ours, theirs, gs):
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    for p, q, x in zip(ours, theirs, start):
        assert p.dtype == torch.bfloat16
        assert not torch.equal(p, x)
        # both compute in float32 and round each stored value once; float32 round-off can
        # flip a rounding now and then, and the flipped state feeds later steps
        assert ulps(p.detach(), q.detach()) <= 2
        for mine, torchs in (("m", "exp_avg"), ("v", "exp_avg_sq")):
            s, t = a.state[p][mine], b.state[q][torchs]
            assert s.dtype == torch.bfloat16
            assert ulps(s, t) <= 2, mine


# --------------------------------------------------------------------------- the kernel runs


@needs_compiler
@pytest.mark.parametrize("dtype", LOWP, ids=str)
def test_lowp_buckets_run_the_kernel_without_warnings(dtype, monkeypatch):
    called = []
    real = fused.compile_foreach

    def spy(program):  # the fallback compile_fused builds: records whether it is ever called
        step = real(program)

        def fallback(*args):
            called.append(program.name)
            return step(*args)
        return fallback

    monkeypatch.setattr(fused, "compile_foreach", spy)
    fused._WARNED.clear()
    step = compile_step(load("adam"), "fused")
    p = torch.linspace(1, 2, 100).to(dtype)  # away from 0.5: w - 0.5 cannot cancel to ~0
    p0 = p.clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = {"m": [torch.zeros_like(p)], "v": [torch.zeros_like(p)]}
        step([p], [torch.ones_like(p)], state, [1], _hparams(load("adam"), lr=0.5))
    # (only discover's warnings: a finalizer of some earlier test may warn while this runs)
    said = [str(w.message) for w in caught if "discover" in str(w.message)]
    assert said == [] and called == [], (said, called)
    # first Adam step with g = 1: m = 0.1, v = 0.001, update = lr * (0.1 / 0.1) / (1 + eps) = 0.5
    assert torch.equal(state["m"][0], torch.full_like(p, 0.1))
    assert torch.equal(state["v"][0], torch.full_like(p, 0.001))
    assert ulps(p, (p0.double() - 0.5).to(dtype)) <= 1
    # the spy works: a non-contiguous bucket of the same dtype does reach the fallback
    q = torch.randn(4, 6).to(dtype).t()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        step([q], [torch.ones_like(q)], {"m": [torch.zeros_like(q)], "v": [torch.zeros_like(q)]}, [1],
             _hparams(load("adam")))
    assert called == ["adam"]


@needs_compiler
def test_other_dtypes_still_fall_back_with_a_warning():
    fused._WARNED.clear()
    step = compile_step(load("sgd"), "fused")
    p = torch.tensor([1.0 + 2.0j, -1.0j], dtype=torch.complex64)
    with pytest.warns(RuntimeWarning, match="complex64 parameters use the foreach backend"):
        step([p], [torch.tensor([1.0 + 1.0j, 2.0 + 0j], dtype=torch.complex64)], {}, [1],
             _hparams(load("sgd"), lr=0.5, weight_decay=0.0))
    torch.testing.assert_close(p, torch.tensor([0.5 + 1.5j, -1.0 - 1.0j], dtype=torch.complex64))


# --------------------------------------------------------------------------- NaN and inf


@needs_compiler
@pytest.mark.parametrize("dtype", LOWP, ids=str)
@pytest.mark.parametrize("name", ["adam", "momentum"])
def test_nan_and_inf_gradients_store_nan_and_inf(name, dtype):
    program = load(name)
    nan, inf = float("nan"), float("inf")
    params = [torch.tensor([1.0, -2.0, 0.5, 3.0, 0.25] * 7, dtype=dtype)]  # 35 values: vector body and tail
    grads = [torch.tensor([nan, inf, -inf, 0.5, -0.25] * 7, dtype=dtype)]
    states = {s.name: [torch.zeros_like(params[0])] for s in program.states}
    ref_p, ref_g = [params[0].double()], [grads[0].double()]
    ref_s = {k: [v[0].double()] for k, v in states.items()}
    hp = _hparams(program, lr=0.1)
    compile_step(program, "fused")(params, grads, states, [2], hp)
    compile_step(program, "reference")(ref_p, ref_g, ref_s, [2], hp)
    for got, want in [(params[0], ref_p[0])] + [(states[k][0], ref_s[k][0]) for k in states]:
        want = want.to(dtype)
        assert torch.equal(got.isnan(), want.isnan())
        assert got[0::5].isnan().all()  # a NaN gradient gives NaN, not a finite bit pattern
        finite = ~want.isnan()
        assert torch.equal(got[finite], want[finite])  # infinities where the reference has them
    if name == "momentum":  # g = inf -> w = -inf: inf survives the store
        assert (params[0][1::5] == -inf).all() and (params[0][2::5] == inf).all()


@needs_compiler
@pytest.mark.parametrize("dtype", LOWP, ids=str)
def test_results_beyond_the_dtype_range_round_to_inf(dtype):
    big = torch.finfo(dtype).max
    p = torch.tensor([big, -big, big, 1.0] * 5, dtype=dtype)
    g = torch.tensor([-big / 4, big / 4, big * 2.0 ** -14, 0.5] * 5, dtype=dtype)  # w - lr*g
    compile_step(load("sgd"), "fused")([p], [g], {}, [1], _hparams(load("sgd"), lr=1.0, weight_decay=0.0))
    want = torch.tensor([float("inf"), float("-inf"), big, 0.5] * 5, dtype=dtype)  # tiny step: rounds back
    assert torch.equal(p, want)
