"""Tests for discover.tasks: population-stacked proxy tasks and train_population."""

from __future__ import annotations

import math
import pickle
import sys
import textwrap
import time
import types

import pytest
import torch

from discover.tasks import DEFAULT_TASKS, META_TASKS, TASKS, VALIDATE_TASKS, Task, get_task, train_population

ALL = sorted(TASKS)

# Plain-SGD learning rates that work for each task (measured; a proof the tasks are learnable).
SGD_LR = {"quadratic": 0.5, "logistic": 1.0, "mlp": 0.3, "convnet": 0.3, "charlm": 0.5,
          "mlp_large": 0.3, "convnet_large": 0.2, "charlm_large": 0.5,
          "transformer": 0.2, "transformer_b": 0.3, "rnn": 2.0, "rnn_c": 2.0,
          "resmlp": 0.4, "resmlp_large": 0.4, "bow": 2.0, "bow_c": 1.0}
# Steps for that proof where 100 are too few: plain SGD learns little more than the class
# prior in 100 steps of bow_c (sparse gradients: what the task is for).
SGD_STEPS = {"bow_c": 400}
# The cheap tasks prove learnability at their own length; the others at 100 steps (or SGD_STEPS).
FULL_LENGTH = {"quadratic", "logistic", "mlp", "convnet", "charlm"}


def sgd(lr: float | torch.Tensor):
    """An ``update`` callable: SGD with one scalar lr or one lr per member."""
    def update(params, grads, step):
        if isinstance(lr, torch.Tensor):
            for p, g in zip(params, grads):
                p.sub_(g * lr.view(-1, *[1] * (g.dim() - 1)).to(g))
        else:
            torch._foreach_add_(params, grads, alpha=-lr)
    return update


def loss_and_grads(task: Task, params: list[torch.Tensor], step: int):
    loss = task.train_loss(params, step)
    grads = torch.autograd.grad(loss.sum(), params)
    return loss.detach(), grads


def test_registry():
    assert set(DEFAULT_TASKS) <= set(TASKS) and set(META_TASKS) <= set(TASKS) and set(VALIDATE_TASKS) <= set(TASKS)
    # three disjoint sets: the search is never judged on what it selected on
    assert not set(DEFAULT_TASKS) & set(META_TASKS)
    assert not (set(DEFAULT_TASKS) | set(META_TASKS)) & set(VALIDATE_TASKS)
    for name, cls in TASKS.items():
        assert issubclass(cls, Task) and cls.name == name
        task = get_task(name)
        assert isinstance(task, cls) and task.steps > 0
        assert get_task(name) is not task  # a fresh instance every time


def test_summaries():
    # One line each for a task listing; a subclass says what it is, not what its parent is.
    for name, cls in TASKS.items():
        assert "summary" in vars(cls), f"{name} inherits its summary"
        assert cls.summary and "\n" not in cls.summary


def test_population_helpers_match_per_member_ops():
    from discover.tasks.base import population_layer_norm, population_linear
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64)
    w, b = torch.randn(3, 6, 7, generator=g, dtype=torch.float64), torch.randn(3, 7, generator=g, dtype=torch.float64)
    gain, bias = torch.randn(3, 6, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g, dtype=torch.float64)
    y, y0, ln = population_linear(x, w, b), population_linear(x, w), population_layer_norm(x, gain, bias)
    for i in range(3):
        torch.testing.assert_close(y[i], x[i] @ w[i] + b[i])
        torch.testing.assert_close(y0[i], x[i] @ w[i])
        torch.testing.assert_close(ln[i], torch.nn.functional.layer_norm(x[i], (6,), gain[i], bias[i]))


# Each new search task and its larger configuration for validation.
HELD_OUT = [("transformer", "transformer_b"), ("rnn", "rnn_c"), ("resmlp", "resmlp_large"), ("bow", "bow_c")]


