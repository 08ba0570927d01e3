"""Composition: "wrapper+inner" inlines the inner program into the wrapper."""
import pytest
import torch

from discover import ProgramError, check, compose, load, parse, unparse
from discover.compile import interpret as evaluate
from discover.lang import Ref, Type


def test_clashing_hyperparameter_is_prefixed_in_the_wrapper():
    p = load("lookahead+rmsprop")
    assert p.name == "lookahead_rmsprop"
    assert p.hparam_names == ("lr", "alpha", "eps", "weight_decay", "k", "lookahead_alpha")
    assert p.defaults["alpha"] == 0.99 and p.defaults["lookahead_alpha"] == 0.5
    assert p.state_names == ("sq", "slow")
    # no clash: names kept
    assert load("lookahead+adam").hparam_names == ("lr", "beta1", "beta2", "eps", "weight_decay", "k", "alpha")


def _lookahead_rmsprop_by_hand(w, g, step, sq, slow, lr, alpha, eps, weight_decay, k, la_alpha):
    """torch.optim.RMSprop's rule followed by Lookahead's, written out independently."""
    g2 = g + weight_decay * w
    sq = alpha * sq + (1 - alpha) * g2 * g2
    fast = w - lr * g2 / (sq.sqrt() + eps)
    if step % k == 0:
        slow = slow + la_alpha * (fast - slow)
        return slow, sq, slow
    return fast, sq, slow


def test_composite_computes_wrapper_of_inner_and_inner_g_does_not_leak():
    p = load("lookahead+rmsprop")
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, generator=gen, dtype=torch.float64)
    sq = torch.rand(6, generator=gen, dtype=torch.float64)
    slow = torch.randn(6, generator=gen, dtype=torch.float64)
    g = torch.randn(6, generator=gen, dtype=torch.float64)
    hp = dict(lr=0.1, alpha=0.9, eps=1e-3, weight_decay=0.5, k=3.0, lookahead_alpha=0.25)
    for step in (1, 2, 3, 6):
        update, new_sq, new_slow = evaluate(p, {**hp, "w": w, "g": g, "step": step, "sq": sq, "slow": slow})
        want_w, want_sq, want_slow = _lookahead_rmsprop_by_hand(
            w, g, step, sq, slow, hp["lr"], hp["alpha"], hp["eps"], hp["weight_decay"], hp["k"], hp["lookahead_alpha"])
        torch.testing.assert_close(w - update, want_w, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(new_sq, want_sq, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(new_slow, want_slow, rtol=1e-12, atol=1e-14)


def test_inner_reassignment_of_g_is_renamed_and_wrapper_reads_the_original():
    wrapper = parse("def wrap(w, g, u, *, c=2.0):\n    return u + c * g\n")
    inner = parse("def inner(w, g, *, lr=0.1):\n    g = g * 10\n    return lr * g\n")
    p = compose(wrapper, inner)
    targets = [s.target for s in p.body]
    assert "g" not in targets  # the inner `g = ...` got another name
    gen = torch.Generator().manual_seed(1)
    w, g = torch.randn(4, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen, dtype=torch.float64)
    (update,) = evaluate(p, {"w": w, "g": g, "lr": 0.1, "c": 2.0})
    torch.testing.assert_close(update, 0.1 * (g * 10) + 2.0 * g, rtol=1e-15, atol=0)


def test_inner_and_wrapper_locals_with_the_same_name_stay_apart():
    wrapper = parse("def wrap(w, u, s=0, *, a=0.5):\n    x = u * a\n    s = s + x\n    return x, s\n")
    inner = parse("def inner(w, g, s=0, *, a=0.1):\n    x = g + 1\n    s = s + x\n    return a * x, s\n")
    p = compose(wrapper, inner)
    check(p)
    assert len(set(p.state_names)) == 2 and "wrap_a" in p.hparam_names
    gen = torch.Generator().manual_seed(2)
    w, g = torch.randn(3, generator=gen, dtype=torch.float64), torch.randn(3, generator=gen, dtype=torch.float64)
    s_in, s_wr = torch.rand(3, generator=gen, dtype=torch.float64), torch.rand(3, generator=gen, dtype=torch.float64)
    env = {"w": w, "g": g, "a": 0.1, "wrap_a": 0.5, p.state_names[0]: s_in, p.state_names[1]: s_wr}
    update, new_in, new_wr = evaluate(p, env)
    inner_update = 0.1 * (g + 1)
    torch.testing.assert_close(update, inner_update * 0.5, rtol=1e-15, atol=0)
    torch.testing.assert_close(new_in, s_in + (g + 1), rtol=1e-15, atol=0)
    torch.testing.assert_close(new_wr, s_wr + inner_update * 0.5, rtol=1e-15, atol=0)


@pytest.mark.parametrize("spec", ["lookahead+adam", "lookahead+radam", "lookahead+sgd", "lookahead+rmsprop",
                                  "lookahead+nadam", "lookahead+adagrad", "lookahead+lion"])
def test_composite_type_checks_and_round_trips_through_the_printer(spec):
    p = load(spec)
    types = check(p)
    assert all(types[s.name] == (Type.PER_TENSOR if s.scalar else Type.TENSOR) for s in p.states)
    text = unparse(p)
    q = parse(text)
    assert q == p, text
    assert unparse(q) == text


def test_state_order_is_inner_then_wrapper_and_initial_values_kept():
    p = load("lookahead+adagrad")
    assert p.state_names == ("acc", "slow")
    assert p.states[0].init == Ref("initial_accumulator_value") and p.states[1].init == Ref("w")
    nadam = load("lookahead+nadam")
    assert [s.scalar for s in nadam.states] == [False, False, True, False]


def test_bad_compositions_are_clear_errors():
    with pytest.raises(ValueError, match="not a wrapper"):
        load("adam+sgd")
    with pytest.raises(ValueError, match="is a wrapper and needs a program inside it"):
        load("lookahead+lookahead")
    with pytest.raises(ValueError, match="unknown program"):
        load("lookahead+nosuch")
