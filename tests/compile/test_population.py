"""The population kernel (search's batched step) against an independent reference: every member and
every tensor run alone through the reference interpreter in float64, with that member's learning rate."""
import math

import pytest
import torch

import discover.compile.population_kernel as pop
from discover import load, parse
from discover.compile import cxx
from discover.compile.population_torch import init_states
from discover.compile.reference import interpret as evaluate
from discover.evaluate.work import ensure_lr
from discover.lang.ir import Const, Ref


def _available() -> bool:
    try:
        pop.interpreter()
        return True
    except cxx.CompilerUnavailable:
        return False


needs_compiler = pytest.mark.skipif(not _available(), reason="no C++ compiler for the population kernel")

BUILTINS = ["sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw", "nadam", "radam",
            "lion", "lookahead+adam"]
LRS = [1e-3, 1e-2, 3e-2]
SHAPES = [(3, 300, 7), (3, 5), (3, 1), (3, 257)]  # sizes above and below one block, not multiples of 8


def _no_fallback(monkeypatch):
    """Make the torch fallback raise, so a passing test shows the kernel did the work."""
    def refuse(program):
        def step(*args):
            raise AssertionError("the population kernel fell back to the torch batched step")
        return step
    monkeypatch.setattr(pop, "compile_batched", refuse)


def _reference_state(program, w, hp):
    out = {}
    for s in program.states:
        if isinstance(s.init, Ref) and s.init.name == "w":
            out[s.name] = w.clone()
        else:
            v = float(s.init.value) if isinstance(s.init, Const) else float(hp[s.init.name])
            out[s.name] = v if s.scalar else torch.full_like(w, v)
    return out


def _run_both(program, dtype, steps=20, seed=0):
    """Run the kernel on stacked members and the float64 reference member by member."""
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen).to(dtype) for s in SHAPES]
    hp = dict(program.defaults)
    hp["lr"] = torch.tensor(LRS, dtype=dtype)
    ref_w = [[p[i].double().clone() for p in params] for i in range(len(LRS))]
    ref_s = [[_reference_state(program, w, {**program.defaults, "lr": LRS[i]}) for w in ref_w[i]]
             for i in range(len(LRS))]
    states = init_states(program, params, hp)
    step_fn = pop.population_step(program)
    for step in range(1, steps + 1):
        grads = [torch.randn(s, generator=gen).to(dtype) for s in SHAPES]
        step_fn(params, grads, states, step, hp)
        for i, lr in enumerate(LRS):
            for k in range(len(SHAPES)):
                env = {**program.defaults, "lr": lr, "w": ref_w[i][k], "g": grads[k][i].double(), "step": step,
                       **ref_s[i][k]}
                update, *new = evaluate(program, env)
                ref_w[i][k] = ref_w[i][k] - update
                ref_s[i][k] = dict(zip([s.name for s in program.states], new))
    return params, states, ref_w, ref_s


def _max_rel(params, ref_w):
    return max(float((params[k][i].double() - ref_w[i][k]).abs().max() / ref_w[i][k].abs().max().clamp_min(1e-30))
               for i in range(len(LRS)) for k in range(len(SHAPES)))


@needs_compiler
@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_match_float64_reference_per_member(name, monkeypatch):
    _no_fallback(monkeypatch)
    program = ensure_lr(load(name))
    params, states, ref_w, ref_s = _run_both(program, torch.float32)
    assert _max_rel(params, ref_w) < 2e-6  # float32 round-off over 20 steps
    for s in program.states:
        for i in range(len(LRS)):
            for k in range(len(SHAPES)):
                got, want = states[s.name][k][i], ref_s[i][k][s.name]
                if s.scalar:
                    assert float(got.reshape(())) == pytest.approx(float(want), rel=1e-6)
                else:
                    torch.testing.assert_close(got.double(), want, rtol=2e-5, atol=1e-6 * float(want.abs().max()) + 1e-30)


@needs_compiler
@pytest.mark.parametrize("name", ["adam", "nadam", "lion", "adadelta"])
def test_float64_members_match_reference_to_double_round_off(name, monkeypatch):
    _no_fallback(monkeypatch)
    params, _, ref_w, _ = _run_both(ensure_lr(load(name)), torch.float64)
    assert _max_rel(params, ref_w) < 1e-13


EDGE_PROGRAMS = {
    # the same dying register used twice, states swapped, a constant state value
    "swap": "def f(w, g, m=0, v=1, *, lr=0.1):\n    q = g * g\n    return lr * q + m, v, m\n",
    "const_state": "def f(w, g, m=0, *, lr=0.1):\n    m = m + g\n    return lr * m, 0.0\n",
    # a scalar condition in where, scalar / tensor, tensor ** scalar, comparisons, clip, lerp
    "where_scalar": "def f(w, g, step, *, lr=0.1):\n    c = step > 2\n    return where(c, lr * g, lr * sign(g)), \n",
    "rdiv_pow": "def f(w, g, m=0, *, lr=0.1):\n    m = interp(g, m, 0.9)\n"
                "    return lr * (1 / (abs(m) + 1)) * m ** 2 + lr * clip(g, 0.5) * (g < m), m\n",
    "update_is_state": "def f(w, g, m=0, *, lr=0.1):\n    m = lr * g\n    return m, m\n",
    "update_is_constant": "def f(w, g, *, lr=0.1):\n    return lr * 0.0 + 0.25, \n",
}


