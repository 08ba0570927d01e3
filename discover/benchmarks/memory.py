"""Peak temporary memory of one call: the most bytes allocated while it runs beyond what was
allocated before it (so parameters, gradients and optimizer state that already exist count zero).

- CUDA: the caching allocator's counters (``torch.cuda.reset_peak_memory_stats``, then
  ``max_memory_allocated() - memory_allocated()`` from before the call).
- CPU: there is no allocator counter, so the call runs under the torch profiler with
  ``profile_memory=True``; its memory events (one per allocation, +bytes, and per free,
  -bytes, in order) are summed as they come and the largest running sum is the peak. A
  buffer allocated before the call and freed during it counts negative, as on CUDA.
  The events are read from the profiler's Kineto results (``prof.profiler.kineto_results``):
  the public ``prof.events()`` folds allocations into their ops' totals and loses the order.
  Checked on a case worked out by hand in ``tests/benchmarks/test_memory.py``.

Tiny allocations count too (a CPU op wraps a Python scalar in a 0-d tensor of 4-8 bytes),
so a result is exact to a few bytes per op alive at the peak.

Example:
    >>> import torch
    >>> xs = [torch.zeros(1000) for _ in range(10)]            # 10 x 1000 float32 = 40 kB
    >>> peak = peak_temporary_bytes(lambda: torch._foreach_add(xs, 1.0))
    >>> round(peak / 1e3)                                        # the result list, in kB
    40
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, profile


def peak_temporary_bytes(fn: Callable[[], Any], device: torch.device | str = "cpu") -> int:
    """Peak bytes allocated on `device` while ``fn()`` runs, beyond those allocated before it.

    What `fn` returns is dropped inside the measurement (a returned buffer is a temporary).
    Supports ``cpu`` and ``cuda`` devices.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    if device.type == "cpu":
        return _cpu_peak(fn)
    raise ValueError(f"peak_temporary_bytes: no memory measurement for {device.type} devices (cpu or cuda)")


def _cuda_peak(fn: Callable[[], Any], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = fn()
    del out
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before)


def _cpu_peak(fn: Callable[[], Any]) -> int:
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # Kineto prints a line to stderr as it starts and stops
        prof.start()
    try:
        out = fn()
        del out
    finally:
        with _quiet_stderr():
            prof.stop()
    return running_peak(cpu_memory_deltas(prof))


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null inside (C++ writes there directly, not via sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def cpu_memory_deltas(prof: profile) -> list[int]:
    """Signed byte counts of the CPU allocations (+) and frees (-) a finished profile saw, in order."""
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())  # stable: events of one nanosecond keep their order
    return [e.nbytes() for e in events]


def running_peak(deltas: list[int]) -> int:
    """The largest running sum of `deltas`, starting from 0.

    Example:
        >>> running_peak([100, 50, -100, 80, -130])
        150
    """
    total = peak = 0
    for d in deltas:
        total += d
        peak = max(peak, total)
    return peak
