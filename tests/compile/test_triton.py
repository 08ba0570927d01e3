"""The Triton kernels -- the optimizer's step (`triton_step`) and search's population interpreter
(`triton_population`) -- against independent references: the reference interpreter, float64
rounded once, torch.optim.

Without a GPU they run in Triton's interpreter (``TRITON_INTERPRET=1``, set by tests/conftest.py):
the same kernel source, run on CPU tensors with numpy arithmetic. With a GPU (the device script,
benchmarks/gpu_check.sh) the same tests run on CUDA. The generated source is also compiled for an
H200 (sm_90) here, without a GPU, so what the interpreter runs is valid Triton for the real thing.

Every test is marked ``triton``; the default run keeps a subset (the others are also marked
``triton_full``). All of them: ``python -m pytest -m triton tests/compile/test_triton.py``.
"""
from __future__ import annotations

import random
import warnings

import pytest
import torch

from discover import ProgramOptimizer, builtin_names, load, parse, unparse
from discover.compile import compile_step
from discover.compile.population_torch import init_states
from discover.evaluate.work import ensure_lr
from _stepcheck import DYADIC, LOWP, assert_close, ordered_bits, random_programs

triton = pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[gpu]'): "
                                              "the Triton kernels are not tested")
from discover.compile import triton_common, triton_population, triton_step  # noqa: E402

pytestmark = pytest.mark.triton
FULL = pytest.mark.triton_full
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and not triton_common.interpreting():  # pragma: no cover - conftest sets it
    pytest.skip("no GPU and TRITON_INTERPRET is not set", allow_module_level=True)

PROGRAMS = [n for n in builtin_names() if not load(n).is_wrapper] + ["lookahead+adam", "cautious+adamw",
                                                                 "cautious+lion"]
DEFAULT = {"adam", "adamw", "lion", "lamb", "nadam", "rprop", "adan", "cautious+lion", "lookahead+adam"}
SHAPES = [(3, 4), (5,), (2, 2, 2), (7,), (1,), (1100,)]  # 1100: a tensor of two blocks


def subset(items, default):
    return [pytest.param(x, marks=() if x in default else FULL) for x in items]


def _launches(opt: ProgramOptimizer) -> int:
    fn = opt._step_fn
    return fn.launches[0] if hasattr(fn, "launches") else fn.cuda_step().launches[0]


def run(program, backend, *, dtype=torch.float32, steps=20, skip=True, shapes=SHAPES, seed=0, device=DEVICE, **hp):
    """Parameters after `steps` steps; with `skip` some parameters have no grad on some steps, so
    steps differ within the bucket (the per-tensor path) after a first uniform step."""
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).to(device))
              for s in shapes]
    opt = ProgramOptimizer(params, program, backend=backend, **hp)
    for it in range(steps):
        for j, p in enumerate(params):
            g = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(dtype).to(device)
            p.grad = None if (skip and j > 0 and (it + j) % 3 == 0) else g
        opt.step()
    return [p.detach() for p in params], opt


# --------------------------------------------------------------------------- the step, float32


