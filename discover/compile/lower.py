"""The lowering every backend consumes: IR -> typed SSA values, instructions, prologue, passes.

`lower(program)` checks the program and puts it in single-assignment form: every
value is a `Val` with a *level* saying when and how often it is computed, and every
statement an `Instr` on such values (copies become aliases, ``interp`` is split the
way the reference computes it, dead statements are dropped). Levels:

- ``S``: one number per param group (constants, hyperparameters, what follows from them);
- ``PU``: one number per parameter tensor, known before any tensor work (``step``,
  scalar state, what follows from them);
- ``PD``: one number per parameter tensor from a reduction (``norm(g)``, and what
  follows from it);
- ``T``: shaped like the parameter.

The backends share three more things derived from it, so none runs another's code:

- the **scalar prologue** (`prologue`): the S and PU values, computed with the op table's
  IEEE scalar functions as one small Python function of (hyperparameters, step, scalar
  state); `Prologue.run` evaluates it once per bucket, or once per distinct step;
- the **reduction passes** (`reduction_passes`): which passes over memory a program's
  reductions need and what each computes;
- where each scalar state's new value comes from (`scalar_state_sources`).

Example:
    >>> from discover import load
    >>> low = lower(load("adam"))
    >>> sorted({i.dst.level for i in low.instrs})
    ['PU', 'S', 'T']
    >>> pre = prologue(low)   # (lr, beta1, beta2, eps, weight_decay, step) -> what the tensor part reads
    >>> pre.fn(1e-3, 0.9, 0.999, 1e-8, 0.0, 1)[-1]   # lr / (1 - beta1 ** step)
    0.010000000000000002
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ..lang.check import initial_shapes, initial_types, shapes_of
from ..lang.ir import Const, Operand, Program
from ..lang.ops import ALL_OPS, OPS, Type
from ..lang.passes import dead_code
from ..lang.shapes import FULL, Shape
from .source import comment, identifier

S, PU, PD, T = "S", "PU", "PD", "T"
"""Value levels: S hyperparameter-only scalar, PU per-tensor scalar known before any tensor
work (step, scalar state), PD per-tensor scalar from a reduction, T tensor. A level is the
checker's `Type` of the value plus whether a reduction pass must run before it is known."""


@dataclass
class Val:
    """One SSA value: its type (the checker's rule, from the op table) and its `phase`, the
    number of reduction passes that must run before it is known (0: before any tensor work)."""

    id: int
    name: str  # the user's (or parser's) variable name, for readable code
    type: Type
    phase: int
    source: str  # "input", "state", "hparam", "stmt"
    py: str = ""  # its identifier in generated Python
    shape: Shape | None = None  # a tensor's symbolic shape (`discover.lang.shapes`); None for numbers

    @property
    def level(self) -> str:
        if self.type == Type.TENSOR:
            return T
        if self.type == Type.SCALAR:
            return S
        return PD if self.phase else PU

    @property
    def tensor(self) -> bool:
        return self.type == Type.TENSOR

    @property
    def full(self) -> bool:
        """A tensor shaped like the parameter (elementwise kernels index it like w)."""
        return self.type == Type.TENSOR and self.shape == FULL


@dataclass
class Instr:
    """``dst = op(args)``; args are `Val` or `float` (constants). `op` names an entry of the op
    table (`discover.lang.ops.ALL_OPS`), possibly one only lowering rules make (``lerp``)."""

    dst: Val
    op: str
    args: list
    src: str = ""  # the original statement, for comments

    @property
    def pattern(self) -> str:
        """The operand letters (``t``, ``m``, ``d`` or ``n``, see `kind`) of the arguments,
        e.g. ``"tn"`` for (tensor, hyperparameter); backend forms are keyed by it."""
        return "".join(map(kind, self.args))

    @property
    def staged(self) -> bool:
        """Whether this instruction runs as a torch call outside elementwise kernels: a staged op
        (`discover.lang.ops.STAGED`), or any op on a tensor not shaped like the parameter."""
        return ALL_OPS[self.op].staged or any(isinstance(a, Val) and a.tensor and not a.full
                                              for a in [*self.args, self.dst])


