"""Program text -> IR, checked against IR written out by hand."""
import pytest

from discover import Program, parse
from discover.lang import Const, HParam, Ref, State, Stmt


def body(program: Program) -> list[tuple]:
    """Statements as plain tuples (target, op, args) for readable comparisons."""
    return [(s.target, s.op, s.args) for s in program.body]


R, C = Ref, Const


def test_signature_splits_inputs_state_and_hyperparameters():
    p = parse("def opt(w, g, step, m=0, slow=w, *, lr=0.5, beta=-2):\n    return lr * g, m, slow\n")
    assert p.name == "opt"
    assert p.inputs == ("w", "g", "step")
    assert p.states == (State("m", C(0.0), False), State("slow", R("w"), False))
    assert p.hparams == (HParam("lr", 0.5), HParam("beta", -2.0))
    assert p.defaults == {"lr": 0.5, "beta": -2.0}
    assert p.returns == (R("_t0"), R("m"), R("slow"))


def test_state_initialised_from_a_hyperparameter_and_scalar_state():
    text = ("def f(w, g, acc=initial_accumulator_value, mu: scalar = 1, n: tensor = 3, *, initial_accumulator_value=0.1):\n"
            "    acc = acc + g * g\n"
            "    mu = mu * 0.5\n"
            "    return g / acc, acc, mu, n\n")
    p = parse(text)
    assert p.states == (State("acc", R("initial_accumulator_value"), False),
                        State("mu", C(1.0), True),
                        State("n", C(3.0), False))
    assert body(p) == [
        ("_t0", "mul", (R("g"), R("g"))),
        ("acc", "add", (R("acc"), R("_t0"))),
        ("mu", "mul", (R("mu"), C(0.5))),
        ("_t1", "div", (R("g"), R("acc"))),
    ]
    assert p.returns == (R("_t1"), R("acc"), R("mu"), R("n"))


def test_adagrad_builtin_reads_its_initial_accumulator_from_a_hyperparameter():
    from discover import load

    p = load("adagrad")
    assert p.states == (State("acc", R("initial_accumulator_value"), False),)
    nadam = load("nadam")
    assert State("mu_product", C(1.0), True) in nadam.states


def test_nested_expressions_flatten_left_to_right_into_temporaries():
    p = parse("def adam(w, g, step, m=0, v=0, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):\n"
              "    m = interp(g, m, beta1)\n"
              "    v = interp(g * g, v, beta2)\n"
              "    denom = sqrt(v) / sqrt(1 - beta2 ** step) + eps\n"
              "    return lr / (1 - beta1 ** step) * m / denom, m, v\n")
    assert body(p) == [
        ("m", "interp", (R("g"), R("m"), R("beta1"))),
        ("_t0", "mul", (R("g"), R("g"))),
        ("v", "interp", (R("_t0"), R("v"), R("beta2"))),
        ("_t1", "sqrt", (R("v"),)),
        ("_t2", "pow", (R("beta2"), R("step"))),
        ("_t3", "sub", (C(1.0), R("_t2"))),
        ("_t4", "sqrt", (R("_t3"),)),
        ("_t5", "div", (R("_t1"), R("_t4"))),
        ("denom", "add", (R("_t5"), R("eps"))),
        ("_t6", "pow", (R("beta1"), R("step"))),
        ("_t7", "sub", (C(1.0), R("_t6"))),
        ("_t8", "div", (R("lr"), R("_t7"))),
        ("_t9", "mul", (R("_t8"), R("m"))),
        ("_t10", "div", (R("_t9"), R("denom"))),
    ]
    assert p.returns == (R("_t10"), R("m"), R("v"))


def test_operator_precedence_follows_python():
    p = parse("def f(w, g):\n    x = -g ** 2 + g * w % 3\n    return x\n")
    # -(g ** 2) + ((g * w) % 3)
    assert body(p) == [
        ("_t0", "pow", (R("g"), C(2.0))),
        ("_t1", "neg", (R("_t0"),)),
        ("_t2", "mul", (R("g"), R("w"))),
        ("_t3", "mod", (R("_t2"), C(3.0))),
        ("x", "add", (R("_t1"), R("_t3"))),
    ]


