"""Printer <-> parser round trips, as properties over random programs.

(a) random *source texts* from a grammar of the language parse to p, and
    ``parse(unparse(p)) == p``;
(b) random IR built directly (temporaries and user names mixed, temporaries used
    several times or out of order, dead statements) canonicalises after one round,
    and the canonical program computes exactly what the original computes.
"""
import keyword
import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discover import check, parse, unparse
from discover.compile import interpret as evaluate
from discover.lang import OPS, Const, HParam, Program, Ref, State, Stmt, Type
from discover.lang.ops import AXIS, CALLABLE_OPS, GROUP, MATRIX, PROPERTY, REDUCTION

# matmul and transpose make (rows x rows) and (columns x rows) values that mix with nothing else at
# random: they have round trips of their own (tests/lang/test_shapes.py)
TEXT_OPS = [n for n in CALLABLE_OPS if n not in ("matmul", "transpose")]
IR_OPS = [n for n in sorted(OPS) if n not in ("matmul", "transpose")]

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INFIX = ["+", "-", "*", "/", "**", "%"]
COMPARE = ["<", "<=", ">", ">=", "==", "!="]
T, P, S = Type.TENSOR, Type.PER_TENSOR, Type.SCALAR

# constants as people write them: integers, decimals, exponents, negatives, zero, huge
CONST_TEXT = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["0.5", "1e-8", "1e-08", "0.999", "2.5e3", "1e999", "0.0", "-0.0", "3.0", ".25", "1_000"]),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
)


