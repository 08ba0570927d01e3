"""explain properties, nearest built-in, math/latex views, diff, compare (library level)."""
import math

import pytest
import sympy
import torch

from discover import load, parse
from discover.analysis.compare import train_programs
from discover.analysis.diff import diff
from discover.analysis.explain import nearest_builtins, properties, state_bytes
from discover.analysis.views import formulas, latex_view, math_view
from discover.compile.reference import interpret as evaluate


def holds(program, name):
    return properties(load(program))[name][0]


def test_probed_properties_of_builtins():
    assert holds("lion", "sign-based") is True
    assert holds("adam", "sign-based") is False
    assert holds("adam", "invariant to gradient scale") is True
    assert holds("adam", "bias-corrected") is True
    assert holds("adamw", "uses weight decay") is True
    assert holds("adam", "uses weight decay") is False  # its default weight_decay is 0
    assert holds("sgd", "invariant to gradient scale") is False
    assert holds("momentum", "bias-corrected") is False


def test_nearest_builtin_of_a_renamed_adam_is_adam():
    renamed = parse(
        "def mine(w, g, step, first=0, second=0, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):\n"
        "    grad = g + weight_decay * w\n"
        "    first = interp(grad, first, beta1)\n"
        "    second = interp(grad * grad, second, beta2)\n"
        "    corr = sqrt(1 - beta2 ** step)\n"
        "    return lr / (1 - beta1 ** step) * first / (sqrt(second) / corr + eps), first, second\n")
    best = nearest_builtins(renamed)[0]
    assert best.name == "adam" and best.same and best.distance == 0.0


def test_state_bytes():
    assert state_bytes(load("adam"), 1000) == 2 * 1000 * 4
    assert state_bytes(load("sgd"), 1000) == 0
    assert state_bytes(load("nadam"), 1000, n_tensors=3) == 2 * 1000 * 4 + 3 * 8


def test_math_view_of_adam_is_its_formula():
    text = math_view(load("adam"))
    assert "update = " in text and "m <- " in text and "v <- " in text and "beta1" in text
    # evaluate the printed formulas at a point and compare with running the program
    env = {"w": 0.7, "g": -1.3, "step": 3, "m": 0.2, "v": 0.5, "lr": 0.01, "beta1": 0.9, "beta2": 0.999,
           "eps": 1e-8, "weight_decay": 0.1}
    expected = evaluate(load("adam"), env)
    subs = {sympy.Symbol(k, real=True): v for k, v in env.items()}
    for (name, expr), value in zip(formulas(load("adam")), expected):
        assert math.isclose(float(expr.subs(subs)), float(value), rel_tol=1e-12), name


def test_latex_view_of_adam():
    text = latex_view(load("adam"))
    assert text.splitlines()[0].startswith(r"\mathrm{update} = \frac{")
    assert r"\beta_{1}" in text and r"\sqrt{" in text and r"m \leftarrow" in text


def test_diff_shows_the_changed_statement_only():
    a = parse("def f(w, g, m=0, *, lr=0.1):\n    m = interp(g, m, 0.9)\n    return lr * sign(m), m\n")
    b = parse("def f(w, g, buf=0, *, lr=0.1):\n    buf = interp(g, buf, 0.9)\n    return lr * buf, buf\n")
    text = diff(a, b)
    minus = [l for l in text.splitlines() if l.startswith("-") and not l.startswith("---")]
    plus = [l for l in text.splitlines() if l.startswith("+") and not l.startswith("+++")]
    assert minus == ["-_t0 = sign(x0)", "-_t1 = lr * _t0", "-return _t1, x0"]
    assert plus == ["+_t0 = lr * x0", "+return _t0, x0"]
    assert text.endswith("same updates on probe inputs: no")
    same = parse("def f(w, g, q=0, *, lr=0.1):\n    q = interp(g, q, 0.9)\n    return lr * sign(q), q\n")
    assert diff(a, same).startswith("no differences after canonical renaming")


def test_train_programs_tunes_lr_per_program():
    runs = train_programs([load("sgd"), load("adam")], "quadratic", factors=(1.0, 100.0), steps=15)
    sgd, adam = runs
    assert len(sgd.lrs) == 2 and sgd.lrs == pytest.approx([1e-3, 0.1])
    assert sgd.best_val == min(sgd.val_losses) and sgd.best_lr == sgd.lrs[sgd.val_losses.index(sgd.best_val)]
    assert len(sgd.curve) == 15 and sgd.state_bytes == 0 and adam.state_bytes == 2 * 100 * 4
    # a larger SGD step makes more progress on this problem in 15 steps
    assert sgd.val_losses[1] < sgd.val_losses[0]


def test_training_with_views_matches_plain_optimizer():
    """A member trained through the population machinery equals ProgramOptimizer on its own."""
    from discover import ProgramOptimizer
    from discover.tasks import get_task

    task = get_task("logistic")
    (run,) = train_programs([load("adam")], task, factors=(1.0,), steps=8)
    params = [p.detach().clone().requires_grad_(True) for p in task.init_params([0])]
    opt = ProgramOptimizer(params, "adam")
    for step in range(1, 9):
        loss = task.train_loss(params, step)
        loss.sum().backward()
        opt.step()
        opt.zero_grad()
        assert math.isclose(float(loss.detach()), run.curve[step - 1], rel_tol=1e-5)
    with torch.no_grad():
        assert math.isclose(float(task.val_loss(params)), run.best_val, rel_tol=1e-5)
