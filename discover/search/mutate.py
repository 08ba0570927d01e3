"""Mutations of IR programs, and the loop that makes a valid, different child.

One mutation is one of (weights in `MUTATION_WEIGHTS`):

* ``insert``: a random statement ``target = op(args)`` at a random place; the
  op is drawn by its weight in the op table (from the default space, every op that is not a
  matrix, row/column or group op, plus the op sets `Mutator.ops` names), arguments from the names defined
  at that place (inputs, state, hyperparameters, earlier targets) or a
  constant; the target is a new temporary, a state slot or an existing variable;
* ``delete``: remove a statement;
* ``arg``: change one argument of a statement, or which variable is the update;
* ``op``: change a statement's op to another of the same arity;
* ``perturb``: multiply a constant (or a hyperparameter default other than
  ``lr``, which the lr grid tunes) by ``2 ** N(0, 1)``;
* ``resample``: replace a constant with a fresh draw;
* ``ema``: give one use of a value a memory: ``s = interp(x, s, beta)`` for a state slot ``s``
  the update does not read yet, with that use of ``x`` now reading ``s`` (``lr * g`` becomes
  momentum, ``clip(g, c)`` signum-like). One step where ``insert`` + ``arg`` would need two, the
  first of them neutral. Off by default (weight 0: the default space draws exactly as before it
  existed); ``discover search --mutations ema=1`` turns it on.

`Mutator.child` applies mutations to the parent, one after another, until the
result type-checks, fits the length limit, has an update that depends on
``g``, keeps ``lr`` a pure scale of the update (positively homogeneous of degree
1, checked by probing: `discover.analysis.lr_scale`; mutations never pick ``lr``
as an argument, so it only ever enters as the warm start's own factor), and
behaves differently from the parent (its fingerprint differs); invalid steps
are dropped, neutral ones accumulate (as in the Lion paper).

Fingerprints here are taken with ``lr = 1``: the algorithm, not its step size,
which search tunes per task and carries along each lineage.

Example:
    >>> import random
    >>> from discover import load
    >>> from discover.search.program import prepare_init
    >>> parent = prepare_init(load("sgd"))
    >>> child, fp, how = Mutator().child(parent, random.Random(0))
    >>> fp != Mutator().fingerprint(parent)
    True
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..analysis.fingerprint import fingerprint
from ..analysis.lr_scale import lr_scale_violation
from ..lang.check import check
from ..lang.errors import ProgramError
from ..lang.ir import Const, HParam, Operand, Program, Ref, Stmt, is_temp
from ..lang.ops import OPS, search_ops
from ..lang.passes import renumber_temps
from .program import prune, update_inputs, with_lr

LR = "lr"

# "ema" last, at weight 0: a zero weight at the end leaves random.choices' draws of the others as they were
MUTATION_WEIGHTS = {"insert": 2.0, "delete": 1.0, "arg": 2.0, "op": 1.5, "perturb": 1.0, "resample": 0.5, "ema": 0.0}
EMA_DECAYS = (0.9, 0.99, 0.5, 0.999)
CONSTANTS = (0.5, 1.0, 2.0, 0.9, 0.99, 0.999, 0.1, 0.01, 1e-3, 1e-8, 10.0)


def mutation_weights(changes: dict[str, float] | None = None) -> dict[str, float]:
    """`MUTATION_WEIGHTS` with `changes` applied; `ValueError` naming an unknown kind or a bad weight.

    Example:
        >>> mutation_weights({"ema": 1})["ema"], mutation_weights()["ema"]
        (1.0, 0.0)
    """
    out = dict(MUTATION_WEIGHTS)
    for kind, weight in (changes or {}).items():
        if kind not in out:
            raise ValueError(f"unknown mutation {kind!r}: the mutations are {', '.join(MUTATION_WEIGHTS)}")
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"mutation weight of {kind!r} must be a number >= 0, got {weight!r}")
        out[kind] = float(weight)
    if sum(out.values()) <= 0:
        raise ValueError("at least one mutation needs a weight above 0")
    return out


class NoChild(Exception):
    """No valid, different child was found within the allowed tries."""


@dataclass
class Mutator:
    """Makes children of programs; see the module docstring.

    ``max_len``: most statements a child may have; ``max_tries``: mutations tried
    per child before giving up (`NoChild`); ``const_prob``: chance that a new
    argument is a constant rather than a name; ``weights``: mutation weights that replace
    those of `MUTATION_WEIGHTS` by name (``{"ema": 1.0}``).
    """

    max_len: int = 28
    max_tries: int = 60
    const_prob: float = 0.2
    ops: tuple[str, ...] = ()  # op sets added to the default space (`discover.lang.ops.SEARCH_OP_SETS`)
    weights: dict[str, float] | None = None

    def __post_init__(self) -> None:
        weights = search_ops(self.ops)
        self._ops = list(weights)
        self._op_weights = list(weights.values())
        kinds = mutation_weights(self.weights)
        self._kinds = list(kinds)
        self._kind_weights = list(kinds.values())

    # ------------------------------------------------------------------ checks
    def invalid(self, program: Program) -> str | None:
        """Why `program` cannot be a child (None if it can)."""
        if len(program.body) > self.max_len:
            return f"longer than {self.max_len} statements"
        try:
            check(program)
        except ProgramError as exc:
            return f"does not type-check: {exc.args[0] if exc.args else exc}"
        used = update_inputs(program)
        if "g" not in used:
            return "update does not depend on g"
        if LR in program.hparam_names:
            if LR not in used:
                return "update does not depend on lr (the lr grid could not tune it)"
            why = lr_scale_violation(prune(program))
            if why is not None:
                return f"lr is not a pure scale of the update: {why}"
        return None

    @staticmethod
    def fingerprint(program: Program) -> str:
        """The behavioural fingerprint of the program's live part at ``lr = 1`` (the cache key)."""
        p = prune(program)
        return fingerprint(with_lr(p, 1.0) if LR in p.hparam_names else p)

    # ------------------------------------------------------------------ child
    def child(self, parent: Program, rng: random.Random, parent_fp: str | None = None) -> tuple[Program, str, list[str]]:
        """A valid child that differs functionally from `parent`: (program, fingerprint, mutations applied)."""
        parent_fp = parent_fp or self.fingerprint(parent)
        current, applied = parent, []
        for attempt in range(self.max_tries):
            if attempt and attempt % 15 == 0:  # a chain that got stuck (e.g. at the length limit) starts over
                current, applied = parent, []
            kind = rng.choices(self._kinds, self._kind_weights)[0]
            candidate = self.mutate(current, rng, kind)
            if candidate is None or self.invalid(candidate) is not None:
                continue
            current = candidate
            applied.append(kind)
            fp = self.fingerprint(current)
            if fp != parent_fp:
                return current, fp, applied
        raise NoChild(f"no valid child of {parent.name} differing from it after {self.max_tries} mutations")

    # ------------------------------------------------------------------ one mutation
    def mutate(self, program: Program, rng: random.Random, kind: str) -> Program | None:
        """`program` after one mutation of `kind` (possibly invalid), or None if it does not apply."""
        out = getattr(self, f"_{kind}")(program, rng)
        return None if out is None else renumber_temps(out)

    def _names_before(self, program: Program, pos: int) -> list[str]:
        """Names a new argument may refer to at statement `pos` (never ``lr``: it stays a pure scale)."""
        names = list(program.inputs) + list(program.state_names) + [h for h in program.hparam_names if h != LR]
        for stmt in program.body[:pos]:
            if stmt.target not in names:
                names.append(stmt.target)
        return names

    def _const(self, rng: random.Random) -> Const:
        if rng.random() < 0.6:
            return Const(rng.choice(CONSTANTS))
        return Const(float(f"{10 ** rng.uniform(-4, 1):.3g}"))

    @staticmethod
    def _weight(p: Program, name: str) -> float:
        # The gradient and state are what optimizers are made of: draw them more often.
        if name == "g" or name in p.state_names:
            return 3.0
        return 0.5 if name == "step" else 1.0

    def _pick(self, p: Program, names: list[str], rng: random.Random) -> str:
        return rng.choices(names, [self._weight(p, n) for n in names])[0]

    def _operand(self, names: list[str], rng: random.Random, p: Program | None = None) -> Operand:
        if rng.random() < self.const_prob:
            return self._const(rng)
        return Ref(self._pick(p, names, rng) if p is not None else rng.choice(names))

    def _insert(self, p: Program, rng: random.Random) -> Program | None:
        pos = rng.randint(0, len(p.body))
        names = self._names_before(p, pos)
        op = rng.choices(self._ops, self._op_weights)[0]
        # operands drawn; an op's options (newton_schulz's step count and coefficients) start at their
        # defaults, which perturb and resample then change like any constant
        args = [self._operand(names, rng, p) for _ in range(OPS[op].tensor_arity)]
        args += [Const(default) for _, default in OPS[op].options]
        r = rng.random()
        variables = [n for n in names if n not in p.hparam_names and n not in ("w", "step") and not is_temp(n)]
        if r < 0.3 and p.states:
            target = rng.choice(p.state_names)
            if rng.random() < 0.5:  # accumulate: the state reads its own old value (EMAs, sums)
                args[rng.randrange(len(args))] = Ref(target)
        elif r < 0.45 and variables:
            target = rng.choice(variables)
        else:
            target = "_new"
        args = tuple(args)
        body = p.body[:pos] + (Stmt(target, op, args),) + p.body[pos:]
        return p.with_(body=body)

    def _ema(self, p: Program, rng: random.Random) -> Program | None:
        live = update_inputs(p)
        free = [name for name in p.state_names if name not in live]
        if not free:
            return None
        state = rng.choice(free)
        # the uses of a tensor name: statement arguments, or the update itself (position len(body))
        uses = [(i, j, a.name) for i, st in enumerate(p.body) for j, a in enumerate(st.args)
                if isinstance(a, Ref) and a.name not in p.hparam_names and a.name != "step" and st.target != state]
        if isinstance(p.update, Ref) and p.update.name not in p.hparam_names:
            uses.append((len(p.body), 0, p.update.name))
        if not uses:
            return None
        i, j, name = rng.choices(uses, [3.0 if n == "g" else 1.0 for _, _, n in uses])[0]
        memory = Stmt(state, "interp", (Ref(name), Ref(state), Const(rng.choice(EMA_DECAYS))))
        if i == len(p.body):
            return p.with_(body=p.body + (memory,), returns=(Ref(state),) + p.returns[1:])
        use = p.body[i]
        reads = Stmt(use.target, use.op, use.args[:j] + (Ref(state),) + use.args[j + 1:])
        return p.with_(body=p.body[:i] + (memory, reads) + p.body[i + 1:])

    def _delete(self, p: Program, rng: random.Random) -> Program | None:
        if not p.body:
            return None
        i = rng.randrange(len(p.body))
        return p.with_(body=p.body[:i] + p.body[i + 1:])

    def _arg(self, p: Program, rng: random.Random) -> Program | None:
        slots = [(i, j) for i, s in enumerate(p.body) for j in range(len(s.args))] + [(len(p.body), 0)]
        i, j = rng.choice(slots)
        names = self._names_before(p, i)
        if i == len(p.body):  # which variable is the update
            return p.with_(returns=(Ref(self._pick(p, names, rng)),) + p.returns[1:])
        s = p.body[i]
        args = s.args[:j] + (self._operand(names, rng, p),) + s.args[j + 1:]
        return p.with_(body=p.body[:i] + (Stmt(s.target, s.op, args),) + p.body[i + 1:])

    def _op(self, p: Program, rng: random.Random) -> Program | None:
        if not p.body:
            return None
        i = rng.randrange(len(p.body))
        s = p.body[i]
        same = [(n, w) for n, w in zip(self._ops, self._op_weights) if OPS[n].arity == len(s.args) and n != s.op]
        if not same:
            return None
        op = rng.choices([n for n, _ in same], [w for _, w in same])[0]
        return p.with_(body=p.body[:i] + (Stmt(s.target, op, s.args),) + p.body[i + 1:])

    def _constants(self, p: Program, with_hparams: bool) -> list[tuple]:
        slots: list[tuple] = [("arg", i, j) for i, s in enumerate(p.body) for j, a in enumerate(s.args)
                              if isinstance(a, Const)]
        if with_hparams:
            slots += [("hp", k) for k, h in enumerate(p.hparams) if h.name != "lr"]
        return slots

    def _set_const(self, p: Program, slot: tuple, value: float) -> Program:
        if slot[0] == "hp":
            k = slot[1]
            hp = p.hparams[:k] + (HParam(p.hparams[k].name, value),) + p.hparams[k + 1:]
            return p.with_(hparams=hp)
        _, i, j = slot
        s = p.body[i]
        args = s.args[:j] + (Const(value),) + s.args[j + 1:]
        return p.with_(body=p.body[:i] + (Stmt(s.target, s.op, args),) + p.body[i + 1:])

    def _get_const(self, p: Program, slot: tuple) -> float:
        if slot[0] == "hp":
            return p.hparams[slot[1]].default
        return p.body[slot[1]].args[slot[2]].value

    def _perturb(self, p: Program, rng: random.Random) -> Program | None:
        slots = self._constants(p, with_hparams=True)
        if not slots:
            return None
        slot = rng.choice(slots)
        value = self._get_const(p, slot) * 2 ** rng.gauss(0.0, 1.0)
        if not math.isfinite(value):
            return None
        return self._set_const(p, slot, float(f"{value:.4g}"))

    def _resample(self, p: Program, rng: random.Random) -> Program | None:
        slots = self._constants(p, with_hparams=False)
        if not slots:
            return None
        return self._set_const(p, rng.choice(slots), self._const(rng).value)
