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
    reductions work per member (over every other axis).
    """
    values = dict(env)
    for stmt in program.body:
        op = OPS[stmt.op]
        args = [a.value if isinstance(a, Const) else values[a.name] for a in stmt.args]
        fn = op.batched_fn if (batched and op.batched_fn is not None) else op.fn
        values[stmt.target] = fn(*args)
    return [a.value if isinstance(a, Const) else values[a.name] for a in program.returns]


evaluate = interpret
"""The old name of `interpret` (kept for code written before; `discover.evaluate` is the evaluator package)."""


def reference_step(program: Program, params: list[Tensor], grads: list[Tensor], states: dict[str, list],
                   steps: list[int], hparams: Mapping[str, float]) -> dict[str, list]:
    """Apply one step of `program` to each parameter in turn (in place).

    Tensor state is updated in place; the new values of scalar state are returned
    (name -> list, one per parameter).
    """
    scalar_names = [s.name for s in program.states if s.scalar]
    new_scalars: dict[str, list] = {name: [] for name in scalar_names}
    for i, (p, g) in enumerate(zip(params, grads)):
        env: dict[str, Any] = dict(hparams)
        env.update(w=p, g=g, step=steps[i])
        for s in program.states:
            env[s.name] = states[s.name][i]
        update, *new_states = interpret(program, env)
        # A returned value may be a buffer this step overwrites (states swapped, a state
        # returned as the update, w kept as state): read all of them before writing any.
        buffers = {id(p)} | {id(states[s.name][i]) for s in program.states if not s.scalar}
        update, *new_states = [v.clone() if id(v) in buffers else v for v in (update, *new_states)]
        for s, value in zip(program.states, new_states):
            if s.scalar:
                new_scalars[s.name].append(value)
            else:
                states[s.name][i].copy_(value)
        p.sub_(update)
    return new_scalars
