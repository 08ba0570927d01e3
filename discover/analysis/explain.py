"""What a program is: memory, size, nearest built-in, its step size relative to that built-in, and
properties found by probing.

Properties are measured, not read off the text, on float64 probe inputs with
the program's default hyperparameters and the parameter held fixed:

- **sign-based**: every element of every update has the same magnitude
  (with ``w = 0``, over several steps of random gradients of varied scale);
- **invariant to gradient scale**: multiplying every gradient by 0.1 or 10
  leaves the updates unchanged (to 1e-3 of their norm, so an ``eps`` added
  to a denominator does not count);
- **uses weight decay**: the update changes when ``w`` does, gradients equal;
- **bias-corrected**: a stateful program that is not sign-based whose update,
  fed the same gradient every step, is the same at step 1 as at step 10 (its
  moving averages start unbiased).

Example:
    >>> from discover import load
    >>> props = properties(load("adam"))
    >>> props["invariant to gradient scale"][0], props["bias-corrected"][0]
    (True, True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..lang.ir import Program
from ..lang.passes import op_count
from .fingerprint import equivalent, probe_distance, run_probe

DEFAULT_MODEL_PARAMS = 100_000_000


def state_bytes(program: Program, n_params: int, n_tensors: int = 1, dtype_bytes: int = 4) -> int:
    """Bytes of optimizer state for `n_params` parameters in `n_tensors` tensors."""
    buffers = sum(1 for s in program.states if not s.scalar)
    scalars = sum(1 for s in program.states if s.scalar)
    return buffers * n_params * dtype_bytes + scalars * n_tensors * 8


def _probe_grads(steps: int = 10, seed: int = 1, size: int = 64) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-2, 1, steps, dtype=torch.float64)
    return [torch.randn(size, generator=gen, dtype=torch.float64) * s for s in scales]


def _close(a: list[torch.Tensor], b: list[torch.Tensor], rtol: float) -> bool:
    """Each step's updates agree to `rtol` relative to their norm."""
    return all(float(torch.linalg.vector_norm(x - y)) <= rtol * float(torch.linalg.vector_norm(y)) for x, y in zip(a, b))


def _finite(us: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(u).all()) for u in us)


