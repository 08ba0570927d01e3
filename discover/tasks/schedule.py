"""Learning-rate schedules of proxy training runs: the factor the program's ``lr`` is multiplied by.

Short runs at a constant learning rate reward programs that take big early
steps (short-horizon bias): the run ends before a large step size has to be
paid back. Real training warms up and decays the learning rate, so every task
trains with a schedule by default and the program sees the scheduled ``lr``
(its update is a pure scale of ``lr``, so this is the same as scaling the update).

* ``warmup_cosine`` (default): linear warmup from ``1/W`` to 1 over the first
  ``W = ceil(warmup * steps)`` steps, then cosine decay towards 0; the last step
  still moves (factor ``(1 - cos(pi / D)) / 2`` for ``D`` decay steps).
* ``constant``: 1 at every step.

Example:
    >>> [round(lr_factor("warmup_cosine", s, 10, warmup=0.2), 3) for s in range(1, 11)]
    [0.5, 1.0, 1.0, 0.962, 0.854, 0.691, 0.5, 0.309, 0.146, 0.038]
    >>> lr_factor("constant", 7, 10)
    1.0
"""
from __future__ import annotations

import math

SCHEDULES = ("warmup_cosine", "constant")


def lr_factor(kind: str, step: int, steps: int, warmup: float = 0.1) -> float:
    """The schedule's multiplier of ``lr`` at 1-based `step` of a run of `steps` steps."""
    if kind == "constant":
        return 1.0
    if kind != "warmup_cosine":
        raise ValueError(f"unknown lr schedule {kind!r}; use one of {', '.join(SCHEDULES)}")
    w = max(1, math.ceil(warmup * steps)) if warmup > 0 else 0
    if step <= w:
        return step / w
    decay = max(1, steps - w)
    return 0.5 * (1.0 + math.cos(math.pi * (step - w - 1) / decay))
