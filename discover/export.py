"""`discover export`: one self-contained Python file that runs a program as a `torch.optim.Optimizer`.

The file needs only torch. It holds, in order: the program text and its formulas
(comments and the class docstring), the op table's semantics in plain torch
(`discover.compile.standalone`, copied verbatim), the helpers of the foreach backend
(`discover.compile.foreach.runtime_source`), the program's generated foreach step, and an
optimizer class with the program's hyperparameters as keyword arguments with their
defaults. The class keeps `ProgramOptimizer`'s conventions -- state under the
program's state names plus ``"step"``, per-parameter step counts, one step per
(device, dtype) bucket, ``betas`` kept in step with ``beta1``/``beta2`` -- so it trains
as `ProgramOptimizer(..., backend="foreach")` does, and their ``state_dict``s load into
each other.

User strings reach the file only as validated identifiers (hyperparameter and
argument names, checked again here), escaped string literals, or comments.

Example:
    >>> from discover import load
    >>> source = export_source(load("lion"), "Lion")
    >>> "class Lion(torch.optim.Optimizer):" in source and "import discover" not in source
    True
"""
from __future__ import annotations

import inspect
import keyword
import math

from .extras import VERSION as __version__
from .compile import foreach, standalone
from .compile.source import comment
from .lang.ir import Const, Program
from .lang.ops import GROUP, MATRIX, OPS
from .lang.printer import unparse
from .optim import BetasGroup, _as_float, beta_names, has_betas, with_betas

_CLASH = {"self", "params", "betas", "super", "non_matrix"}  # the class's own argument names, and what __init__ calls


