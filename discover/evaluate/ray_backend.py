"""Run evaluation work on a Ray cluster (or a local Ray instance): ``--backend ray``.

Ray is an optional extra (``pip install 'discover-optimizers[ray]'``); importing this module
does not import Ray -- only creating a `RayBackend` does.

* One long-lived actor per worker slot (``workers`` of them, each with
  ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs, fractions allowed).
  An actor keeps its process, and so its set-up task data, compiled code and
  CUDA context, for the whole search.
* `RayBackend.run` hands the items out to whichever actor is free (no barrier
  on the slowest item) and returns the results in the order of the items, so
  merging -- and the whole search -- is the same as with the local backend.
  Each actor runs torch with a fixed number of threads (``threads``, default
  ``cpus_per_worker``), so CPU results do not depend on the machine's size.
* A worker or node that dies loses nothing: the actor is replaced and its
  item goes back to the queue, for any free actor. An item whose actor dies
  ``max_retries`` times in a row raises (something in it kills workers). A
  candidate that fails inside training is scored inf by `run_item` itself, as
  locally; any other exception inside an item is re-raised, as locally.
* Without ``address`` it starts a local Ray instance (no dashboard, ``workers
  x cpus_per_worker`` CPUs) and shuts it down in `close`; with ``"auto"``, a
  ``host:port`` or a ``ray://`` address it joins that cluster and leaves it
  running. If Ray is already initialised in this process, it uses that.

Ray's temp files (logs, sockets) go in ``temp_dir`` when given. Ray's unix
socket paths must stay under 107 characters, so a ``temp_dir`` longer than
`MAX_TEMP_DIR` characters (a run directory deep in a tree) is not used as is:
Ray gets a short directory ``/tmp/discover-ray-<hash of temp_dir>`` and
``temp_dir`` becomes a symlink to it, so the logs are still found from the run
directory.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import warnings
from collections import deque
from pathlib import Path
from typing import Callable, Sequence

from ..extras import install_line
from .backend_base import Backend
from .work import ItemResult, WorkItem

MAX_TEMP_DIR = 38
"""Longest temp dir given to Ray as is: its socket paths add up to 64 characters
(``/session_<date>_<pid>/sockets/plasma_store``) and must stay under 108 (104 on macOS)."""


STARTUP_WARNING = 60.0
"""Seconds without any worker up before `RayBackend.run` warns that it is waiting for resources."""


class _Worker:
    """The body of one actor: runs items with a fixed torch thread count (wrapped by `ray.remote` lazily)."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, int(threads)))
        self.threads = threads

    def info(self) -> dict:
        import socket

        import torch

        return {"pid": os.getpid(), "host": socket.gethostname(), "threads": torch.get_num_threads(),
                "cuda": torch.cuda.is_available(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def run(self, item: WorkItem) -> ItemResult:
        from .trials import run_item

        return run_item(item)


def _key(actor) -> str:
    return actor._actor_id.hex()


def _lost_errors(ray) -> tuple:
    """The exceptions that mean a worker, its node or its result was lost (not an error of the item)."""
    names = ("RayActorError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError",
             "OwnerDiedError", "LocalRayletDiedError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError(f"the ray backend needs Ray: pip install ray (or {install_line('ray')})") from None
    return ray


def short_temp_dir(temp_dir: str | os.PathLike) -> Path:
    """The directory to give Ray for `temp_dir`: itself if short enough, else a short one it links to.

    A long ``temp_dir`` becomes (or stays) a symlink to
    ``<system temp>/discover-ray-<hash>``; the hash is of its absolute path, so
    a resumed run gets the same directory.
    """
    path = Path(temp_dir).absolute()
    if len(str(path)) <= MAX_TEMP_DIR and not path.is_symlink():
        path.mkdir(parents=True, exist_ok=True)
        return path
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    base = Path(tempfile.gettempdir())
    if len(str(base)) > MAX_TEMP_DIR - 24:  # "/discover-ray-" and the hash
        base = Path("/tmp")
    short = base / f"discover-ray-{digest}"
    if path.exists() and not path.is_symlink():
        raise ValueError(f"cannot link Ray's temp dir {path} to {short}: {path} exists and is not a symlink")
    short.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() and Path(os.readlink(path)) != short:
        path.unlink()
    if not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(short, target_is_directory=True)
    return short


class RayBackend(Backend):
    """Run items on `workers` long-lived Ray actors (see the module docstring).

    Args:
        workers: number of actors (worker slots).
        address: ``None`` to start a local Ray instance; ``"auto"``, ``"host:port"``
            or ``"ray://host:10001"`` to join a running cluster.
        gpus_per_worker: GPUs each actor reserves (fractions share a GPU: 0.25 = 4 per GPU).
        cpus_per_worker: CPUs each actor reserves.
        threads: torch threads in each actor (default ``cpus_per_worker``, at least 1).
        temp_dir: where a local Ray instance keeps its temp files and logs (see `short_temp_dir`).
        max_retries: times an item is resubmitted after its worker died before `run` raises.
        runtime_env: passed to ``ray.init`` (e.g. ``{"pip": ["discover"]}`` for a bare cluster).
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, gpus_per_worker: float = 0.0,
                 cpus_per_worker: float = 1, threads: int | None = None, temp_dir: str | os.PathLike | None = None,
                 max_retries: int = 3, runtime_env: dict | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if gpus_per_worker < 0 or cpus_per_worker < 0:
            raise ValueError("gpus_per_worker and cpus_per_worker must not be negative")
        _import_ray()
        self.workers = int(workers)
        self.address = address or None
        self.gpus_per_worker = float(gpus_per_worker)
        self.cpus_per_worker = cpus_per_worker
        self.threads = int(threads or max(1, int(cpus_per_worker)))
        self.temp_dir = temp_dir
        self.max_retries = max_retries
        self.runtime_env = runtime_env
        self.started_ray = False
        self.resubmitted = 0  # items resubmitted after a worker died (over the backend's life)
        self.replaced = 0  # actors replaced
        self.on_dispatch: Callable[[int, dict], None] | None = None  # hook(item index, actor info), for tests
        self._actors: list = []  # live actor handles
        self._info: dict = {}  # actor id -> info() of its process
        self._starting: dict = {}  # info() ref -> actor, for actors not known to be up yet
        self._busy: dict = {}  # run() ref -> actor (also items of an interrupted earlier call)
        self._idle: deque = deque()
        self._start_failures = 0
        self._warned = False
        self._connected = False  # this backend called ray.init (started a local instance or joined one)
        self._remote_cls = None
        self._ray_temp: Path | None = None

    # ------------------------------------------------------------------ start / stop
    def _init_ray(self):
        ray = _import_ray()
        if ray.is_initialized():
            return ray
        kwargs: dict = dict(include_dashboard=False, ignore_reinit_error=True, logging_level=logging.WARNING,
                            log_to_driver=True)
        if self.runtime_env:
            kwargs["runtime_env"] = self.runtime_env
        if self.address is None:
            kwargs["num_cpus"] = max(1, math.ceil(self.workers * self.cpus_per_worker))
            if self.temp_dir is not None:
                self._ray_temp = short_temp_dir(self.temp_dir)
                kwargs["_temp_dir"] = str(self._ray_temp)
            ray.init(**kwargs)
            self.started_ray = True
        else:
            kwargs.pop("include_dashboard")
            ray.init(address=self.address, **kwargs)
        self._connected = True
        return ray

    def _check_resources(self, ray) -> None:
        """Warn when the cluster cannot hold all the actors (they would wait for resources)."""
        have = ray.cluster_resources()
        for what, per in (("CPU", self.cpus_per_worker), ("GPU", self.gpus_per_worker)):
            need = per * self.workers
            if need > have.get(what, 0) + 1e-9:
                warnings.warn(f"the Ray cluster has {have.get(what, 0):g} {what}s but {self.workers} workers x "
                              f"{per:g} need {need:g}: some workers will wait for resources", stacklevel=3)

    def _new_actor(self, ray):
        if self._remote_cls is None:
            self._remote_cls = ray.remote(_Worker)
        cls = self._remote_cls.options(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker,
                                       max_restarts=0, max_task_retries=0)
        actor = cls.remote(self.threads)
        self._actors.append(actor)
        self._starting[actor.info.remote()] = actor
        return actor

    def _ensure_started(self):
        ray = self._init_ray()
        if not self._actors and not self._starting:
            self._check_resources(ray)
        while len(self._actors) < self.workers:
            self._new_actor(ray)
        return ray

    def _drop(self, ray, actor) -> None:
        if actor in self._actors:
            self._actors.remove(actor)
        self._info.pop(_key(actor), None)
        try:
            ray.kill(actor, no_restart=True)
        except Exception:
            pass

    def worker_info(self) -> list[dict]:
        """``info()`` (pid, host, threads, GPUs) of every actor, starting them if needed."""
        ray = self._ensure_started()
        return ray.get([a.info.remote() for a in self._actors])

    def close(self) -> None:
        """Kill the actors; stop the local Ray instance this backend started, or leave the cluster it joined.

        A cluster it joined keeps running; Ray that was already initialised in
        this process when the backend started is left as it was.
        """
        if not self._actors and not self._connected:
            return
        ray = _import_ray()
        for actor in list(self._actors):
            self._drop(ray, actor)
        self._actors, self._starting, self._busy, self._idle = [], {}, {}, deque()
        if self._connected and ray.is_initialized():
            ray.shutdown()
        self.started_ray = self._connected = False

    # ------------------------------------------------------------------ run
    def run(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        items = list(items)
        if not items:
            return []
        if any(str(i.device).startswith("cuda") for i in items) and self.gpus_per_worker <= 0:
            raise ValueError("device cuda with the ray backend needs --gpus-per-worker > 0 "
                             "(an actor without GPUs sees none)")
        ray = self._ensure_started()
        from ray.exceptions import RayTaskError

        lost = _lost_errors(ray)
        results: list[ItemResult | None] = [None] * len(items)
        queue: deque[int] = deque(range(len(items)))
        deaths = [0] * len(items)
        mine: dict = {}  # result ref -> item index, for this call's items in flight
        error: BaseException | None = None
        left = len(items)
        while left:
            while queue and self._idle and error is None:
                actor = self._idle.popleft()
                if actor not in self._actors:
                    continue
                i = queue.popleft()
                ref = actor.run.remote(items[i])
                self._busy[ref] = actor
                mine[ref] = i
                if self.on_dispatch is not None:
                    self.on_dispatch(i, self._info.get(_key(actor), {}))
            if error is not None and not mine:
                raise error
            waiting = list(self._busy) + list(self._starting)
            if not waiting:
                raise RuntimeError("the ray backend has no workers left to run on")
            ready = ray.wait(waiting, num_returns=1, timeout=STARTUP_WARNING)[0]
            if not ready:  # only possible while no actor is up yet, or every item is slow
                if not self._busy and not self._warned:
                    self._warned = True
                    warnings.warn(f"no Ray worker has started in {STARTUP_WARNING:g} s; each needs "
                                  f"{self.cpus_per_worker:g} CPUs and {self.gpus_per_worker:g} GPUs, the cluster "
                                  f"has {ray.available_resources()} free; waiting", stacklevel=2)
                continue
            ref = ready[0]
            if ref in self._starting:
                self._started(ray, ref, lost)
                continue
            actor = self._busy.pop(ref)
            i = mine.pop(ref, None)
            try:
                value = ray.get(ref)
            except lost as exc:  # the worker (or its node) died: replace it, put the item back
                self._replace(ray, actor)
                if i is None:
                    continue
                deaths[i] += 1
                self.resubmitted += 1
                if deaths[i] > self.max_retries:
                    error = error or RuntimeError(
                        f"work item {i} ({items[i].task}, {len(items[i].programs)} programs) lost its Ray worker "
                        f"{deaths[i]} times; last: {type(exc).__name__}: {exc}")
                else:
                    queue.appendleft(i)
                continue
            except RayTaskError as exc:  # run_item raised (not a candidate's failure): as locally, stop
                self._idle.append(actor)
                if i is not None:
                    error = error or exc.as_instanceof_cause()
                continue
            self._idle.append(actor)
            if i is not None:
                results[i] = value
                left -= 1
        return results  # type: ignore[return-value]

    def _started(self, ray, ref, lost) -> None:
        """An actor's first call came back: it is up (idle), or it failed to start (replaced)."""
        actor = self._starting.pop(ref)
        try:
            self._info[_key(actor)] = ray.get(ref)
        except (*lost, ray.exceptions.RayTaskError) as exc:
            self._start_failures += 1
            if self._start_failures > self.max_retries + self.workers:
                self._drop(ray, actor)
                raise RuntimeError(f"Ray workers fail to start ({self._start_failures} times); last: "
                                   f"{type(exc).__name__}: {exc}. Is discover installed (same version) on "
                                   f"every node?") from exc
            self._replace(ray, actor)
            return
        self._start_failures = 0
        self._idle.append(actor)

    def _replace(self, ray, actor) -> None:
        self._drop(ray, actor)
        self._new_actor(ray)
        self.replaced += 1

    def __repr__(self) -> str:
        where = self.address or "local"
        return (f"RayBackend(workers={self.workers}, address={where}, cpus_per_worker={self.cpus_per_worker}, "
                f"gpus_per_worker={self.gpus_per_worker})")
