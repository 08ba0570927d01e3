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

from abc import ABC, abstractmethod
from typing import Sequence

from .batched import run_item
from .work import ItemResult, WorkItem


class Backend(ABC):
    """Runs evaluation work; `run` returns results in the order of `items`."""

    name = "backend"

    @abstractmethod
    def run(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        ...

    def close(self) -> None:
        """Release workers (a no-op for in-process backends)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalBackend(Backend):
    """Run every item in this process, in order."""

    name = "local"

    def run(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        return [run_item(item) for item in items]


# After `Backend`: process_backend imports it from here.
from .process_backend import ProcessPoolBackend as ProcessBackend  # noqa: E402

BACKENDS = {"local": LocalBackend, "process": ProcessBackend, "ray": None}  # ray: imported when asked for


def get_backend(name: str = "local", workers: int = 1, **options) -> Backend:
    """A backend by name: ``local``, ``process`` (``workers`` processes) or ``ray`` (``workers`` actors).

    ``options`` go to the ray backend (``address``, ``gpus_per_worker``,
    ``cpus_per_worker``, ``temp_dir``; see `discover.evaluate.ray_backend`).
    """
    if name == "auto":
        name = "process" if workers > 1 else "local"
    if name not in BACKENDS:
        raise ValueError(f"unknown evaluation backend {name!r}; choose one of {', '.join(BACKENDS)} or auto")
    if name == "ray":
        from .ray_backend import RayBackend

        return RayBackend(workers, **options)
    return ProcessBackend(workers) if name == "process" else LocalBackend()
