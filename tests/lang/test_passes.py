"""The shared IR passes (`discover.lang.passes`) on small programs worked out by hand."""
from discover import parse
from discover.lang.ir import Const, Ref, State
from discover.lang.passes import (dead_code, drop_unused, ensure_lr, live_states, prune, state_start, to_ssa,
                                  update_inputs)

REASSIGNED = parse(
    "def f(w, g, m=0, v=0, *, lr=0.1, unused=2.0):\n"
    "    x = g * 2\n"      # dead: x is assigned again before anything reads it
    "    x = g + 1\n"
    "    y = sqrt(abs(w))\n"  # dead: nothing reads y
    "    v = v + x\n"     # v only feeds itself: dead state
    "    m = interp(x, m, 0.9)\n"
    "    return lr * m, m, v\n")


def test_dead_code_follows_reassignment():
    kept = [(s.target, s.op) for s in dead_code(REASSIGNED).body]
    # the first x, abs and sqrt go; v stays (it is returned, even though the update never reads it)
    assert kept == [("x", "add"), ("v", "add"), ("m", "interp"), (REASSIGNED.body[-1].target, "mul")]


def test_prune_drops_state_the_update_never_reads():
    assert live_states(REASSIGNED) == ["m"]
    assert update_inputs(REASSIGNED) == {"g", "m", "lr"}
    pruned = prune(REASSIGNED)
    assert pruned.state_names == ("m",)
    assert [s.op for s in pruned.body] == ["add", "interp", "mul"]


def test_ssa_gives_each_assignment_its_own_name():
    ssa = to_ssa(REASSIGNED)
    targets = [s.target for s in ssa.body]
    assert len(set(targets)) == len(targets) and targets[:2] == ["x#0", "x#1"]
    assert ssa.body[4].args == (Ref("v"), Ref("x#1"))  # the second x is the one v reads


def test_drop_unused_and_ensure_lr():
    assert drop_unused(REASSIGNED).hparam_names == ("lr",)
    no_lr = parse("def f(w, g):\n    return sign(g)\n")
    scaled = ensure_lr(no_lr)
    assert scaled.defaults == {"lr": 1.0} and scaled.body[-1].op == "mul" and ensure_lr(scaled) == scaled


def test_state_start():
    hp = {"acc0": 0.25}
    assert state_start(State("m"), hp) == 0.0
    assert state_start(State("m", Const(3.0)), hp) == 3.0
    assert state_start(State("acc", Ref("acc0")), hp) == 0.25
    assert state_start(State("slow", Ref("w")), hp) is None
