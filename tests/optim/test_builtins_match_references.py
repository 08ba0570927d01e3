"""Every built-in program, run as a `ProgramOptimizer`, matches its published reference.

References are independent of discover: the torch.optim classes, the
pytorch_optimizer package's classes at their default flags (Adan, AdEMAMix, ADOPT,
LAMB, AdaBelief, SignSGD; its `cautious` flag for the Cautious wrapper), a
plain-torch transcription of the Lion paper's rule, and a plain-torch
transcription of Lookahead around a torch optimizer. Each is compared over 300 full-batch steps
of a small MLP, with default and with non-default hyperparameters, on every
compile backend (except "auto", which is one of the others).

The test problem
----------------
Many small-MLP problems are chaotic for adaptive optimizers: Adadelta at lr=1.0
on a zero-mean tanh regression amplifies 1e-16 rounding differences to 1e-1 in
200 steps, even between two mathematically identical formulas. That happens when
parameters oscillate around an optimum, where sign-like (adaptive) updates flip.
So the problem here keeps every gradient's sign stable for the whole run: inputs
are positive (U(0.5, 1.5)), and the target (30 + sin(x . v)) lies far beyond what
the 5-16-1 tanh MLP reaches in 300 steps, so training is a steady descent and no
parameter reaches its optimum. `test_problem_is_not_chaotic` *shows* it for every
configuration: perturbing the initial parameters by 1e-15 (relative) moves the
reference trajectory by at most 1e-11, while the parameters themselves move by
O(1e-2..1). So a mismatch beyond 1e-9 means the optimizer is wrong.

Relative error: max |program - reference| / max |reference| over all parameters,
at every 50th step.
"""
from __future__ import annotations

import importlib.util
import contextlib
from functools import lru_cache

import pytest
import pytorch_optimizer as PO  # a dev dependency: missing, this module fails to import (never skips)
import torch

import discover
from discover.compile import backend_names

STEPS = 300
CHECK_EVERY = 50
F64_RTOL = 1e-9
# float32: the program and torch round differently (e.g. lerp vs mul+addcmul for an EMA,
# (lr / bc) * m / d vs m / d * (lr / bc)), about one float32 ulp (eps = 1.19e-7) per step
# and parameter. The problem does not amplify perturbations (see the guard), so those
# differences add up at most linearly: 300 steps x eps = 3.6e-5 bounds them (measured:
# <= 1e-6). A wrong formula (bias correction, decay, an EMA weight) is off by >= 1e-3.
F32_RTOL = STEPS * torch.finfo(torch.float32).eps
# Some cases do amplify float32 round-off: Muon's Newton-Schulz runs in bfloat16 (a float32 ulp in its
# input can flip a bfloat16 rounding), Prodigy's d estimate divides two sums that nearly cancel, and
# Adafactor at lr=0.2 takes large relative steps. There torch's own float32 run is 1e-4 to 3e-2 away from
# its float64 run; ours may be as far from torch's float32 run as that, times 5 (`f32_rtol`; the formulas
# themselves are held to 1e-9 in float64).
GUARD_PERTURBATION = 1e-15
GUARD_RTOL = 1e-11