@pytest.mark.parametrize("small,large", HELD_OUT)
def test_held_out_config_trains_on_other_data(small, large):
    # Not only more of the same data: another text, or another data seed.
    from discover.tasks.charlm import text_modules
    a, b = get_task(small), get_task(large)
    assert b.steps >= a.steps and a.data_seed != b.data_seed
    if hasattr(a, "text"):
        assert set(text_modules(a.text)).isdisjoint(text_modules(b.text))
    else:
        a.setup(), b.setup()
        assert not torch.equal(a.data["x"][:100, :4], b.data["x"][:100, :4])


@pytest.mark.parametrize("name", ALL)
def test_shapes_finite_and_deterministic(name):
    task = get_task(name)
    task.setup()
    data = dict(getattr(task, "data", {}))
    task.setup()  # idempotent: nothing rebuilt
    assert all(getattr(task, "data", {})[k] is v for k, v in data.items())

    params = task.init_params([0, 1, 2])
    shapes = task.param_shapes()
    assert [tuple(p.shape) for p in params] == [(3, *s) for s in shapes]
    assert all(p.is_leaf and p.requires_grad and p.dtype == torch.float32 for p in params)
    train = task.train_loss(params, 1)
    with torch.no_grad():
        val = task.val_loss(params)
    assert train.shape == (3,) and val.shape == (3,)
    assert torch.isfinite(train).all() and torch.isfinite(val).all()

    # Same seeds and steps give identical losses: again on this instance, and on a fresh one.
    other = get_task(name)
    other.setup()
    params2 = other.init_params([0, 1, 2])
    for step in (1, 2, 1000):
        assert torch.equal(task.train_loss(params, step), other.train_loss(params2, step))
    with torch.no_grad():
        assert torch.equal(val, other.val_loss(params2))
    # Different steps use different minibatches (or noise draws).
    assert not torch.equal(task.train_loss(params, 1), task.train_loss(params, 2))


@pytest.mark.parametrize("name", ALL)
def test_member_init_does_not_depend_on_population(name):
    task = get_task(name)
    alone = task.init_params([5])
    crowd = task.init_params([1, 5, 7, 5])
    for a, c in zip(alone, crowd):
        assert torch.equal(a[0], c[1]) and torch.equal(a[0], c[3])
    assert any(not torch.equal(c[0], c[1]) for c in crowd)  # other seeds differ (biases may be 0)


