"""Names are validated wherever a Program is built: the parser (text and its `name=`), the JSON
loader (checkpoints, event lines), `compose`, search's mutations and `ProgramOptimizer` with a
hand-built Program. A name that is not an identifier never gets as far as generated code."""
import json

import pytest
import torch

from discover import ProgramError, ProgramOptimizer, compose, load, parse
from discover.lang.ir import HParam, State, Stmt, Ref
from discover.search.mutate import Mutator
from discover.search.program import program_from_json, program_to_json

SGD = "def f(w, g, *, lr=0.1):\n    return lr * g\n"


def hostile(marker):
    """The issue's exploit, and other strings that would break out of a string, comment or line."""
    return [
        f'x""" + str(__import__("os").system("touch {marker}")) + """',
        f"x'''\nimport os; os.system('touch {marker}')\n'''",
        f"a\nimport os; os.system('touch {marker}') #",
        "a */ int evil; /* b",
        "trailing_backslash\\",
        "two words",
        "1starts_with_digit",
        "",
        "lambda",  # a keyword
        "ﬁx",  # not NFKC: Python would read it as "fix"
    ]


@pytest.mark.parametrize("k", range(10))
def test_parse_refuses_a_hostile_program_name_before_any_code_exists(tmp_path, k):
    marker = tmp_path / "F"
    name = hostile(marker)[k]
    with pytest.raises(ProgramError, match="program name") as info:
        parse(SGD, name=name)
    assert "f.opt" not in str(info.value) and info.value.hint  # says what a name may be
    assert not marker.exists()


@pytest.mark.parametrize("backend", ["reference", "foreach", "fused"])
def test_a_hand_built_program_with_a_hostile_name_is_refused_by_every_backend(tmp_path, backend):
    """The issue's reproduction, without the parser: a Program built by hand (or unpickled)."""
    marker = tmp_path / "F"
    program = load("sgd").with_(name=hostile(marker)[0])
    w = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ProgramError, match="program name .* is not an identifier"):
        ProgramOptimizer([w], program, backend=backend)
    assert not marker.exists()


@pytest.mark.parametrize("text, line, col, what", [
    ("def f(w, g, *, params=0.1):\n    return params * g\n", 1, 16, "hyperparameter 'params' is a key torch keeps"),
    ("def f(w, g, *, lr=0.1, initial_lr=0.1):\n    return lr * g\n", 1, 24, "'initial_lr'"),
    ("def f(w, g, *, lr=0.1, maximize=0.0):\n    return lr * g\n", 1, 24, "'maximize'"),
    ("def f(w, g, *, lr=0.1, name=0.0):\n    return lr * g\n", 1, 24, "'name'"),
    ("def f(w, g, ﬁ=0, *, lr=0.1):\n    return lr * g, ﬁ\n", None, None, None),  # Python reads ﬁ as fi: fine
])
def test_parser_refuses_param_group_keys_as_hyperparameters(text, line, col, what):
    if what is None:
        assert parse(text).state_names == ("fi",)
        return
    with pytest.raises(ProgramError) as info:
        parse(text, filename="f.opt")
    e = info.value
    assert (e.filename, e.line, e.col) == ("f.opt", line, col) and what in e.message


def test_param_group_key_hyperparameters_would_have_broken_step():
    """Why they are refused: torch's own keys in a group are not hyperparameters the program reads."""
    program = load("sgd").with_(hparams=(HParam("params", 0.1),),
                                body=(Stmt("_t0", "mul", (Ref("params"), Ref("g"))),), returns=(Ref("_t0"),))
    with pytest.raises(ProgramError, match="'params' is a key torch keeps"):
        ProgramOptimizer([torch.nn.Parameter(torch.ones(2))], program, backend="reference")


def _json(**changes):
    data = program_to_json(load("adam"))
    data.update(changes)
    return json.loads(json.dumps(data))


@pytest.mark.parametrize("changes, message", [
    ({"name": 'x"""\nimport os'}, "program name"),
    ({"name": 5}, "field 'name' must be a str"),
    ({"doc": 5}, "doc must be text"),
    ({"states": [["m\nimport os", {"c": 0.0}, False], ["v", {"c": 0.0}, False]]}, "state 'm\\\\nimport os' is not an identifier"),
    ({"hparams": [["lr", 0.001], ["beta1*/", 0.9], ["beta2", 0.999], ["eps", 1e-8], ["weight_decay", 0.0]]},
     "hyperparameter 'beta1\\*/' is not an identifier"),
    ({"hparams": [["lr", 0.001], ["params", 0.9]]}, "'params' is a key torch keeps"),
    ({"hparams": [["lr", "0.001"]]}, "hparams\\[0\\] default must be a number"),
    ({"body": [["m\\", "copy", ["g"]]]}, "variable 'm\\\\\\\\' is not an identifier"),
    ({"body": [["x", ["copy"], ["g"]]]}, "body\\[0\\] must be \\[target, op name"),
    ({"returns": [{"c": [1]}]}, "returns\\[0\\] must be a number"),
    ({"states": [["m", 0]]}, "states\\[0\\] must be a list of 3 or 4 items"),
    ({"states": [["m", {"c": 0.0}, "yes"]]}, "states\\[0\\] scalar must be true or false"),
])
def test_json_loader_refuses_hostile_names_and_wrong_shapes(changes, message):
    with pytest.raises(ValueError, match=message):
        program_from_json(_json(**changes))


