"""Program-level helpers for search: data flow, pruning, warm-start preparation, JSON form.

* `update_inputs`: which inputs/state/hyperparameters the update depends on,
  following state across steps (``m = interp(g, m, b)`` then ``return lr * m``
  depends on ``g`` through ``m``);
* `prune`: the program reduced to what its update depends on (dead statements
  and dead state removed) -- what gets fingerprinted and trained;
* `prepare_init`: a warm-start program with an ``lr``, the inputs ``w, g, step``
  and the usual state slots (``m``, ``v``) even when it does not use them;
* `program_to_json` / `program_from_json`: exact, plain-JSON IR (checkpoints
  never pickle).

Example:
    >>> from discover import load
    >>> p = prepare_init(load("sgd"))
    >>> p.state_names, sorted(update_inputs(p) & {"g", "m"})
    (('m', 'v'), ['g'])
    >>> len(prune(p).states)
    0
"""
from __future__ import annotations

from typing import Sequence

from ..evaluate.work import ensure_lr
from ..lang.check import check
from ..lang.ir import INPUTS, Const, HParam, Operand, Program, Ref, State, Stmt

STATE_SLOTS = ("m", "v")
"""State slots every warm-start program gets, so evolution can start using them."""


def _deps_one_step(program: Program) -> list[set[str]]:
    """For each returned value, the initial names (inputs, state, hparams) it depends on in one step."""
    deps: dict[str, set[str]] = {}
    for name in list(program.inputs) + list(program.state_names) + list(program.hparam_names):
        deps[name] = {name}
    for stmt in program.body:
        d: set[str] = set()
        for a in stmt.args:
            if isinstance(a, Ref):
                d |= deps.get(a.name, {a.name})
        deps[stmt.target] = d
    return [set(deps.get(a.name, {a.name})) if isinstance(a, Ref) else set() for a in program.returns]


def update_inputs(program: Program) -> set[str]:
    """Names the update depends on over any number of steps (state feedback followed)."""
    outs = _deps_one_step(program)
    state_out = {s.name: outs[1 + i] for i, s in enumerate(program.states)}
    seen = set(outs[0])
    frontier = [n for n in seen if n in state_out]
    while frontier:
        name = frontier.pop()
        for d in state_out[name]:
            if d not in seen:
                seen.add(d)
                if d in state_out:
                    frontier.append(d)
    return seen


def depends_on_g(program: Program) -> bool:
    """Whether the update depends on the gradient (directly or through state)."""
    return "g" in update_inputs(program)


def live_states(program: Program) -> list[str]:
    """States the update reads, directly or through other states."""
    used = update_inputs(program)
    return [s for s in program.state_names if s in used]


def prune(program: Program) -> Program:
    """`program` without statements and state that cannot affect its update."""
    keep_states = set(live_states(program))
    states = tuple(s for s in program.states if s.name in keep_states)
    returns = (program.returns[0],) + tuple(r for s, r in zip(program.states, program.returns[1:])
                                            if s.name in keep_states)
    live = {a.name for a in returns if isinstance(a, Ref)}
    body: list[Stmt] = []
    for stmt in reversed(program.body):
        if stmt.target in live:
            body.append(stmt)
            live.discard(stmt.target)
            live |= {a.name for a in stmt.args if isinstance(a, Ref)}
    return program.with_(states=states, returns=returns, body=tuple(reversed(body)))


def prepare_init(program: Program, slots: Sequence[str] = STATE_SLOTS) -> Program:
    """A warm-start program: an ``lr`` to tune, inputs ``w, g, step``, and state `slots` (zeros)."""
    if program.is_wrapper:
        raise ValueError(f"'{program.name}' wraps another program's update; give a full program such as "
                         f"'{program.name}+adam' to start from")
    program = ensure_lr(program)
    inputs = tuple(n for n in INPUTS if n != "u")
    taken = set(program.state_names) | set(program.hparam_names) | set(INPUTS)
    extra = tuple(State(n) for n in slots if n not in taken)
    program = program.with_(inputs=inputs, states=program.states + extra,
                            returns=program.returns + tuple(Ref(s.name) for s in extra))
    check(program)
    return program


def program_to_json(program: Program) -> dict:
    """The IR as plain JSON data (exact: floats round-trip through JSON)."""

    def op(a: Operand):
        return {"c": a.value} if isinstance(a, Const) else a.name

    return {
        "name": program.name, "doc": program.doc, "inputs": list(program.inputs),
        "states": [[s.name, op(s.init), s.scalar] for s in program.states],
        "hparams": [[h.name, h.default] for h in program.hparams],
        "body": [[s.target, s.op, [op(a) for a in s.args]] for s in program.body],
        "returns": [op(a) for a in program.returns],
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
    states = tuple(State(n, op(i, f"states[{k}] init"), _flag(sc, f"states[{k}] scalar"))
                   for k, (n, i, sc) in enumerate(rows("states", 3)))
    hparams = tuple(HParam(n, number(v, f"hparams[{k}] default")) for k, (n, v) in enumerate(rows("hparams", 2)))
    body = []
    for k, (t, o, args) in enumerate(rows("body", 3)):
        if not isinstance(o, str) or not isinstance(args, list):
            raise ValueError(f"program JSON: body[{k}] must be [target, op name, [arguments]]")
        body.append(Stmt(t, o, tuple(op(a, f"body[{k}] argument") for a in args)))
    program = Program(
        name=name, doc=data.get("doc", ""), inputs=tuple(inputs), states=states, hparams=hparams,
        body=tuple(body), returns=tuple(op(a, f"returns[{k}]") for k, a in enumerate(field("returns"))))
    check(program, filename="program JSON")  # names, definitions and types, as for program text
    return program


def _flag(x, where: str) -> bool:
    if not isinstance(x, bool):
        raise ValueError(f"program JSON: {where} must be true or false, got {x!r}")
    return x


def with_lr(program: Program, lr: float) -> Program:
    """`program` with its ``lr`` default set to `lr` (12 significant digits).

    Example:
        >>> from discover import load
        >>> with_lr(load("sgd"), 0.05).defaults["lr"]
        0.05
    """
    hp = tuple(HParam(h.name, float(f"{lr:.12g}")) if h.name == "lr" else h for h in program.hparams)
    return program.with_(hparams=hp)


def with_lr_scale(program: Program, factor: float) -> Program:
    """`program` with its ``lr`` default multiplied by `factor` (the grid choice folded in)."""
    if factor == 1.0:
        return program
    # 12 significant digits: 0.1 * 3 prints as 0.3, not 0.30000000000000004 (far below float32 round-off).
    hp = tuple(HParam(h.name, float(f"{h.default * factor:.12g}")) if h.name == "lr" else h for h in program.hparams)
    return program.with_(hparams=hp)