def test_negative_constants_are_literals_and_negation_of_names_is_neg():
    p = parse("def f(w, g):\n    a = -2.5 * g\n    b = -a\n    c = g ** -1\n    d = -(-3)\n    return a + b + c + d\n")
    assert body(p)[:5] == [
        ("a", "mul", (C(-2.5), R("g"))),
        ("b", "neg", (R("a"),)),
        ("c", "pow", (R("g"), C(-1.0))),
        ("d", "neg", (C(-3.0),)),
        ("_t0", "add", (R("a"), R("b"))),
    ]


def test_comparisons_where_and_all_infix_ops():
    p = parse("def f(w, g, step, *, k=5):\n"
              "    s = step % k == 0\n"
              "    x = where(g > 0, g - w, g / w)\n"
              "    y = (g < w) + (g <= w) + (g >= w) + (g != w)\n"
              "    return x + y\n")
    assert body(p) == [
        ("_t0", "mod", (R("step"), R("k"))),
        ("s", "eq", (R("_t0"), C(0.0))),
        ("_t1", "gt", (R("g"), C(0.0))),
        ("_t2", "sub", (R("g"), R("w"))),
        ("_t3", "div", (R("g"), R("w"))),
        ("x", "where", (R("_t1"), R("_t2"), R("_t3"))),
        ("_t4", "lt", (R("g"), R("w"))),
        ("_t5", "le", (R("g"), R("w"))),
        ("_t6", "add", (R("_t4"), R("_t5"))),
        ("_t7", "ge", (R("g"), R("w"))),
        ("_t8", "add", (R("_t6"), R("_t7"))),
        ("_t9", "ne", (R("g"), R("w"))),
        ("y", "add", (R("_t8"), R("_t9"))),
        ("_t10", "add", (R("x"), R("y"))),
    ]


def test_plain_assignment_is_a_copy_and_reassignment_reads_the_old_value():
    p = parse("def f(w, g, m=0):\n    m = m * 0.9 + g\n    h = m\n    m = h + m\n    return h, m\n")
    assert body(p) == [
        ("_t0", "mul", (R("m"), C(0.9))),
        ("m", "add", (R("_t0"), R("g"))),
        ("h", "copy", (R("m"),)),
        ("m", "add", (R("h"), R("m"))),
    ]
    assert p.returns == (R("h"), R("m"))


@pytest.mark.parametrize("sym, op", [("+", "add"), ("-", "sub"), ("*", "mul"), ("/", "div"), ("**", "pow"), ("%", "mod")])
def test_augmented_assignment(sym, op):
    p = parse(f"def f(w, g, m=0):\n    m {sym}= g * 2\n    return m, m\n")
    assert body(p) == [("_t0", "mul", (R("g"), C(2.0))), ("m", op, (R("m"), R("_t0")))]


def test_unary_plus_is_dropped():
    p = parse("def f(w, g):\n    x = +g + +2\n    y = -(+2)\n    return x + y\n")
    assert body(p)[:2] == [("x", "add", (R("g"), C(2.0))), ("y", "copy", (C(-2.0),))]


def test_docstring_and_header_comment_become_doc_and_are_not_statements():
    p = parse("# Header line one.\n# Line two.\ndef f(w, g):\n    return g\n")
    assert p.doc == "Header line one.\nLine two."
    assert p.body == () and p.returns == (R("g"),)
    q = parse('def f(w, g):\n    """Doc."""\n    return g\n')
    assert q.doc == "Doc." and q.body == ()


def test_wrapper_takes_u_and_name_override():
    p = parse("def la(w, u, step, slow=w, *, k=5):\n    return u, slow\n", name="other")
    assert p.name == "other" and p.is_wrapper and p.inputs == ("w", "u", "step")


def test_bytes_input_is_decoded_as_utf8():
    p = parse("def f(w, g):\n    # é\n    return g\n".encode("utf-8"))
    assert p.returns == (R("g"),)


def test_positions_are_kept_for_messages_but_not_compared():
    p = parse("def f(w, g):\n    x = g * 2\n    return x\n")
    assert p.body[0].pos == (2, 5)
    assert p.body[0] == Stmt("x", "mul", (R("g"), C(2.0)), pos=(9, 9))


def test_builtins_parse_from_files(tmp_path):
    from discover import builtin_names, parse_file
    from discover.library import programs_dir

    names = builtin_names()
    assert set(names) >= {"sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw",
                          "nadam", "radam", "lion", "lookahead"}
    for name in names:
        assert parse_file(programs_dir() / f"{name}.opt").name == name
