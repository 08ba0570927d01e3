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
from .lang.printer import unparse
from .optim import BetasGroup, _as_float, beta_names, has_betas, with_betas

_CLASH = {"self", "params", "betas", "super"}  # the class's own argument names, and what __init__ calls


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
    """``(name, kind, value, scalar)`` per state: kind ``const`` (value a number), ``w`` or ``hparam``."""
    rows = []
    for s in program.states:
        if isinstance(s.init, Const):
            rows.append(f"({s.name!r}, 'const', {_literal(s.init.value)}, {s.scalar})")
        elif s.init.name == "w":
            rows.append(f"({s.name!r}, 'w', None, {s.scalar})")
        else:
            rows.append(f"({s.name!r}, 'hparam', {s.init.name!r}, {s.scalar})")
    return "(" + "".join(r + ", " for r in rows) + ")"


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
    if betas:
        names = ", ".join(beta_names(program))
        out += ["", "", f"# --- betas=({names}) kept in step with {names} (as discover.ProgramOptimizer)",
                "from torch import Tensor  # noqa: E402"]
        for helper in (_as_float, with_betas, BetasGroup):
            out += ["", "", inspect.getsource(helper).rstrip()]
    hp = program.hparams
    signature = ", ".join(["self", "params"] + [f"{h.name}={_literal(h.default)}" for h in hp]
                          + (["betas=None"] if betas else []))
    given = "{" + ", ".join(f"{h.name!r}: {h.name}" for h in hp) + "}"
    out += ["", "", f"class {class_name}(torch.optim.Optimizer):", _docstring(program, class_name), "",
            f"    _HPARAMS = {tuple(program.hparam_names)!r}",
            f"    _STATES = {_state_inits(program)}", "",
            f"    def __init__({signature}):",
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
    def add_param_group(self, param_group):
        """Add a group; ``betas`` and ``beta1``/``beta2`` stay one setting in it."""
        if hasattr(self, "defaults") and "betas" in self.defaults:
            param_group = BetasGroup(with_betas(param_group, self.defaults, "param group"))
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.param_groups[:] = [BetasGroup(with_betas(g, g, "loaded param group")) for g in self.param_groups]

'''.splitlines()

_CLASS_BODY = '''\
    def _init_state(self, p, state, group):
        state["step"] = 0
        for name, kind, value, scalar in self._STATES:
            if kind == "w":
                state[name] = p.detach().clone(memory_format=torch.preserve_format)
                continue
            v = float(group[value]) if kind == "hparam" else value
            state[name] = v if scalar else torch.full_like(p, v, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, closure=None):
        """One optimization step; `closure` (re-evaluating the loss) is optional."""
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
            for index in buckets.values():
                ps, sts = [params[i] for i in index], [states[i] for i in index]
                lists = {name: [st[name] for st in sts] for name, _, _, _ in self._STATES}
                new = _foreach_step(ps, [p.grad for p in ps], lists, [st["step"] for st in sts], hparams)
                for name, values in new.items():
                    for st, v in zip(sts, values):
                        st[name] = v
        return loss
'''.splitlines()