def test_json_loader_names_a_missing_field_and_a_non_object():
    data = _json()
    del data["body"]
    with pytest.raises(ValueError, match="missing field 'body'"):
        program_from_json(data)
    with pytest.raises(ValueError, match="expected an object"):
        program_from_json([1, 2])


def test_json_round_trip_keeps_a_hostile_doc_exactly():
    doc = 'x"""\nimport os  */ \\ λ\u2028'
    program = load("adam").with_(doc=doc)
    assert program_from_json(json.loads(json.dumps(program_to_json(program)))).doc == doc


def test_compose_refuses_hand_built_parts_with_hostile_names(tmp_path):
    marker = tmp_path / "F"
    inner = load("adam").with_(name=hostile(marker)[2])
    with pytest.raises(ProgramError, match="program name"):
        compose(load("lookahead"), inner)
    bad_state = load("lookahead").with_(states=(State("slow\n", Ref("w")),))
    with pytest.raises(ProgramError, match="state 'slow\\\\n' is not an identifier"):
        compose(bad_state, load("adam"))
    assert compose(load("lookahead"), load("adam")).name == "lookahead_adam"  # and good ones still compose


def test_search_mutations_never_accept_a_badly_named_program():
    """Search validates every child with `check`: a parent with a bad name gives no valid child."""
    bad = load("sgd").with_(name="a b")
    assert "not an identifier" in Mutator().invalid(bad)
    assert Mutator().invalid(load("sgd")) is None


def test_unicode_identifiers_run_the_same_on_every_backend():
    """NFKC identifiers Python accepts are fine: generated code writes them safely."""
    text = ("def λopt(w, g, mé=0, *, lr=0.1, β=0.9):\n"
            "    mé = interp(g, mé, β)\n    return lr * sign(mé), mé\n")
    program = parse(text)
    results = {}
    for backend in ("reference", "foreach", "fused"):
        gen = torch.Generator().manual_seed(0)
        w = torch.nn.Parameter(torch.randn(5, generator=gen, dtype=torch.float64))
        opt = ProgramOptimizer([w], program, backend=backend)
        for _ in range(5):
            w.grad = torch.randn(5, generator=gen, dtype=torch.float64)
            opt.step()
        results[backend] = w.detach().clone()
    torch.testing.assert_close(results["foreach"], results["reference"], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(results["fused"], results["reference"], rtol=1e-12, atol=1e-13)


def test_a_hostile_doc_prints_as_comments_that_read_back():
    """Docs are free text (a run directory's path goes into hall-of-fame docs): the printer writes
    them as comment lines that parse back, whatever they hold."""
    from discover import unparse

    doc = 'runs/x"""\nimport os\x00\udc80 */ \\\r\u2028end'
    text = unparse(load("sgd").with_(doc=doc))
    assert text.encode("utf-8")  # no lone surrogate left: the file can be written as UTF-8
    back = parse(text)
    assert back == load("sgd") and back.doc.startswith('runs/x"""\nimport os\\x00\\udc80 */ \\')


def test_ssa_versions_are_allowed_on_assigned_variables_only():
    """Analysis passes number assignments (m#3); generated code never pastes such a name."""
    from discover.analysis.canonical import to_ssa

    ssa = to_ssa(load("adam"))
    assert any("#" in s.target for s in ssa.body)
    ws = [torch.nn.Parameter(torch.linspace(-1, 1, 7, dtype=torch.float64)) for _ in range(2)]
    opts = [ProgramOptimizer([w], p, backend="foreach") for w, p in zip(ws, (ssa, load("adam")))]
    for k in range(3):
        for w, opt in zip(ws, opts):
            w.grad = torch.cos(torch.arange(7.0, dtype=torch.float64) * (k + 1))
            opt.step()
    assert torch.equal(ws[0], ws[1])
    for bad in ("m#", "m#x", "m#1#2", "#1", "m #1"):
        with pytest.raises(ProgramError, match="is not an identifier"):
            program_from_json(_json(body=[[bad, "copy", ["g"]]], returns=[bad, "m", "v"]))
    with pytest.raises(ProgramError, match="state 'm#1' is not an identifier"):
        program_from_json(_json(states=[["m#1", {"c": 0.0}, False], ["v", {"c": 0.0}, False]]))