# Every backend runs every configuration (the fused backend's C++ kernels compile once per
# program, about 1 s each, and are cached on disk; the whole matrix takes ~30 s on 2 cores).
# The Triton backend runs in Triton's interpreter on CPU: far slower than the others, so its cases
# of these sweeps are in the full Triton set only (python -m pytest -m triton), not the default run.
TRITON_MARKS = (pytest.mark.triton, pytest.mark.triton_full,
                pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed"))


def _marked(backend: str, *values, **kw):
    return pytest.param(backend, *values, marks=TRITON_MARKS if backend == "triton" else (), **kw)


BACKENDS = [b for b in backend_names() if b != "auto"]


# ----------------------------------------------------------------------------- references
class LionReference(torch.optim.Optimizer):
    """Lion as written in the paper (Chen et al., 2023, Program 1), in plain torch."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p)
                m, g = state["m"], p.grad
                c = beta1 * m + (1 - beta1) * g
                p.sub_(group["lr"] * (torch.sign(c) + group["weight_decay"] * p))
                m.copy_(beta2 * m + (1 - beta2) * g)


class LookaheadReference:
    """Lookahead (Zhang et al., 2019) around a torch optimizer: run it, and every k-th step
    ``slow += alpha * (fast - slow); fast.copy_(slow)``; slow starts at the initial parameters."""

    def __init__(self, params, inner, k=5, alpha=0.5):
        self.params = list(params)
        self.inner, self.k, self.alpha = inner, k, alpha
        self.slow = [p.detach().clone() for p in self.params]
        self.count = 0

    def zero_grad(self):
        self.inner.zero_grad()

    @torch.no_grad()
    def step(self):
        self.inner.step()
        self.count += 1
        if self.count % self.k == 0:
            for p, slow in zip(self.params, self.slow):
                slow += self.alpha * (p - slow)
                p.copy_(slow)


def newton_schulz_without_bfloat16(grad, ns_coefficients, ns_steps, eps):
    """torch.optim.Muon's Newton-Schulz (torch 2.13, `_zeropower_via_newtonschulz`) transcribed line
    for line, without its cast to bfloat16: the same iteration in the gradient's own dtype."""
    a, b, c = ns_coefficients
    ortho_grad = grad.clone()  # torch: grad.bfloat16()
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram_matrix = ortho_grad @ ortho_grad.T
        gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
        ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    return ortho_grad


class MuonInOwnDtype(torch.optim.Muon):
    """torch.optim.Muon with its Newton-Schulz run in the parameters' dtype (everything else torch's own)."""

    @torch.no_grad()
    def step(self, closure=None):
        import torch.optim._muon as muon_module

        original = muon_module._zeropower_via_newtonschulz
        muon_module._zeropower_via_newtonschulz = newton_schulz_without_bfloat16
        try:
            return super().step(closure)
        finally:
            muon_module._zeropower_via_newtonschulz = original


O = torch.optim
# id: (program spec, program hyperparameters, reference factory)
CASES = {
    "sgd": ("sgd", {}, lambda ps: O.SGD(ps, lr=1e-3)),
    "sgd-custom": ("sgd", dict(lr=3e-3, weight_decay=0.01), lambda ps: O.SGD(ps, lr=3e-3, weight_decay=0.01)),
    "momentum": ("momentum", {}, lambda ps: O.SGD(ps, lr=1e-3, momentum=0.9)),
    "momentum-custom": ("momentum", dict(lr=1e-3, momentum=0.8, dampening=0.1, weight_decay=0.01),
                        lambda ps: O.SGD(ps, lr=1e-3, momentum=0.8, dampening=0.1, weight_decay=0.01)),
    "nesterov": ("nesterov", {}, lambda ps: O.SGD(ps, lr=1e-3, momentum=0.9, nesterov=True)),
    "nesterov-custom": ("nesterov", dict(lr=1e-3, momentum=0.7, weight_decay=0.01),
                        lambda ps: O.SGD(ps, lr=1e-3, momentum=0.7, nesterov=True, weight_decay=0.01)),
    "adagrad": ("adagrad", {}, lambda ps: O.Adagrad(ps)),
    "adagrad-custom": ("adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-8),
                       lambda ps: O.Adagrad(ps, lr=0.05, lr_decay=0.01, weight_decay=0.01,
                                            initial_accumulator_value=0.1, eps=1e-8)),
    "adadelta": ("adadelta", {}, lambda ps: O.Adadelta(ps)),
    "adadelta-custom": ("adadelta", dict(lr=0.1, rho=0.95, eps=1e-5, weight_decay=0.01),
                        lambda ps: O.Adadelta(ps, lr=0.1, rho=0.95, eps=1e-5, weight_decay=0.01)),
    "rmsprop": ("rmsprop", {}, lambda ps: O.RMSprop(ps)),
    "rmsprop-custom": ("rmsprop", dict(lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=0.01),
                       lambda ps: O.RMSprop(ps, lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=0.01)),
    "adam": ("adam", {}, lambda ps: O.Adam(ps)),
    "adam-custom": ("adam", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01),
                    lambda ps: O.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
    "adamw": ("adamw", {}, lambda ps: O.AdamW(ps)),
    "adamw-custom": ("adamw", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
                     lambda ps: O.AdamW(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "nadam": ("nadam", {}, lambda ps: O.NAdam(ps)),
    "nadam-custom": ("nadam", dict(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01, momentum_decay=0.01),
                     lambda ps: O.NAdam(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01, momentum_decay=0.01)),
    "radam": ("radam", {}, lambda ps: O.RAdam(ps)),
    "radam-custom": ("radam", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01),
                     lambda ps: O.RAdam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
    "adamax": ("adamax", {}, lambda ps: O.Adamax(ps)),
    "adamax-custom": ("adamax", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01),
                      lambda ps: O.Adamax(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
    # t0=100: the running average ax starts moving at step 101 (see test_asgd_average_matches_torch)
    "asgd": ("asgd", {}, lambda ps: O.ASGD(ps)),
    "asgd-custom": ("asgd", dict(lr=3e-3, lambd=0.01, alpha=0.6, t0=100, weight_decay=0.01),
                    lambda ps: O.ASGD(ps, lr=3e-3, lambd=0.01, alpha=0.6, t0=100, weight_decay=0.01)),
    "rprop": ("rprop", {}, lambda ps: O.Rprop(ps)),
    # step sizes that hit both clamps: 1e-3 grows to the 0.01 cap and shrinks towards 1e-4 on sign flips
    "rprop-custom": ("rprop", dict(lr=1e-3, etaminus=0.3, etaplus=1.1, step_size_min=1e-4, step_size_max=0.01),
                     lambda ps: O.Rprop(ps, lr=1e-3, etas=(0.3, 1.1), step_sizes=(1e-4, 0.01))),
    "lion": ("lion", {}, lambda ps: LionReference(ps)),
    "lion-custom": ("lion", dict(lr=3e-4, beta1=0.8, beta2=0.95, weight_decay=0.1),
                    lambda ps: LionReference(ps, lr=3e-4, betas=(0.8, 0.95), weight_decay=0.1)),
    # pytorch_optimizer's classes at their default flags; a betas tuple there is beta1, beta2(, beta3) here
    "adan": ("adan", {}, lambda ps: PO.Adan(ps)),
    "adan-custom": ("adan", dict(lr=3e-3, beta1=0.9, beta2=0.8, beta3=0.95, eps=1e-6, weight_decay=0.01),
                    lambda ps: PO.Adan(ps, lr=3e-3, betas=(0.9, 0.8, 0.95), eps=1e-6, weight_decay=0.01)),
    "ademamix": ("ademamix", {}, lambda ps: PO.AdEMAMix(ps)),
    "ademamix-custom": ("ademamix", dict(lr=3e-3, beta1=0.8, beta2=0.99, beta3=0.999, alpha=2.0, eps=1e-6,
                                         weight_decay=0.01),
                        lambda ps: PO.AdEMAMix(ps, lr=3e-3, betas=(0.8, 0.99, 0.999), alpha=2.0, eps=1e-6,
                                               weight_decay=0.01)),
    "adopt": ("adopt", {}, lambda ps: PO.ADOPT(ps)),
    "adopt-custom": ("adopt", dict(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-4, weight_decay=0.01),
                     lambda ps: PO.ADOPT(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.01)),
    "lamb": ("lamb", {}, lambda ps: PO.Lamb(ps)),  # the clamp of ||w|| at 10: test_lamb_clamps_the_weight_norm
    "lamb-custom": ("lamb", dict(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-4, weight_decay=0.01),
                    lambda ps: PO.Lamb(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.01)),
    "adabelief": ("adabelief", {}, lambda ps: PO.AdaBelief(ps)),
    "adabelief-custom": ("adabelief", dict(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-10, weight_decay=0.01),
                         lambda ps: PO.AdaBelief(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-10, weight_decay=0.01)),
    "signum": ("signum", {}, lambda ps: PO.SignSGD(ps)),
    "signum-custom": ("signum", dict(lr=3e-4, momentum=0.8, weight_decay=0.1),
                      lambda ps: PO.SignSGD(ps, lr=3e-4, momentum=0.8, weight_decay=0.1)),
    # Cautious: pytorch_optimizer's `cautious` flag. Its Lion is the paper's C-Lion. For C-AdamW it has no
    # AdamW with the flag; its AdEMAMix with alpha=0 is torch's AdamW rule exactly (the slow EMA is added
    # times 0; beta3 then plays no part). The wrapper masks the whole inner update, so it is the published
    # rule only without weight decay (see programs/cautious.opt): these cases use weight_decay=0.
    "cautious+lion": ("cautious+lion", {}, lambda ps: PO.Lion(ps, cautious=True)),
    "cautious+lion-custom": ("cautious+lion", dict(lr=3e-4, beta1=0.8, beta2=0.95),
                             lambda ps: PO.Lion(ps, lr=3e-4, betas=(0.8, 0.95), cautious=True)),
    "cautious+adamw": ("cautious+adamw", dict(weight_decay=0.0), lambda ps: PO.AdEMAMix(ps, alpha=0.0, cautious=True)),
    "cautious+adamw-custom": ("cautious+adamw", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.0),
                              lambda ps: PO.AdEMAMix(ps, lr=0.01, betas=(0.8, 0.99, 0.5), eps=1e-6, alpha=0.0,
                                                     cautious=True)),
    "cautious+adopt": ("cautious+adopt", {}, lambda ps: PO.ADOPT(ps, cautious=True)),
    "cautious+adopt-custom": ("cautious+adopt", dict(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-4),
                              lambda ps: PO.ADOPT(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-4, cautious=True)),
    # Matrix, row/column, group and evaluation-weight programs (issue 13). Muon runs on a model without
    # biases (every parameter 2-D, as torch.optim.Muon requires): see NO_BIAS.
    "muon": ("muon", {}, lambda ps: O.Muon(ps)),  # Newton-Schulz in bfloat16, as torch
    "muon-custom": ("muon", dict(lr=0.01, weight_decay=0.01, momentum=0.9, nesterov=0, ns_steps=4, ns_a=3.0,
                                 ns_b=-3.2, ns_c=1.2, eps=1e-6),
                    lambda ps: O.Muon(ps, lr=0.01, weight_decay=0.01, momentum=0.9, nesterov=False,
                                      ns_coefficients=(3.0, -3.2, 1.2), eps=1e-6, ns_steps=4)),
    "muon-own-dtype": ("muon", dict(lr=0.02, ns_bf16=0), lambda ps: MuonInOwnDtype(ps, lr=0.02)),
    "adafactor": ("adafactor", {}, lambda ps: O.Adafactor(ps)),
    # lr=0.2: the relative step size min(lr, 1 / sqrt(t)) switches to 1 / sqrt(t) at step 25
    "adafactor-custom": ("adafactor", dict(lr=0.2, beta2_decay=-0.5, eps1=1e-3, eps2=1e-4, d=2, weight_decay=0.01),
                         lambda ps: O.Adafactor(ps, lr=0.2, beta2_decay=-0.5, eps=(1e-3, 1e-4), d=2.0,
                                                weight_decay=0.01)),
    "prodigy": ("prodigy", {}, lambda ps: PO.Prodigy(ps)),
    "prodigy-custom": ("prodigy", dict(lr=0.5, beta1=0.8, beta2=0.99, beta3=0.9, d0=1e-5, d_coef=0.5,
                                       growth_rate=1.05, weight_decay=0.01),
                       lambda ps: PO.Prodigy(ps, lr=0.5, betas=(0.8, 0.99), beta3=0.9, d0=1e-5, d_coef=0.5,
                                             growth_rate=1.05, weight_decay=0.01)),
    "schedulefree_adamw": ("schedulefree_adamw", {}, lambda ps: PO.ScheduleFreeAdamW(ps)),
    "schedulefree_adamw-custom": ("schedulefree_adamw", dict(lr=0.01, beta1=0.8, beta2=0.99, weight_decay=0.01, r=0.5,
                                                             weight_lr_power=1, warmup_steps=20, decoupling_c=2,
                                                             eps=1e-6),
                                  lambda ps: PO.ScheduleFreeAdamW(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01, r=0.5,
                                                                  weight_lr_power=1, warmup_steps=20, decoupling_c=2,
                                                                  eps=1e-6)),
    "lookahead+adam": ("lookahead+adam", {}, lambda ps: LookaheadReference(ps, O.Adam(ps))),
    "lookahead+adam-custom": ("lookahead+adam", dict(lr=0.01, k=3, alpha=0.7),
                              lambda ps: LookaheadReference(ps, O.Adam(ps, lr=0.01), k=3, alpha=0.7)),
    "lookahead+radam": ("lookahead+radam", {}, lambda ps: LookaheadReference(ps, O.RAdam(ps))),
    "lookahead+radam-custom": ("lookahead+radam", dict(lr=0.01, beta2=0.99, weight_decay=0.01, k=4, alpha=0.6),
                               lambda ps: LookaheadReference(ps, O.RAdam(ps, lr=0.01, betas=(0.9, 0.99), weight_decay=0.01),
                                                             k=4, alpha=0.6)),
    "lookahead+sgd": ("lookahead+sgd", {}, lambda ps: LookaheadReference(ps, O.SGD(ps, lr=1e-3))),
    "lookahead+sgd-custom": ("lookahead+sgd", dict(lr=3e-3, weight_decay=0.01, k=7, alpha=0.3),
                             lambda ps: LookaheadReference(ps, O.SGD(ps, lr=3e-3, weight_decay=0.01), k=7, alpha=0.3)),
}


def test_every_builtin_is_covered_with_default_and_custom_hyperparameters():
    specs = {spec for spec, _, _ in CASES.values()}
    wrappers = {name for name in discover.builtin_names() if discover.load(name).is_wrapper}
    assert set(discover.builtin_names()) - wrappers <= specs
    for wrapper in wrappers:  # each wrapper around at least two programs
        assert len({spec for spec in specs if spec.startswith(wrapper + "+")}) >= 2
    for spec in specs:
        assert spec in CASES and f"{spec}-custom" in CASES
    for spec, hp, _ in CASES.values():  # custom values really differ from the defaults
        defaults = discover.load(spec).defaults
        assert all(k in defaults for k in hp)


# ----------------------------------------------------------------------------- the problem
@contextlib.contextmanager
def default_dtype(dtype):
    """torch.optim.NAdam keeps mu_product (and step) in the *default* dtype: in float32 by
    default, which would make the float64 reference itself round to float32. Run float64
    references with float64 as the default dtype (restored afterwards)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


NO_BIAS = {"muon", "muon-custom", "muon-own-dtype"}  # programs for 2-D parameters only


def make_problem(dtype, bias=True):
    gen = torch.Generator().manual_seed(0)
    x = 0.5 + torch.rand(64, 5, generator=gen, dtype=torch.float64)
    v = torch.randn(5, 1, generator=gen, dtype=torch.float64)
    y = 30 + torch.sin(x @ v)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16, bias=bias), torch.nn.Tanh(),
                                torch.nn.Linear(16, 1, bias=bias)).to(dtype)
    init = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=init, dtype=torch.float64))
    return model, x.to(dtype), y.to(dtype)


def train(make_optimizer, dtype, perturb: float = 0.0, bias: bool = True) -> torch.Tensor:
    """Parameters (flattened) at every CHECK_EVERY-th step: a (STEPS / CHECK_EVERY, n) tensor."""
    model, x, y = make_problem(dtype, bias)
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1 + perturb)
    params = list(model.parameters())
    opt = make_optimizer(params)
    snapshots = []
    for t in range(1, STEPS + 1):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        if t % CHECK_EVERY == 0:
            snapshots.append(torch.cat([p.detach().reshape(-1) for p in params]).clone())
    return torch.stack(snapshots)


@lru_cache(maxsize=None)
def reference_run(case: str, dtype: torch.dtype, perturb: float = 0.0) -> torch.Tensor:
    with default_dtype(dtype if dtype == torch.float64 else torch.get_default_dtype()):
        return train(CASES[case][2], dtype, perturb, bias=case not in NO_BIAS)


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def initial_params(dtype, bias=True) -> torch.Tensor:
    model, _, _ = make_problem(dtype, bias)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("case", list(CASES))
def test_problem_is_not_chaotic(case):
    """The reference trajectory barely responds to a 1e-15 perturbation, and it does move."""
    base = reference_run(case, torch.float64)
    perturbed = reference_run(case, torch.float64, GUARD_PERTURBATION)
    assert torch.isfinite(base).all()
    sensitivity = rel_error(perturbed, base)
    assert sensitivity <= GUARD_RTOL, f"{case}: a {GUARD_PERTURBATION} perturbation grows to {sensitivity:.2e}"
    moved = rel_error(base[-1], initial_params(torch.float64, bias=case not in NO_BIAS))
    assert moved > 1e-2, f"{case}: parameters moved only {moved:.2e}; the comparison would be weak"


def _params():
    for backend in BACKENDS:
        for case in CASES:
            for dtype in (torch.float64, torch.float32):
                yield _marked(backend, case, dtype, id=f"{backend}-{case}-{str(dtype)[6:]}")


def f32_rtol(case: str) -> float:
    """F32_RTOL, or five times the distance of torch's float32 run from its float64 run where that is larger
    (the problem amplifies float32 round-off: see F32_RTOL)."""
    own_noise = rel_error(reference_run(case, torch.float32), reference_run(case, torch.float64))
    return max(F32_RTOL, 5 * own_noise)


@pytest.mark.parametrize("backend, case, dtype", list(_params()))
def test_builtin_matches_reference(backend, case, dtype):
    spec, hp, _ = CASES[case]
    want = reference_run(case, dtype)
    got = train(lambda ps: discover.ProgramOptimizer(ps, spec, backend=backend, **hp), dtype, bias=case not in NO_BIAS)
    assert got.dtype == dtype
    err = rel_error(got, want)
    rtol = F64_RTOL if dtype == torch.float64 else f32_rtol(case)
    assert err <= rtol, f"{backend} {case} {dtype}: relative error {err:.3e} > {rtol:.1e}"


def test_nadam_reference_needs_float64_scalars():
    """Why `default_dtype` exists: with float32 scalars torch's own NAdam drifts from its
    float64 self by far more than 1e-9; with float64 scalars the program matches it."""
    with default_dtype(torch.float32):
        drifting = train(CASES["nadam"][2], torch.float64)
    exact = reference_run("nadam", torch.float64)
    assert rel_error(drifting, exact) > 1e-12
    got = train(lambda ps: discover.ProgramOptimizer(ps, "nadam", backend="reference"), torch.float64)
    assert rel_error(got, exact) <= F64_RTOL


def test_a_wrong_formula_is_caught_by_these_tolerances():
    """Adam without its second-moment bias correction (a plausible bug) fails the float32 bound."""
    wrong = discover.parse(
        "def adam(w, g, step, m=0, v=0, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):\n"
        "    g = g + weight_decay * w\n"
        "    m = interp(g, m, beta1)\n"
        "    v = interp(g * g, v, beta2)\n"
        "    return lr / (1 - beta1 ** step) * m / (sqrt(v) + eps), m, v\n")
    got = train(lambda ps: discover.ProgramOptimizer(ps, wrong, backend="reference"), torch.float32)
    assert rel_error(got, reference_run("adam", torch.float32)) > 100 * F32_RTOL


@pytest.mark.parametrize("backend", [_marked(b) for b in BACKENDS])
def test_asgd_average_matches_torch(backend):
    """ASGD's product is its running average `ax` (and its eta and mu), which never feeds back
    into the parameters the other tests compare: held to torch's state directly. With t0=100
    the average is a plain copy of w for 100 steps and a true running mean after."""
    hp = dict(lr=3e-3, lambd=0.01, alpha=0.6, t0=100, weight_decay=0.01)
    with default_dtype(torch.float64):
        runs = []
        for make in (lambda ps: O.ASGD(ps, **hp),
                     lambda ps: discover.ProgramOptimizer(ps, "asgd", backend=backend, **hp)):
            model, x, y = make_problem(torch.float64)
            opt = make(list(model.parameters()))
            for _ in range(STEPS):
                opt.zero_grad()
                (model(x) - y).pow(2).mean().backward()
                opt.step()
            runs.append((list(model.parameters()), opt))
    (theirs_p, theirs), (ours_p, ours) = runs
    ax_theirs = torch.cat([theirs.state[p]["ax"].reshape(-1) for p in theirs_p])
    ax_ours = torch.cat([ours.state[p]["ax"].reshape(-1) for p in ours_p])
    w_ours = torch.cat([p.detach().reshape(-1) for p in ours_p])
    assert rel_error(ax_ours, w_ours) > 1e-3  # the average really differs from the last iterate
    assert rel_error(ax_ours, ax_theirs) <= F64_RTOL
    for p, q in zip(ours_p, theirs_p):
        assert ours.state[p]["eta"] == pytest.approx(theirs.state[q]["eta"].item(), rel=1e-12)
        assert ours.state[p]["mu"] == pytest.approx(theirs.state[q]["mu"].item(), rel=1e-12)
        assert ours.state[p]["mu"] == pytest.approx(1 / (STEPS - 100))


@pytest.mark.parametrize("backend", [_marked(b) for b in BACKENDS])
def test_lamb_clamps_the_weight_norm(backend):
    """LAMB's trust ratio reads min(||w||, 10) (pytorch_optimizer's Lamb.clamp). The MLP's weights
    never reach a norm of 10, so here its first layer starts 4x larger (norm ~18.7 throughout):
    without the clamp the trajectory is 1e-1 away from the reference's."""
    def run(make):
        with default_dtype(torch.float64):
            model, x, y = make_problem(torch.float64)
            with torch.no_grad():
                model[0].weight.mul_(4)
            params = list(model.parameters())
            opt = make(params)
            norms = []
            for _ in range(STEPS):
                opt.zero_grad()
                (model(x) - y).pow(2).mean().backward()
                opt.step()
                norms.append(params[0].norm().item())
        return torch.cat([p.detach().reshape(-1) for p in params]), min(norms)

    want, smallest = run(lambda ps: PO.Lamb(ps))
    assert smallest > 10
    got, _ = run(lambda ps: discover.ProgramOptimizer(ps, "lamb", backend=backend))
    assert rel_error(got, want) <= F64_RTOL


@pytest.mark.parametrize("backend", [_marked(b) for b in BACKENDS])
def test_schedulefree_eval_and_train_weights_match_pytorch_optimizer(backend):
    """optimizer.eval() gives pytorch_optimizer.ScheduleFreeAdamW's averaged weights x, train() its y
    again, and training goes on from there as the reference's does (float64, 60 + 60 steps)."""
    gen = torch.Generator().manual_seed(5)
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in ((4, 3), (3,))]
    grads = [[torch.randn(x.shape, generator=gen, dtype=torch.float64) for x in start] for _ in range(120)]
    ours_p = [torch.nn.Parameter(x.clone()) for x in start]
    theirs_p = [torch.nn.Parameter(x.clone()) for x in start]
    hp = dict(lr=0.01, weight_decay=0.01, warmup_steps=10)
    ours = discover.ProgramOptimizer(ours_p, "schedulefree_adamw", backend=backend, **hp)
    theirs = PO.ScheduleFreeAdamW(theirs_p, **hp)
    theirs.train()

    def flat(ps):
        return torch.cat([p.detach().reshape(-1) for p in ps])

    for t, gs in enumerate(grads):
        for a, b, g in zip(ours_p, theirs_p, gs):
            a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
        if t == 59:
            y = flat(ours_p)
            ours.eval()
            theirs.eval()
            assert rel_error(flat(ours_p), flat(theirs_p)) <= F64_RTOL
            assert rel_error(flat(ours_p), y) > 1e-4  # the average is not the training point
            ours.train()
            theirs.train()
            assert torch.equal(flat(ours_p), y)  # put back bit for bit
            assert rel_error(flat(ours_p), flat(theirs_p)) <= F64_RTOL
    assert rel_error(flat(ours_p), flat(theirs_p)) <= F64_RTOL
