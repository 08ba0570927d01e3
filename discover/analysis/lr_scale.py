"""Is ``lr`` a pure scale of a program's update? Checked by probing, as fingerprints are.

Tuning a learning rate only means something if it does not change the algorithm:
a program's update must be *positively homogeneous of degree 1* in ``lr``
(doubling ``lr`` doubles every update; the state does not depend on it). A
program that uses ``lr`` as an EMA rate, an exponent, a clip bound or a
threshold is a different optimizer at every learning rate, and a per-task lr
grid would then tune its algorithm instead of its step size.

The probe runs the program on the fingerprint's probe gradients for a few
steps, in float64, at its own ``lr`` and at several multiples of it, with the
parameter held fixed (so weight decay, which reads ``w``, does not feed the
update back into itself: ``lr * wd * w`` is homogeneous step by step even though
the trajectory of ``w`` is not). Every update at ``k * lr`` must equal ``k``
times the update at ``lr``.

Wrappers are homogeneous when the inner update ``u`` is: the probe scales the
wrapped updates with ``lr`` too (Lookahead's slow weights pass).

Example:
    >>> from discover import load, parse
    >>> lr_scale_violation(load("adamw")) is None
    True
    >>> bad = parse("def f(w, g, m=0, *, lr=0.1):\\n    m = interp(g, m, lr)\\n    return lr * m, m\\n")
    >>> lr_scale_violation(bad)
    'the update at 2 x lr is not 2 x the update at lr (step 1)'
"""
from __future__ import annotations

import torch

from ..lang.ir import Program
from .fingerprint import _probe_inputs, run_probe

LR = "lr"
SCALES = (2.0, 0.125, 16.0)
"""Multiples of the program's own lr that the probe compares (above and below, wide apart,
so thresholds on lr are crossed)."""


def lr_scale_violation(program: Program, steps: int = 5, rtol: float = 1e-6) -> str | None:
    """Why `program`'s update is not a pure scale of ``lr``, or None when it is (or has no ``lr``).

    A program whose probe updates are NaN or inf at every scale alike is not
    reported here (it fails in training instead); NaN appearing at one scale
    and not at another is a violation.
    """
    if LR not in program.hparam_names:
        return None
    base_lr = program.defaults[LR]
    if not (base_lr > 0):
        return f"lr must be positive to probe, got {base_lr!r}"
    for probe in _probe_inputs(steps, seed=1):
        ref = run_probe(program, probe["w"], probe["g"], hparams={LR: base_lr}, update_w=False,
                        wrapped=probe["u"])
        for k in SCALES:
            out = run_probe(program, probe["w"], probe["g"], hparams={LR: base_lr * k}, update_w=False,
                            wrapped=[u * k for u in probe["u"]])
            for t, (a, b) in enumerate(zip(ref, out)):
                want = a * k
                scale = float(want[torch.isfinite(want)].abs().max()) if bool(torch.isfinite(want).any()) else 0.0
                if not torch.allclose(b, want, rtol=rtol, atol=rtol * 1e-3 * scale, equal_nan=True):
                    return f"the update at {k:g} x lr is not {k:g} x the update at lr (step {t + 1})"
    return None


def is_lr_homogeneous(program: Program) -> bool:
    """True when `program`'s update is positively homogeneous of degree 1 in ``lr``.

    Example:
        >>> from discover import load
        >>> is_lr_homogeneous(load("lion"))
        True
    """
    return lr_scale_violation(program) is None
