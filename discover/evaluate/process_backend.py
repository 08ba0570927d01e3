"""Run evaluation work in local worker processes that survive a worker's death: ``--backend process``.

A replacement for the ``multiprocessing.Pool`` backend: a pool's ``map``
waits forever when one of its workers is killed (OOM killer, SIGKILL), because
the task that worker held is never finished. This backend uses
`concurrent.futures.ProcessPoolExecutor` (``spawn``), which notices a dead
worker (``BrokenProcessPool``); it then starts a new pool and resubmits every
unfinished item, so nothing is lost.

* ``workers`` processes, started on first use and kept for the backend's life
  (task data set up once per process, as in `discover.evaluate.trials`);
* at most ``workers`` items in flight, handed to whichever process is free;
  results are returned in the order of the items, so merging -- and the whole
  search -- is the same as with the local backend;
* each worker runs torch with ``threads`` threads (default ``cpu_count //
  workers``) so CPU results do not depend on the machine's load;
* workers exit when the process that started them dies (even by kill -9:
  `exit_with_parent`), so a killed search leaves no worker behind;
* a candidate that fails inside training is scored inf by `run_item`; any
  other exception inside an item is re-raised, as locally; an item in flight
  when the pool broke ``max_retries + 1`` times raises (something in it kills
  workers).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

from .backend_base import Backend
from .work import ItemResult, WorkItem


def _init_worker(threads: int, parent: int) -> None:
    import torch

    torch.set_num_threads(threads)
    exit_with_parent(parent)


def exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """Exit this process as soon as `parent` (the process that started it) is gone.

    A worker blocks reading its task queue, and holds that queue's write end too, so it would
    wait forever after a kill -9 of the search (and keep multiprocessing's resource tracker
    alive with it). A daemon thread watches ``os.getppid()``: when the parent dies the worker
    is re-parented and exits at once, without cleanup (there is nobody to report to).
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="discover-exit-with-parent", daemon=True).start()


def _run(item: WorkItem) -> ItemResult:
    from .trials import run_item

    return run_item(item)


class ProcessPoolBackend(Backend):
    """Run items in `workers` local processes; a killed worker's items are resubmitted.

    Args:
        workers: number of worker processes.
        threads: torch threads per worker (default ``cpu_count // workers``, at least 1).
        max_retries: times an item may be in flight when the pool breaks before `run` raises.
    """

    name = "process"

    def __init__(self, workers: int = 2, threads: int | None = None, max_retries: int = 3) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = int(workers)
        self.threads = int(threads or max(1, (os.cpu_count() or 1) // self.workers))
        self.max_retries = max_retries
        self.restarts = 0  # pools started again after a worker died (over the backend's life)
        self.resubmitted = 0  # items resubmitted after a worker died
        self.on_dispatch: Callable[[int], None] | None = None  # hook(item index) after submitting, for tests
        self._pool: ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.threads, os.getpid()))
        return self._pool

    def worker_pids(self) -> list[int]:
        """Process ids of the pool's live workers (those started so far)."""
        pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return [pid for pid, p in list(procs.items()) if p.is_alive()]

    def _discard_pool(self) -> None:
        """Drop the pool now, stopping its workers (they may hold work nobody waits for)."""
        if self._pool is not None:
            procs = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                if p.is_alive():
                    p.terminate()
            self._pool = None

    def run(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        items = list(items)
        if not items:
            return []
        results: list[ItemResult | None] = [None] * len(items)
        queue: deque[int] = deque(range(len(items)))
        broken_in_flight = [0] * len(items)
        running: dict[Future, int] = {}
        left = len(items)
        try:
            while left:
                while queue and len(running) < self.workers:
                    i = queue.popleft()
                    try:
                        running[self._ensure_pool().submit(_run, items[i])] = i
                    except BrokenProcessPool:  # broke between two submissions: new pool, try again
                        queue.appendleft(i)
                        self._restart(running, queue, broken_in_flight, items)
                        continue
                    if self.on_dispatch is not None:
                        self.on_dispatch(i)
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                broken = False
                for fut in sorted(done, key=lambda f: running[f]):
                    i = running[fut]
                    exc = fut.exception()
                    if isinstance(exc, BrokenProcessPool):
                        broken = True
                        continue
                    del running[fut]
                    if exc is not None:
                        raise exc
                    results[i] = fut.result()
                    left -= 1
                if broken:
                    self._restart(running, queue, broken_in_flight, items)
        except BaseException:
            # An item raised, or the caller was interrupted: the pool may hold work of this
            # call that nobody waits for; start afresh next time rather than queue behind it.
            if running:
                self._discard_pool()
            raise
        return results  # type: ignore[return-value]

    def _restart(self, running: dict, queue: deque, broken_in_flight: list[int], items: list[WorkItem]) -> None:
        """The pool broke (a worker died): count the items it held, start a new pool, requeue them."""
        lost = sorted(running.values())
        running.clear()
        for i in lost:
            broken_in_flight[i] += 1
            if broken_in_flight[i] > self.max_retries:
                self._discard_pool()
                raise RuntimeError(f"work item {i} ({items[i].task}, {len(items[i].programs)} programs) was running "
                                   f"when a worker process died {broken_in_flight[i]} times; giving up")
        self.resubmitted += len(lost)
        self.restarts += 1
        self._discard_pool()
        queue.extendleft(reversed(lost))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
