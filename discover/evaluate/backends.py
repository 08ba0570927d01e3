"""Backends run a batch of `WorkItem` and return one `ItemResult` per item, in order.

* ``local``: in this process, one item after another (the default);
* ``process``: a pool of local worker processes (``spawn``), items spread over
  them; each worker uses ``cpu_count // workers`` torch threads.

A backend only *runs* work; what the work is (`make_work`) and how results are
merged (`merge_results`) do not depend on it, so every backend gives the same
losses for the same items. (On CPU, float results can depend on the number of
torch threads; the process backend fixes it per worker.) A cluster backend
(Ray) plugs in by subclassing `Backend` and registering in `BACKENDS`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
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


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class ProcessBackend(Backend):
    """Run items in a pool of `workers` local processes (started on first use)."""

    name = "process"

    def __init__(self, workers: int = 2, threads: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._pool = None

    def run(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        if not items:
            return []
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(self.threads,))
        return list(self._pool.map(run_item, list(items), chunksize=1))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


BACKENDS = {"local": LocalBackend, "process": ProcessBackend}


def get_backend(name: str = "local", workers: int = 1) -> Backend:
    """A backend by name: ``local`` or ``process`` (``workers`` processes)."""
    if name == "auto":
        name = "process" if workers > 1 else "local"
    if name not in BACKENDS:
        raise ValueError(f"unknown evaluation backend {name!r}; choose one of {', '.join(BACKENDS)} or auto")
    return ProcessBackend(workers) if name == "process" else LocalBackend()