@pytest.mark.parametrize("program", subset(PROGRAMS, DEFAULT))
def test_builtin_matches_reference_float32(program):
    ref, _ = run(program, "reference", lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would warn: the kernel must run
        out, opt = run(program, "triton", lr=1e-2)
    assert _launches(opt) >= 20
    assert_close(out, ref, torch.float32)
    start, _ = run(program, "reference", steps=0)
    assert not torch.equal(ref[0], start[0])  # the steps did move w


def test_two_hundred_tensors_are_one_launch_per_step():
    shapes = [(random.Random(i).randint(1, 300),) for i in range(200)]
    ref, _ = run("adamw", "reference", steps=3, skip=False, shapes=shapes)
    out, opt = run("adamw", "triton", steps=3, skip=False, shapes=shapes)
    assert _launches(opt) == 3
    assert_close(out, ref, torch.float32)


def test_reduction_passes_are_extra_launches_per_step():
    out, opt = run("lamb", "triton", steps=4, skip=False)
    assert _launches(opt) == 4 * 3  # partial sums, per-tensor finish, body
    ref, _ = run("lamb", "reference", steps=4, skip=False)
    assert_close(out, ref, torch.float32)


REDUCTIONS = {
    "norm": "def f(w, g, *, lr=0.1):\n    return lr * g / norm(g)\n",
    "rms_mean": "def f(w, g, m=0, *, lr=0.1):\n    m = interp(g, m, 0.9)\n    return lr * (m - mean(m)) / (rms(m) + 1e-3), m\n",
    "nested": "def f(w, g, *, lr=0.1):\n    h = g / norm(g)\n    return lr * h * rms(h * w), \n",
    "scalar_state": "def f(w, g, s: scalar = 0, *, lr=0.1):\n    s = s + mean(g * g)\n    return lr * g / sqrt(s), s\n",
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions_match_reference(name):
    program = parse(REDUCTIONS[name].replace(", \n", "\n"))
    ref, ref_opt = run(program, "reference", steps=6)
    out, opt = run(program, "triton", steps=6)
    assert_close(out, ref, torch.float32)
    if name == "scalar_state":  # a scalar state computed from a reduction: read back from the kernel's table
        for p, q in zip(opt.param_groups[0]["params"], ref_opt.param_groups[0]["params"]):
            assert opt.state[p]["s"] == pytest.approx(float(ref_opt.state[q]["s"]), rel=1e-5)


def test_scheduler_changes_lr_without_new_kernels():
    gen = torch.Generator().manual_seed(2)
    params = [torch.nn.Parameter(torch.randn(50, generator=gen).to(DEVICE)) for _ in range(3)]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt = ProgramOptimizer(params, "adam", backend="triton", lr=0.1)
    ref = ProgramOptimizer(twins, "adam", backend="reference", lr=0.1)
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) for o in (opt, ref)]
    kernels = opt._step_fn.kernels
    for _ in range(7):
        grads = [torch.randn(50, generator=gen).to(DEVICE) for _ in params]
        for p, q, g in zip(params, twins, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step(), ref.step()
        for s in scheds:
            s.step()
    assert opt.param_groups[0]["lr"] == 0.1 * 0.5 ** 3
    assert_close(params, twins, torch.float32)
    assert opt._step_fn.kernels is kernels
    if DEVICE == "cuda":  # compiled once per dtype and path (uniform steps), whatever lr and step were
        assert sum(len(cache[0]) for cache in kernels.step_body.device_caches.values()) == 1


def test_kernel_source_holds_no_hyperparameter_values():
    base = load("adam")
    src = triton_step.kernel_source(base)
    for value in ("0.999", "1e-08", "0.001"):
        assert value not in src  # beta2, eps and lr are runtime arguments


# --------------------------------------------------------------------------- 16-bit dtypes


def ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """Largest distance between 16-bit `a` and `b` in units in the last place (NaN must match)."""
    assert torch.equal(a.isnan(), b.isnan())
    keep = ~a.isnan()
    return int((ordered_bits(a[keep]) - ordered_bits(b[keep])).abs().max()) if keep.any() else 0


@pytest.mark.parametrize("dtype", [pytest.param(torch.bfloat16, id="bf16"), pytest.param(torch.float16, id="f16")])
@pytest.mark.parametrize("name", subset([n for n in builtin_names() if not load(n).is_wrapper], {"adam", "lion", "lamb"}))
def test_one_lowp_step_is_float64_rounded_once(name, dtype):
    program = load(name)
    gen = torch.Generator().manual_seed(0)
    rnd = lambda s: torch.randn(s, generator=gen, dtype=torch.float64)  # noqa: E731
    shapes = [(37,), (4, 33), (1,), (1100,)]
    params = [rnd(s).to(dtype).to(DEVICE) for s in shapes]
    grads = [rnd(s).to(dtype).to(DEVICE) for s in shapes]
    states = {}
    for st in program.states:
        if st.scalar:
            states[st.name] = [0.5] * len(shapes)
        else:
            states[st.name] = [(rnd(s) * 0.1).abs().to(dtype).to(DEVICE) for s in shapes]  # nonnegative: second moments
    up = lambda xs: [x.double() for x in xs]  # noqa: E731 - exact
    ref_p, ref_g = up(params), up(grads)
    ref_s = {k: (list(v) if isinstance(v[0], float) else up(v)) for k, v in states.items()}
    steps = [3, 1, 7, 2]
    hp = {h.name: DYADIC.get(h.name, float(h.default)) for h in program.hparams}
    hp["lr"] = 2.0 ** -3  # steps a bfloat16 ulp can see
    before = [p.clone() for p in params]
    step = compile_step(program, "triton")
    step(params, grads, states, steps, hp)
    assert step.launches[0] >= 1
    compile_step(program, "reference")(ref_p, ref_g, ref_s, steps, hp)
    pairs = list(zip(params, ref_p)) + [(s, r) for k in states if not isinstance(states[k][0], float)
                                        for s, r in zip(states[k], ref_s[k])]
    for got, want in pairs:
        assert got.dtype == dtype
        assert ulps(got.cpu(), want.to(dtype).cpu()) <= 1
    inexact = sum(int((got.cpu() != want.to(dtype).cpu()).sum()) for got, want in pairs)
    assert inexact <= 1e-2 * sum(got.numel() for got, _ in pairs)
    assert sum(int((p != b).sum()) for p, b in zip(params, before)) > 0.25 * sum(p.numel() for p in params)


def test_twenty_adam_steps_match_torch_fused_adam_on_bfloat16():
    gen = torch.Generator().manual_seed(1)
    shapes = [(37,), (64, 65), (1,), (1003,)]
    start = [torch.randn(s, generator=gen).to(torch.bfloat16).to(DEVICE) for s in shapes]
    grads = [[torch.randn(s, generator=gen).to(torch.bfloat16).to(DEVICE) for s in shapes] for _ in range(20)]
    ours = [torch.nn.Parameter(x.clone()) for x in start]
    theirs = [torch.nn.Parameter(x.clone()) for x in start]
    a = ProgramOptimizer(ours, "adam", backend="triton", lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.05)
    b = torch.optim.Adam(theirs, fused=True, lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)
    for gs in grads:
        for p, q, g in zip(ours, theirs, gs):
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    for p, q, x in zip(ours, theirs, start):
        assert p.dtype == torch.bfloat16 and not torch.equal(p, x)
        assert ulps(p.detach().cpu(), q.detach().cpu()) <= 2
        for mine, torchs in (("m", "exp_avg"), ("v", "exp_avg_sq")):
            assert ulps(a.state[p][mine].cpu(), b.state[q][torchs].cpu()) <= 2, mine


def test_bfloat16_store_rounds_float32_to_nearest_even():
    # a float32 result reaches the store as w - update with w = 0 and update = -lr * g, g = 1
    # (exact in float32): lr carries the value; ties, near-ties, overflow, NaN
    finite = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    finite = finite[finite.isfinite()].double().unique()
    mids = ((finite[1:] + finite[:-1]) / 2).float()
    gen = torch.Generator().manual_seed(0)
    pick = mids[torch.randint(0, mids.numel(), (40,), generator=gen)]
    values = torch.cat([pick, pick.nextafter(torch.tensor(float("inf"))), pick.nextafter(torch.tensor(-float("inf"))),
                        torch.tensor([3.3961e38, 3.4e38, -3.4e38, float("nan"), 1e-40, -1e-40])])
    step = compile_step(parse("def f(w, g, *, lr=1.0):\n    return -lr * g\n"), "triton")
    for v in values.tolist():
        w = torch.zeros(3, dtype=torch.bfloat16, device=DEVICE)
        step([w], [torch.ones_like(w)], {}, [1], {"lr": v})
        want = torch.tensor([v] * 3, dtype=torch.float32).to(torch.bfloat16)
        if want.isnan().all():
            assert w.isnan().all()
        else:
            assert torch.equal(w.cpu().view(torch.int16), want.view(torch.int16)), v


# --------------------------------------------------------------------------- random programs


def _start(seed: int, shapes, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    w = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).to(DEVICE) for s in shapes]
    g = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).to(DEVICE) for s in shapes]
    return w, g


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    same = (a == b) | (torch.isnan(a) & torch.isnan(b)) | ((a - b).abs() <= rel * (1 + b.abs()))
    return bool(same.all())


