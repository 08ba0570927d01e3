"""Mutations, data-flow analysis, pruning and the equivalence cache key."""
import random

import pytest
import torch

from discover import check, load, parse, unparse
from discover.compile.reference import evaluate
from discover.lang.ir import Ref
from discover.analysis import fingerprint
from discover.search.mutate import MUTATION_WEIGHTS, Mutator
from discover.search.program import (depends_on_g, prepare_init, program_from_json, program_to_json, prune,
                                     update_inputs, with_lr_scale)


def updates_at(program, lr, steps=4, seed=0):
    """Updates of `program` at learning rate `lr` on fixed random gradients, the parameter held
    still, through the reference interpreter (written here independently of the probe module)."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(6, generator=gen, dtype=torch.float64)
    grads = [torch.randn(6, generator=gen, dtype=torch.float64) * 10 ** (k - 2) for k in range(steps)]
    hp = {**program.defaults, "lr": lr}
    state = {s.name: (w.clone() if s.init == Ref("w") else torch.full_like(w, hp.get(getattr(s.init, "name", ""),
             getattr(s.init, "value", 0.0)))) for s in program.states}
    out = []
    for t, g in enumerate(grads):
        update, *new = evaluate(program, {**hp, **state, "w": w, "g": g, "u": torch.zeros_like(w), "step": t + 1})
        out.append(torch.as_tensor(update, dtype=torch.float64).expand_as(w).clone())
        state = {s.name: torch.as_tensor(v, dtype=torch.float64).expand_as(w).clone() for s, v in zip(program.states, new)}
    return torch.stack(out)


def scales_with_lr(program) -> bool:
    lr = program.defaults["lr"]
    a, b = updates_at(program, lr), updates_at(program, 3 * lr)
    return bool(torch.allclose(b, 3 * a, rtol=1e-6, atol=1e-300, equal_nan=True))


@pytest.mark.parametrize("name", ["sgd", "adamw", "lion"])
def test_children_are_valid_and_differ_from_parent(name):
    parent = prepare_init(load(name))
    m = Mutator(max_len=24)
    rng = random.Random(7)
    parent_fp = Mutator.fingerprint(parent)
    lr_uses = sum(a == Ref("lr") for s in parent.body for a in s.args)
    for _ in range(40):
        child, fp, how = m.child(parent, rng)
        check(child)
        assert len(child.body) <= 24
        assert depends_on_g(child) and "lr" in update_inputs(child)
        assert fp == Mutator.fingerprint(child) != parent_fp
        assert how and set(how) <= set(MUTATION_WEIGHTS)
        # lr stays a pure scale: never a new argument, and the update scales with it
        assert sum(a == Ref("lr") for s in child.body for a in s.args) <= lr_uses
        assert scales_with_lr(prune(child)), unparse(child)


def test_children_breaking_lr_homogeneity_are_rejected():
    m = Mutator()
    ema_rate = parse("def f(w, g, m=0, *, lr=0.1):\n    m = interp(g, m, lr)\n    return lr * m, m\n")
    clipped = parse("def f(w, g, *, lr=0.1):\n    return clip(g, lr)\n")
    offset = parse("def f(w, g, *, lr=0.1):\n    return lr * g + 0.01 * w\n")
    for bad in (ema_rate, clipped, offset):
        assert not scales_with_lr(bad)
        assert "lr is not a pure scale" in m.invalid(bad)
    assert m.invalid(prepare_init(load("adamw"))) is None and scales_with_lr(load("adamw"))


def test_each_mutation_kind_changes_the_program():
    p = prepare_init(load("adamw"))
    m = Mutator()
    rng = random.Random(0)
    sgd = prepare_init(load("sgd"))  # ema needs a state slot the update does not read yet; adamw has none
    assert m.mutate(p, rng, "ema") is None
    for kind in MUTATION_WEIGHTS:
        parent = sgd if kind == "ema" else p
        outs = [m.mutate(parent, rng, kind) for _ in range(5)]
        assert any(o is not None and o != parent for o in outs), kind
    # insert adds one statement, delete removes one
    assert len(m.mutate(p, rng, "insert").body) == len(p.body) + 1
    assert len(m.mutate(p, rng, "delete").body) == len(p.body) - 1


def test_depends_on_g_follows_state_across_steps():
    direct = parse("def f(w, g, *, lr=0.1):\n    return lr * g\n")
    through_state = parse("def f(w, g, m=0, *, lr=0.1):\n    d = lr * m\n    m = interp(g, m, 0.9)\n    return d, m\n")
    never = parse("def f(w, g, m=0, *, lr=0.1):\n    m = interp(g, m, 0.9)\n    return lr * w, m\n")
    assert depends_on_g(direct) and depends_on_g(through_state) and not depends_on_g(never)
    assert update_inputs(through_state) >= {"g", "m", "lr"}


def test_prune_drops_dead_statements_and_state_and_keeps_behaviour():
    dead = parse("def f(w, g, m=0, v=0, *, lr=0.1):\n    t = sqrt(abs(w))\n    v = v + t\n"
                 "    m = interp(g, m, 0.9)\n    return lr * m, m, v\n")
    live = parse("def f(w, g, m=0, *, lr=0.1):\n    m = interp(g, m, 0.9)\n    return lr * m, m\n")
    pruned = prune(dead)
    assert pruned.state_names == ("m",) and len(pruned.body) == len(live.body)
    # the cache key: a program with dead code has the same fingerprint as without it
    assert fingerprint(prune(dead)) == fingerprint(prune(live)) == fingerprint(live)
    assert Mutator.fingerprint(dead) == Mutator.fingerprint(live)
    # search tunes lr per task: the cache key is the algorithm, the same at any lr
    assert Mutator.fingerprint(dead) == Mutator.fingerprint(with_lr_scale(live, 2.0))
    other = parse("def f(w, g, m=0, *, lr=0.1):\n    m = interp(g, m, 0.8)\n    return lr * m, m\n")
    assert Mutator.fingerprint(other) != Mutator.fingerprint(live)


def test_prepare_init_adds_state_slots_lr_and_inputs():
    p = prepare_init(load("sgd"))
    assert p.state_names == ("m", "v") and p.inputs == ("w", "g", "step")
    assert fingerprint(p) == fingerprint(load("sgd"))  # unused slots change nothing
    no_lr = prepare_init(parse("def f(w, g):\n    return 0.1 * g\n"))
    assert no_lr.defaults["lr"] == 1.0 and fingerprint(no_lr) == fingerprint(parse("def f(w, g):\n    return 0.1 * g\n"))
    with pytest.raises(ValueError, match="wraps"):
        prepare_init(load("lookahead"))


def test_program_json_round_trip_is_exact():
    p = with_lr_scale(prepare_init(load("nadam")), 1 / 3)
    q = program_from_json(program_to_json(p))
    assert q == p and q.defaults == p.defaults


def test_the_ema_mutation_makes_momentum_from_sgd_in_one_step():
    """Each child of ``lr * g`` under ``ema`` alone is momentum: after gradients g1, g2 the weight has
    moved by lr * (1 - c) * g1, then lr * ((1 - c) * g2 + c * (1 - c) * g1), c the drawn decay."""
    from discover import ProgramOptimizer

    parent = prepare_init(parse("def f(w, g, *, lr=0.1):\n    return lr * g\n"))
    only_ema = Mutator(weights={k: 0.0 for k in MUTATION_WEIGHTS} | {"ema": 1.0})
    g1, g2 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), torch.tensor([3.0, 1.0, -1.0], dtype=torch.float64)
    seen = set()
    for seed in range(8):
        child, _, how = only_ema.child(parent, random.Random(seed))
        assert how == ["ema"]
        c = next(a.value for s in child.body if s.op == "interp" for a in s.args[2:])
        seen.add(unparse(child).splitlines()[-2].strip())
        w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        opt = ProgramOptimizer([w], child, lr=0.1, backend="reference")
        w.grad = g1.clone()
        opt.step()
        assert torch.allclose(w.detach(), -0.1 * (1 - c) * g1, rtol=1e-12, atol=0)
        w.grad = g2.clone()
        opt.step()
        want = -0.1 * (1 - c) * g1 - 0.1 * ((1 - c) * g2 + c * (1 - c) * g1)
        assert torch.allclose(w.detach(), want, rtol=1e-12, atol=0)
    assert len(seen) >= 2  # both places: the gradient inside the product, and the update itself


def test_the_default_space_draws_exactly_as_before_ema_existed(monkeypatch):
    """ema sits last at weight 0, so default searches (and runs made before it) are unchanged."""
    import discover.search.mutate as mutate

    parent = prepare_init(load("adamw"))

    def children(m):
        rng = random.Random(5)
        return [(unparse(child), how) for child, _, how in (m.child(parent, rng) for _ in range(12))]

    now = children(Mutator())
    before = {k: v for k, v in MUTATION_WEIGHTS.items() if k != "ema"}
    monkeypatch.setattr(mutate, "MUTATION_WEIGHTS", before)
    assert children(Mutator()) == now
    assert not any("ema" in how for _, how in now)


def test_mutation_weights_are_checked():
    from discover.search.mutate import mutation_weights

    with pytest.raises(ValueError, match="unknown mutation 'emma'"):
        mutation_weights({"emma": 1})
    with pytest.raises(ValueError, match="must be a number >= 0"):
        mutation_weights({"ema": -1})
    with pytest.raises(ValueError, match="at least one mutation"):
        mutation_weights({k: 0 for k in MUTATION_WEIGHTS})


def test_search_takes_mutation_weights_from_the_command_line_and_old_configs_load():
    from discover.cli import build_parser
    from discover.commands.search import config_from_args
    from discover.search.config import SearchConfig

    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["search", "--mutations", "ema=1,insert=3", "--budget", "4"]))
    assert cfg.mutations == {"ema": 1.0, "insert": 3.0}
    assert cfg.validate().mutations == {"ema": 1.0, "insert": 3.0}
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "--mutations", "ema"])  # not NAME=WEIGHT: a usage error
    with pytest.raises(ValueError, match="--mutations: unknown mutation 'momentum'"):
        SearchConfig(budget=4, mutations={"momentum": 1}).validate()
    with pytest.raises(ValueError, match="field 'mutations' must be an object of numbers by name"):
        SearchConfig.from_json({**SearchConfig(budget=4).to_json(), "mutations": {"ema": "on"}})
    old = SearchConfig(budget=4).to_json()
    del old["mutations"]  # config.json of a run made before mutation weights
    assert SearchConfig.from_json(old).mutations == {}


def test_the_command_line_default_is_one_worker_per_core_up_to_the_tasks(monkeypatch):
    import os

    from discover.cli import build_parser
    from discover.commands.search import config_from_args

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    parse = build_parser().parse_args
    assert config_from_args(parse(["search"])).workers == 3  # 5 default tasks, 3 cores
    assert config_from_args(parse(["search", "--tasks", "mlp,bow"])).workers == 2
    assert config_from_args(parse(["search", "--workers", "1"])).workers == 1
    assert config_from_args(parse(["search", "--device", "cuda"])).workers == 1
    assert config_from_args(parse(["search", "--backend", "local"])).workers == 1
    # on --resume the saved config's number stands unless --workers is given (the dataclass default is
    # not a "given" option, see commands.search.run), so no machine-dependent default is applied there
    assert config_from_args(parse(["search", "--resume", "x"])).workers == 1
