"""Type rules: scalars, per-tensor scalars and tensors; checked on parsed text and on IR built directly."""
import pytest
import torch

from discover import ProgramError, check, parse
from discover.lang import Const, HParam, Program, Ref, State, Stmt, Type

H = "def f(w, g, step, s: scalar = 1, *, lr=0.1):\n"


def types_of(body: str, ret: str = "g, s") -> dict:
    return check(parse(H + body + f"    return {ret}\n"))


def test_inferred_types_widen_through_elementwise_ops():
    t = types_of("    a = lr * 2\n    b = step * lr\n    c = a * g\n    n = norm(g)\n    d = n * s\n")
    assert t["a"] == Type.SCALAR
    assert t["b"] == Type.PER_TENSOR
    assert t["c"] == Type.TENSOR
    assert t["n"] == Type.PER_TENSOR
    assert t["d"] == Type.PER_TENSOR
    assert t["s"] == Type.PER_TENSOR and t["w"] == Type.TENSOR and t["lr"] == Type.SCALAR


@pytest.mark.parametrize("red", ["norm", "rms", "mean"])
@pytest.mark.parametrize("arg, label", [("lr", "scalar"), ("step", "per-tensor scalar"), ("s", "per-tensor scalar"),
                                        ("2", "scalar"), ("norm(g)", "per-tensor scalar")])
def test_reductions_of_non_tensors_are_rejected(red, arg, label):
    with pytest.raises(ProgramError) as info:
        types_of(f"    x = {red}({arg})\n", ret="g * x, s")
    e = info.value
    assert (e.line, e.col) == (2, 5)
    assert f"{red}() reduces a tensor" in str(e) and f"its argument is a {label}" in str(e)
    assert "reductions (norm, rms, mean) take a tensor" in str(e)


@pytest.mark.parametrize("red", ["norm", "rms", "mean"])
def test_reductions_of_tensors_are_per_tensor(red):
    assert types_of(f"    x = {red}(g * w)\n")["x"] == Type.PER_TENSOR


@pytest.mark.parametrize("value", ["g", "s * g", "w + 1", "where(step > 1, g, s)"])
def test_scalar_state_given_a_tensor_is_rejected(value):
    with pytest.raises(ProgramError) as info:
        types_of(f"    s = {value}\n")
    e = info.value
    assert "scalar state 's' is given a tensor value" in str(e)
    assert e.line == 3 and e.col == 5  # the `return`
    assert "mean(" in str(e)


@pytest.mark.parametrize("value", ["s * 0.9", "mean(g)", "norm(g) + step", "lr", "3"])
def test_scalar_state_given_a_scalar_is_accepted(value):
    assert types_of(f"    s = {value}\n")["s"] <= Type.PER_TENSOR


@pytest.mark.parametrize("stmt", ["    lr = 2\n", "    lr = g\n", "    lr *= 2\n"])
def test_hyperparameter_assignment_is_rejected(stmt):
    with pytest.raises(ProgramError) as info:
        types_of(stmt)
    assert "hyperparameter 'lr' is read-only" in str(info.value)
    assert (info.value.line, info.value.col) == (2, 5)


def _prog(body, returns, states=(), hparams=(HParam("lr", 0.1),), inputs=("w", "g")):
    return Program(name="p", inputs=inputs, states=tuple(states), hparams=tuple(hparams), body=tuple(body),
                   returns=tuple(returns))


def test_check_rejects_ill_formed_ir_built_directly():
    ok = _prog([Stmt("x", "mul", (Ref("lr"), Ref("g")))], [Ref("x")])
    assert check(ok)["x"] == Type.TENSOR
    bad = {
        "hyperparameter 'lr' is read-only": _prog([Stmt("lr", "mul", (Ref("lr"), Const(2.0)))], [Ref("g")]),
        "unknown op 'frobnicate'": _prog([Stmt("x", "frobnicate", (Ref("g"),))], [Ref("x")]),
        "sqrt() takes 1 arguments, got 2": _prog([Stmt("x", "sqrt", (Ref("g"), Ref("g")))], [Ref("x")]),
        "unknown name 'y'": _prog([Stmt("x", "sqrt", (Ref("y"),))], [Ref("x")]),
        "unknown input 'z'": _prog([], [Ref("g")], inputs=("w", "g", "z")),
        "declared twice": _prog([], [Ref("g"), Ref("lr")], states=[State("lr")]),
        "starts from unknown 'q'": _prog([], [Ref("g"), Ref("m")], states=[State("m", Ref("q"))]),
        "'step' is a reserved input name": _prog([Stmt("step", "copy", (Ref("g"),))], [Ref("g")]),
        "returns 1 value, but must return 2": _prog([], [Ref("g")], states=[State("m")]),
        "scalar state 'm' is given a tensor value": _prog([], [Ref("g"), Ref("g")], states=[State("m", Const(1.0), True)]),
        "norm() reduces a tensor": _prog([Stmt("x", "norm", (Ref("lr"),))], [Ref("g")]),
    }
    for words, program in bad.items():
        with pytest.raises(ProgramError) as info:
            check(program, filename="ir")
        assert words in str(info.value), str(info.value)
        assert str(info.value).startswith("ir")


def test_statement_positions_reach_check_messages():
    program = _prog([Stmt("x", "norm", (Ref("lr"),), pos=(7, 3))], [Ref("g")])
    with pytest.raises(ProgramError) as info:
        check(program, filename="m.opt")
    assert str(info.value).startswith("m.opt:7:3: error: norm()")


def test_where_with_a_number_as_condition_is_still_a_tensor_at_run_time():
    """Regression: where(1, 0, g) is typed as a tensor, so rms() of it must get a tensor."""
    from discover.compile import interpret as evaluate

    p = parse("def f(w, g):\n    x = where(1, 0, g)\n    y = where(0, 2, w)\n    return g * rms(x) + rms(y)\n")
    assert check(p)["x"] == Type.TENSOR
    g = torch.tensor([3.0, -4.0], dtype=torch.float64)
    (update,) = evaluate(p, {"w": torch.ones(2, dtype=torch.float64), "g": g})
    torch.testing.assert_close(update, g * 0.0 + 1.0, rtol=0, atol=0)
