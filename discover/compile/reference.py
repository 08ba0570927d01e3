"""The reference backend: interpret the IR one parameter tensor at a time.

Simple on purpose; the other backends are tested against it and against
torch.optim. `interpret` is also the semantics used by probes and fingerprints.

Example:
    >>> import torch
    >>> from discover import load
    >>> out = interpret(load("sgd"), {"w": torch.ones(2), "g": torch.ones(2), "lr": 0.5, "weight_decay": 0.0})
    >>> out[0]
    tensor([0.5000, 0.5000])
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..lang.ir import Const, Program
from ..lang.ops import OPS


def interpret(program: Program, env: Mapping[str, Any], *, batched: bool = False) -> list[Any]:
    """Run `program` once on `env` (inputs, state and hyperparameters by name).

    Returns the returned values: the update, then the new value of each state.
    With ``batched=True`` tensors carry a leading population axis and
    reductions work per member (over every other axis). Group ops (``group_sum``)
    see a group of this one parameter; `interpret_group` runs a whole group.
    """
    return interpret_group(program, [env], batched=batched)[0]


def interpret_group(program: Program, envs: list[Mapping[str, Any]], *, batched: bool = False) -> list[list[Any]]:
    """Run `program` once for each parameter of a group (`envs`, one per parameter), statement by
    statement, so that group ops (``group_sum``, ``group_norm``) see every parameter's value.
    Returns each parameter's returned values, as `interpret` does."""
    values = [dict(env) for env in envs]
    for stmt in program.body:
        op = OPS[stmt.op]
        args = [[a.value if isinstance(a, Const) else v[a.name] for a in stmt.args] for v in values]
        if op.group_fn is not None:
            out = op.group_fn([a[0] for a in args], batched=True) if batched else op.group_fn([a[0] for a in args])
            for v in values:
                v[stmt.target] = out
            continue
        fn = op.batched_fn if (batched and op.batched_fn is not None) else op.fn
        for v, a in zip(values, args):
            v[stmt.target] = fn(*a)
    return [[a.value if isinstance(a, Const) else v[a.name] for a in program.returns] for v in values]


evaluate = interpret
"""The old name of `interpret` (kept for code written before; `discover.evaluate` is the evaluator package)."""


def reference_step(program: Program, params: list[Tensor], grads: list[Tensor], states: dict[str, list],
                   steps: list[int], hparams: Mapping[str, float]) -> dict[str, list]:
    """Apply one step of `program` to the parameters (in place), as one group.

    Tensor state is updated in place; the new values of scalar state are returned
    (name -> list, one per parameter).
    """
    scalar_names = [s.name for s in program.states if s.scalar]
    new_scalars: dict[str, list] = {name: [] for name in scalar_names}
    envs = []
    for i, (p, g) in enumerate(zip(params, grads)):
        env: dict[str, Any] = dict(hparams)
        env.update(w=p, g=g, step=steps[i])
        for s in program.states:
            env[s.name] = states[s.name][i]
        envs.append(env)
    outs = interpret_group(program, envs)
    for i, (p, out) in enumerate(zip(params, outs)):
        # A returned value may be a buffer this step overwrites (states swapped, a state
        # returned as the update, w kept as state): read all of them before writing any.
        buffers = {id(p)} | {id(states[s.name][i]) for s in program.states if not s.scalar}
        update, *new_states = [v.clone() if id(v) in buffers else v for v in out]
        for s, value in zip(program.states, new_states):
            if s.scalar:
                new_scalars[s.name].append(value)
            else:
                states[s.name][i].copy_(value)
        p.sub_(update)
    return new_scalars