@dataclass
class Lowered:
    program: Program
    vals: list[Val]
    inputs: dict[str, Val]  # 'w', 'g', 'step'
    hparams: list[Val]
    states: list[tuple[Any, Val]]  # (State, input Val)
    instrs: list[Instr]
    returns: list  # Val or float: update, then each state's final value
    _prologue: "Prologue | None" = field(default=None, repr=False)


def level_of(arg: Any) -> str:
    """The level of an instruction argument (a constant is ``S``)."""
    return S if isinstance(arg, float) else arg.level


def kind(arg: Any) -> str:
    """The operand letter of an argument: ``t`` (level T, shaped like the parameter), ``m`` (level T,
    another shape: a matrix op's or row/column reduction's result; no op has a form for it, so it
    runs through the op's own function per parameter), ``d`` (PD) or ``n`` (S, PU, constants)."""
    if isinstance(arg, float):
        return "n"
    if arg.level == T:
        return "t" if arg.shape == FULL else "m"
    return "d" if arg.level == PD else "n"


def is_staged(low: "Lowered") -> bool:
    """Whether any instruction of `low` is staged (see `Instr.staged`): the fused and population
    kernels then leave the program to the foreach backend and the torch batched step."""
    return any(i.staged for i in low.instrs) or any(
        isinstance(r, Val) and r.tensor and not r.full for r in low.returns)


def staged_reason(program: Program) -> str:
    """Why `program` cannot run in the fused, Triton and population kernels ("" when it can): the
    staged ops it uses (matrix, row/column, shape or group ops) and what runs them instead."""
    low = lower(program)
    if not is_staged(low):
        return ""
    ops = sorted({i.op for i in low.instrs if ALL_OPS[i.op].staged})
    named = ", ".join(ops) if ops else "tensors of another shape than the parameter"
    verb = "runs" if len(ops) == 1 else "run"
    return (f"it uses {named}, which {verb} as torch calls per parameter (or over the param group) between "
            "foreach passes, not inside one kernel")


class _Builder:
    """Makes values and instructions; what lowering rules see (`discover.lang.ops.Lowering`)."""

    def __init__(self) -> None:
        self.vals: list[Val] = []
        self.instrs: list[Instr] = []
        self.src = ""

    def new(self, name: str, type_: Type, phase: int, source: str) -> Val:
        v = Val(len(self.vals), name, type_, phase, source)
        self.vals.append(v)
        return v

    def kind(self, value: Any) -> str:
        return kind(value)

    def shape(self, value: Any) -> Shape | None:
        return value.shape if isinstance(value, Val) else None

    def emit(self, op: str, *args: Any, name: str = "") -> Any:
        if all(isinstance(a, float) for a in args):  # constants only: folded, as the reference computes them
            return float(ALL_OPS[op].fn(*args))
        entry = ALL_OPS[op]
        types = [Type.SCALAR if isinstance(a, float) else a.type for a in args]
        # a reduction, or a torch call between passes, is known one pass later than its arguments
        phase = max((a.phase for a in args if isinstance(a, Val)), default=0) + (
            1 if entry.reduction or entry.staged else 0)
        dst = self.new(name or f"_{op}", entry.result_type(types), phase, "stmt")
        dst.shape = entry.result_shape([self.shape(a) for a in args])
        self.instrs.append(Instr(dst, op, list(args), self.src))
        return dst


