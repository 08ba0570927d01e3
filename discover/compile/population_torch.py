"""The population step in torch ops: one program applied to a population of stacked parameter sets.

It is what search's population kernel (`population_kernel.py`, C++) falls back to where
that cannot run (other devices, other dtypes, no compiler). Search trains many trials
(candidate x learning rate x seed) together: each
parameter tensor carries a leading population axis, and a candidate's trials
are a contiguous slice of it. `compile_batched(program)` turns a program into a
step that updates such a slice (views, updated in place) with per-member
hyperparameters:

    step(params, grads, states, step, hparams)

* ``params`` / ``grads``: one tensor per parameter, each ``(n, *shape)``;
* ``states``: state name -> one tensor per parameter, ``(n, *shape)`` for tensor
  state and ``(n, 1, ..., 1)`` for scalar state (see `init_states`);
* ``step``: the 1-based step (the same for every member);
* ``hparams``: name -> a Python float (the same for every member) or a tensor
  of shape ``(n,)`` (one value per member), e.g. the learning rates of a grid.

Semantics are those of the reference interpreter with ``batched=True``: every
op is elementwise per member and reductions (``norm``, ``rms``, ``mean``) work per
member over that member's tensor. Statements whose value depends only on
constants, hyperparameters and ``step`` (bias corrections, schedules) are
computed once per step at shape ``(n,)`` and broadcast to every parameter; the
rest run per parameter tensor. The program is put in SSA form first so the two
passes cannot see each other's re-assignments.

Example:
    >>> import torch
    >>> from discover import load
    >>> step = compile_batched(load("sgd"))
    >>> w = torch.ones(3, 2); g = torch.ones(3, 2)
    >>> step([w], [g], {}, 1, {"lr": torch.tensor([0.1, 0.2, 0.5]), "weight_decay": 0.0})
    >>> w[:, 0]
    tensor([0.9000, 0.8000, 0.5000])
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..lang.check import state_shape
from ..lang.ir import Const, Operand, Program
from ..lang.ops import OPS
from ..lang.shapes import concrete
from ..lang.passes import state_start, to_ssa

BatchedStep = Callable[[list, list, dict, int, Mapping[str, Any]], None]


def _view(value: Any, dims: int) -> Any:
    """A per-member ``(n,)`` tensor as ``(n, 1, ..., 1)`` with `dims` dimensions; others unchanged."""
    if isinstance(value, Tensor) and value.dim() == 1 and dims > 1:
        return value.view(value.shape[0], *([1] * (dims - 1)))
    return value


def compile_batched(program: Program) -> BatchedStep:
    """A batched step for `program` (see the module docstring)."""
    ssa = to_ssa(program)
    returns = list(ssa.returns)
    uniform = set(program.hparam_names) | {"step"}
    shared, per_param = [], []
    for name, op, args in ((s.target, s.op, s.args) for s in ssa.body):
        entry = OPS[op]
        if all(isinstance(a, Const) or a.name in uniform for a in args) and not entry.reduction and not entry.staged:
            uniform.add(name)
            shared.append((name, entry.fn, args))
        elif entry.group_fn is not None:  # over every parameter: one value per member
            per_param.append((name, entry.group_fn, args, True))
        else:
            per_param.append((name, entry.batched_fn or entry.fn, args, False))
    states = program.states
    state_names = [s.name for s in states]

    def fetch(a: Operand, values: Mapping[str, Any]) -> Any:
        return a.value if isinstance(a, Const) else values[a.name]

    def step(params: list, grads: list, state: dict, step: int, hparams: Mapping[str, Any]) -> None:
        top: dict[str, Any] = dict(hparams)
        if params:  # per-member values may come from the host (search keeps learning rates there)
            device = params[0].device
            for name, v in top.items():
                if isinstance(v, Tensor) and v.device != device:
                    top[name] = v.to(device, non_blocking=True)
        top["step"] = step
        for name, fn, args in shared:
            top[name] = fn(*(fetch(a, top) for a in args))
        tables = []
        for k, (p, g) in enumerate(zip(params, grads)):
            dims = p.dim()
            values = {name: _view(v, dims) for name, v in top.items()}
            values["w"] = p
            values["g"] = g
            for s in state_names:
                values[s] = state[s][k]
            tables.append(values)
        # statement by statement over the parameters: a group op needs every parameter's argument
        for name, fn, args, group in per_param:
            if group:
                total = fn([fetch(args[0], values) for values in tables], batched=True)
                for values in tables:
                    values[name] = _view(total, values["w"].dim())
                continue
            for values in tables:
                values[name] = fn(*(fetch(a, values) for a in args))
        for k, (p, values) in enumerate(zip(params, tables)):
            out = [fetch(a, values) for a in returns]
            # A returned value may be a state buffer that is about to be overwritten
            # (`return m, v, m`): copy such values first, then write state, then w.
            if state_names:
                bufs = [state[s][k] for s in state_names]
                out = [v.clone() if isinstance(v, Tensor) and any(v is b for j, b in enumerate(bufs) if j != i - 1)
                       else v for i, v in enumerate(out)]
            for s, value in zip(state_names, out[1:]):
                buf = state[s][k]
                if value is not buf:
                    buf.copy_(value if isinstance(value, Tensor) else torch.as_tensor(value, dtype=buf.dtype))
            update = out[0]
            p.sub_(update if isinstance(update, Tensor) else float(update))

    return step


def init_states(program: Program, params: list[Tensor], hparams: Mapping[str, Any]) -> dict[str, list[Tensor]]:
    """Fresh state for a batched step: name -> one tensor per parameter.

    Tensor state is ``(n, *shape)`` (``per_row`` / ``per_col`` state: the member's row or column
    shape, see `discover.lang.shapes.concrete`); scalar state ``(n, 1, ..., 1)``. ``Const(x)``
    fills with x, ``Ref('w')`` copies the parameters, ``Ref(h)`` fills with the
    hyperparameter (per member when it is a tensor).
    """
    out: dict[str, list[Tensor]] = {}
    for s in program.states:
        bufs = []
        for p in params:
            member = tuple(p.shape[1:])
            shape = (p.shape[0],) + ((1,) * (p.dim() - 1) if s.scalar else concrete(state_shape(s), member))
            value = state_start(s, hparams)
            if value is None:  # a copy of w
                if s.scalar:
                    raise ValueError(f"scalar state '{s.name}' cannot start as a copy of w")
                bufs.append(p.detach().clone())
                continue
            buf = torch.empty(shape, dtype=p.dtype, device=p.device)
            if isinstance(value, Tensor):
                buf.copy_(_view(value.to(p.dtype), p.dim()).expand(shape))
            else:
                buf.fill_(float(value))
            bufs.append(buf)
        out[s.name] = bufs
    return out
