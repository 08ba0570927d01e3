"""The JSON form of programs: exact, plain data (checkpoints and event logs never pickle).

`program_to_json` writes the IR as lists and dicts (floats round-trip through JSON exactly);
`program_from_json` reads it back and checks it like parsed text: the data may have been edited.
"""
from __future__ import annotations

from .check import check
from .ir import Const, EvalWeights, HParam, Operand, Program, Ref, State, Stmt


def program_to_json(program: Program) -> dict:
    """The IR as plain JSON data (exact: floats round-trip through JSON)."""

    def op(a: Operand):
        return {"c": a.value} if isinstance(a, Const) else a.name

    return {
        "name": program.name, "doc": program.doc, "inputs": list(program.inputs),
        # a fourth item only for a shape other than the parameter's: older JSON stays as it was
        "states": [[s.name, op(s.init), s.scalar] + ([s.shape] if s.shape else []) for s in program.states],
        "hparams": [[h.name, h.default] for h in program.hparams],
        "body": [[s.target, s.op, [op(a) for a in s.args]] for s in program.body],
        "returns": [op(a) for a in program.returns],
        # only for programs with evaluation weights: older JSON stays as it was
        **({"eval": {"body": [[s.target, s.op, [op(a) for a in s.args]] for s in program.eval.body],
                     "result": op(program.eval.result)}} if program.eval is not None else {}),
    }


def program_from_json(data: dict) -> Program:
    """Inverse of `program_to_json`, checked like parsed text (names included: a checkpoint or
    event line is data, and may have been edited). Raises `ValueError` naming the bad field.

    Example:
        >>> from discover import load
        >>> program_from_json(program_to_json(load("adam"))) == load("adam")
        True
        >>> program_from_json({"name": "x"})
        Traceback (most recent call last):
        ...
        ValueError: program JSON: missing field 'inputs'
    """
    if not isinstance(data, dict):
        raise ValueError(f"program JSON: expected an object with name, inputs, states, hparams, body and "
                         f"returns, got {type(data).__name__}")

    def field(key: str, kind: type = list):
        if key not in data:
            raise ValueError(f"program JSON: missing field {key!r}")
        if not isinstance(data[key], kind):
            raise ValueError(f"program JSON: field {key!r} must be a {kind.__name__}, got {type(data[key]).__name__}")
        return data[key]

    def number(x, where: str) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ValueError(f"program JSON: {where} must be a number, got {x!r}")
        return float(x)

    def op(a, where: str) -> Operand:
        if isinstance(a, dict) and set(a) == {"c"}:
            return Const(number(a["c"], where))
        if isinstance(a, str):
            return Ref(a)
        raise ValueError(f"program JSON: {where} must be a name or {{\"c\": number}}, got {a!r}")

    def rows(key: str, width: int) -> list[list]:
        out = field(key)
        for i, row in enumerate(out):
            if not (isinstance(row, list) and len(row) == width):
                raise ValueError(f"program JSON: {key}[{i}] must be a list of {width} items, got {row!r}")
        return out

    name = field("name", str)
    inputs = field("inputs")
    if not all(isinstance(n, str) for n in inputs):
        raise ValueError(f"program JSON: inputs must be names, got {inputs!r}")
    states = []
    for k, row in enumerate(field("states")):
        if not (isinstance(row, list) and len(row) in (3, 4)):
            raise ValueError(f"program JSON: states[{k}] must be a list of 3 or 4 items, got {row!r}")
        shape = row[3] if len(row) == 4 else ""
        if not isinstance(shape, str):
            raise ValueError(f"program JSON: states[{k}] shape must be a string, got {shape!r}")
        states.append(State(row[0], op(row[1], f"states[{k}] init"), _flag(row[2], f"states[{k}] scalar"), shape))
    states = tuple(states)
    hparams = tuple(HParam(n, number(v, f"hparams[{k}] default")) for k, (n, v) in enumerate(rows("hparams", 2)))
    def statements(rows_: list, where: str) -> list[Stmt]:
        out = []
        for k, row in enumerate(rows_):
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[1], str) and isinstance(row[2], list)):
                raise ValueError(f"program JSON: {where}[{k}] must be [target, op name, [arguments]]")
            t, o, args = row
            out.append(Stmt(t, o, tuple(op(a, f"{where}[{k}] argument") for a in args)))
        return out

    body = statements(rows("body", 3), "body")
    evaluation = None
    if "eval" in data:
        e = data["eval"]
        if not (isinstance(e, dict) and set(e) == {"body", "result"} and isinstance(e["body"], list)):
            raise ValueError("program JSON: eval must be {\"body\": [statements], \"result\": operand}")
        evaluation = EvalWeights(tuple(statements(e["body"], "eval body")), op(e["result"], "eval result"))
    program = Program(
        name=name, doc=data.get("doc", ""), inputs=tuple(inputs), states=states, hparams=hparams,
        body=tuple(body), returns=tuple(op(a, f"returns[{k}]") for k, a in enumerate(field("returns"))),
        eval=evaluation)
    check(program, filename="program JSON")  # names, definitions and types, as for program text
    return program


def _flag(x, where: str) -> bool:
    if not isinstance(x, bool):
        raise ValueError(f"program JSON: {where} must be true or false, got {x!r}")
    return x
