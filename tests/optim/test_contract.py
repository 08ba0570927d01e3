"""`ProgramOptimizer` keeps the `torch.optim.Optimizer` contract.

Behaviour is checked against torch's own optimizers doing the same thing (same
groups, schedulers, scalers, closures), against hand-computed update sizes, or
against an uninterrupted run (state_dict across processes, bit for bit).
"""
from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import discover
from discover import ProgramOptimizer
from discover.compile import backend_names

# The Triton backend runs in Triton's interpreter on CPU: far slower than the others, so its cases
# of these sweeps are in the full Triton set only (python -m pytest -m triton), not the default run.
TRITON_MARKS = (pytest.mark.triton, pytest.mark.triton_full,
                pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed"))


def _marked(backend: str, *values, **kw):
    return pytest.param(backend, *values, marks=TRITON_MARKS if backend == "triton" else (), **kw)


BACKENDS = [b for b in backend_names() if b != "auto"]
F64 = dict(rtol=1e-12, atol=1e-15)


def make_params(seed=0, shapes=((4, 3), (3,), (2, 2)), dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)) for s in shapes]


def grad_stream(params, steps, seed=1):
    """The same sequence of gradients for any copy of `params`."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params] for _ in range(steps)]


def run_pair(ours, theirs, a, b, grads, after_step=None):
    for t, gs in enumerate(grads):
        for p, q, g in zip(a, b, gs):
            p.grad = g.to(p.dtype)
            q.grad = g.to(q.dtype)
        ours.step()
        theirs.step()
        if after_step:
            after_step(t)


def assert_params_close(a, b, **tol):
    for p, q in zip(a, b):
        torch.testing.assert_close(p.detach(), q.detach(), **(tol or F64))


# ----------------------------------------------------------------------------- param groups
def test_param_groups_with_their_own_hyperparameters_match_torch():
    a, b = make_params(), make_params()
    ours = ProgramOptimizer([{"params": a[:2], "lr": 0.05, "beta1": 0.5}, {"params": a[2:]}],
                            "adam", lr=0.01, beta2=0.9)
    theirs = torch.optim.Adam([{"params": b[:2], "lr": 0.05, "betas": (0.5, 0.9)}, {"params": b[2:]}],
                              lr=0.01, betas=(0.9, 0.9))
    assert ours.param_groups[0]["lr"] == 0.05 and ours.param_groups[1]["lr"] == 0.01
    assert ours.param_groups[0]["beta1"] == 0.5 and ours.param_groups[1]["beta1"] == 0.9
    run_pair(ours, theirs, a, b, grad_stream(a, 6))
    assert_params_close(a, b)


def test_add_param_group_mid_training_matches_torch():
    a, b = make_params(), make_params()
    ours = ProgramOptimizer(a[:1], "momentum", lr=0.1)
    theirs = torch.optim.SGD(b[:1], lr=0.1, momentum=0.9)
    grads = grad_stream(a, 8)
    run_pair(ours, theirs, a[:1], b[:1], [g[:1] for g in grads[:3]])
    ours.add_param_group({"params": a[1:], "lr": 0.02, "momentum": 0.5})
    theirs.add_param_group({"params": b[1:], "lr": 0.02, "momentum": 0.5})
    assert ours.param_groups[1]["dampening"] == 0.0  # the program's default fills the rest
    run_pair(ours, theirs, a, b, grads[3:])
    assert_params_close(a, b)


def test_unknown_param_group_keys_are_rejected_with_the_allowed_names():
    a = make_params()
    opt = ProgramOptimizer(a[:1], "adam")
    with pytest.raises(ValueError) as info:
        opt.add_param_group({"params": a[1:], "rho": 0.9})
    assert "'rho'" in str(info.value)
    assert "allowed: lr, beta1, beta2, eps, weight_decay, betas" in str(info.value)
    with pytest.raises(ValueError, match="allowed: lr, beta1"):
        ProgramOptimizer([{"params": a[1:], "momentum": 0.9}], "adam")
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match="must be a number"):
        opt.add_param_group({"params": a[1:], "lr": "fast"})


def test_unknown_hyperparameter_lists_the_allowed_names():
    with pytest.raises(ValueError) as info:
        ProgramOptimizer(make_params(), "lion", momentum=0.9)
    msg = str(info.value)
    assert "'momentum'" in msg and "allowed: lr, beta1, beta2, weight_decay, betas" in msg


def test_a_wrapper_alone_is_a_clear_error():
    with pytest.raises(ValueError) as info:
        ProgramOptimizer(make_params(), "lookahead")
    assert "lookahead+adam" in str(info.value) and "wraps" in str(info.value)


def test_unknown_program_and_backend_are_clear_errors():
    with pytest.raises(ValueError, match="unknown program"):
        ProgramOptimizer(make_params(), "adamm")
    with pytest.raises(ValueError, match="unknown backend"):
        ProgramOptimizer(make_params(), "adam", backend="nope")


# ----------------------------------------------------------------------------- state_dict across processes
SPECS_FOR_RESUME = ["lookahead+adam", "nadam", "adagrad"]
N1, N2 = 7, 8  # 7 is not a multiple of Lookahead's k=5: slow weights differ from the params when saved

TRAIN = textwrap.dedent('''
    import sys, torch, discover
    torch.set_num_threads(1)

    def build(spec, backend):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
        opt = discover.ProgramOptimizer(model.parameters(), spec, backend=backend, lr=0.05)
        return model, opt

    def train(model, opt, first, count):
        for t in range(first, first + count):
            gen = torch.Generator().manual_seed(100 + t)
            x = torch.randn(8, 3, generator=gen, dtype=torch.float64)
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()

    def flat(model):
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])
''')


COMBOS = [(spec, backend) for spec in SPECS_FOR_RESUME for backend in BACKENDS if backend != "triton"]


@pytest.fixture(scope="module")
def resumed_runs(tmp_path_factory):
    """Train N1 steps here, save model + optimizer state, and continue N2 steps from those
    files in ONE new Python process (for every spec and backend); also continue here."""
    torch.set_num_threads(1)
    ns: dict = {}
    exec(TRAIN, ns)  # the same helpers as the child process, in this one
    root = tmp_path_factory.mktemp("resume")
    runs = {}
    for i, (spec, backend) in enumerate(COMBOS):
        model, opt = ns["build"](spec, backend)
        ns["train"](model, opt, 0, N1)
        saved_state = opt.state_dict()
        path = root / f"ckpt{i}.pt"
        torch.save({"model": model.state_dict(), "opt": saved_state}, path)
        saved_state = torch.load(path, weights_only=True)["opt"]
        first_param = next(model.parameters()).detach().clone()
        ns["train"](model, opt, N1, N2)  # uninterrupted
        fresh_model, fresh_opt = ns["build"](spec, backend)  # negative control: state lost
        fresh_model.load_state_dict(torch.load(path, weights_only=True)["model"])
        ns["train"](fresh_model, fresh_opt, N1, N2)
        runs[spec, backend] = dict(path=path, saved=saved_state, first_param=first_param,
                                   params=ns["flat"](model), state=opt.state_dict(), fresh=ns["flat"](fresh_model))
    child = TRAIN + textwrap.dedent(f'''
        for i, (spec, backend) in enumerate({COMBOS!r}):
            path = {str(root)!r} + f"/ckpt{{i}}.pt"
            model, opt = build(spec, backend)
            saved = torch.load(path, weights_only=True)
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            train(model, opt, {N1}, {N2})
            torch.save({{"params": flat(model), "state": opt.state_dict()}}, path + ".out")
    ''')
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", child], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for run in runs.values():
        run["resumed"] = torch.load(str(run["path"]) + ".out", weights_only=True)
    return runs


@pytest.mark.parametrize("spec, backend", COMBOS)
def test_state_dict_round_trips_across_processes_bit_for_bit(resumed_runs, spec, backend):
    run = resumed_runs[spec, backend]
    first = run["saved"]["state"][0]
    assert first["step"] == N1
    if spec == "lookahead+adam":
        assert not torch.equal(first["slow"], run["first_param"])  # the slow weights matter
    if spec == "nadam":
        assert isinstance(first["mu_product"], float) and first["mu_product"] < 1
    assert torch.equal(run["resumed"]["params"], run["params"])
    for key, value in run["state"]["state"][0].items():
        other = run["resumed"]["state"]["state"][0][key]
        assert torch.equal(torch.as_tensor(other), torch.as_tensor(value)), key
    assert run["resumed"]["state"]["param_groups"] == run["state"]["param_groups"]
    # negative control: continuing from a fresh optimizer (state lost) gives other params
    assert not torch.equal(run["fresh"], run["params"])


def test_load_state_dict_casts_state_to_the_parameter_dtype():
    a = make_params(dtype=torch.float64)
    opt = ProgramOptimizer(a, "adam")
    for p, g in zip(a, grad_stream(a, 1)[0]):
        p.grad = g
    opt.step()
    b = make_params(dtype=torch.float32)
    other = ProgramOptimizer(b, "adam")
    other.load_state_dict(opt.state_dict())
    assert other.state[b[0]]["m"].dtype == torch.float32 and other.state[b[0]]["step"] == 1


# ----------------------------------------------------------------------------- closures, zero_grad, hooks
def test_step_with_closure_returns_the_loss_and_uses_its_gradients():
    torch.manual_seed(0)
    model_a = torch.nn.Linear(3, 1).double()
    model_b = torch.nn.Linear(3, 1).double()
    model_b.load_state_dict(model_a.state_dict())
    x = torch.randn(5, 3, dtype=torch.float64)
    ours = ProgramOptimizer(model_a.parameters(), "adam", lr=0.1)
    theirs = torch.optim.Adam(model_b.parameters(), lr=0.1)
    calls = []

    def closure_for(model, opt):
        def closure():  # LBFGS style: zero, re-evaluate, backward, return the loss
            calls.append(torch.is_grad_enabled())
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            return loss
        return closure

    for _ in range(4):
        for p in model_a.parameters():
            p.grad = torch.full_like(p, 1e6)  # stale garbage the closure must replace
        expected = model_a(x).pow(2).mean().item()
        loss = ours.step(closure_for(model_a, ours))
        assert loss.item() == expected
        theirs.step(closure_for(model_b, theirs))
    assert calls == [True] * 8  # once per step, with grad enabled inside step's no_grad
    assert_params_close(list(model_a.parameters()), list(model_b.parameters()))
    assert ours.step() is None


def test_zero_grad():
    a = make_params()
    opt = ProgramOptimizer(a, "sgd")
    for p in a:
        p.grad = torch.ones_like(p)
    opt.zero_grad(set_to_none=False)
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in a)
    opt.zero_grad()
    assert all(p.grad is None for p in a)


def test_step_pre_and_post_hooks_fire_in_order():
    a = make_params()
    opt = ProgramOptimizer(a, "sgd", lr=0.5)
    events = []
    before = a[0].detach().clone()
    h1 = opt.register_step_pre_hook(lambda o, args, kwargs: events.append(("pre", o is opt, torch.equal(a[0], before))))
    h2 = opt.register_step_post_hook(lambda o, args, kwargs: events.append(("post", o is opt, torch.equal(a[0], before))))
    for p in a:
        p.grad = torch.ones_like(p)
    opt.step()
    assert events == [("pre", True, True), ("post", True, False)]
    h1.remove()
    h2.remove()
    opt.step()
    assert len(events) == 2


def test_params_without_grad_are_skipped_and_their_steps_not_counted():
    a, b = make_params(), make_params()
    ours = ProgramOptimizer(a, "adam", lr=0.1)
    theirs = torch.optim.Adam(b, lr=0.1)
    grads = grad_stream(a, 6)
    initial = a[1].detach().clone()
    for t, gs in enumerate(grads):
        for i, (p, q, g) in enumerate(zip(a, b, gs)):
            has_grad = not (i == 1 and t < 3) and not (i == 2 and t % 2 == 0)
            p.grad = g.clone() if has_grad else None
            q.grad = g.clone() if has_grad else None
        ours.step()
        theirs.step()
        if t < 3:
            assert a[1] not in ours.state and torch.equal(a[1].detach(), initial)
    assert ours.state[a[0]]["step"] == 6
    assert ours.state[a[1]]["step"] == 3
    assert ours.state[a[2]]["step"] == 3
    assert_params_close(a, b)  # per-parameter bias correction follows each one's own step count


def test_tensor_state_of_a_param_without_grad_is_untouched():
    a = make_params()
    opt = ProgramOptimizer(a, "adam", lr=0.1)
    for p in a:
        p.grad = torch.ones_like(p)
    opt.step()
    saved = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[a[0]].items()}
    a[0].grad = None
    opt.step()
    for k, v in opt.state[a[0]].items():
        assert torch.equal(torch.as_tensor(v), torch.as_tensor(saved[k])), k


# ----------------------------------------------------------------------------- schedulers
def test_step_lr_drives_the_actual_update_size():
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = ProgramOptimizer([w], "sgd", lr=0.8)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    g = torch.tensor([1.0, -2.0, 0.25], dtype=torch.float64)
    for t in range(10):
        before = w.detach().clone()
        w.grad = g.clone()
        opt.step()
        sched.step()
        expected_lr = 0.8 * 0.5 ** (t // 3)  # hand-computed schedule
        torch.testing.assert_close(before - w.detach(), expected_lr * g, rtol=1e-12, atol=0)


def test_one_cycle_lr_without_momentum_cycling_matches_torch_adam():
    a, b = make_params(), make_params()
    ours = ProgramOptimizer(a, "adam", lr=0.01)
    theirs = torch.optim.Adam(b, lr=0.01)
    kw = dict(max_lr=0.1, total_steps=12, cycle_momentum=False)
    s1 = torch.optim.lr_scheduler.OneCycleLR(ours, **kw)
    s2 = torch.optim.lr_scheduler.OneCycleLR(theirs, **kw)
    lrs = []

    def after(t):
        lrs.append(ours.param_groups[0]["lr"])
        assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"]
        s1.step()
        s2.step()

    run_pair(ours, theirs, a, b, grad_stream(a, 12), after)
    assert max(lrs) > 5 * min(lrs)  # the schedule really varied
    assert_params_close(a, b)


def test_one_cycle_lr_cycles_the_momentum_hyperparameter_like_torch_sgd():
    a, b = make_params(), make_params()
    ours = ProgramOptimizer(a, "momentum", lr=0.01, momentum=0.9)
    theirs = torch.optim.SGD(b, lr=0.01, momentum=0.9)
    kw = dict(max_lr=0.1, total_steps=12, base_momentum=0.8, max_momentum=0.95)
    s1 = torch.optim.lr_scheduler.OneCycleLR(ours, **kw)
    s2 = torch.optim.lr_scheduler.OneCycleLR(theirs, **kw)
    momenta = []

    def after(t):
        momenta.append(ours.param_groups[0]["momentum"])
        assert ours.param_groups[0]["momentum"] == theirs.param_groups[0]["momentum"]
        s1.step()
        s2.step()

    run_pair(ours, theirs, a, b, grad_stream(a, 12), after)
    assert min(momenta) < 0.85 and max(momenta) > 0.9
    assert_params_close(a, b)


def test_tensor_hyperparameters_as_schedulers_set_them():
    a, b = make_params(), make_params()
    # float64 tensors: torch.optim computes lr / bias_correction in the tensor's dtype
    ours = ProgramOptimizer(a, "adam", lr=torch.tensor(0.05, dtype=torch.float64))
    theirs = torch.optim.Adam(b, lr=torch.tensor(0.05, dtype=torch.float64), foreach=False)
    s1 = torch.optim.lr_scheduler.StepLR(ours, step_size=2, gamma=0.3)
    s2 = torch.optim.lr_scheduler.StepLR(theirs, step_size=2, gamma=0.3)

    def after(t):
        assert torch.is_tensor(ours.param_groups[0]["lr"])
        s1.step()
        s2.step()
        if t == 3:  # a 0-d tensor for another hyperparameter, as a custom scheduler might set
            ours.param_groups[0]["beta1"] = torch.tensor(0.7, dtype=torch.float64)
            theirs.param_groups[0]["betas"] = (0.7, 0.999)

    run_pair(ours, theirs, a, b, grad_stream(a, 8), after)
    assert_params_close(a, b)
    with pytest.raises(ValueError, match="must be a number"):
        ProgramOptimizer(a, "adam", lr=torch.tensor([0.1, 0.2]))


# ----------------------------------------------------------------------------- AMP
def test_grad_scaler_matches_torch_and_skips_steps_with_inf_grads():
    torch.manual_seed(0)
    model_a = torch.nn.Linear(4, 2)
    model_b = torch.nn.Linear(4, 2)
    model_b.load_state_dict(model_a.state_dict())
    ours = ProgramOptimizer(model_a.parameters(), "adam", lr=0.01)
    theirs = torch.optim.Adam(model_b.parameters(), lr=0.01)
    sa = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    sb = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    x = torch.randn(8, 4)
    for t in range(6):
        for model, opt, scaler in ((model_a, ours, sa), (model_b, theirs, sb)):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(x).float().pow(2).mean()
            scaler.scale(loss).backward()
            if t == 3:
                model.weight.grad[0, 0] = math.inf
            before = [p.detach().clone() for p in model.parameters()]
            scaler.step(opt)
            scaler.update()
            if t == 3:  # skipped: parameters and state untouched
                assert all(torch.equal(p0, p) for p0, p in zip(before, model.parameters()))
        if t == 3:
            assert ours.state[model_a.weight]["step"] == 3
            assert sa.get_scale() == 2.0 ** 9
    assert ours.state[model_a.weight]["step"] == 5
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- dtypes
BF16_ULP = 2.0 ** -7  # bfloat16 has 8 significant bits


@pytest.mark.parametrize("backend", [_marked(b) for b in BACKENDS])
def test_mixed_dtypes_in_one_group_match_torch(backend):
    dtypes = (torch.float64, torch.float32, torch.bfloat16, torch.float32)
    a = [torch.nn.Parameter(p.detach().to(dt)) for p, dt in zip(make_params(shapes=((5,), (3, 2), (4,), (2,))), dtypes)]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a backend may say it falls back for bfloat16
        ours = ProgramOptimizer(a, "adam", backend=backend, lr=0.05, weight_decay=0.1)
        theirs = torch.optim.Adam(b, lr=0.05, weight_decay=0.1)
        run_pair(ours, theirs, a, b, grad_stream(a, 10))
    for p, q in zip(a, b):
        assert p.dtype == q.dtype and all(ours.state[p][k].dtype == p.dtype for k in ("m", "v"))
        err = ((p.double() - q.double()).abs().max() / q.double().abs().max()).item()
        # float64: round-off; float32: 10 steps of a few ulps; bfloat16: ops round to 8 bits
        # in both, in a different order (a couple of bfloat16 ulps after 10 steps)
        bound = {torch.float64: 1e-13, torch.float32: 1e-5, torch.bfloat16: 3 * BF16_ULP}[p.dtype]
        assert err <= bound, (p.dtype, err)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("spec", [s for s in discover.builtin_names() if not discover.load(s).is_wrapper]
                         + ["lookahead+adam", "cautious+adamw"])
def test_every_builtin_steps_params_of_each_dtype_in_their_dtype(spec, dtype):
    a = make_params(dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # steps bfloat16 can see (ADOPT's first update, at step 2, is only lr * (1 - beta1) * clip(g / |g_1|);
        # Prodigy's first steps are d0 * lr); Muon reads the vector among these parameters as a diagonal matrix
        extra = {"prodigy": dict(d0=0.01), "muon": dict(non_matrix="diagonal")}.get(spec, {})
        opt = ProgramOptimizer(a, spec, lr={"adadelta": 1.0, "adopt": 0.1, "prodigy": 1.0}.get(spec, 0.01), **extra)
        before = [p.detach().clone() for p in a]
        for gs in grad_stream(a, 3):
            for p, g in zip(a, gs):
                p.grad = g.to(dtype)
            opt.step()
    for p, p0 in zip(a, before):
        assert p.dtype == dtype and torch.isfinite(p).all() and not torch.equal(p, p0)
        for name in opt.program.state_names:
            value = opt.state[p][name]
            assert (value.dtype == dtype) if torch.is_tensor(value) else isinstance(value, float)


def test_sparse_gradients_are_a_clear_runtime_error():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = ProgramOptimizer(emb.parameters(), "adam")
    emb(torch.tensor([1, 2])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()
    assert torch.equal(emb.weight.detach(), before)
