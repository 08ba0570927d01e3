"""Behavioural fingerprints: what a program does to fixed probe inputs over a few steps.

Two programs with the same probe trace are treated as the same optimizer: the
search cache reuses scores by fingerprint, and every simplification is proved
by comparing traces before and after.

The probe runs the program as an optimizer would, in float64, on two small
parameter tensors (so per-tensor reductions are exercised on different
shapes) with gradients of varied scale and sign, using the program's own
default hyperparameters.

Example:
    >>> from discover import load
    >>> fingerprint(load("adam")) == fingerprint(load("adam"))
    True
    >>> equivalent(load("adam"), load("adamw"))
    False
"""
from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from ..compile.reference import interpret, interpret_group
from ..lang.check import state_shape
from ..lang.ir import Program
from ..lang.passes import state_start
from ..lang.shapes import concrete

PROBE_STEPS = 6
_SHAPES = ((7,), (3, 5))


def _probe_inputs(steps: int, seed: int) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(seed)
    probes = []
    for shape in _SHAPES:
        w = torch.randn(shape, generator=gen, dtype=torch.float64)
        scales = torch.logspace(-2, 1, steps, dtype=torch.float64)[torch.randperm(steps, generator=gen)]
        grads = [torch.randn(shape, generator=gen, dtype=torch.float64) * s for s in scales]
        wrapped = [torch.randn(shape, generator=gen, dtype=torch.float64) * 1e-2 for _ in range(steps)]
        probes.append({"w": w, "g": grads, "u": wrapped})
    return probes


def probe_trace(program: Program, steps: int = PROBE_STEPS, seed: int = 0) -> torch.Tensor:
    """The updates `program` makes on the probe inputs: a float64 tensor (steps, values).

    The probe parameters are one param group, a vector and a (3 x 5) matrix: group ops
    (``group_sum``) sum over both, and matrix ops see a matrix that is not square (so ``g`` and
    ``transpose(g)`` differ) and a vector (which they read as a diagonal matrix).
    NaN or inf are kept as they come; a program that raises gives an all-NaN trace.
    """
    probes = _probe_inputs(steps, seed)
    rows = run_group_probe(program, [p["w"] for p in probes], [p["g"] for p in probes], update_w=True,
                           wrapped=[p["u"] for p in probes])
    return torch.stack([torch.cat([u.reshape(-1) for u in per_step]) for per_step in zip(*rows)])


def fingerprint(program: Program, steps: int = PROBE_STEPS, digits: int = 6) -> str:
    """A short hash of the probe trace, rounded to `digits` significant digits.

    Example:
        >>> from discover import load
        >>> len(fingerprint(load("sgd")))
        16
    """
    trace = probe_trace(program, steps)
    text = ",".join(_round(v, digits) for v in trace.reshape(-1).tolist())
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _round(value: float, digits: int) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    return f"{value:.{digits - 1}e}"


def equivalent(a: Program, b: Program, steps: int = 8, rtol: float = 1e-7, atol: float = 1e-12) -> bool:
    """True when `a` and `b` make the same updates on the probe inputs (NaN matches NaN).

    Example:
        >>> from discover import load, parse
        >>> equivalent(load("sgd"), parse("def sgd(w, g, *, lr=1e-3, weight_decay=0.0):\\n    return lr * g + lr * weight_decay * w\\n"))
        True
    """
    ta, tb = probe_trace(a, steps), probe_trace(b, steps)
    return bool(torch.allclose(ta, tb, rtol=rtol, atol=atol, equal_nan=True))


# --------------------------------------------------------------------------- probing (analysis)
def initial_state(program: Program, w: torch.Tensor, hparams: dict[str, float]) -> dict[str, Any]:
    """The program's state before its first step, for parameter `w` (float64 probes); ``per_row`` and
    ``per_col`` state has its own shape (`discover.lang.shapes.concrete`)."""
    state: dict[str, Any] = {}
    for s in program.states:
        init = state_start(s, hparams)
        if init is None:  # a copy of w
            init = w.clone()
        if not (s.scalar or isinstance(init, torch.Tensor)):
            init = torch.full(_state_shape(s, w), init, dtype=w.dtype) if s.shape else torch.full_like(w, init)
        state[s.name] = init
    return state


def _state_shape(state: Any, w: torch.Tensor) -> tuple[int, ...]:
    """The torch shape of tensor state `state` for parameter `w`."""
    return concrete(state_shape(state), tuple(w.shape)) if state.shape else tuple(w.shape)