def _run_random(program, backend: str, seed: int, shapes, steps: int = 2) -> list[torch.Tensor]:
    w, g = _start(seed, shapes)
    states = {s.name: [0.5] * len(w) if s.scalar else [torch.full_like(x, 0.1) for x in w] for s in program.states}
    step = compile_step(program, backend)
    for k in range(1, steps + 1):
        states.update(step(w, g, states, [k] * len(w), dict(program.defaults)))
    if backend == "triton":
        assert step.launches[0] >= steps
    return w


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=FULL), pytest.param(2, marks=FULL)])
def test_step_matches_reference_on_random_programs(seed):
    programs = random_programs(seed, 25 if seed else 12)
    for i, program in enumerate(programs):
        want = _run_random(program, "reference", i, [(3, 5), (7,), (40,)])
        got = _run_random(program, "triton", i, [(3, 5), (7,), (40,)])
        for a, b in zip(got, want):
            assert _close(a, b), unparse(program)


# --------------------------------------------------------------------------- the population interpreter


def _population_matches(program, members: int = 2, shapes=((3, 5), (7,)), steps: int = 2, seed: int = 0) -> None:
    """Members with different learning rates, each against the reference run at its own lr."""
    program = ensure_lr(program)
    step = triton_population.compile_triton_population(program)
    w, g = _start(seed, list(shapes))
    factors = [0.5, 1.0, 2.0][:members]
    lr = program.defaults["lr"]
    wp = [torch.stack([x] * members).contiguous() for x in w]
    gp = [torch.stack([x] * members).contiguous() for x in g]
    hp = {**program.defaults, "lr": torch.tensor([lr * f for f in factors], dtype=torch.float32)}
    states = init_states(program, wp, hp)
    for s in program.states:
        for buf in states[s.name]:
            buf.fill_(0.5 if s.scalar else 0.1)
    for k in range(1, steps + 1):
        step(wp, gp, states, k, hp)
    assert step.launches[0] >= steps  # the kernel ran (not the torch batched fallback)
    for m, f in enumerate(factors):
        prog = program.with_(hparams=tuple(h if h.name != "lr" else type(h)(h.name, lr * f) for h in program.hparams))
        w2, g2 = _start(seed, list(shapes))
        states2 = {s.name: [0.5] * len(w2) if s.scalar else [torch.full_like(x, 0.1) for x in w2] for s in prog.states}
        ref = compile_step(prog, "reference")
        for k in range(1, steps + 1):
            states2.update(ref(w2, g2, states2, [k] * len(w2), dict(prog.defaults)))
        for got, want in zip(wp, w2):
            assert _close(got[m], want), (unparse(program), m)


