"""The IR passes every part of discover shares: SSA, names, dependencies, dead code, lr, state start.

Programs are immutable; every pass returns a new one.

- **single-assignment form** (`to_ssa`): every statement gets a target of its own
  (``m#3``: the base name, ``#``, its index), so a name means one value everywhere;
- **names**: `initial_names`, `definitions`, `use_counts`, `rename`, `renumber_temps`;
- **dependencies**: `dependencies` (what each output reads in one step), `update_inputs`
  (what the update reads over any number of steps, through state), `live_states`;
- **dead code**: `dead_code` (statements no output needs), `prune` (dead state too),
  `drop_unused` (inputs and hyperparameters nothing reads);
- `op_count`, `ensure_lr` (an ``lr`` to scale), `state_start` (what a state starts from).

Composition is `discover.lang.compose`, the JSON form `discover.lang.jsonform`.

Example:
    >>> from discover import parse
    >>> p = parse("def f(w, g, m=0, v=0, *, lr=0.1):\\n    v = v + 1\\n    m = interp(g, m, 0.9)\\n"
    ...           "    return lr * m, m, v\\n")
    >>> sorted(update_inputs(p)), live_states(p)
    (['g', 'lr', 'm'], ['m'])
    >>> prune(p).state_names, [s.target for s in to_ssa(p).body][:2]
    (('m',), ['v#0', 'm#1'])
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

from .ir import Const, EvalWeights, HParam, Operand, Program, Ref, State, Stmt, is_temp

LR = "lr"
"""The hyperparameter learning-rate grids and schedulers scale."""


# --------------------------------------------------------------------------- names


def base_name(name: str) -> str:
    """The user-facing part of an SSA name (``m#3`` -> ``m``)."""
    return name.split("#", 1)[0]


def initial_names(program: Program) -> set[str]:
    """Names bound before the body runs: inputs, states and hyperparameters."""
    return set(program.inputs) | set(program.state_names) | set(program.hparam_names)


def definitions(program: Program) -> dict[str, int]:
    """Statement index of each target (the last, where a name is assigned twice)."""
    return {s.target: i for i, s in enumerate(program.body)}


def use_counts(program: Program) -> Counter:
    """How often each name is read (by statements and returns)."""
    return Counter(program.refs())


def _ren(arg: Operand, mapping: Mapping[str, str]) -> Operand:
    if isinstance(arg, Ref) and arg.name in mapping:
        return Ref(mapping[arg.name])
    return arg


def rename(program: Program, mapping: Mapping[str, str]) -> Program:
    """Rename names everywhere (targets, reads, returns, state declarations); for SSA programs."""
    body = tuple(Stmt(mapping.get(s.target, s.target), s.op, tuple(_ren(a, mapping) for a in s.args), s.pos)
                 for s in program.body)
    states = tuple(State(mapping.get(s.name, s.name), _ren(s.init, mapping), s.scalar, s.shape)
                   for s in program.states)
    returns = tuple(_ren(a, mapping) for a in program.returns)
    evaluation = program.eval
    if evaluation is not None:  # its own temporaries are its own; the names it reads follow the program's
        own = {s.target for s in evaluation.body}
        outer = {k: v for k, v in mapping.items() if k not in own}
        evaluation = EvalWeights(tuple(Stmt(s.target, s.op, tuple(_ren(a, outer) for a in s.args), s.pos)
                                       for s in evaluation.body), _ren(evaluation.result, outer))
    return program.with_(body=body, states=states, returns=returns, eval=evaluation)


def to_ssa(program: Program) -> Program:
    """The same program with one name per assigned value: statement ``i`` assigns ``base#i``."""
    current: dict[str, str] = {}
    body = []
    for i, stmt in enumerate(program.body):
        args = tuple(_ren(a, current) for a in stmt.args)
        name = f"{base_name(stmt.target)}#{i}"
        current[stmt.target] = name
        body.append(Stmt(name, stmt.op, args, stmt.pos))
    returns = tuple(_ren(a, current) for a in program.returns)
    return program.with_(body=tuple(body), returns=returns)


def renumber_temps(program: Program) -> Program:
    """Give temporaries fresh names ``_t0, _t1, ...`` in order of definition (merges name spaces)."""
    mapping: dict[str, str] = {}
    body = []
    counter = 0
    for stmt in program.body:
        args = tuple(_ren(a, mapping) for a in stmt.args)
        target = stmt.target
        if is_temp(target):
            mapping[target] = f"_t{counter}"
            counter += 1
            target = mapping[stmt.target]
        elif target in mapping:
            del mapping[target]
        body.append(Stmt(target, stmt.op, args, stmt.pos))
    returns = tuple(_ren(a, mapping) for a in program.returns)
    return program.with_(body=tuple(body), returns=returns)


# --------------------------------------------------------------------------- dependencies


def dependencies(program: Program) -> list[set[str]]:
    """For each returned value, the initial names (inputs, states, hyperparameters) it reads in one step."""
    deps: dict[str, frozenset[str]] = {n: frozenset([n]) for n in initial_names(program)}
    for stmt in program.body:
        acc: set[str] = set()
        for a in stmt.args:
            if isinstance(a, Ref):
                acc |= deps.get(a.name, frozenset())
        deps[stmt.target] = frozenset(acc)
    return [set(deps.get(a.name, ())) if isinstance(a, Ref) else set() for a in program.returns]


def update_inputs(program: Program) -> set[str]:
    """Names the update depends on over any number of steps (state feedback followed)."""
    outs = dependencies(program)
    state_out = {s.name: outs[1 + i] for i, s in enumerate(program.states)}
    seen = set(outs[0])
    frontier = [n for n in seen if n in state_out]
    while frontier:
        for d in state_out[frontier.pop()]:
            if d not in seen:
                seen.add(d)
                if d in state_out:
                    frontier.append(d)
    return seen


def live_states(program: Program) -> list[str]:
    """States the update reads, directly or through other states, or that the evaluation weights
    (`discover.lang.ir.EvalWeights`) read, with the states they depend on."""
    used = update_inputs(program)
    if program.eval is not None:
        outs = dependencies(program)
        state_out = {s.name: outs[1 + i] for i, s in enumerate(program.states)}
        frontier = [n for n in program.eval.reads() if n in state_out and n not in used]
        used |= set(frontier)
        while frontier:
            for d in state_out[frontier.pop()]:
                if d not in used:
                    used.add(d)
                    if d in state_out:
                        frontier.append(d)
    return [s for s in program.state_names if s in used]


# --------------------------------------------------------------------------- dead code


def dead_code(program: Program) -> Program:
    """`program` without the statements no output needs (a name assigned twice is followed)."""
    live = {a.name for a in program.returns if isinstance(a, Ref)}
    body: list[Stmt] = []
    for stmt in reversed(program.body):
        if stmt.target in live:
            body.append(stmt)
            live.discard(stmt.target)
            live |= {a.name for a in stmt.args if isinstance(a, Ref)}
    if len(body) == len(program.body):
        return program
    return program.with_(body=tuple(reversed(body)))


def prune(program: Program) -> Program:
    """`program` without statements and state that cannot affect its update."""
    keep = set(live_states(program))
    states = tuple(s for s in program.states if s.name in keep)
    returns = (program.returns[0],) + tuple(r for s, r in zip(program.states, program.returns[1:])
                                            if s.name in keep)
    return dead_code(program.with_(states=states, returns=returns))


def drop_unused(program: Program) -> Program:
    """`program` without the inputs (other than ``w``, ``g``, ``u``) and hyperparameters nothing reads."""
    used = set(program.refs()) | {s.init.name for s in program.states if isinstance(s.init, Ref)}
    if program.eval is not None:
        used |= set(program.eval.reads())
    inputs = tuple(i for i in program.inputs if i in used or i in ("w", "g", "u"))
    hparams = tuple(h for h in program.hparams if h.name in used)
    return program.with_(inputs=inputs, hparams=hparams)


def op_count(program: Program) -> int:
    """Operations a step performs (plain copies do not count)."""
    return sum(1 for s in program.body if s.op != "copy")


# --------------------------------------------------------------------------- lr and state


def ensure_lr(program: Program) -> Program:
    """`program` with an ``lr`` hyperparameter a grid or a scheduler can scale.

    A program without one gets ``lr=1`` multiplying its update, which does not change
    what it does at the default.

    Example:
        >>> from discover import parse
        >>> ensure_lr(parse("def f(w, g):\\n    return sign(g)\\n")).defaults
        {'lr': 1.0}
    """
    if LR in program.hparam_names:
        return program
    taken = {s.target for s in program.body}
    name = "_lr_scaled"
    while name in taken:
        name += "_"
    body = program.body + (Stmt(name, "mul", (Ref(LR), program.update)),)
    return program.with_(hparams=program.hparams + (HParam(LR, 1.0),), body=body,
                         returns=(Ref(name),) + program.returns[1:])


def state_start(state: State, hparams: Mapping[str, Any]) -> Any:
    """What `state` starts from: None for a copy of the parameter (``m=w``), else its fill value,
    the constant or the hyperparameter's value in `hparams` (a number, or whatever the caller
    keeps there: per-member values of a population).

    Example:
        >>> state_start(State("acc", Ref("initial_accumulator_value")), {"initial_accumulator_value": 0.1})
        0.1
    """
    if isinstance(state.init, Const):
        return state.init.value
    if state.init.name == "w":
        return None
    return hparams[state.init.name]
