"""Noise figures and multi-fidelity stopping (issue #10)."""
import math
import statistics

import pytest
import torch
from _alone import train_alone

from discover import load, parse
from discover.evaluate import Evaluator, Fidelity, StopRule, WorkItem, run_item, seed_spread
from discover.evaluate.tuned import TaskResult, Tuned, mean_se, paired_ratio
from discover.tasks import Task


def test_seed_spread_and_mean_se_by_hand():
    xs = [1.0, 1.3, 0.9, 1.1]
    assert seed_spread(xs) == pytest.approx(statistics.stdev(xs) / statistics.mean(xs))
    assert mean_se(xs) == pytest.approx((statistics.mean(xs), statistics.stdev(xs) / 2))
    assert seed_spread([1.0, math.inf]) == math.inf and seed_spread([2.0]) == math.inf


def test_task_noise_is_the_tuned_baselines_spread_over_seeds():
    ev = Evaluator(["quadratic", "logistic"], steps=20, baseline_factors=(0.3, 1.0, 3.0))
    noise = ev.seed_noise(4)
    state = ev.baseline_state()
    for task in ("quadratic", "logistic"):
        losses = [train_alone(task, ev.baseline, state[task]["lr"], s, 20) for s in range(4)]
        assert noise[task] == pytest.approx(statistics.stdev(losses) / statistics.mean(losses), rel=1e-3)
    # the spread of a one-seed fitness: the per-task spreads combined over the geometric mean
    expected = math.sqrt(noise["quadratic"] ** 2 + noise["logistic"] ** 2) / 2
    assert ev.fitness_noise(4) == pytest.approx(expected)


def test_paired_ratio_by_hand():
    a = Tuned("a", {"x": TaskResult(0.1, losses=[1.0, 2.0, 3.0]), "y": TaskResult(0.1, losses=[4.0, 4.0, 4.0])})
    b = Tuned("b", {"x": TaskResult(0.1, losses=[2.0, 2.0, 2.0]), "y": TaskResult(0.1, losses=[2.0, 4.0, 8.0])})
    dx = [math.log(1 / 2), math.log(2 / 2), math.log(3 / 2)]
    dy = [math.log(4 / 2), math.log(4 / 4), math.log(4 / 8)]
    log_ratio = (statistics.mean(dx) + statistics.mean(dy)) / 2
    se = math.sqrt(statistics.variance(dx) / 3 + statistics.variance(dy) / 3) / 2
    ratio, got_se = paired_ratio(a, b)
    assert ratio == pytest.approx(math.exp(log_ratio)) and got_se == pytest.approx(math.exp(log_ratio) * se)


def test_stop_rule_by_hand():
    rule = StopRule(rungs=(10, 20), reference=(2.0, 1.0), margin=0.5, lr_margin=0.25)
    assert rule.keep([2.0, 2.4, 2.6], 0) == [True, True, False]  # 2.6 > 1.25 x 2.0
    assert rule.keep([3.1, 3.2], 0) == [False, False]            # best 3.1 > 1.5 x 2.0: far behind the bar
    assert rule.keep([2.9, 3.0], 0) == [True, True]              # within 1.5 x the bar
    assert rule.keep([math.inf, 1.2], 1) == [False, True]
    assert rule.keep([math.nan, math.inf], 1) == [False, False]


class Line(Task):
    """A 1-D quadratic, 0.5 * (w - 4) ** 2 from w = 0, no noise: trajectories are exact."""

    name, steps, schedule = "line", 40, "constant"

    def param_shapes(self):
        return [(1,)]

    def init_member(self, generator):
        return [torch.zeros(1)]

    def train_loss(self, params, step):
        return 0.5 * (params[0][:, 0] - 4.0) ** 2

    def val_loss(self, params):
        return self.train_loss(params, 0)


# Slow for 12 steps, then three times as fast: behind plain SGD at the rung (step 10), ahead at the end.
LATE = parse("def late(w, g, step, *, lr=0.02):\n    return lr * g * where(step > 12, 3.0, 0.5)\n")


def line_item(stop):
    return WorkItem(task="tests.evaluate.test_noise_and_fidelity:Line", programs=(load("sgd"), LATE),
                    lrs=((0.02,), (0.02,)), seeds=(0,), steps=40, stop=stop)


def test_early_stopping_keeps_a_late_bloomer_within_its_margin():
    record = run_item(line_item(StopRule(rungs=(10,), lr_margin=math.inf, window=3)))
    (sgd_final,), (late_final,) = record.val_loss
    sgd_rung, late_rung = record.progress[0][0][0], record.progress[1][0][0]
    assert late_rung > sgd_rung and late_final < sgd_final  # behind part-way, the winner at the end
    # the bar is plain SGD's progress; the late bloomer is within 50% of it, so it must finish
    kept = run_item(line_item(StopRule(rungs=(10,), reference=(sgd_rung,), margin=0.5, window=3)))
    assert kept.val_loss == record.val_loss and kept.member_steps == record.member_steps
    # a margin tighter than its lag would have cut it: the margin is what protects it
    assert late_rung > 1.01 * sgd_rung
    cut = run_item(line_item(StopRule(rungs=(10,), reference=(sgd_rung,), margin=0.01, window=3)))
    assert cut.val_loss[0] == record.val_loss[0] and cut.val_loss[1] == [pytest.approx(late_rung)]
    assert "stopped early at step 10" in cut.reasons[1][0] and cut.member_steps < record.member_steps


def test_stopping_the_worse_lrs_of_a_candidate_saves_steps_and_keeps_its_best():
    task = "tests.evaluate.test_noise_and_fidelity:Line"
    item = WorkItem(task=task, programs=(load("sgd"),), lrs=((0.001, 0.02, 0.05),), seeds=(0, 1), steps=40)
    full = run_item(item)
    stopped = run_item(WorkItem(**{**item.__dict__, "stop": StopRule(rungs=(10,), lr_margin=0.5, window=3)}))
    best = min(range(3), key=lambda j: full.val_loss[0][2 * j])
    assert stopped.val_loss[0][2 * best] == full.val_loss[0][2 * best]  # the winner is untouched
    assert math.inf in stopped.val_loss[0] and stopped.member_steps < full.member_steps


def test_search_evaluator_with_fidelity_scores_like_without_on_good_programs():
    # AdamW and momentum are nowhere near the stopping margins on these tasks: the same fitness
    kw = dict(steps=30, baseline_factors=(0.3, 1.0, 3.0))
    plain = Evaluator(["quadratic", "logistic"], **kw)
    fast = Evaluator(["quadratic", "logistic"], fidelity=Fidelity(rungs=(0.3,)), **kw)
    programs = [load("adamw"), load("momentum")]
    a, b = plain.score(programs), fast.score(programs)
    assert [s.fitness for s in a] == [s.fitness for s in b]
    assert [s.lrs for s in a] == [s.lrs for s in b]