@pytest.mark.parametrize("name", subset(["adam", "lion", "lamb", "nadam", "sgd", "rmsprop", "adan", "rprop",
                                         "adabelief", "adopt", "cautious+adamw"], {"adamw", "lamb", "nadam"}))
def test_population_kernel_matches_reference_on_builtins(name):
    _population_matches(load(name))


def test_population_kernel_matches_reference_on_adamw_with_three_members():
    _population_matches(load("adamw"), members=3, shapes=((3, 5), (7,), (600,)), steps=3)


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=FULL), pytest.param(2, marks=FULL)])
def test_population_kernel_matches_reference_on_random_programs(seed):
    ran = 0
    for i, program in enumerate(random_programs(seed, 25 if seed else 5)):
        try:
            triton_population.Bytecode(ensure_lr(program))
        except triton_population.Unsupported:
            continue
        _population_matches(program, seed=i)
        ran += 1
    assert ran >= (20 if seed else 4)


def test_population_kernel_launches_once_per_pass():
    # the interpreter's launches: one per pass over memory plus one per run of scalar code
    bc = triton_population.Bytecode(ensure_lr(load("lamb")))
    kinds = [k for k, _, _ in triton_population._segments(bc.code)]
    assert kinds == ["pass", "scalar", "pass"]
    bc = triton_population.Bytecode(ensure_lr(load("adam")))
    assert [k for k, _, _ in triton_population._segments(bc.code)] == ["pass"]