@needs_compiler
@pytest.mark.parametrize("name", sorted(EDGE_PROGRAMS))
def test_edge_programs_match_reference(name, monkeypatch):
    _no_fallback(monkeypatch)
    program = parse(EDGE_PROGRAMS[name].replace("f(", f"{name}(", 1))
    params, states, ref_w, ref_s = _run_both(program, torch.float64, steps=5)
    assert _max_rel(params, ref_w) < 1e-13
    for s in program.states:
        for i in range(len(LRS)):
            for k in range(len(SHAPES)):
                got, want = states[s.name][k][i], ref_s[i][k][s.name]
                want = want if isinstance(want, torch.Tensor) else torch.full_like(got, want)
                torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)


REDUCTION_PROGRAMS = {
    "trust": "def trust(w, g, step, m=0, *, lr=0.1, beta=0.9):\n    m = interp(g, m, beta)\n"
             "    return lr * m * norm(w) / (norm(m) + 1e-3) / sqrt(1 - beta ** step) + lr * rms(g) * 0.01, m\n",
    # a reduction of a value that needs another reduction first (two passes), a per-tensor condition
    "nested": "def nested(w, g, *, lr=0.1):\n    c = g - mean(g)\n    n = norm(c)\n"
              "    return where(n > 1, lr * c / n, lr * c), \n",
    "per_tensor_update": "def per_tensor_update(w, g, *, lr=0.01):\n    return lr * rms(g) + 0 * w, \n",
}


@needs_compiler
@pytest.mark.parametrize("name", sorted(REDUCTION_PROGRAMS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_reductions_per_member_and_tensor_match_reference(name, dtype, monkeypatch):
    _no_fallback(monkeypatch)
    params, states, ref_w, ref_s = _run_both(parse(REDUCTION_PROGRAMS[name]), dtype, steps=8)
    assert _max_rel(params, ref_w) < (1e-13 if dtype == torch.float64 else 2e-6)


@needs_compiler
def test_normalized_gradient_by_hand(monkeypatch):
    _no_fallback(monkeypatch)
    step = pop.population_step(parse("def f(w, g, *, lr=0.1):\n    return lr * g / norm(g)\n"))
    w = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    g = torch.tensor([[3.0, 4.0], [1.0, 1.0]], dtype=torch.float64)  # each member has its own norm
    step([w], [g], {}, 1, {"lr": torch.tensor([1.0, 2.0], dtype=torch.float64)})
    assert w[0].tolist() == [3.0 - 0.6, 4.0 - 0.8]
    torch.testing.assert_close(w[1], torch.full((2,), -2 / math.sqrt(2), dtype=torch.float64))


def test_scalar_state_from_a_reduction_falls_back_and_stays_correct():
    program = parse("def normed(w, g, s: scalar = 1, *, lr=0.1):\n    s = s * 0.9 + mean(g * g)\n"
                    "    return lr * g / (norm(g) + 1e-3) * s, s\n")
    with pytest.raises(pop.Unsupported, match="scalar state"):
        pop.compile_population(program)
    params, _, ref_w, _ = _run_both(program, torch.float64, steps=3)
    assert _max_rel(params, ref_w) < 1e-13


@needs_compiler
def test_nan_gradients_give_nan_members_and_leave_others_alone():
    program = ensure_lr(load("adam"))
    w = torch.ones(3, 1000)
    hp = {**program.defaults, "lr": torch.tensor(LRS)}
    states = init_states(program, [w], hp)
    g = torch.ones(3, 1000)
    g[1, 17] = math.nan
    pop.population_step(program)([w], [g], states, 1, hp)
    assert torch.isnan(w[1, 17]) and torch.isfinite(w[0]).all() and torch.isfinite(w[2]).all()


@needs_compiler
def test_thread_count_does_not_change_the_bits():
    program = ensure_lr(load("adamw"))
    gen = torch.Generator().manual_seed(1)
    start = torch.randn(4, 70_000, generator=gen)  # large enough for the parallel path
    grad = torch.randn(4, 70_000, generator=gen)
    hp = {**program.defaults, "lr": torch.tensor([1e-3, 1e-2, 1e-1, 1.0])}
    out = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            w = start.clone()
            states = init_states(program, [w], hp)
            step = pop.population_step(program)
            for t in range(1, 4):
                step([w], [grad], states, t, hp)
            out.append(w)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(out[0], out[1])


@needs_compiler
def test_non_contiguous_members_use_the_fallback_correctly():
    program = ensure_lr(load("momentum"))
    big = torch.randn(3, 8, 6)
    w = big[:, :, ::2]  # not contiguous
    expected = w.clone()
    g = torch.randn(3, 8, 3)
    hp = {**program.defaults, "lr": torch.tensor(LRS)}
    states = init_states(program, [w], hp)
    pop.population_step(program)([w], [g], states, 1, hp)
    for i, lr in enumerate(LRS):  # first momentum step: m = g, w <- w - lr * g
        torch.testing.assert_close(w[i], expected[i] - lr * g[i])


def test_without_a_compiler_search_falls_back_once_and_stays_correct(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    monkeypatch.setenv("DISCOVER_CACHE_DIR", str(tmp_path))  # nothing cached to load instead
    monkeypatch.setattr(cxx, "_LOADED", {})
    monkeypatch.setattr(pop, "_FAILED", [])
    calls = []
    real_build = cxx.build
    monkeypatch.setattr(cxx, "build", lambda *a, **k: calls.append(1) or real_build(*a, **k))
    for name in ("momentum", "lion", "adam"):
        params, _, ref_w, _ = _run_both(ensure_lr(load(name)), torch.float64, steps=2)
        assert _max_rel(params, ref_w) < 1e-13
    assert len(calls) == 1  # the failure is remembered, not retried per candidate