def lower(program: Program) -> Lowered:
    """The program in SSA form with typed values (each value's `py` is its mangled identifier
    in generated code): copies are aliases, ops with a lowering rule are rewritten by it, and
    statements no output needs are dropped."""
    if program.is_wrapper:
        raise ValueError(f"'{program.name}' wraps another optimizer's update; compile a composition "
                         f"such as '{program.name}+adam' instead")
    shapes_of(program)  # checks it
    program = dead_code(program)  # statements no output needs are not lowered
    b = _Builder()
    env: dict[str, Val] = {}
    inputs: dict[str, Val] = {}
    start_shapes = initial_shapes(program)
    for name, type_ in initial_types(program).items():
        if name in program.inputs:
            inputs[name] = env[name] = b.new(name, type_, 0, "input")
            env[name].shape = start_shapes[name]
    states = []
    for s in program.states:
        env[s.name] = b.new(s.name, Type.PER_TENSOR if s.scalar else Type.TENSOR, 0, "state")
        env[s.name].shape = start_shapes[s.name]
        states.append((s, env[s.name]))
    hparams = []
    for h in program.hparams:
        env[h.name] = b.new(h.name, Type.SCALAR, 0, "hparam")
        hparams.append(env[h.name])

    def operand(a: Operand):
        return float(a.value) if isinstance(a, Const) else env[a.name]

    for stmt in program.body:
        args = [operand(a) for a in stmt.args]
        b.src = comment(f"{stmt.target} = {stmt.op}({', '.join(_describe(a) for a in stmt.args)})")
        op = OPS[stmt.op]
        if stmt.op == "copy" and isinstance(args[0], Val):
            env[stmt.target] = args[0]  # an alias, not an instruction
            continue
        value = op.lowering(b, *args) if op.lowering else None
        if value is not None:
            if isinstance(value, Val) and value.source == "stmt":
                value.name = stmt.target
            env[stmt.target] = value
            continue
        env[stmt.target] = b.emit(stmt.op, *args, name=stmt.target)
    returns = [operand(a) for a in program.returns]
    low = Lowered(program, b.vals, inputs, hparams, states, b.instrs, returns)
    for v in b.vals:
        v.py = _py_name(v)
    return low


def py_literal(x: float) -> str:
    """`x` as Python source (``_float('inf')`` where ``repr`` would give a bare name)."""
    return repr(x) if math.isfinite(x) else f"_float('{x!r}')"


def _describe(a: Operand) -> str:
    return repr(a.value) if isinstance(a, Const) else a.name


def _py_name(v: Val) -> str:
    # the number makes it unique; a name that is not a plain ASCII identifier (it cannot be one
    # after validation, but generated code never relies on that) is written as `t`
    return f"{identifier(v.name.lstrip('_'), 't')}__{v.id}"


# --------------------------------------------------------------------------- reduction passes


@dataclass
class ReductionPass:
    """One pass over memory that a fused kernel makes before its body: the `reductions` it sums,
    the tensor-level instructions their arguments need (`inputs`, in program order), and the
    per-tensor instructions computed from its results (`after`)."""

    reductions: list[Instr]
    inputs: list[Instr]
    after: list[Instr]


def reduction_passes(low: Lowered) -> list[ReductionPass]:
    """The passes a program's reductions need, in order: a reduction (and what follows from it)
    needs one pass more than its argument (a value's `phase`)."""
    passes = []
    for r in range(1, max((i.dst.phase for i in low.instrs), default=0) + 1):
        reds = [i for i in low.instrs if ALL_OPS[i.op].reduction and i.dst.phase == r]
        need = {i.args[0].id for i in reds}
        inputs = []
        for ins in reversed(low.instrs):
            if ins.dst.level == T and ins.dst.id in need:
                need |= {a.id for a in ins.args if isinstance(a, Val)}
                inputs.append(ins)
        after = [i for i in low.instrs
                 if i.dst.level == PD and not ALL_OPS[i.op].reduction and i.dst.phase == r]
        passes.append(ReductionPass(reds, inputs[::-1], after))
    return passes


# --------------------------------------------------------------------------- the scalar prologue


def per_param(x: Any, n: int) -> list:
    """A per-parameter list from a float-or-list."""
    return x if isinstance(x, (list, tuple)) else [x] * n


def as_floats(xs: Any) -> Any:
    """Per-tensor values as Python floats (a float, or a list of them)."""
    if isinstance(xs, (list, tuple)):
        return [float(x) for x in xs]
    return float(xs)


