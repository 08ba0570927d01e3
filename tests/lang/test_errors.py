"""Hostile or malformed program texts: always a `ProgramError` at the right place, never anything else.

Each case gives the text, the expected line and column (1-based, the column of
the offending construct), and words the message must contain, including what is
allowed instead where the language can say it.
"""
import os
import sys

import pytest

import discover
from discover import ProgramError, parse

H = "def f(w, g, *, lr=0.1):\n"  # a header for one-line bodies; body lines start at column 5


def _parse_error(text, **kw) -> ProgramError:
    try:
        parse(text, **kw)
    except ProgramError as exc:
        return exc
    except BaseException as exc:  # noqa: BLE001 - any other exception is the failure under test
        pytest.fail(f"expected ProgramError, got {type(exc).__name__}: {str(exc)[:200]}")
    pytest.fail("expected ProgramError, the text parsed")


CASES = {
    # name: (text, line, col, [words in the message])
    "import": ("import os\n" + H + "    return g\n", 1, 1, ["imports are not allowed"]),
    "from import": ("from os import path\n" + H + "    return g\n", 1, 1, ["imports are not allowed"]),
    "import in body": (H + "    import os\n    return g\n", 2, 5, ["imports are not allowed"]),
    "attribute": (H + "    x = g.sum\n    return x\n", 2, 9, ["attribute access", "sqrt(x)"]),
    "method call": (H + "    x = g.add_(1)\n    return x\n", 2, 9, ["attribute access"]),
    "dunder import": (H + "    x = __import__(2)\n    return x\n", 2, 9, ["unknown op '__import__'", "ops are:", "sqrt"]),
    "open": (H + "    x = open(1, 2)\n    return x\n", 2, 9, ["unknown op 'open'", "ops are:"]),
    "exec call": (H + "    x = exec(1)\n    return x\n", 2, 9, ["unknown op 'exec'"]),
    "exec statement": (H + "    exec(1)\n    return g\n", 2, 5, ["expression on its own", "name = expression"]),
    "eval": (H + "    x = eval(g)\n    return x\n", 2, 9, ["unknown op 'eval'"]),
    "lambda": (H + "    x = lambda: 1\n    return x\n", 2, 9, ["lambdas are not allowed"]),
    "for loop": (H + "    for i in g:\n        x = i\n    return g\n", 2, 5, ["loops are not allowed"]),
    "while loop": (H + "    while g:\n        x = g\n    return g\n", 2, 5, ["loops are not allowed"]),
    "comprehension": (H + "    x = [i for i in g]\n    return x\n", 2, 9, ["comprehensions are not allowed"]),
    "if": (H + "    if g:\n        x = g\n    return g\n", 2, 5, ["if", "where("]),
    "if expression": (H + "    x = g if w else w\n    return x\n", 2, 9, ["where(c, a, b)"]),
    "subscript": (H + "    x = g[0]\n    return x\n", 2, 9, ["indexing", "whole tensors"]),
    "string": (H + "    x = 'rm -rf'\n    return x\n", 2, 9, ["strings are not allowed", "tensors or numbers"]),
    "f-string": (H + "    x = f'{g}'\n    return x\n", 2, 9, ["strings are not allowed"]),
    "bytes literal": (H + "    x = b'a'\n    return x\n", 2, 9, ["strings are not allowed"]),
    "None": (H + "    x = None\n    return x\n", 2, 9, ["`None` is not allowed"]),
    "True": (H + "    x = g * True\n    return x\n", 2, 13, ["`True` is not allowed"]),
    "complex": (H + "    x = g * 1j\n    return x\n", 2, 13, ["`1j` is not allowed"]),
    "decorator": ("@foo\n" + H + "    return g\n", 1, 2, ["decorators are not allowed"]),
    "global": (H + "    global x\n    return g\n", 2, 5, ["`global` is not allowed", "m=0"]),
    "nonlocal": (H + "    nonlocal x\n    return g\n", 2, 5, ["`nonlocal` is not allowed"]),
    "with": (H + "    with g:\n        x = g\n    return g\n", 2, 5, ["`with` is not allowed"]),
    "try": (H + "    try:\n        x = g\n    except E:\n        x = w\n    return g\n", 2, 5, ["`try` is not allowed"]),
    "class": ("class A:\n    pass\n", 1, 1, ["classes are not allowed", "exactly one function"]),
    "nested def": (H + "    def h():\n        return 1\n    return g\n", 2, 5, ["nested functions"]),
    "top-level statement": (H + "    return g\nx = 1\n", 3, 1, ["only one `def`"]),
    "unknown op": (H + "    x = foo(g)\n    return x\n", 2, 9, ["unknown op 'foo'", "ops are: abs"]),
    "infix op called": (H + "    x = add(g, g)\n    return x\n", 2, 9, ["unknown op 'add'", "(+)"]),
    "floor division": (H + "    x = g // 2\n    return x\n", 2, 9, ["`//` is not an op", "+ - * / ** %"]),
    "matmul": (H + "    x = g @ w\n    return x\n", 2, 9, ["`@` is not an op"]),
    "bitwise not": (H + "    x = ~g\n    return x\n", 2, 9, ["`~` is not an op"]),
    "and": (H + "    x = g and w\n    return x\n", 2, 9, ["`and`/`or` are not allowed"]),
    "is": (H + "    x = g is w\n    return x\n", 2, 9, ["`is` is not a comparison", "< <= > >= == !="]),
    "chained comparison": (H + "    x = 0 < g < 1\n    return x\n", 2, 9, ["chained comparisons"]),
    "unknown input": ("def f(w, q, *, lr=0.1):\n    return q\n", 1, 10, ["unknown input 'q'", "inputs are w, g, step, u"]),
    "no g or u": ("def f(w, step):\n    return w\n", 1, 1, ["neither the gradient `g`"]),
    "undeclared input": (H + "    x = step * g\n    return x\n", 2, 9, ["input 'step' is not declared"]),
    "wrong arity": (H + "    x = sqrt(g, g)\n    return x\n", 2, 9, ["sqrt() takes 1 argument, got 2", "square root"]),
    "wrong arity 3": (H + "    x = interp(g, w)\n    return x\n", 2, 9, ["interp() takes 3 arguments, got 2"]),
    "keyword argument to op": (H + "    x = sqrt(x=g)\n    return x\n", 2, 14, ["positional arguments only", "sqrt(x)"]),
    "starred argument": (H + "    x = maximum(*g)\n    return x\n", 2, 9, ["`*args` is not allowed"]),
    "undefined name": (H + "    x = y + g\n    return x\n", 2, 9, ["unknown name 'y'", "input, a state, a hyperparameter"]),
    "name used before assignment": (H + "    x = y\n    y = g\n    return x\n", 2, 9, ["unknown name 'y'"]),
    "op name as a value": (H + "    x = sqrt\n    return x\n", 2, 9, ["'sqrt' is an op"]),
    "reserved underscore name": (H + "    _t0 = g\n    return _t0\n", 2, 5, ["names starting with '_' are reserved"]),
    "missing return": (H + "    x = g\n", 1, 1, ["has no `return`", "return update, state"]),
    "bare return": (H + "    return\n", 2, 5, ["`return` needs a value"]),
    "code after return": (H + "    return g\n    x = g\n", 3, 5, ["never runs"]),
    "state not returned": ("def f(w, g, m=0, *, lr=0.1):\n    m = g\n    return m\n", 3, 5,
                           ["returns 1 value, but must return 2", "return update, m"]),
    "too many returns": (H + "    return g, g\n", 2, 5, ["returns 2 values, but must return 1"]),
    "two functions": (H + "    return g\n" + H + "    return g\n", 3, 1, ["exactly one function"]),
    "no function": ("x = 1\n", 1, 1, ["only one `def`"]),
    "only a docstring": ('"""just text"""\n', 1, 1, ["no function definition"]),
    "assign to hyperparameter": (H + "    lr = g\n    return lr\n", 2, 5, ["hyperparameter 'lr' is read-only"]),
    "augassign to hyperparameter": (H + "    lr += 1\n    return g\n", 2, 5, ["hyperparameter 'lr' is read-only"]),
    "assign to op name": (H + "    sqrt = g\n    return g\n", 2, 5, ["is the name of an op"]),
    "tuple assignment": (H + "    a, b = g, w\n    return a\n", 2, 5, ["one plain name"]),
    "walrus": (H + "    x = (y := g)\n    return x\n", 2, 10, ["`:=` is not allowed"]),
    "hyperparameter without default": ("def f(w, g, *, lr):\n    return g\n", 1, 16, ["needs a default", "lr=0.1"]),
    "hyperparameter default not a number": ("def f(w, g, *, lr=open):\n    return g\n", 1, 19, ["must be a number"]),
    "state from an unknown name": ("def f(w, g, m=q):\n    return g, m\n", 1, 15, ["neither `w` nor a hyperparameter"]),
    "bad state annotation": ("def f(w, g, m: int = 0):\n    return g, m\n", 1, 16, ["`scalar`, `tensor`, `per_row` or `per_col`"]),
    "varargs": ("def f(w, g, *args):\n    return g\n", 1, 14, ["`*args` is not allowed"]),
    "kwargs": ("def f(w, g, **kw):\n    return g\n", 1, 15, ["`**kwargs` is not allowed"]),
    "duplicate parameter": ("def f(w, g, m=0, *, m=1):\n    return g, m\n", 1, 21, ["'m' is declared twice"]),
    "syntax error": (H + "    x = g +\n    return x\n", 2, 12, ["invalid syntax"]),
    # syntax errors carry Python's own position (for an unexpected indent, the indent's last column)
    "bad indentation": (H + "  x = g\n    return x\n", 3, 4, ["invalid syntax", "unexpected indent"]),
    "empty": ("", 1, 1, ["empty"]),
    "whitespace only": ("  \n\n\t\n", 1, 1, ["empty"]),
    "NUL byte": (b"def f(w,\x00 g):\n    return g\n", 1, 9, ["binary data"]),
    "binary bytes": (b"\x7fELF\x02\x01\x01\x00\x00\x00", 1, 8, ["binary data"]),
    "NUL in str": ("def f(w, g):\n    return g\x00\n", 2, 13, ["binary data"]),
    "non-UTF-8": (b"def f(w, g):\n    return g # \xff\xfe\n", 2, 16, ["not UTF-8"]),
    "latin-1 text": ("def f(w, g):\n    # caf\xe9\n    return g\n".encode("latin-1"), 2, 10, ["not UTF-8"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_text_gets_a_located_program_error(name):
    text, line, col, words = CASES[name]
    exc = _parse_error(text, filename="bad.opt")
    assert isinstance(exc, ValueError)
    assert (exc.line, exc.col) == (line, col), str(exc)
    rendered = str(exc)
    assert rendered.startswith(f"bad.opt:{line}:{col}: error: "), rendered
    for word in words:
        assert word in rendered, f"{word!r} not in {rendered!r}"
    assert "Traceback" not in rendered


N = 5000
DEEP = {
    # text, line, col: the place where nesting first exceeds the limit
    "nested negation with parens": (H + "    return " + "-(" * N + "g" + ")" * N + "\n", 2, 413),
    "nested parentheses": (H + "    return " + "(" * N + "g" + ")" * N + "\n", 2, 212),
    "nested sqrt": (H + "    return " + "sqrt(" * N + "g" + ")" * N + "\n", 2, 1016),
    "chained unary minus": (H + "    return " + "-" * N + "g\n", 2, 12 + 100),
    "20000-term sum": (H + "    return " + " + ".join(["g"] * 20000) + "\n", 2, 14 + 4 * 100),
    "150-term product": (H + "    return " + " * ".join(["g"] * 150) + "\n", 2, 12),
}


@pytest.mark.parametrize("name", list(DEEP))
def test_deep_or_huge_expressions_are_program_errors_not_recursion_errors(name):
    text, line, col = DEEP[name]
    limit = sys.getrecursionlimit()
    exc = _parse_error(text)
    assert sys.getrecursionlimit() == limit
    assert (exc.line, exc.col) == (line, col), str(exc)
    assert any(w in str(exc) for w in ("nested", "too long", "split")), str(exc)


def test_deep_expressions_below_the_limit_parse():
    p = parse(H + "    return " + "sqrt(" * 50 + "g" + ")" * 50 + "\n")
    assert len(p.body) == 50 and {s.op for s in p.body} == {"sqrt"}


def test_too_many_statements_and_too_long_text():
    text = H + "".join(f"    x{i} = g * 2\n" for i in range(2100)) + "    return g\n"
    exc = _parse_error(text)
    assert "too long" in str(exc) and exc.line is not None
    exc = _parse_error(H + "    # " + "x" * 200_000 + "\n    return g\n")
    assert "limit" in str(exc)


def test_non_text_input_is_a_program_error():
    exc = _parse_error(12345)
    assert "str or bytes" in str(exc)


def test_nothing_in_the_text_is_executed(tmp_path):
    target = tmp_path / "pwned"
    path = str(target)
    texts = [
        f"import os\nos.system('touch {path}')\n" + H + "    return g\n",
        f"open({path!r}, 'w')\n" + H + "    return g\n",
        f"def f(w, g, *, lr=open({path!r}, 'w')):\n    return g\n",
        f"def f(w, g, m: open({path!r}, 'w') = 0):\n    return g, m\n",
        f"@open({path!r}, 'w')\n" + H + "    return g\n",
        H + f"    x = open({path!r}, 'w')\n    return x\n",
        H + f"    exec(\"open({path!r}, 'w')\")\n    return g\n",
        H + f"    x = __import__('os').system('touch {path}')\n    return x\n",
        H + f"    return g\n" + f"open({path!r}, 'w')\n",
        f"class A:\n    x = open({path!r}, 'w')\n",
    ]
    for text in texts:
        _parse_error(text)
        assert not target.exists(), text
    assert not os.listdir(tmp_path)


def test_program_error_is_a_value_error_and_exported():
    assert issubclass(discover.ProgramError, ValueError)
    with pytest.raises(ValueError):
        parse("def f(w):\n    return w\n")


def test_parse_file_names_the_file_in_errors(tmp_path):
    from discover import parse_file

    bad = tmp_path / "bad.opt"
    bad.write_text("def f(w, g):\n    x = g.T\n    return x\n")
    with pytest.raises(ProgramError) as info:
        parse_file(bad)
    assert str(info.value).startswith(f"{bad}:2:9: error: attribute access")
    with pytest.raises(ProgramError) as info:
        parse_file(tmp_path / "missing.opt")
    assert "cannot read" in str(info.value)