@pytest.mark.parametrize("name", ALL)
def test_members_are_independent(name):
    task = get_task(name)
    task.setup(dtype=torch.float64)  # float64 so "equal" can be tight
    seeds = [3, 4, 5]
    params = task.init_params(seeds)
    assert params[0].dtype == torch.float64
    loss, grads = loss_and_grads(task, params, step=7)
    for i, seed in enumerate(seeds):
        one_loss, one_grads = loss_and_grads(task, task.init_params([seed]), step=7)
        torch.testing.assert_close(loss[i:i + 1], one_loss, rtol=1e-10, atol=1e-12)
        for g, g1 in zip(grads, one_grads):
            torch.testing.assert_close(g[i:i + 1], g1, rtol=1e-9, atol=1e-12)

    # A member full of NaNs poisons only itself: loss, gradient, validation loss.
    with torch.no_grad():
        for p in params:
            p[0] = math.nan
    bad_loss, bad_grads = loss_and_grads(task, params, step=7)
    assert torch.isnan(bad_loss[0])
    torch.testing.assert_close(bad_loss[1:], loss[1:], rtol=1e-10, atol=1e-12)
    for g, bg in zip(grads, bad_grads):
        torch.testing.assert_close(bg[1:], g[1:], rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        val = task.val_loss(params)
    assert torch.isnan(val[0]) and torch.isfinite(val[1:]).all()


def test_every_task_has_a_measured_sgd_lr():
    assert set(SGD_LR) == set(TASKS)


@pytest.mark.parametrize("name", ALL)
def test_sgd_reduces_validation_loss(name):
    task = get_task(name)
    seeds = [0, 1]
    with torch.no_grad():
        before = task.val_loss(task.init_params(seeds))
    steps = task.steps if name in FULL_LENGTH else SGD_STEPS.get(name, 100)  # keep the big ones quick
    res = train_population(task, seeds, sgd(SGD_LR[name]), steps=steps)
    assert res.steps_done == steps and res.train_curve.shape == (steps, 2)
    assert res.failed == [False, False] and res.reasons == [None, None]
    assert torch.isfinite(res.val_loss).all()
    assert (res.val_loss < 0.8 * before).all(), (name, before, res.val_loss)
    assert res.train_curve[-10:].mean() < res.train_curve[:10].mean()


def test_diverging_member_fails_alone():
    task = get_task("mlp")
    lrs = torch.tensor([0.3, 1e8, 0.1])
    res = train_population(task, [0, 1, 2], sgd(lrs), steps=60)
    assert res.failed == [False, True, False]
    assert res.reasons[0] is None and res.reasons[2] is None
    assert "step" in res.reasons[1]
    assert res.val_loss[1] == math.inf
    assert torch.isfinite(res.val_loss[[0, 2]]).all()
    assert torch.isfinite(res.train_curve[:, [0, 2]]).all()
    # The healthy members train exactly as they would without the diverging one.
    ref = train_population(task, [0, 2], sgd(lrs[[0, 2]]), steps=60)
    torch.testing.assert_close(res.val_loss[[0, 2]], ref.val_loss, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(res.train_curve[:, [0, 2]], ref.train_curve, rtol=1e-4, atol=1e-6)
    assert (res.val_loss[[0, 2]] < res.train_curve[0, [0, 2]]).all()


def test_nan_member_is_marked_and_isolated():
    task = get_task("quadratic")

    def poison_member_0(params, grads, step):
        torch._foreach_add_(params, grads, alpha=-0.5)
        if step == 3:
            params[0][0] = math.nan

    res = train_population(task, [0, 1], poison_member_0, steps=20)
    assert res.failed == [True, False]
    assert res.reasons[0] == "non-finite train loss at step 4"
    assert res.val_loss[0] == math.inf and math.isfinite(res.val_loss[1].item())
    ref = train_population(task, [1], sgd(0.5), steps=20)
    # Not bitwise: BLAS picks other kernels for one row than for two.
    torch.testing.assert_close(res.train_curve[:, 1], ref.train_curve[:, 0], rtol=1e-4, atol=1e-5)


def test_divergence_threshold_and_early_stop():
    task = get_task("quadratic")  # lr 10 > 2 / lambda_max: every member blows up geometrically
    res = train_population(task, [0, 1], sgd(10.0), steps=500)
    assert res.failed == [True, True]
    assert all("above 1000x initial" in r for r in res.reasons)
    assert res.steps_done < 500  # stopped once everyone had failed
    assert (res.val_loss == math.inf).all()


def test_final_nonfinite_params_fail():
    task = get_task("logistic")

    def nan_on_last(params, grads, step):
        torch._foreach_add_(params, grads, alpha=-0.5)
        if step == 10:
            params[0][1] = math.nan  # after the last train loss was seen

    res = train_population(task, [0, 1], nan_on_last, steps=10)
    assert res.failed == [False, True]
    assert res.reasons[1] == "non-finite validation loss"


def test_time_limit():
    task = get_task("quadratic")
    res = train_population(task, [0, 1], sgd(0.1), time_limit=0.0)
    assert res.failed == [True, True] and res.reasons == ["time limit", "time limit"]
    assert res.steps_done == 0 and (res.val_loss == math.inf).all()

    def slow(params, grads, step):
        time.sleep(0.02)
        torch._foreach_add_(params, grads, alpha=-0.1)

    res = train_population(task, [0], slow, steps=1000, time_limit=0.2)
    assert 0 < res.steps_done < 1000 and res.failed == [True] and res.reasons == ["time limit"]
    assert res.train_curve.shape == (res.steps_done, 1)


@pytest.mark.parametrize("name", ["mlp", "charlm", "transformer", "rnn", "resmlp", "bow"])
def test_pickle_drops_data_and_rebuilds_it(name):
    task = get_task(name)
    task.setup()
    params = task.init_params([0, 1])
    blob = pickle.dumps(task)
    assert len(blob) < 10_000  # the data are regenerated, not shipped
    clone = pickle.loads(blob)
    assert torch.equal(clone.train_loss(params, 5), task.train_loss(params, 5))


def test_train_population_is_deterministic():
    task = get_task("mlp")
    a = train_population(task, [0, 1], sgd(0.3), steps=20)
    b = train_population(get_task("mlp"), [0, 1], sgd(0.3), steps=20)
    assert torch.equal(a.train_curve, b.train_curve) and torch.equal(a.val_loss, b.val_loss)


class Tiny(Task):
    """A test-local task: minimise |w - 1|^2 with a step-dependent wobble."""

    name = "tiny"
    steps = 30

    def param_shapes(self):
        return [(3,)]

    def train_loss(self, params, step):
        return (params[0] - 1 - 0.01 * math.sin(step)).pow(2).sum(1)

    def val_loss(self, params):
        return (params[0] - 1).pow(2).sum(1)


def test_get_task_import_path(monkeypatch, tmp_path):
    # A class defined here, reachable through a module name.
    module = types.ModuleType("discover_test_plugin")
    module.Tiny = Tiny
    monkeypatch.setitem(sys.modules, "discover_test_plugin", module)
    task = get_task("discover_test_plugin:Tiny")
    assert isinstance(task, Tiny)
    res = train_population(task, [0, 1], sgd(0.2))
    assert res.steps_done == 30 and not any(res.failed) and (res.val_loss < 1e-2).all()

    # And a real module file on sys.path, as a user would write it.
    (tmp_path / "my_tasks_plugin.py").write_text(textwrap.dedent("""
        import torch
        from discover.tasks import Task

        class Line(Task):
            name, steps = "line", 10
            def param_shapes(self):
                return [(2,)]
            def train_loss(self, params, step):
                return params[0].pow(2).sum(1)
            val_loss = lambda self, params: params[0].pow(2).sum(1)

        class NotATask:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    line = get_task("my_tasks_plugin:Line")
    assert line.name == "line" and [tuple(p.shape) for p in line.init_params([0, 1, 2])] == [(3, 2)]
    with pytest.raises(ValueError, match="not a Task subclass"):
        get_task("my_tasks_plugin:NotATask")
    with pytest.raises(ValueError, match="no attribute"):
        get_task("my_tasks_plugin:Missing")


def test_get_task_errors():
    with pytest.raises(ValueError) as err:
        get_task("no_such_task")
    msg = str(err.value)
    assert all(name in msg for name in TASKS) and "package.module:ClassName" in msg
    with pytest.raises(ValueError, match="cannot import"):
        get_task("no_such_module_for_discover_tests:Foo")
    with pytest.raises(ValueError, match="not a Task subclass"):
        get_task("os:getcwd")
    task = get_task("mlp")
    assert get_task(task) is task


def test_charlm_text_fallbacks(monkeypatch, tmp_path):
    from discover.tasks import charlm

    text = charlm.load_text(20_000)
    assert len(text) == 20_000 and "def " in text  # stdlib sources, when present
    # No stdlib sources (zipped or .pyc-only) and no docstrings (python -OO): the Zen of Python.
    monkeypatch.setattr(charlm.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    monkeypatch.setattr(charlm.inspect, "getdoc", lambda obj: None)
    zen = charlm.load_text(5_000)
    assert len(zen) == 5_000 and zen.startswith("The Zen of Python")
    ids = charlm.encode(zen)
    assert ids.shape == (5_000,) and 0 <= ids.min() and ids.max() < charlm.VOCAB_SIZE
    task = charlm.CharLM(max_chars=5_000, n_val=256)
    assert torch.isfinite(task.val_loss(task.init_params([0]))).all()