# --------------------------------------------------------------------------- routing and fallbacks


def test_float64_and_non_contiguous_buckets_fall_back_with_a_warning():
    triton_step._WARNED.clear()
    step = compile_step(load("sgd"), "triton")
    p = torch.ones(4, dtype=torch.float64, device=DEVICE)
    with pytest.warns(RuntimeWarning, match="float64 parameters use the foreach backend"):
        step([p], [torch.ones_like(p)], {}, [1], {"lr": 0.5, "weight_decay": 0.0})
    assert torch.equal(p.cpu(), torch.full((4,), 0.5, dtype=torch.float64))
    q = torch.ones(4, 6, device=DEVICE).t()
    with pytest.warns(RuntimeWarning, match="non-contiguous"):
        step([q], [torch.ones_like(q)], {}, [1], {"lr": 0.5, "weight_decay": 0.0})
    assert torch.equal(q.cpu(), torch.full((6, 4), 0.5))


def test_cpu_parameters_without_the_interpreter_use_the_fused_step(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    triton_step._WARNED.clear()
    step = compile_step(load("sgd"), "triton")
    p = torch.ones(4)
    with pytest.warns(RuntimeWarning, match="CPU parameters use the fused C"):
        step([p], [torch.ones_like(p)], {}, [1], {"lr": 0.5, "weight_decay": 0.0})
    assert torch.equal(p, torch.full((4,), 0.5))


def test_auto_without_triton_uses_foreach_on_cuda_saying_why(monkeypatch):
    monkeypatch.setitem(triton_common._STATE, "available", (False, "triton cannot be imported (test)"))
    triton_step._WARNED.clear()
    step = compile_step(load("adam"), "auto")
    with pytest.warns(RuntimeWarning, match=r"CUDA parameters of program 'adam' use the foreach backend: triton cannot"):
        chosen = step.cuda_step()
    assert chosen is step.fallback  # the foreach step
    with pytest.raises(ValueError, match="backend='triton' cannot run program 'adam': triton cannot be imported"):
        compile_step(load("adam"), "triton")


def test_auto_with_triton_builds_the_triton_step_for_cuda():
    step = compile_step(load("adam"), "auto")
    assert hasattr(step.cuda_step(), "kernels")
    from discover.compile.population_device import population_step

    pop = population_step(ensure_lr(load("adam")))
    assert hasattr(pop.cuda_step(), "bytecode")  # the Triton interpreter, not the torch batched step


@pytest.mark.skipif(DEVICE != "cuda", reason="needs a GPU: on CPU the default backend is the fused C++ kernel")
def test_default_backend_on_cuda_is_the_triton_kernel_and_matches_torch_fused_adam():
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(s, generator=gen).to("cuda") for s in [(64, 32), (32,), (1000,)]]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    theirs = [torch.nn.Parameter(t.clone()) for t in init]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        opt = ProgramOptimizer(ours, "adam", lr=1e-2, weight_decay=0.1)
        twin = torch.optim.Adam(theirs, lr=1e-2, weight_decay=0.1, fused=True)
        for _ in range(100):
            grads = [torch.randn(t.shape, generator=gen).to("cuda") for t in init]
            for p, q, g in zip(ours, theirs, grads):
                p.grad, q.grad = g.clone(), g.clone()
            opt.step()
            twin.step()
    assert opt._step_fn.cuda_step().launches[0] == 100
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- compiles for a real GPU


@pytest.mark.skipif(DEVICE == "cuda", reason="on a GPU every kernel above was compiled for it")
@pytest.mark.parametrize("programs", [pytest.param(["adam", "lamb"], id="default"),
                                      pytest.param(PROGRAMS, id="all", marks=FULL)])
def test_generated_kernels_compile_for_an_h200(programs):
    # the interpreter runs the source as Python; Triton's compiler (to PTX, then ptxas) is stricter
    times = triton_common.offline_compile_times(programs, ("fp32", "bf16"), arch=90)
    assert set(times) == {f"{p}:{d}" for p in programs for d in ("fp32", "bf16")} | {"population"}
    assert all(t > 0 for t in times.values())
