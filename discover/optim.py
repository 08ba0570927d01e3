"""`ProgramOptimizer`: any program, built-in or discovered, as a real `torch.optim.Optimizer`.

It knows nothing of programs beyond the compiled step and the declared state:
hyperparameters are `param_groups` entries (so schedulers can drive any of
them), state lives in ``self.state[p]`` under the program's state names plus
``"step"``, and `state_dict` / `load_state_dict` / hooks / closures come from
`torch.optim.Optimizer` itself.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = ProgramOptimizer(model.parameters(), "adam", lr=1e-2)
    >>> sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10)
    >>> loss = model(torch.ones(2, 3)).sum(); loss.backward()
    >>> opt.step(); opt.zero_grad(); sched.step()
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from .compile.backends import compile_step
from .compile.reference import interpret
from .lang.check import check, state_shape
from .lang.ir import Program
from .lang.names import RESERVED_HPARAMS
from .lang.ops import GROUP, MATRIX, OPS
from .lang.passes import state_start
from .lang.shapes import concrete
from .library import load

# Keys torch itself or its schedulers put into param groups (never a program's hyperparameter).
_TORCH_GROUP_KEYS = RESERVED_HPARAMS
_TRAIN_WEIGHTS = "train_weights"  # a parameter's training weights, kept aside between eval() and train()


class ProgramOptimizer(Optimizer):
    """Run `program` as a torch optimizer.

    Args:
        params: parameters or param-group dicts, as for any torch optimizer.
        program: a built-in name (``"adam"``), a composition (``"lookahead+adam"``),
            a path to a ``.opt`` file, or a `Program`.
        backend: ``"auto"`` (the default) is ``"fused"``, the fastest measured, on CPU, and
            ``"triton"`` on CUDA (when Triton can be imported); each uses ``"foreach"`` where it
            cannot run (CUDA without Triton, non-contiguous tensors, no compiler, programs with
            matrix, row/column or group ops), saying why once;
            or name one: ``"fused"``, ``"triton"``, ``"foreach"`` or ``"reference"``.
        non_matrix: for programs with matrix ops (``matmul``, ``transpose``, ``newton_schulz``), what
            a parameter that is not 2-D gets: ``"error"`` (the default: a `ValueError` naming it, as
            torch.optim.Muon refuses one) or ``"diagonal"`` (the ops read it as a diagonal matrix of
            its values, so they become elementwise: what search trains with).
        **hyperparameters: values for the program's hyperparameters; the rest keep
            the program's defaults. Unknown names raise `ValueError` listing the allowed ones.
            A program with ``beta1`` and ``beta2`` also takes torch's ``betas=(beta1, beta2)``
            (``betas=(beta1, beta2, beta3)`` when it also has ``beta3``, as pytorch_optimizer's
            Adan and AdEMAMix), and its param groups keep ``betas`` in step with them (see
            `BetasGroup`), so ``OneCycleLR(cycle_momentum=True)`` cycles ``beta1`` as it does for
            torch's Adam.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = ProgramOptimizer([w], "sgd", lr=0.5)
        >>> w.grad = torch.ones(3); opt.step()
        >>> w.data
        tensor([0.5000, 0.5000, 0.5000])
    """

    def __init__(self, params: Iterable[Any], program: "str | Path | Program" = "adam", *,
                 backend: "str | Callable[[Program], Callable[..., dict]]" = "auto",
                 non_matrix: str = "error", **hyperparameters: float) -> None:
        self.program = load(program)
        check(self.program)  # a hand-built Program meets the rules parsed text does (names, types)
        if non_matrix not in ("error", "diagonal"):
            raise ValueError(f"non_matrix must be 'error' or 'diagonal', got {non_matrix!r}")
        self.non_matrix = non_matrix
        self._matrix_ops = sorted({s.op for s in self.program.body if OPS[s.op].kind == MATRIX})
        self._group_ops = sorted({s.op for s in self.program.body if OPS[s.op].kind == GROUP})
        if self.program.is_wrapper:
            raise ValueError(f"'{self.program.name}' wraps another optimizer's update; "
                             f"give it one to wrap, e.g. '{self.program.name}+adam'")
        self._beta_names = beta_names(self.program)
        self._betas = bool(self._beta_names)
        self._check_hyperparameters(hyperparameters, "ProgramOptimizer()")
        if self._betas:
            hyperparameters = with_betas(hyperparameters, self.program.defaults, "ProgramOptimizer()")
        defaults = {**self.program.defaults, **hyperparameters}
        self.backend = backend
        self._step_fn: Callable[..., dict] = compile_step(self.program, backend)
        super().__init__(params, defaults)

    # ------------------------------------------------------------------ contract
    def _check_hyperparameters(self, given: dict[str, Any], where: str, extra: set[str] = frozenset()) -> None:
        allowed = self.program.hparam_names + (("betas",) if self._betas else ())
        unknown = sorted(k for k in given if k not in allowed and k not in extra)
        if unknown:
            raise ValueError(
                f"{where}: unknown hyperparameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                f"for program '{self.program.name}'; allowed: {', '.join(allowed) or '(none)'}")
        for key in given:
            if key == "betas" and self._betas:
                value, names = given[key], self._beta_names
                if not isinstance(value, (tuple, list)) or len(value) != len(names):
                    kind = "pair" if len(names) == 2 else "triple"
                    raise ValueError(f"{where}: betas must be a {kind} ({', '.join(names)}) for program "
                                     f"'{self.program.name}', got {value!r}")
                self._check_hyperparameters(dict(zip(names, value)), where)
            elif key in allowed:
                value = given[key]
                if isinstance(value, Tensor):
                    if value.numel() != 1:
                        raise ValueError(f"{where}: hyperparameter {key!r} must be a number, got a tensor of shape {tuple(value.shape)}")
                elif not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise ValueError(f"{where}: hyperparameter {key!r} must be a number, got {value!r}")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its keys must be the program's hyperparameters (or torch's own group keys),
        its parameters floating-point tensors."""
        params = param_group.get("params")
        for i, p in enumerate([params] if isinstance(params, Tensor) else params if isinstance(params, (list, tuple)) else []):
            if isinstance(p, Tensor) and not (p.is_floating_point() or p.is_complex()):
                raise ValueError(f"parameter {i} of param group {len(self.param_groups)} (shape {tuple(p.shape)}) has "
                                 f"dtype {p.dtype}: parameters must be floating point (float32, float64, bfloat16 "
                                 "or float16)")
        if hasattr(self, "program"):
            self._check_hyperparameters({k: v for k, v in param_group.items() if k != "params"},
                                        "param group", extra=_TORCH_GROUP_KEYS)
            if self._matrix_ops and self.non_matrix == "error":
                plist = [params] if isinstance(params, Tensor) else list(params) if isinstance(params, (list, tuple)) else []
                for i, p in enumerate(plist):
                    if isinstance(p, Tensor) and p.dim() != 2:
                        raise ValueError(
                            f"ProgramOptimizer('{self.program.name}'): parameter {i} of param group "
                            f"{len(self.param_groups)} has shape {tuple(p.shape)}, but {', '.join(self._matrix_ops)} "
                            f"{'is a matrix op' if len(self._matrix_ops) == 1 else 'are matrix ops'} for 2-D parameters. "
                            "Give it to another optimizer (AdamW for biases, norms and embeddings, as with "
                            "torch.optim.Muon), or pass non_matrix='diagonal' to treat it as a diagonal matrix "
                            "(what search does)")
            if self._betas:
                param_group = BetasGroup(with_betas(param_group, self.defaults, "param group"))
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load state and param groups (torch's), keeping ``betas`` in step with ``beta1``/``beta2`` (/``beta3``).
        A state dict of another program or optimizer is refused, saying what does not fit."""
        self._check_state_dict(state_dict)
        super().load_state_dict(state_dict)
        if self._betas:
            self.param_groups[:] = [BetasGroup(with_betas(g, g, "loaded param group")) for g in self.param_groups]

    def _check_state_dict(self, state_dict: Any) -> None:
        """What `add_param_group` checks, for every loaded group, and each parameter's state keys."""
        name = self.program.name
        where = f"load_state_dict: not a state dict of ProgramOptimizer('{name}')"
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(f"{where}: it needs 'state' and 'param_groups' (from optimizer.state_dict())")
        for i, group in enumerate(state_dict["param_groups"]):
            if not isinstance(group, dict):
                raise ValueError(f"{where}: param group {i} is {type(group).__name__}, not a dict")
            self._check_hyperparameters({k: v for k, v in group.items() if k != "params"},
                                        f"{where}: param group {i}", extra=_TORCH_GROUP_KEYS)
            missing = [h for h in self.program.hparam_names
                       if h not in group and not (h in self._beta_names and "betas" in group)]
            if missing:
                raise ValueError(f"{where}: param group {i} has no {', '.join(map(repr, missing))} "
                                 f"(program '{name}' has hyperparameters {', '.join(self.program.hparam_names)})")
        keys = set(self.program.state_names) | {"step"}
        for pid, st in state_dict["state"].items():
            if (not isinstance(st, dict) or set(st) != keys) and not (
                    self.program.eval is not None and isinstance(st, dict) and set(st) == keys | {_TRAIN_WEIGHTS}):
                got = sorted(st) if isinstance(st, dict) else type(st).__name__
                raise ValueError(f"{where}: the state of parameter {pid} holds {got}; program '{name}' keeps "
                                 f"{sorted(keys)}")

    def _init_state(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if torch.is_complex(p):
            raise RuntimeError("ProgramOptimizer does not support complex parameters; "
                               "use torch.view_as_real on them")
        state["step"] = 0
        for s in self.program.states:
            value = state_start(s, group)
            if value is None:  # a copy of w
                state[s.name] = p.detach().clone(memory_format=torch.preserve_format)
                continue
            value = _as_float(value)
            if s.scalar:
                state[s.name] = value
            elif s.shape:  # one value per row or per column
                state[s.name] = torch.full(concrete(state_shape(s), tuple(p.shape)), value, dtype=p.dtype, device=p.device)
            else:
                state[s.name] = torch.full_like(p, value, memory_format=torch.preserve_format)

    # ------------------------------------------------------------------ evaluation weights
    def eval(self) -> None:
        """Put each parameter's evaluation weights in it, for a program that defines them (``def eval``
        in its file: schedule-free methods evaluate at the average of their iterates); the training
        weights are kept aside (in the state, as ``train_weights``) until `train`. Call it before
        evaluating the model, and `train` before the next `step`. For other programs it does nothing,
        and a second call changes nothing. Parameters that never took a step keep their weights.

        Example:
            >>> w = torch.nn.Parameter(torch.ones(2))
            >>> opt = ProgramOptimizer([w], "schedulefree_adamw", lr=0.1)
            >>> for _ in range(2):
            ...     w.grad = torch.ones(2); opt.step()
            >>> w.data   # y, where the gradient is taken
            tensor([0.8450, 0.8450])
            >>> opt.eval(); w.data   # x, the average of the iterates
            tensor([0.8500, 0.8500])
            >>> opt.train(); w.data
            tensor([0.8450, 0.8450])
        """
        if self.program.eval is None:
            return
        program = self.program.with_(body=self.program.eval.body, returns=(self.program.eval.result,), eval=None)
        with torch.no_grad():
            for group in self.param_groups:
                hparams = {name: _as_float(group[name]) for name in self.program.hparam_names}
                for p in group["params"]:
                    state = self.state.get(p)
                    if not state or _TRAIN_WEIGHTS in state:
                        continue
                    env = {**hparams, **{name: state[name] for name in self.program.state_names}, "w": p.detach()}
                    weights = interpret(program, env)[0]
                    state[_TRAIN_WEIGHTS] = p.detach().clone()
                    p.copy_(weights)

    def train(self) -> None:
        """Put the training weights back after `eval` (bit for bit); nothing to do otherwise."""
        with torch.no_grad():
            for state_p in list(self.state.items()):
                p, state = state_p
                if isinstance(state, dict) and _TRAIN_WEIGHTS in state:
                    p.copy_(state.pop(_TRAIN_WEIGHTS))

    def _in_eval_mode(self) -> bool:
        return self.program.eval is not None and any(
            isinstance(st, dict) and _TRAIN_WEIGHTS in st for st in self.state.values())

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimization step; `closure` (re-evaluating the loss) is optional."""
        if self._in_eval_mode():
            raise RuntimeError(f"ProgramOptimizer('{self.program.name}') is in eval mode: its parameters hold the "
                               "evaluation weights; call optimizer.train() before step()")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # This loop runs every step for every parameter: it is written for speed
        # (comprehensions, one state lookup per parameter, one bucket in the usual case).
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                shape = next(tuple(p.shape) for p, g in zip(params, grads) if g.is_sparse)
                raise RuntimeError(
                    f"ProgramOptimizer('{self.program.name}') does not support sparse gradients "
                    f"(a parameter of shape {shape} has one); use dense gradients, "
                    "e.g. nn.Embedding(..., sparse=False), or torch.optim.SparseAdam")
            states = [self.state[p] for p in params]
            for p, state in zip(params, states):
                if not state:
                    self._init_state(p, state, group)
                state["step"] += 1
            hparams = {name: _as_float(group[name]) for name in self.program.hparam_names}
            keys = [(p.device, p.dtype) for p in params]
            if all(k == keys[0] for k in keys):
                self._step_bucket(params, grads, states, hparams)
                continue
            if self._group_ops:
                raise RuntimeError(
                    f"ProgramOptimizer('{self.program.name}'): {', '.join(self._group_ops)} sum over a param group, "
                    f"but param group {self.param_groups.index(group)} holds parameters of several devices or dtypes "
                    f"({', '.join(sorted({f'{d} {t}' for d, t in keys}))}); put each device and dtype in a param group of its own")
            buckets: dict[tuple, list[int]] = defaultdict(list)
            for i, key in enumerate(keys):
                buckets[key].append(i)
            for index in buckets.values():
                self._step_bucket([params[i] for i in index], [grads[i] for i in index],
                                  [states[i] for i in index], hparams)
        return loss

    def _step_bucket(self, params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]],
                     hparams: dict[str, float]) -> None:
        """Run the compiled step on parameters that share device and dtype."""
        state_lists = {name: [st[name] for st in states] for name in self.program.state_names}
        new_scalars = self._step_fn(params, grads, state_lists, [st["step"] for st in states], hparams)
        for name, values in new_scalars.items():
            for st, value in zip(states, values):
                st[name] = value

    def __repr__(self) -> str:
        lines = [f"ProgramOptimizer(program={self.program.name!r}, backend={self.backend!r}"]
        for i, group in enumerate(self.param_groups):
            hp = ", ".join(f"{k}={group[k]}" for k in self.program.hparam_names)
            lines.append(f"  group {i}: {hp}")
        return "\n".join(lines) + ")"


def has_betas(program: Program) -> bool:
    """Whether groups get torch's ``betas`` tuple: the program has both ``beta1`` and ``beta2``."""
    return bool(beta_names(program))


def beta_names(program: Program) -> tuple[str, ...]:
    """The hyperparameters a ``betas`` tuple stands for: ``("beta1", "beta2")``, with ``"beta3"``
    when the program has it too (pytorch_optimizer's three-beta methods); ``()`` for a program
    without both ``beta1`` and ``beta2`` (or with a hyperparameter of its own named ``betas``).

    Example:
        >>> from discover import load
        >>> beta_names(load("adam")), beta_names(load("adan")), beta_names(load("sgd"))
        (('beta1', 'beta2'), ('beta1', 'beta2', 'beta3'), ())
    """
    names = set(program.hparam_names)
    if not {"beta1", "beta2"} <= names or "betas" in names:
        return ()
    return ("beta1", "beta2", "beta3") if "beta3" in names else ("beta1", "beta2")


def with_betas(group: dict[str, Any], defaults: dict[str, Any], where: str) -> dict[str, Any]:
    """`group` with ``beta1``, ``beta2`` (``beta3`` when `defaults` has it) and ``betas`` all set and
    agreeing: from ``betas`` if given, else from ``beta1``/``beta2``/``beta3`` (or `defaults`). A
    ``betas`` that contradicts a ``beta1``/``beta2``/``beta3`` given with it is an error."""
    out = dict(group)
    if "betas" in group:
        betas = tuple(group["betas"])
        names = ("beta1", "beta2", "beta3")[:len(betas)]
        for name, value in zip(names, betas):
            if name in group and _as_float(group[name]) != _as_float(value):
                raise ValueError(f"{where}: betas={betas!r} and {name}={group[name]!r} disagree; "
                                 "give one of them")
    else:
        names = ("beta1", "beta2", "beta3") if "beta3" in defaults else ("beta1", "beta2")
        betas = tuple(group.get(name, defaults[name]) for name in names)
    for name, value in zip(names, betas):
        out[name] = value
    out["betas"] = betas
    return out


class BetasGroup(dict):
    """A param group whose ``betas`` tuple and ``beta1``/``beta2`` (/``beta3``) entries are one setting.

    torch's schedulers write ``group["betas"]`` (OneCycleLR and CyclicLR cycle beta1 through it)
    while programs read ``beta1``/``beta2``; writing either form updates the other.

    Example:
        >>> g = BetasGroup(beta1=0.9, beta2=0.999, betas=(0.9, 0.999))
        >>> g["betas"] = (0.85, 0.999); g["beta1"]
        0.85
        >>> g["beta2"] = 0.99; g["betas"]
        (0.85, 0.99)
    """

    def __setitem__(self, key: str, value: Any) -> None:
        if key == "betas":
            value = tuple(value)
            if "betas" in self and len(value) != len(self["betas"]):
                names = ", ".join(("beta1", "beta2", "beta3")[:len(self["betas"])])
                raise ValueError(f"betas must be ({names}) in this param group, got {value!r}")
            for name, b in zip(("beta1", "beta2", "beta3"), value):
                super().__setitem__(name, b)
        elif key in ("beta1", "beta2", "beta3") and "betas" in self:
            super().__setitem__(key, value)
            value, key = tuple(self[n] for n in ("beta1", "beta2", "beta3") if n in self), "betas"
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


def _as_float(value: Any) -> float:
    if isinstance(value, Tensor):
        return float(value.item())
    return float(value)
