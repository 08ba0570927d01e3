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

from dataclasses import dataclass, field
from typing import Any, Callable

from ..lang.check import check
from ..lang.ir import Const, Operand, Program
from ..lang.ops import OPS
from .source import comment, identifier

S, PU, PD, T = "S", "PU", "PD", "T"
"""Value levels: S hyperparameter-only scalar, PU per-tensor scalar known before any tensor
work (step, scalar state), PD per-tensor scalar from a reduction, T tensor."""

REDUCTIONS = ("norm", "rms", "mean")


@dataclass
class Val:
    """One SSA value."""

    id: int
    name: str  # the user's (or parser's) variable name, for readable code
    level: str
    source: str  # "input", "state", "hparam", "stmt"
    py: str = ""  # its identifier in generated Python

    @property
    def tensor(self) -> bool:
        return self.level == T


@dataclass
class Instr:
    """``dst = op(args)``; args are `Val` or `float` (constants). `op` may be a lowered pseudo-op
    (``lerp(y, x, weight)``)."""

    dst: Val
    op: str
    args: list
    src: str = ""  # the original statement, for comments


@dataclass
class Lowered:
    program: Program
    vals: list[Val]
    inputs: dict[str, Val]  # 'w', 'g', 'step'
    hparams: list[Val]
    states: list[tuple[Any, Val]]  # (State, input Val)
    instrs: list[Instr]
    returns: list  # Val or float: update, then each state's final value
    needed: set = field(default_factory=set)  # ids of values the outputs depend on
    _prologue: "Prologue | None" = field(default=None, repr=False)


def level_of(arg: Any) -> str:
    """The level of an instruction argument (a constant is ``S``)."""
    return S if isinstance(arg, float) else arg.level


def lower(program: Program) -> Lowered:
    """SSA form (each value's `py` is its mangled identifier in generated code) with value levels; copies are aliases, interp is split as the reference does."""
    if program.is_wrapper:
        raise ValueError(f"'{program.name}' wraps another optimizer's update; compile a composition "
                         f"such as '{program.name}+adam' instead")
    check(program)
    vals: list[Val] = []

    def new(name: str, level: str, source: str) -> Val:
        v = Val(len(vals), name, level, source)
        vals.append(v)
        return v

    env: dict[str, Val] = {}
    inputs: dict[str, Val] = {}
    for name in program.inputs:
        inputs[name] = env[name] = new(name, {"w": T, "g": T, "step": PU}[name], "input")
    states = []
    for s in program.states:
        env[s.name] = new(s.name, PU if s.scalar else T, "state")
        states.append((s, env[s.name]))
    hparams = []
    for h in program.hparams:
        env[h.name] = new(h.name, S, "hparam")
        hparams.append(env[h.name])
    instrs: list[Instr] = []

    def operand(a: Operand):
        return float(a.value) if isinstance(a, Const) else env[a.name]

    def emit(name: str, op: str, args: list, src: str) -> Val:
        levels = [level_of(a) for a in args]
        if op in REDUCTIONS:
            level = PD
        else:  # the checker's rule: the widest argument type
            level = next((lv for lv in (T, PD, PU) if lv in levels), S)
        dst = new(name, level, "stmt")
        instrs.append(Instr(dst, op, list(args), src))
        return dst

    for stmt in program.body:
        args = [operand(a) for a in stmt.args]
        src = comment(f"{stmt.target} = {stmt.op}({', '.join(_describe(a) for a in stmt.args)})")
        if stmt.op == "copy":
            env[stmt.target] = args[0] if isinstance(args[0], Val) else emit(stmt.target, "copy", args, src)
            continue
        if stmt.op == "interp":
            x, y, a = args
            if level_of(x) == T and level_of(y) == T:
                # torch.lerp(y, x, 1 - a): the weight is computed as the reference does
                weight = 1.0 - a if isinstance(a, float) else emit("_weight", "sub", [1.0, a], src)
                env[stmt.target] = emit(stmt.target, "lerp", [y, x, weight], src)
                continue
            if T in (level_of(x), level_of(y), level_of(a)) or PD in (level_of(x), level_of(y), level_of(a)):
                # (1 - a) * x + a * y with tensor arithmetic, as the reference's fallback
                c = 1.0 - a if isinstance(a, float) else emit("_one_minus", "sub", [1.0, a], src)
                t1 = emit("_x", "mul", [c, x], src)
                t2 = emit("_y", "mul", [a, y], src)
                env[stmt.target] = emit(stmt.target, "add", [t1, t2], src)
                continue
        env[stmt.target] = emit(stmt.target, stmt.op, args, src)
    returns = [operand(a) for a in program.returns]
    low = Lowered(program, vals, inputs, hparams, states, instrs, returns)
    # values the outputs need (dead statements are dropped)
    need = {r.id for r in returns if isinstance(r, Val)}
    for ins in reversed(instrs):
        if ins.dst.id in need:
            need |= {a.id for a in ins.args if isinstance(a, Val)}
    low.needed = need
    low.instrs = [i for i in instrs if i.dst.id in need]
    for v in vals:
        v.py = _py_name(v)
    return low


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
    needs one pass more than its argument. Raises `ValueError` for a reduction of a non-tensor."""
    phase: dict[int, int] = {}
    for ins in low.instrs:
        p = max((phase.get(a.id, 0) for a in ins.args if isinstance(a, Val)), default=0)
        if ins.op in REDUCTIONS:
            if not (isinstance(ins.args[0], Val) and ins.args[0].level == T):
                raise ValueError(f"{ins.op} of a non-tensor value")
            p += 1
        phase[ins.dst.id] = p
    passes = []
    for r in range(1, max(phase.values(), default=0) + 1):
        reds = [i for i in low.instrs if i.op in REDUCTIONS and phase[i.dst.id] == r]
        need = {i.args[0].id for i in reds}
        inputs = []
        for ins in reversed(low.instrs):
            if ins.dst.level == T and ins.dst.id in need:
                need |= {a.id for a in ins.args if isinstance(a, Val)}
                inputs.append(ins)
        after = [i for i in low.instrs if i.dst.level == PD and i.op not in REDUCTIONS and phase[i.dst.id] == r]
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
        keys = list(zip(steps, *scalars))
        first = keys[0]
        if keys.count(first) == n:
            return pre(*hp, *first)
        memo: dict = {}
        rows = []
        for k in keys:
            r = memo.get(k)
            if r is None:
                r = memo[k] = pre(*hp, *k)
            rows.append(r)
    else:
        first = steps[0]
        if steps.count(first) == n:
            return pre(*hp, first)
        memo = {}
        rows = []
        for s in steps:
            r = memo.get(s)
            if r is None:
                r = memo[s] = pre(*hp, s)
            rows.append(r)
    return tuple(list(col) for col in zip(*rows)) if rows and rows[0] else ()


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
        args = ", ".join(repr(a) if isinstance(a, float) else a.py for a in ins.args)
        lines.append(f"    {ins.dst.py} = _F_{ins.op}({args})  # {ins.src}")
    lines.append(f"    return ({''.join(v.py + ', ' for v in outputs)})")
    return lines, outputs


def scalar_state_sources(low: Lowered, columns: dict[int, int]) -> list[tuple[str, int | float]]:
    """For each scalar state: where its new value comes from, a column of the prologue's outputs
    (`columns` maps value ids to columns) or a constant."""
    finals = dict(zip([s.name for s, _ in low.states], low.returns[1:]))
    return [(s.name, columns[finals[s.name].id] if isinstance(finals[s.name], Val) else float(finals[s.name]))
            for s, _ in low.states if s.scalar]