@dataclass
class Prologue:
    """The scalar part of a program: ``fn(*hparams, step, *scalar_states) -> outputs``, where
    `outputs` are the S and PU values later code (or an output) reads, in this order. `lines`
    is its Python source (the foreach backend prints it in its generated step)."""

    lines: list[str]
    outputs: list[Val]
    fn: Callable[..., tuple]

    def run(self, hp: tuple, steps: list, scalars: list[list], n: int) -> tuple:
        """The prologue's outputs for `n` parameters (see `run_prologue`)."""
        return run_prologue(self.fn, hp, steps, scalars, n)


def run_prologue(pre: Callable[..., tuple], hp: tuple, steps: list, scalars: list[list], n: int) -> tuple:
    """Run a prologue function for `n` parameters: once if every parameter has the same step and
    scalar state, else once per distinct (step, scalar state); results are floats or per-parameter lists."""
    if scalars:
        args = list(zip(steps, *scalars))
        keys = list(map(distinct, args))
    else:
        keys = args = steps
    first = keys[0]
    if keys.count(first) == n:
        return pre(*hp, *args[0]) if scalars else pre(*hp, first)
    memo: dict = {}
    rows = []
    for key, arg in zip(keys, args):
        r = memo.get(key)
        if r is None:
            r = memo[key] = pre(*hp, *arg) if scalars else pre(*hp, arg)
        rows.append(r)
    return tuple(list(col) for col in zip(*rows)) if rows and rows[0] else ()


def distinct(values: tuple) -> tuple:
    """`values` as a key that tells 0.0 from -0.0 (equal as numbers, but 1 / x tells them apart)."""
    return tuple(x if x else (x, math.copysign(1.0, x)) for x in values)


def prologue(low: Lowered) -> Prologue:
    """The scalar prologue of `low` (built once per lowering): every scalar-level value, computed
    with the op table's IEEE scalar functions."""
    if low._prologue is None:
        lines, outputs = _prologue_source(low)
        namespace: dict[str, Any] = {"_float": float}
        namespace.update({f"_F_{name}": op.fn for name, op in OPS.items()})
        code = compile("\n".join(lines) + "\n", f"<discover prologue {low.program.name}>", "exec")
        exec(code, namespace)  # noqa: S102 - written from the IR; user names are mangled
        low._prologue = Prologue(lines, outputs, namespace["_pre"])
    return low._prologue


def _prologue_source(low: Lowered) -> tuple[list[str], list[Val]]:
    pre_instrs = [i for i in low.instrs if i.dst.level in (S, PU)]
    later = [i for i in low.instrs if i.dst.level in (T, PD)]
    used_later = {a.id for i in later for a in i.args if isinstance(a, Val)}
    used_later |= {r.id for r in low.returns if isinstance(r, Val)}
    scalar_states = [v for s, v in low.states if s.scalar]
    step_val = low.inputs.get("step")
    pre_inputs = [step_val.py if step_val else "_step"] + [v.py for v in scalar_states]
    outputs = [v for v in low.vals if v.level in (S, PU) and v.id in used_later]
    lines = [f"def _pre({', '.join([v.py for v in low.hparams] + pre_inputs)}):",
             '    """Scalar prologue: values that depend only on hyperparameters, step and scalar state."""']
    for v in scalar_states:
        lines.append(f"    {v.py} = _float({v.py})")
    for ins in pre_instrs:
        args = ", ".join(py_literal(a) if isinstance(a, float) else a.py for a in ins.args)
        lines.append(f"    {ins.dst.py} = _F_{ins.op}({args})  # {ins.src}")
    lines.append(f"    return ({''.join(v.py + ', ' for v in outputs)})")
    return lines, outputs


def scalar_state_sources(low: Lowered, columns: dict[int, int]) -> list[tuple[str, int | float]]:
    """For each scalar state: where its new value comes from, a column of the prologue's outputs
    (`columns` maps value ids to columns) or a constant."""
    finals = dict(zip([s.name for s, _ in low.states], low.returns[1:]))
    return [(s.name, columns[finals[s.name].id] if isinstance(finals[s.name], Val) else float(finals[s.name]))
            for s, _ in low.states if s.scalar]