def run_probe(program: Program, w: torch.Tensor, grads: list[torch.Tensor], *,
              hparams: dict[str, float] | None = None, update_w: bool = False,
              wrapped: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """The updates `program` makes for the gradients `grads`, one step each, from parameter `w`.

    With ``update_w=False`` the parameter stays at `w` (so only the gradients and
    the state drive the updates: what property probes want); `hparams` override
    the defaults. A step that raises gives NaN from then on.

    Example:
        >>> from discover import load
        >>> g = torch.tensor([1.0, -2.0], dtype=torch.float64)
        >>> [u.tolist() for u in run_probe(load("sgd"), torch.zeros(2, dtype=torch.float64), [g], hparams={"lr": 0.5})]
        [[0.5, -1.0]]
    """
    return run_group_probe(program, [w], [grads], hparams=hparams, update_w=update_w,
                           wrapped=None if wrapped is None else [wrapped])[0]


def run_group_probe(program: Program, ws: list[torch.Tensor], grads: list[list[torch.Tensor]], *,
                    hparams: dict[str, float] | None = None, update_w: bool = False,
                    wrapped: list[list[torch.Tensor]] | None = None) -> list[list[torch.Tensor]]:
    """`run_probe` for parameters `ws` stepping together as one param group (group ops see them
    all): for each parameter, its updates, one per step. A step that raises gives NaN from then on."""
    hp = {**program.defaults, **(hparams or {})}
    ws = list(ws)
    states = [initial_state(program, w, hp) for w in ws]
    out: list[list[torch.Tensor]] = [[] for _ in ws]
    failed = False
    for t in range(len(grads[0])):
        if not failed:
            envs = [{**hp, **state, "w": w, "g": g[t], "step": t + 1,
                     "u": wrapped[k][t] if wrapped is not None else torch.zeros_like(w)}
                    for k, (w, g, state) in enumerate(zip(ws, grads, states))]
            try:
                results = interpret_group(program, envs)
                updates = [torch.as_tensor(r[0], dtype=torch.float64).expand_as(w).clone() for r, w in zip(results, ws)]
                for w, state, (_, *new_state) in zip(ws, states, results):
                    for s, value in zip(program.states, new_state):
                        state[s.name] = value if s.scalar else torch.as_tensor(
                            value, dtype=torch.float64).expand(_state_shape(s, w)).clone()
            except Exception:
                failed = True
        if failed:
            for k, w in enumerate(ws):
                out[k].append(torch.full_like(w, math.nan))
            continue
        for k, u in enumerate(updates):
            out[k].append(u)
            if update_w:
                ws[k] = ws[k] - u
    return out


def probe_distance(a: Program, b: Program, steps: int = PROBE_STEPS, seed: int = 0) -> float:
    """How differently `a` and `b` move parameters on the probe inputs, ignoring overall step size:
    the mean over probe steps of ``1 - cos(update_a, update_b)`` (0: same directions; inf if either is NaN).

    Example:
        >>> from discover import load
        >>> probe_distance(load("adam"), load("adam"))
        0.0
    """
    ta, tb = probe_trace(a, steps, seed), probe_trace(b, steps, seed)
    if not (bool(torch.isfinite(ta).all()) and bool(torch.isfinite(tb).all())):
        return math.inf
    cos = torch.nn.functional.cosine_similarity(ta, tb, dim=1, eps=1e-300)
    d = float((1 - cos).mean())
    return 0.0 if d < 1e-12 else d


def probe_states(program: Program, steps: int = PROBE_STEPS, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state values `program` carries over the probe run of `probe_trace`, by state name:
    each a float64 tensor (steps, values). Sign-based updates can hide changes that the state
    still shows, so analysis compares these too where two programs share a state.
    """
    rows: dict[str, list[list[torch.Tensor]]] = {s.name: [[] for _ in range(steps)] for s in program.states}
    hp = program.defaults
    for probe in _probe_inputs(steps, seed):
        w = probe["w"].clone()
        state = initial_state(program, w, hp)
        for t in range(steps):
            env = {**hp, **state, "w": w, "g": probe["g"][t], "u": probe["u"][t], "step": t + 1}
            try:
                update, *new_state = interpret(program, env)
                update = torch.as_tensor(update, dtype=torch.float64).expand_as(w)
            except Exception:
                update, new_state = torch.full_like(w, math.nan), [math.nan] * len(program.states)
            for s, value in zip(program.states, new_state):
                state[s.name] = torch.as_tensor(value, dtype=torch.float64).expand(
                    tuple(w.shape) if s.scalar else _state_shape(s, w)).clone()
                rows[s.name][t].append(state[s.name].reshape(-1))
            w = w - update
    return {name: torch.stack([torch.cat(r) for r in per_step]) for name, per_step in rows.items()}
