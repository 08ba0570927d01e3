"""lr is a pure scale: every built-in's update is positively homogeneous of degree 1 in lr (issue #10)."""
import pytest
import torch

from discover import load, parse
from discover.analysis.lr_scale import lr_scale_violation
from discover.compile.reference import interpret as evaluate
from discover.lang.ir import HParam, Ref
from discover.library import builtin_names, programs_dir

WRAPPERS = {"lookahead", "cautious"}
# Built-ins whose published rule is not a pure scale of lr (their header comments say so), with the
# hyperparameters at which the probe sees it: ASGD's step size lr / (1 + lambd * lr * t)^alpha; Rprop,
# where lr is only the initial step size and step sizes are clamped (at its defaults the clamps are
# far away, so the probe alone would not see it); Adan's proximal decay and LAMB's trust ratio, which
# reads the decayed weights, once weight_decay > 0 (at their default weight_decay=0 they are scales).
NOT_A_SCALE = {"asgd": {}, "rprop": {"step_size_max": 0.015}}
NOT_A_SCALE_WITH = {**NOT_A_SCALE, "adan": {"weight_decay": 0.1}, "lamb": {"weight_decay": 0.1}}


def updates(program, lr, k, seed=0, steps=6):
    """The program's updates at learning rate `lr`, the parameter held still, wrapped updates scaled by
    `k` (what the inner program gives at k x lr): the reference interpreter, stepped here by hand."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    grads = [torch.randn(5, 3, generator=gen, dtype=torch.float64) * 10 ** (t % 3 - 1) for t in range(steps)]
    inner = [torch.randn(5, 3, generator=gen, dtype=torch.float64) * 1e-2 * k for _ in range(steps)]
    hp = {**program.defaults, "lr": lr}
    state = {}
    for s in program.states:
        if s.init == Ref("w"):
            state[s.name] = w.clone()
        else:
            v = hp[s.init.name] if isinstance(s.init, Ref) else s.init.value
            state[s.name] = v if s.scalar else torch.full_like(w, v)
    out = []
    for t in range(steps):
        res = evaluate(program, {**hp, **state, "w": w, "g": grads[t], "u": inner[t], "step": t + 1})
        out.append(torch.as_tensor(res[0], dtype=torch.float64).expand_as(w).clone())
        state = {s.name: v for s, v in zip(program.states, res[1:])}
    return torch.stack(out)


def programs():
    out = []
    for name in builtin_names():
        if name in NOT_A_SCALE:
            continue
        if name in WRAPPERS:
            out += [f"{name}+adam", f"{name}+sgd"] if name == "lookahead" else [f"{name}+adamw"]
        else:
            out.append(name)
    return out


@pytest.mark.parametrize("spec", programs())
def test_every_builtin_update_scales_with_lr(spec):
    program = load(spec)
    lr = program.defaults["lr"]
    base = updates(program, lr, 1.0)
    for k in (2.0, 0.1):
        torch.testing.assert_close(updates(program, lr * k, k), k * base, rtol=1e-9, atol=1e-300)
    assert lr_scale_violation(program) is None


@pytest.mark.parametrize("name", sorted(NOT_A_SCALE_WITH))
def test_builtins_whose_rule_is_not_a_scale_say_so_and_are_reported(name):
    header = (programs_dir() / f"{name}.opt").read_text(encoding="utf-8").split("\ndef ", 1)[0]
    assert "Not positively homogeneous in lr" in header
    program = load(name)
    given = NOT_A_SCALE_WITH[name]
    program = program.with_(hparams=tuple(HParam(h.name, given.get(h.name, h.default)) for h in program.hparams))
    lr = program.defaults["lr"]
    base = updates(program, lr, 1.0)
    assert not all(torch.allclose(updates(program, lr * k, k), k * base, rtol=1e-9) for k in (2.0, 0.1))
    assert lr_scale_violation(program) is not None


def test_a_wrapper_alone_is_checked_with_scaled_inner_updates():
    assert lr_scale_violation(load("lookahead")) is None


@pytest.mark.parametrize("text", [
    "def f(w, g, m=0, *, lr=0.1):\n    m = interp(g, m, lr)\n    return lr * m, m\n",   # lr as an EMA rate
    "def f(w, g, *, lr=0.1):\n    return clip(g, lr)\n",                                   # lr as a clip bound
    "def f(w, g, *, lr=0.1):\n    return lr ** 2 * g\n",                                   # lr as an exponent base
    "def f(w, g, *, lr=0.1):\n    return lr * g + 0.001 * sign(g)\n",                      # a step lr does not scale
    "def f(w, g, *, lr=0.1):\n    return where(lr > 0.05, lr * g, 0.0 * g)\n",             # a threshold on lr
])
def test_programs_where_lr_is_not_a_scale_are_reported(text):
    program = parse(text)
    lr = program.defaults["lr"]
    base = updates(program, lr, 1.0)
    assert not all(torch.allclose(updates(program, lr * k, k), k * base, rtol=1e-9) for k in (2.0, 0.125, 16.0))
    why = lr_scale_violation(program)
    assert why is not None and "x lr" in why


def test_a_program_without_lr_is_not_reported():
    assert lr_scale_violation(parse("def f(w, g):\n    return 0.1 * g\n")) is None
