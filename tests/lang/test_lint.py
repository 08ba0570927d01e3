"""`discover check` warnings for valid programs that silently do something else, and the hint for a
missing `*` before the hyperparameters."""
import re

import pytest

from discover import ProgramError, builtin_names, load, parse
from discover.cli import main
from discover.lang.lint import lint

SWAPPED = """def f(w, g, m=0, v=0, *, lr=0.1):
    m = interp(g, m, 0.9)
    v = interp(g * g, v, 0.99)
    return lr * m / sqrt(v), v, m
"""


def test_states_returned_in_each_others_place_are_named():
    warnings = lint(parse(SWAPPED), SWAPPED, "f.opt")
    assert warnings == [
        "f.opt:4:5: warning: state 'm' is given 'v' (states are returned in declaration order: return update, m, v)",
        "f.opt:4:5: warning: state 'v' is given 'm' (states are returned in declaration order: return update, m, v)",
    ]
    in_order = SWAPPED.replace("v, m\n", "m, v\n")
    assert lint(parse(in_order), in_order) == []


def test_a_name_that_reads_as_another_state_is_warned_about():
    text = ("def f(w, g, m=0, v=0, *, lr=0.1):\n    m_new = interp(g, m, 0.9)\n    v_new = interp(g * g, v, 0.99)\n"
            "    return lr * m_new / sqrt(v_new), v_new, m_new\n")
    assert [w.split("warning: ")[1].split(" (")[0] for w in lint(parse(text))] == ["state 'm' is given 'v_new'",
                                                                         "state 'v' is given 'm_new'"]


def test_a_state_that_never_changes_is_warned_about():
    text = "def f(w, g, m=0, *, lr=0.1):\n    m_new = interp(g, m, 0.9)\n    return lr * m_new, m\n"
    (warning,) = lint(parse(text))
    assert "state 'm' is returned as it came in, so it never changes" in warning


def test_a_program_without_lr_is_warned_about_but_a_wrapper_is_not():
    text = "def f(w, g, m=0):\n    m = interp(g, m, 0.9)\n    return 0.01 * m, m\n"
    (warning,) = lint(parse(text), text, "f.opt")
    assert warning.startswith("f.opt: warning: no hyperparameter `lr`") and "KeyError: 'lr'" in warning
    assert lint(load("lookahead")) == []


@pytest.mark.parametrize("name", builtin_names())
def test_builtins_have_no_warnings(name):
    assert lint(load(name)) == []


def test_check_prints_warnings_and_still_succeeds(tmp_path, capsys):
    f = tmp_path / "swapped.opt"
    f.write_text(SWAPPED)
    assert main(["check", str(f)]) == 0
    captured = capsys.readouterr()
    assert ": ok (" in captured.out
    assert f"{f}:4:5: warning: state 'm' is given 'v'" in captured.err


@pytest.mark.parametrize("signature, names", [
    ("def f(w, g, m=0, lr=0.1, beta=0.9):", "lr and beta are"),
    ("def f(w, g, m=0, lr=0.1, beta=1e-08):", "lr and beta are"),
])
def test_a_missing_star_gets_a_hint_that_fixes_it(signature, names):
    body = "    m = interp(g, m, beta)\n    return lr * m, m\n"
    with pytest.raises(ProgramError) as err:
        parse(signature + "\n" + body)
    hint = err.value.hint
    assert hint.startswith(f"{names} never assigned") and "put a bare `*`" in hint
    suggested = re.search(r"(def .+\))$", hint).group(1)
    fixed = parse(suggested + ":\n" + body)  # the suggested signature is the fix
    assert fixed.hparam_names == ("lr", "beta") and fixed.state_names == ("m",)
    assert fixed.defaults["beta"] == float(signature.split("beta=")[1].rstrip("):"))


def test_a_missing_return_still_gets_the_return_hint():
    with pytest.raises(ProgramError) as err:
        parse("def f(w, g, m=0, *, lr=0.1):\n    m = interp(g, m, 0.9)\n    return lr * m\n")
    assert err.value.hint == "end with `return update, m`"
