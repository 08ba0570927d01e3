"""The batched evaluator against independent references: the reference interpreter, ProgramOptimizer
trained one trial at a time, and hand-computed fitness values."""
import math

import pytest
import torch
from _alone import train_alone

from discover import load, parse
from discover.compile.population_torch import compile_batched, init_states
from discover.compile.reference import evaluate
from discover.evaluate import Evaluator, WorkItem, make_work, merge_results, run_item, score_programs
from discover.evaluate.fitness import best_loss, fitness_at, per_lr, ratio_of, score_from_losses
from discover.evaluate.work import ensure_lr

NORMED = parse(
    "def normed(w, g, step, m=0, s: scalar = 1, *, lr=0.1, beta=0.9):\n"
    "    m = interp(g, m, beta)\n"
    "    s = s * beta + mean(g * g)\n"
    "    return lr * m / (norm(m) + 1e-3) / sqrt(1 - beta ** step) + lr * 0 * s, m, s\n")


def test_batched_step_matches_reference_interpreter_per_member():
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 5), (3, 7)]
    params = [torch.randn(s, generator=gen) for s in shapes]
    lrs = torch.tensor([0.1, 0.2, 0.05])
    hp = {"lr": lrs, "beta": 0.9}
    states = init_states(NORMED, params, hp)
    step_fn = compile_batched(NORMED)
    # independent reference: each member and each tensor alone through evaluate()
    ref_w = [[p[i].clone() for p in params] for i in range(3)]
    ref_m = [[torch.zeros_like(p[i]) for p in params] for i in range(3)]
    ref_s = [[1.0 for _ in params] for _ in range(3)]
    for step in range(1, 5):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        step_fn(params, grads, states, step, hp)
        for i in range(3):
            for k in range(2):
                env = {"w": ref_w[i][k], "g": grads[k][i], "step": step, "m": ref_m[i][k], "s": ref_s[i][k],
                       "lr": float(lrs[i]), "beta": 0.9}
                upd, m, s = evaluate(NORMED, env)
                ref_w[i][k] = ref_w[i][k] - upd
                ref_m[i][k], ref_s[i][k] = m, s
    for i in range(3):
        for k in range(2):
            torch.testing.assert_close(params[k][i], ref_w[i][k], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(states["m"][k][i], ref_m[i][k], rtol=1e-5, atol=1e-6)
            assert states["s"][k][i].reshape(()).item() == pytest.approx(float(ref_s[i][k]), rel=1e-5)


def test_returned_state_alias_is_read_before_it_is_overwritten():
    # the update is the *old* m while m gets a new value: must use the old one
    p = parse("def f(w, g, m=0, *, lr=1.0):\n    n = m + g\n    return lr * m, n\n")
    w = torch.zeros(2, 3)
    states = init_states(p, [w], {"lr": 1.0})
    step = compile_batched(p)
    step([w], [torch.ones(2, 3)], states, 1, {"lr": 1.0})
    assert torch.equal(w, torch.zeros(2, 3))          # old m was 0
    step([w], [torch.ones(2, 3)], states, 2, {"lr": 1.0})
    assert torch.equal(w, -torch.ones(2, 3))          # old m was 1


@pytest.mark.parametrize("task_name", ["mlp", "logistic"])
def test_batched_training_matches_program_optimizer_one_at_a_time(task_name):
    steps = 12
    programs = [ensure_lr(load("adamw")), ensure_lr(load("lion")), ensure_lr(load("momentum"))]
    lrs = ((1e-3, 3e-3), (1e-4, 3e-4), (1e-2, 3e-2))
    seeds = (0, 1)
    res = run_item(WorkItem(task=task_name, programs=tuple(programs), lrs=lrs, seeds=seeds, steps=steps))
    for c, (program, group) in enumerate(zip(programs, lrs)):
        j = 0
        for lr in group:
            for seed in seeds:
                expected = train_alone(task_name, program, lr, seed, steps)
                assert res.val_loss[c][j] == pytest.approx(expected, rel=2e-5), (program.name, lr, seed)
                j += 1


def test_failing_candidates_score_inf_and_do_not_disturb_others(monkeypatch):
    nan_prog = parse("def bad(w, g, *, lr=1e-3):\n    return lr * g / 0 * 0\n")  # inf * 0 = NaN
    boom = ensure_lr(load("adamw")).with_(name="boom")
    good = ensure_lr(load("adamw"))
    import discover.evaluate.trials as eb

    real = eb.population_step

    def fake(program):
        if program.name != "boom":
            return real(program)

        def step(*a, **k):
            raise RuntimeError("kaboom")
        return step

    monkeypatch.setattr(eb, "population_step", fake)
    item = WorkItem(task="logistic", programs=(good, nan_prog, boom, good), lrs=((1e-2,), (1e-2,), (1e-2,), (1e-2,)),
                    seeds=(0,), steps=10)
    res = run_item(item)
    alone = run_item(WorkItem(task="logistic", programs=(good,), lrs=((1e-2,),), seeds=(0,), steps=10))
    assert res.val_loss[1] == [math.inf] and res.val_loss[2] == [math.inf]
    assert "kaboom" in res.reasons[2][0]
    assert res.val_loss[0][0] == pytest.approx(alone.val_loss[0][0], rel=1e-6)
    assert res.val_loss[3][0] == pytest.approx(alone.val_loss[0][0], rel=1e-6)


def test_candidate_time_limit_fails_only_that_candidate(monkeypatch):
    import time as _time
    import discover.evaluate.trials as eb

    real = eb.population_step

    def fake(program):
        inner = real(program)
        if program.name != "slow":
            return inner

        def step(*a, **k):
            _time.sleep(0.02)
            return inner(*a, **k)
        return step

    monkeypatch.setattr(eb, "population_step", fake)
    good = ensure_lr(load("sgd"))
    slow = good.with_(name="slow")
    res = run_item(WorkItem(task="quadratic", programs=(good, slow), lrs=((1e-2,), (1e-2,)), seeds=(0,), steps=10,
                            candidate_time_limit=0.05))
    assert math.isfinite(res.val_loss[0][0]) and res.val_loss[1] == [math.inf]
    assert "time limit" in res.reasons[1][0]


def test_fitness_arithmetic_by_hand():
    assert per_lr([1.0, 3.0, 2.0, math.inf], 2) == [2.0, math.inf]
    assert best_loss([4.0, 2.0, 3.0], 1) == (2.0, 1)
    assert ratio_of(1.0, 2.0) == 0.5 and ratio_of(-1.0, 2.0) == math.inf
    # two tasks, two lrs: lr0 -> sqrt(1 * 4) = 2, lr1 -> sqrt(0.5 * 2) = 1
    fit, j = fitness_at([[2.0, 1.0], [4.0, 2.0]], [2.0, 1.0])
    assert j == 1 and fit == pytest.approx(1.0)
    losses = [[2.0, 2.0, 1.0, 1.0], [4.0, 4.0, 2.0, math.inf]]  # two tasks, lrs 0.5x and 2x, two seeds
    # one lr for both tasks: lr1 failed a seed on task b, so lr0: sqrt(2/2 * 4/1) = 2
    sc = score_from_losses(["a", "b"], losses, [0.5, 2.0], 2, {"a": 2.0, "b": 1.0}, protocol="shared")
    assert sc.fitness == pytest.approx(2.0) and sc.factor == 0.5
    # each task at its own best lr: a at 2x (1/2), b at 0.5x (4/1): sqrt(0.5 * 4) = sqrt(2)
    sc = score_from_losses(["a", "b"], losses, [0.5, 2.0], 2, {"a": 2.0, "b": 1.0}, centers={"a": 0.1, "b": 0.01})
    assert sc.fitness == pytest.approx(math.sqrt(2.0))
    assert sc.factors == {"a": 2.0, "b": 0.5} and sc.lrs == {"a": 0.2, "b": 0.005}
    assert sc.ratios == {"a": 0.5, "b": 4.0} and sc.losses == {"a": 1.0, "b": 4.0}
    with pytest.raises(ValueError, match="lr protocol"):
        score_from_losses(["a"], [[1.0]], [1.0], 1, {"a": 1.0}, protocol="tuned")


def test_work_chunks_merge_in_input_order():
    progs = [load("sgd"), load("momentum"), load("adamw")]
    items = make_work(progs, ["quadratic", "logistic"], [1.0, 2.0], [0], steps=5, chunk=2)
    assert [i.key for i in items] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    results = [run_item(i) for i in reversed(items)][::-1]
    merged = merge_results(list(reversed(items)), list(reversed(results)), 3, 2)
    whole = merge_results(*(lambda its: (its, [run_item(i) for i in its]))(
        make_work(progs, ["quadratic", "logistic"], [1.0, 2.0], [0], steps=5)), 3, 2)
    for p in range(3):
        for t in range(2):
            assert merged[p][t] == pytest.approx(whole[p][t], rel=1e-5)


def test_score_programs_normalizes_against_tuned_adamw():
    nan_prog = parse("def bad(w, g, *, lr=1e-3):\n    return lr * sqrt(-1 - g * g)\n")
    scores = score_programs([load("adamw"), nan_prog], ["quadratic"], steps=20, factors=[1.0])
    # the baseline is AdamW tuned on a grid that contains factor 1, so AdamW at 1x is no better
    assert scores[0] >= 1.0 - 1e-9 and math.isfinite(scores[0])
    assert scores[1] == math.inf
    ev = Evaluator(["quadratic"], steps=20, factors=[1.0])
    base = ev.baselines()["quadratic"]
    losses = ev.losses([load("adamw")], [1.0])[0][0]
    assert scores[0] == pytest.approx(losses[0] / base)
