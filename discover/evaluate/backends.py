"""Backends run a batch of `WorkItem` and return one `ItemResult` per item, in order.

* ``local``: in this process, one item after another (the default);
* ``process``: local worker processes (``spawn``), items spread over them;
  each worker uses ``cpu_count // workers`` torch threads; a killed worker's
  items are resubmitted (`discover.evaluate.process_backend`);
* ``ray``: long-lived Ray actors, locally or on a cluster
  (`discover.evaluate.ray_backend`; needs the ``ray`` extra).

A backend only *runs* work; what the work is (`make_work`) and how results are
merged (`merge_results`) do not depend on it, so every backend gives the same
losses for the same items. (On CPU, float results can depend on the number of
torch threads; the process and ray backends fix it per worker.)
"""
from __future__ import annotations

from typing import Sequence

from .backend_base import Backend
from .trials import run_item
from .process_backend import ProcessPoolBackend as ProcessBackend
from .work import ItemResult, WorkItem

__all__ = ["BACKENDS", "Backend", "LocalBackend", "ProcessBackend", "get_backend"]


class LocalBackend(Backend):
    """Run every item in this process, in order; with `threads`, torch uses that many threads
    while it does (and the previous number after).

    Search trains small models, which run fastest on one thread; on a busy machine more
    threads than free cores can make every small op wait for the others (OpenMP barriers),
    several-fold slower.

    Example:
        >>> LocalBackend(threads=1).threads
        1
    """

    name = "local"

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads

    def run(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        if self.threads is None:
            return [run_item(item) for item in items]
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return [run_item(item) for item in items]
        finally:
            torch.set_num_threads(before)


BACKENDS = {"local": LocalBackend, "process": ProcessBackend, "ray": None}  # ray: imported when asked for


def get_backend(name: str = "local", workers: int = 1, **options) -> Backend:
    """A backend by name: ``local``, ``process`` (``workers`` processes) or ``ray`` (``workers`` actors).

    ``options`` go to the ray backend (``address``, ``gpus_per_worker``,
    ``cpus_per_worker``, ``temp_dir``; see `discover.evaluate.ray_backend`), or set the
    local backend's torch ``threads``.
    """
    if name == "auto":
        name = "process" if workers > 1 else "local"
    if name not in BACKENDS:
        raise ValueError(f"unknown evaluation backend {name!r}; choose one of {', '.join(BACKENDS)} or auto")
    if name == "ray":
        from .ray_backend import RayBackend

        return RayBackend(workers, **options)
    if name == "process":
        return ProcessBackend(workers)
    return LocalBackend(threads=options.get("threads"))
