"""Composition: a wrapper program (one that reads ``u``, the wrapped update) around another.

``"lookahead+adam"`` is ``compose(load("lookahead"), load("adam"))``: one ordinary program,
which every backend compiles and search can mutate like any other.
"""
from __future__ import annotations

from .check import check
from .errors import ProgramError
from .ir import INPUTS, EvalWeights, HParam, Operand, Program, Ref, State, Stmt, is_temp
from .passes import renumber_temps
from .printer import unparse


def compose(wrapper: Program, inner: Program) -> Program:
    """Inline `inner` into `wrapper` (a program with input ``u``), giving one ordinary program.

    The wrapper's ``u`` becomes the inner program's update. The inner program's
    state and hyperparameters come first. A hyperparameter both declare keeps its
    name in the inner program and is prefixed with the wrapper's name in the
    wrapper (``lookahead_alpha``); other clashing names are prefixed likewise.

    Example:
        >>> from discover import load
        >>> p = compose(load("lookahead"), load("sgd"))
        >>> p.name, p.state_names
        ('lookahead_sgd', ('slow',))
    """
    for part in (wrapper, inner):  # hand-built or loaded from JSON: held to the rules parsed text is
        check(part)
    if not wrapper.is_wrapper:
        raise ValueError(f"'{wrapper.name}' is not a wrapper (it does not take the wrapped update `u`); "
                         "the first program of 'A+B' must be one, e.g. 'lookahead+adam'")
    if inner.is_wrapper:
        raise ValueError(f"'{inner.name}' is a wrapper and needs a program inside it, e.g. '{inner.name}+adam'")

    clash = set(wrapper.hparam_names) & set(inner.hparam_names)
    wrapper_hp = {h: (f"{wrapper.name}_{h}" if h in clash else h) for h in wrapper.hparam_names}
    wrapper_names = set(wrapper.inputs) | set(wrapper.state_names) | set(wrapper_hp.values()) \
        | {s.target for s in wrapper.body}
    taken = set(wrapper_names) | set(inner.hparam_names) | set(INPUTS)

    def fresh(base: str) -> str:
        name = base if base not in taken else f"{inner.name}_{base}"
        i = 1
        while name in taken:
            name, i = f"{inner.name}_{base}{i}", i + 1
        taken.add(name)
        return name

    if wrapper.eval is not None:
        raise ValueError(f"'{wrapper.name}' has evaluation weights (def eval); only the inner program of 'A+B' may")
    # Inner program: rename state and locals that clash with the wrapper, and give
    # re-assigned inputs (e.g. `g = g + wd * w`) new names so the wrapper sees the originals.
    inner_map: dict[str, str] = {}
    states: list[State] = []
    for s in inner.states:
        inner_map[s.name] = s.name if s.name not in wrapper_names else fresh(s.name)
        taken.add(inner_map[s.name])
        states.append(State(inner_map[s.name], s.init, s.scalar, s.shape))
    state_map = dict(inner_map)  # what the inner program's evaluation weights read, renamed
    body: list[Stmt] = []
    update = inner.update
    for stmt in inner.body:
        args = tuple(_rename(a, inner_map) for a in stmt.args)
        target = stmt.target
        if is_temp(target):
            if isinstance(update, Ref) and update.name == target and stmt is _defining(inner, target):
                inner_map[target] = fresh("update")  # the update gets a readable name in the composite
            else:
                inner_map[target] = "_inner" + target  # keep apart from the wrapper's temporaries
        elif target in INPUTS or target in wrapper_names:
            inner_map[target] = fresh(target)
        else:
            inner_map.setdefault(target, target)
            taken.add(target)
        body.append(Stmt(inner_map[target], stmt.op, args, stmt.pos))
    inner_returns = tuple(_rename(a, inner_map) for a in inner.returns)

    # Wrapper: `u` -> the inner update; clashing hyperparameters prefixed.
    wrapper_map = {h: n for h, n in wrapper_hp.items()}
    wrapper_map["u"] = inner_returns[0].name if isinstance(inner_returns[0], Ref) else "u"
    for s in wrapper.states:
        init = _rename(s.init, wrapper_map)
        states.append(State(s.name, init, s.scalar, s.shape))
    for stmt in wrapper.body:
        args = tuple(_substitute_u(a, wrapper_map, inner_returns[0]) for a in stmt.args)
        body.append(Stmt(stmt.target, stmt.op, args, stmt.pos))
    returns = (_substitute_u(wrapper.update, wrapper_map, inner_returns[0]),) + inner_returns[1:] + tuple(
        _substitute_u(a, wrapper_map, inner_returns[0]) for a in wrapper.returns[1:])

    inputs = tuple(n for n in INPUTS if n != "u" and (n in inner.inputs or n in wrapper.inputs))
    hparams = inner.hparams + tuple(HParam(wrapper_hp[h.name], h.default) for h in wrapper.hparams)
    evaluation = None
    if inner.eval is not None:
        own = {s.target for s in inner.eval.body}
        outer = {k: v for k, v in state_map.items() if k not in own}
        evaluation = EvalWeights(tuple(Stmt(s.target, s.op, tuple(_rename(a, outer) for a in s.args), s.pos)
                                       for s in inner.eval.body), _rename(inner.eval.result, outer))
    program = Program(name=f"{wrapper.name}_{inner.name}", inputs=inputs, states=tuple(states),
                      hparams=hparams, body=tuple(body), returns=returns,
                      doc=f"{wrapper.name} around {inner.name}", eval=evaluation)
    program = renumber_temps(program)
    try:
        check(program)
    except ProgramError as exc:  # a bug here, not in the user's programs: say so plainly
        raise ValueError(f"composing {wrapper.name}+{inner.name} gave an invalid program: {exc}\n{unparse(program)}") from None
    return program


def _defining(program: Program, name: str) -> Stmt | None:
    for stmt in program.body:
        if stmt.target == name:
            return stmt
    return None


def _rename(arg: Operand, mapping: dict[str, str]) -> Operand:
    if isinstance(arg, Ref) and arg.name in mapping:
        return Ref(mapping[arg.name])
    return arg


def _substitute_u(arg: Operand, mapping: dict[str, str], inner_update: Operand) -> Operand:
    if isinstance(arg, Ref) and arg.name == "u":
        return inner_update
    return _rename(arg, mapping)