def properties(program: Program) -> dict[str, tuple[bool | None, str]]:
    """Each property -> (holds, how it was found); None where the probe could not tell."""
    if program.is_wrapper:
        return {"wrapper": (True, "wraps another optimizer's update `u`; explain it composed, e.g. lookahead+adam")}
    grads = _probe_grads()
    zero = torch.zeros_like(grads[0])
    w = torch.randn(grads[0].shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    base = run_probe(program, zero, grads)
    out: dict[str, tuple[bool | None, str]] = {}
    if not _finite(base):
        unknown = (None, "the probe updates are not finite")
        return {k: unknown for k in ("sign-based", "invariant to gradient scale", "uses weight decay", "bias-corrected")}

    mags = torch.cat([u.abs() for u in base])
    sign_based = bool(mags.max() > 0) and bool(torch.allclose(mags, mags[0].expand_as(mags), rtol=1e-6, atol=0.0))
    out["sign-based"] = (sign_based, f"|update| is {'the same' if sign_based else 'not the same'} for every element "
                                     "and step (w = 0, gradients from 0.01 to 10)")
    # gradients of order 1, so an eps of 1e-8 in a denominator is not what decides
    unit = [g / g.abs().mean() for g in grads]
    unit_base = run_probe(program, zero, unit)
    scaled = [run_probe(program, zero, [g * c for g in unit]) for c in (0.1, 10.0)]
    invariant = _finite(unit_base) and all(_finite(s) and _close(s, unit_base, 1e-3) for s in scaled)
    out["invariant to gradient scale"] = (invariant, "updates " + ("unchanged" if invariant else "change")
                                          + " when every gradient is multiplied by 0.1 or 10")
    with_w = run_probe(program, w, grads)
    decay = _finite(with_w) and not _close(with_w, base, 1e-9)
    out["uses weight decay"] = (decay, "the update " + ("depends" if decay else "does not depend")
                                + " on w at the default hyperparameters")
    stateful = any(not s.scalar for s in program.states)
    if not stateful:
        out["bias-corrected"] = (False, "keeps no moving averages")
    elif sign_based:
        out["bias-corrected"] = (None, "sign-based: the scale of its moving averages does not reach the update")
    else:
        const = run_probe(program, zero, [grads[3]] * 10)
        ok = _finite(const) and bool(torch.allclose(const[0], const[-1], rtol=1e-3, atol=0.0))
        out["bias-corrected"] = (ok, "fed one gradient every step, its update at step 1 is "
                                 + ("the same as" if ok else "different from") + " at step 10")
    return out


@dataclass
class Neighbour:
    name: str
    distance: float
    same: bool


def nearest_builtins(program: Program, k: int = 3) -> list[Neighbour]:
    """The built-ins whose probe updates point most nearly the same way (see `probe_distance`)."""
    from ..library import builtin_names, load

    out = []
    for name in builtin_names():
        other = load(name)
        if other.is_wrapper:
            continue
        out.append(Neighbour(name, probe_distance(program, other), equivalent(program, other)))
    out.sort(key=lambda n: (not n.same, n.distance, n.name))
    return out[:k]


def step_size_ratio(program: Program, other: Program) -> float:
    """How big `program`'s steps are relative to `other`'s, both at their default hyperparameters:
    the median over the probe steps of ``|update| / |other's update|`` (inf or NaN when a probe fails).

    Example:
        >>> from discover import load, parse
        >>> round(step_size_ratio(parse("def f(w, g, *, lr=0.3):\\n    return lr * sign(g)\\n"),
        ...                       parse("def h(w, g, *, lr=0.1):\\n    return lr * sign(g)\\n")), 12)
        3.0
    """
    from .fingerprint import probe_trace

    a, b = probe_trace(program), probe_trace(other)
    ratios = torch.linalg.vector_norm(a, dim=1) / torch.linalg.vector_norm(b, dim=1)
    return float(ratios.median()) if bool(torch.isfinite(ratios).all()) else math.nan


def explain(program: Program, model_params: int = DEFAULT_MODEL_PARAMS) -> str:
    """A text report: state memory, op count, nearest built-ins, probed properties."""
    lines = [f"{program.name}: {program.doc.splitlines()[0]}" if program.doc else program.name]
    buffers = [s.name for s in program.states if not s.scalar]
    scalars = [s.name for s in program.states if s.scalar]
    per = f"{len(buffers)} buffer{'s' if len(buffers) != 1 else ''} per parameter"
    if buffers:
        per += f" ({', '.join(buffers)})"
    if scalars:
        per += f" + {len(scalars)} number{'s' if len(scalars) != 1 else ''} per tensor ({', '.join(scalars)})"
    nbytes = state_bytes(program, model_params)
    lines.append(f"  state memory: {per}; {len(buffers) * 4} bytes per float32 parameter, "
                 f"{format_bytes(nbytes)} for a {_count(model_params)}-parameter model")
    lines.append(f"  ops per step: {op_count(program)}")
    hp = ", ".join(f"{h.name}={h.default:g}" for h in program.hparams) or "none"
    lines.append(f"  hyperparameters: {hp}")
    if not program.is_wrapper:
        near = nearest_builtins(program)
        desc = [f"{n.name} ({'same updates on probe inputs' if n.same else f'distance {n.distance:.3g}'})" for n in near]
        lines.append(f"  nearest built-ins by behaviour: {', '.join(desc)}")
        lines.append("    (distance: mean 1 - cos between updates on probe inputs; scale-free)")
        if near:
            lines.append("  " + _step_size_line(program, near[0]))
    lines.append("  properties found by probing (default hyperparameters):")
    for name, (holds, how) in properties(program).items():
        verdict = "yes" if holds else ("unknown" if holds is None else "no")
        lines.append(f"    {name}: {verdict} - {how}")
    return "\n".join(lines)


def _step_size_line(program: Program, nearest: Neighbour) -> str:
    """The step size relative to the nearest built-in, and the lr that built-in would need to match it."""
    from ..library import load

    other = load(nearest.name)
    ratio = step_size_ratio(program, other)
    if not math.isfinite(ratio):
        return f"step size relative to {nearest.name}: unknown (the probe updates are not finite)"
    line = (f"step size: {ratio:.3g}x {nearest.name}'s, both at their default hyperparameters "
            f"(median over probe steps of |update| / |{nearest.name} update|)")
    if nearest.same:
        return f"step size: the same as {nearest.name}'s (same updates on probe inputs)"
    if "lr" in other.defaults and nearest.distance < 0.1:
        line += f"; as {nearest.name} with lr={ratio * other.defaults['lr']:.3g}"
    return line


def format_bytes(n: float) -> str:
    """`n` bytes in binary units (1 KiB = 1024 bytes).

    Example:
        >>> format_bytes(1536)
        '1.5 KiB'
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:g}{unit}"
    return str(n)