@st.composite
def expressions(draw, names: dict, depth: int):
    """(text, type) of a random expression over `names` (name -> Type)."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(names)))
            return name, names[name]
        text = draw(CONST_TEXT)
        if text.startswith("-") or draw(st.integers(0, 4)) == 0:
            text = f"({text})"  # a negative constant in parentheses is still a literal
        if draw(st.integers(0, 6)) == 0:
            text = f"-{text}" if not text.startswith("-") else text
        return text, S
    kind = draw(st.sampled_from(["infix", "compare", "neg", "call", "call", "plus"]))
    sub = expressions(names, depth - 1)
    if kind in ("infix", "compare"):
        (a, ta), (b, tb) = draw(sub), draw(sub)
        sym = draw(st.sampled_from(INFIX if kind == "infix" else COMPARE))
        return f"({a}) {sym} ({b})", max(ta, tb)
    if kind == "neg":
        a, ta = draw(sub)
        return f"-({a})", ta
    if kind == "plus":
        a, ta = draw(sub)
        return f"+({a})", ta
    op = OPS[draw(st.sampled_from(TEXT_OPS))]
    args = [draw(sub) for _ in range(op.tensor_arity)]
    if op.kind in (REDUCTION, PROPERTY, GROUP, AXIS, MATRIX):  # a tensor operand (a group op also takes P)
        a, ta = args[0]
        text = a if ta == T or (ta == P and op.kind == GROUP) else f"({a}) * g"
        options = [draw(CONST_TEXT) for _ in range(draw(st.integers(0, len(op.options))))]
        return f"{op.name}({', '.join([text] + options)})", (T if op.kind in (AXIS, MATRIX) else P)
    return f"{op.name}({', '.join(a for a, _ in args)})", max(t for _, t in args)


@st.composite
def program_texts(draw):
    inputs = ["w", "g"] + (["step"] if draw(st.booleans()) else [])
    hp_defaults = draw(st.lists(st.sampled_from(["0.1", "-2", "1e-08", "0.999", "3", "1e999", "-0.5"]), min_size=1, max_size=3))
    hparams = [f"h{i}={d}" for i, d in enumerate(hp_defaults)]
    states = []  # (declaration, name, scalar)
    if draw(st.booleans()):
        states.append(("m=0", "m", False))
    if draw(st.booleans()):
        states.append(("slow=w", "slow", False))
    if draw(st.booleans()):
        states.append(("acc=h0", "acc", False))
    if draw(st.booleans()):
        states.append((f"mu: scalar = {draw(st.sampled_from(['1', '0.5', '-3']))}", "mu", True))
    names = {"w": T, "g": T, **({"step": P} if "step" in inputs else {})}
    names.update({f"h{i}": S for i in range(len(hparams))})
    names.update({n: (P if scalar else T) for _, n, scalar in states})
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        text, typ = draw(expressions(dict(names), 3))
        target = draw(st.sampled_from(["a", "b", "c"] + [n for _, n, scalar in states if not scalar]))
        if draw(st.integers(0, 4)) == 0 and target in names:
            sym = draw(st.sampled_from(INFIX))
            lines.append(f"    {target} {sym}= {text}")
            typ = max(typ, names[target])
        else:
            lines.append(f"    {target} = {text}")
        names[target] = typ
    update, _ = draw(expressions(dict(names), 3))
    returns = [update]
    for _, name, scalar in states:
        if scalar:
            choice = draw(st.sampled_from([name, "mean", "mul"]))
            returns.append(name if choice == name else (f"mean({draw(st.sampled_from(['g', 'w', 'g * w']))})"
                                                        if choice == "mean" else f"{name} * 0.5"))
        else:
            returns.append(name)
    signature = ", ".join(inputs + [d for d, _, _ in states] + ["*"] + hparams)
    return f"def prog({signature}):\n" + "\n".join(lines + [f"    return {', '.join(returns)}"]) + "\n"


@SETTINGS
@given(program_texts())
def test_random_source_texts_round_trip_exactly(text):
    p = parse(text)
    printed = unparse(p)
    q = parse(printed)
    assert q == p, f"\n--- source\n{text}--- printed\n{printed}"
    assert unparse(q) == printed


# ----------------------------------------------------------------------------- (b) IR built directly

TEMPS = ["_t0", "_t1", "_t2", "_x", "_t9"]
USER = ["x", "y", "t0", "t1", "m", "g"]  # t0/t1 collide with the names the printer gives kept temporaries
IR_CONSTS = st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -3.5, 1e-8, math.inf, -math.inf]),
                      st.floats(allow_nan=False, width=64))


@st.composite
def ir_programs(draw):
    types = {"w": T, "g": T, "step": P, "m": T, "s": P, "lr": S, "beta": S}
    body = []
    for _ in range(draw(st.integers(1, 10))):
        op = OPS[draw(st.sampled_from(IR_OPS))]
        args = []
        for i in range(op.arity):
            if i >= op.tensor_arity:  # an option: a number
                args.append(Const(draw(IR_CONSTS)))
            elif op.kind in (REDUCTION, PROPERTY, AXIS, MATRIX):
                args.append(Ref(draw(st.sampled_from(sorted(n for n, t in types.items() if t == T)))))
            elif op.kind == GROUP:
                args.append(Ref(draw(st.sampled_from(sorted(n for n, t in types.items() if t != S)))))
            elif draw(st.integers(0, 3)) == 0:
                args.append(Const(draw(IR_CONSTS)))
            else:
                args.append(Ref(draw(st.sampled_from(sorted(types)))))
        target = draw(st.sampled_from(TEMPS + USER))
        typ = op.result_type([Type.SCALAR if isinstance(a, Const) else types[a.name] for a in args])
        if target in ("m", "g") and typ != T:
            target = "y"  # keep the tensor state and the gradient tensors
        body.append(Stmt(target, op.name, tuple(args)))
        types[target] = typ
    defined = sorted(types)
    update = Ref(draw(st.sampled_from(defined))) if draw(st.integers(0, 5)) else Const(draw(IR_CONSTS))
    m_ret = Ref(draw(st.sampled_from(sorted(n for n, t in types.items() if t == T))))
    s_ret = Ref(draw(st.sampled_from(sorted(n for n, t in types.items() if t != T))))
    program = Program(name="rand", inputs=("w", "g", "step"),
                      states=(State("m", Const(0.0)), State("s", Const(1.0), True)),
                      hparams=(HParam("lr", 0.1), HParam("beta", 0.9)),
                      body=tuple(body), returns=(update, m_ret, s_ret))
    check(program)
    return program


def _outputs(program, seed):
    gen = torch.Generator().manual_seed(seed)
    env = {"w": torch.randn(5, generator=gen, dtype=torch.float64),
           "g": torch.randn(5, generator=gen, dtype=torch.float64),
           "m": torch.randn(5, generator=gen, dtype=torch.float64),
           "s": 0.7, "step": 3, "lr": 0.1, "beta": 0.9}
    return evaluate(program, env)


def _same(a, b) -> bool:
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.equal(a.isnan(), b.isnan())) and bool(
        torch.equal(torch.nan_to_num(a, nan=0.0), torch.nan_to_num(b, nan=0.0)))


@SETTINGS
@given(ir_programs())
def test_random_ir_canonicalises_after_one_round_and_keeps_its_meaning(p):
    printed = unparse(p)
    q = parse(printed)
    assert parse(unparse(q)) == q, f"\n{p}\n--- printed\n{printed}--- again\n{unparse(q)}"
    assert unparse(q) == unparse(parse(unparse(q)))
    for seed in (0, 1):
        out_p, out_q = _outputs(p, seed), _outputs(q, seed)
        assert len(out_p) == len(out_q)
        for a, b in zip(out_p, out_q):
            assert _same(a, b), f"\n{p}\n--- printed\n{printed}"


def test_printer_nests_single_use_temporaries_and_names_kept_ones():
    p = Program(name="f", inputs=("w", "g"), states=(), hparams=(),
                body=(Stmt("_a", "mul", (Ref("g"), Ref("g"))),
                      Stmt("t0", "copy", (Const(1.0),)),
                      Stmt("_b", "add", (Ref("_a"), Ref("_a"))),
                      Stmt("_c", "sqrt", (Ref("_b"),))),
                returns=(Ref("_c"),))
    assert unparse(p) == ("def f(w, g):\n"
                          "    t1 = g * g\n"
                          "    t0 = 1\n"
                          "    return sqrt(t1 + t1)\n")


def test_identifiers_used_by_the_strategies_are_legal():
    assert not any(keyword.iskeyword(n) or n in OPS for n in USER + ["a", "b", "c", "slow", "acc", "mu"])


@SETTINGS
@given(ir_programs())
def test_checker_types_match_runtime_values(p):
    """What `check` infers is what evaluation produces: a tensor (shaped like w, or a row mean of it) for TENSOR,
    a number or 0-d tensor otherwise (so reductions always receive tensors)."""
    types = {"w": T, "g": T, "step": P, "m": T, "s": P, "lr": S, "beta": S}
    gen = torch.Generator().manual_seed(0)
    values = {"w": torch.randn(5, generator=gen, dtype=torch.float64), "g": torch.randn(5, generator=gen, dtype=torch.float64),
              "m": torch.randn(5, generator=gen, dtype=torch.float64), "s": 0.7, "step": 3, "lr": 0.1, "beta": 0.9}
    for stmt in p.body:
        args = [a.value if isinstance(a, Const) else values[a.name] for a in stmt.args]
        values[stmt.target] = OPS[stmt.op].call(*args)
        types[stmt.target] = OPS[stmt.op].result_type([S if isinstance(a, Const) else types[a.name] for a in stmt.args])
        value = values[stmt.target]
        if types[stmt.target] == T:  # shaped like w, or one value per row of it (w is one row of 5)
            assert torch.is_tensor(value) and value.shape in ((5,), (1,)), (stmt, value)
        else:
            assert not torch.is_tensor(value) or value.dim() == 0, (stmt, value)