def class_name_for(program: Program) -> str:
    """A CamelCase class name from the program's name: ``discovered_f5f8aa3b`` -> ``DiscoveredF5f8aa3b``."""
    parts = [p for p in program.name.split("_") if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Optimizer"
    return name if name.isidentifier() and not keyword.iskeyword(name) else "Optimizer"


def _literal(value: float) -> str:
    """A Python expression for a float default (``float('inf')`` where repr is not one)."""
    return repr(float(value)) if math.isfinite(value) else f"float({str(float(value))!r})"


def _comment_block(text: str) -> list[str]:
    return [f"# {comment(line)}".rstrip() for line in text.splitlines()]


def _docstring(program: Program, class_name: str) -> str:
    """The class docstring: what it is, the formulas, the hyperparameters. Only identifiers,
    numbers and ASCII operators go in (the program's free-text doc stays in comments)."""
    lines = [f"{class_name}: the optimizer program {program.name!r}, exported by discover {__version__}.", "",
             "Each step, for every parameter w with gradient g (the update is applied as w <- w - update):", ""]
    try:
        from .analysis.views import math_view

        formulas = math_view(program)
    except Exception:  # sympy cannot render it: the program text (in the comments above) still says it all
        formulas = ""
    if not formulas or len(formulas.splitlines()) > 60:
        formulas = "(the program at the top of this file)"
    lines += ["    " + line for line in formulas.splitlines()]
    lines += ["", "Hyperparameters (keyword arguments, param-group entries): "
              + (", ".join(f"{h.name}={h.default:g}" for h in program.hparams) or "none") + "."]
    if has_betas(program):
        names = ", ".join(beta_names(program))
        lines.append(f"betas=({names}) is accepted too, and kept in step with {names}.")
    lines.append("State per parameter: " + (", ".join(program.state_names) or "none") + ", and step.")
    text = "\n".join(line.rstrip() for line in lines)
    safe = all(ch == "\n" or " " <= ch <= "~" for ch in text) and '"""' not in text
    if not safe:
        return "    " + repr(text)
    return '    r"""' + "\n".join(("    " + line if line else "") for line in text.splitlines()).lstrip() + '\n    """'


def _state_inits(program: Program) -> str:
    """``(name, kind, value, scalar, shape)`` per state: kind ``const`` (value a number), ``w`` or
    ``hparam``; shape ``""`` (like the parameter), ``"per_row"`` or ``"per_col"``."""
    rows = []
    for s in program.states:
        if isinstance(s.init, Const):
            rows.append(f"({s.name!r}, 'const', {_literal(s.init.value)}, {s.scalar}, {s.shape!r})")
        elif s.init.name == "w":
            rows.append(f"({s.name!r}, 'w', None, {s.scalar}, {s.shape!r})")
        else:
            rows.append(f"({s.name!r}, 'hparam', {s.init.name!r}, {s.scalar}, {s.shape!r})")
    return "(" + "".join(r + ", " for r in rows) + ")"


def _eval_source(program: Program) -> list[str]:
    """``_eval_weights(_v)``: the program's evaluation weights from a dict of w, its states and its
    hyperparameters (names only as escaped string keys)."""
    lines = ["def _eval_weights(_v):", '    """The weights eval() puts in a parameter (the program\'s def eval)."""',
             "    _v = dict(_v)"]

    def arg(a) -> str:
        return _literal(a.value) if isinstance(a, Const) else f"_v[{a.name!r}]"

    for stmt in program.eval.body:
        call = f"_F_{stmt.op}" if stmt.op in OPS else None
        if call is None:
            raise ValueError(f"unknown op {stmt.op!r} in eval()")
        lines.append(f"    _v[{stmt.target!r}] = {call}({', '.join(arg(a) for a in stmt.args)})")
    lines.append(f"    return {arg(program.eval.result)}")
    return lines


def export_source(program: Program, class_name: str | None = None) -> str:
    """The text of a self-contained Python file defining `class_name` (a `torch.optim.Optimizer`).

    Raises `ValueError` for a wrapper (export it composed, ``lookahead+adam``), a class name
    that is not an identifier, or a hyperparameter named like one of the class's arguments.
    """
    if program.is_wrapper:
        raise ValueError(f"'{program.name}' wraps another optimizer's update; export a composition "
                         f"such as '{program.name}+adam'")
    class_name = class_name or class_name_for(program)
    if not (class_name.isidentifier() and class_name.isascii() and not keyword.iskeyword(class_name)
            and not class_name.startswith("_")):
        raise ValueError(f"class name {class_name!r} is not a Python identifier (ASCII letters, digits and _, "
                         "not starting with a digit or _)")
    for h in program.hparam_names:  # validated identifiers already; these would clash with our own arguments
        if not (isinstance(h, str) and h.isidentifier() and not keyword.iskeyword(h)):
            # written as code below (keyword arguments): never rely on the caller having checked
            raise ValueError(f"hyperparameter {h!r} is not an identifier; it cannot be a keyword argument")
        if h in _CLASH:
            raise ValueError(f"hyperparameter '{h}' clashes with the exported class's argument of that name; "
                             "rename it in the program")
    betas = has_betas(program)
    step_source = foreach.generate(program).replace("\ndef step(_params,", "\ndef _foreach_step(_params,", 1)
    runtime = inspect.getsource(standalone).split("\n# --- exported runtime", 1)[1].split("\n", 1)[1]
    out: list[str] = [
        f"# {class_name}: a torch.optim.Optimizer exported by discover {__version__} (`discover export`).",
        "# It needs only torch. The program it runs:",
        "#",
        *_comment_block(unparse(program)),
        "from __future__ import annotations  # the helpers' type hints are not evaluated",
        "",
        runtime.strip("\n"),
        "",
        "from itertools import repeat  # for the foreach helpers below",
        "",
        "",
        "# --- helpers of discover's foreach backend",
    ]
    out += ["", "", foreach.runtime_source().rstrip()]
    out += ["", "", "_torch, _float, _len, _zip = torch, float, len, zip", "",
            "", "# --- the program's generated step (discover's foreach backend)", step_source.rstrip()]
    if program.eval is not None:
        out += ["", "", "# --- the program's evaluation weights (its def eval)"] + _eval_source(program)
    if betas:
        names = ", ".join(beta_names(program))
        out += ["", "", f"# --- betas=({names}) kept in step with {names} (as discover.ProgramOptimizer)",
                "from torch import Tensor  # noqa: E402"]
        for helper in (_as_float, with_betas, BetasGroup):
            out += ["", "", inspect.getsource(helper).rstrip()]
    hp = program.hparams
    matrix_ops = sorted({st.op for st in program.body if OPS[st.op].kind == MATRIX})
    group_ops = sorted({st.op for st in program.body if OPS[st.op].kind == GROUP})
    signature = ", ".join(["self", "params"] + [f"{h.name}={_literal(h.default)}" for h in hp]
                          + (["betas=None"] if betas else []) + (["non_matrix='error'"] if matrix_ops else []))
    given = "{" + ", ".join(f"{h.name!r}: {h.name}" for h in hp) + "}"
    out += ["", "", f"class {class_name}(torch.optim.Optimizer):", _docstring(program, class_name), "",
            f"    _HPARAMS = {tuple(program.hparam_names)!r}",
            f"    _STATES = {_state_inits(program)}",
            f"    _MATRIX_OPS = {tuple(matrix_ops)!r}  # 2-D parameters only, unless non_matrix='diagonal'",
            f"    _GROUP_OPS = {tuple(group_ops)!r}  # sums over a param group: one device and dtype per group",
            f"    _EVAL = {program.eval is not None}  # eval() / train() swap in evaluation weights", "",
            f"    def __init__({signature}):",
            f"        self._non_matrix = {'non_matrix' if matrix_ops else repr('error')}",
            f"        _defaults = {given}"]
    if betas:
        targets = ", ".join(f"_defaults[{n!r}]" for n in beta_names(program))
        out += ["        if betas is not None:  # torch's form wins over beta1/beta2",
                f"            {targets} = betas",
                f"        _defaults['betas'] = ({targets})"]
    out += ["        super().__init__(params, _defaults)", ""]
    out += _CLASS_BODY_BETAS if betas else []
    out += _CLASS_BODY
    return "\n".join(out) + "\n"


_CLASS_BODY_BETAS = '''\
    def _betas_group(self, param_group):
        """The group with ``betas`` and ``beta1``/``beta2`` as one setting."""
        if hasattr(self, "defaults") and "betas" in self.defaults:
            param_group = BetasGroup(with_betas(param_group, self.defaults, "param group"))
        return param_group

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.param_groups[:] = [BetasGroup(with_betas(g, g, "loaded param group")) for g in self.param_groups]

'''.splitlines()

_CLASS_BODY = '''\
    def add_param_group(self, param_group):
        """Add a group; a program with matrix ops takes 2-D parameters only, unless non_matrix='diagonal'."""
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        for i, p in enumerate(params if self._MATRIX_OPS and self._non_matrix == "error" else []):
            if p.dim() != 2:
                raise ValueError(f"parameter {i} of param group {len(self.param_groups)} has shape {tuple(p.shape)}, "
                                 f"but {', '.join(self._MATRIX_OPS)} need 2-D parameters; give it to another "
                                 "optimizer, or pass non_matrix='diagonal' to treat it as a diagonal matrix")
        if hasattr(self, "_betas_group"):
            param_group = self._betas_group(param_group)
        super().add_param_group(param_group)

    def _init_state(self, p, state, group):
        state["step"] = 0
        for name, kind, value, scalar, shape in self._STATES:
            if kind == "w":
                state[name] = p.detach().clone(memory_format=torch.preserve_format)
                continue
            v = float(group[value]) if kind == "hparam" else value
            if scalar:
                state[name] = v
            elif shape:  # one value per row (over the last dimension) or per column (the second-to-last)
                dims = list(p.shape)
                if shape == "per_row" and dims:
                    dims[-1] = 1
                elif shape == "per_col" and len(dims) >= 2:
                    dims[-2] = 1
                state[name] = torch.full(dims, v, dtype=p.dtype, device=p.device)
            else:
                state[name] = torch.full_like(p, v, memory_format=torch.preserve_format)

    def eval(self):
        """Put each parameter's evaluation weights in it (programs with a def eval); train() puts the
        training weights back. Nothing happens for other programs."""
        if not self._EVAL:
            return
        with torch.no_grad():
            for group in self.param_groups:
                hparams = {name: float(group[name]) for name in self._HPARAMS}
                for p in group["params"]:
                    state = self.state.get(p)
                    if not state or "train_weights" in state:
                        continue
                    weights = _eval_weights({**hparams, **{n: state[n] for n, *_ in self._STATES}, "w": p.detach()})
                    state["train_weights"] = p.detach().clone()
                    p.copy_(weights)

    def train(self):
        """Put the training weights back after eval()."""
        with torch.no_grad():
            for p, state in list(self.state.items()):
                if isinstance(state, dict) and "train_weights" in state:
                    p.copy_(state.pop("train_weights"))

    @torch.no_grad()
    def step(self, closure=None):
        """One optimization step; `closure` (re-evaluating the loss) is optional."""
        if self._EVAL and any(isinstance(st, dict) and "train_weights" in st for st in self.state.values()):
            raise RuntimeError("the optimizer is in eval mode: call optimizer.train() before step()")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            if any(torch.is_complex(p) for p in params):
                raise RuntimeError(f"{type(self).__name__} does not support complex parameters")
            states = [self.state[p] for p in params]
            for p, state in zip(params, states):
                if not state:
                    self._init_state(p, state, group)
                state["step"] += 1
            hparams = {name: float(group[name]) for name in self._HPARAMS}
            buckets = {}
            for i, p in enumerate(params):
                buckets.setdefault((p.device, p.dtype), []).append(i)
            if self._GROUP_OPS and len(buckets) > 1:
                raise RuntimeError(f"{', '.join(self._GROUP_OPS)} sum over a param group: put each device and "
                                   "dtype in a param group of its own")
            for index in buckets.values():
                ps, sts = [params[i] for i in index], [states[i] for i in index]
                lists = {name: [st[name] for st in sts] for name, *_ in self._STATES}
                new = _foreach_step(ps, [p.grad for p in ps], lists, [st["step"] for st in sts], hparams)
                for name, values in new.items():
                    for st, v in zip(sts, values):
                        st[name] = v
        return loss
'''.splitlines()
