"""The process backend (`ProcessPoolBackend`): same results as local, a killed worker loses nothing.

(``multiprocessing.Pool.map`` waits forever when a worker is SIGKILLed; this
backend starts a new pool and resubmits the unfinished items.)
"""
from __future__ import annotations

import os
import signal

import pytest
import torch

from discover import load
from discover.evaluate import LocalBackend, make_work
from discover.evaluate.process_backend import ProcessPoolBackend
from discover.lang.ir import HParam

DIVERGES = load("sgd").with_(name="diverges", hparams=(HParam("lr", 1e6), HParam("weight_decay", 0.0)))


@pytest.fixture(scope="module")
def backend():
    b = ProcessPoolBackend(workers=2, threads=1)
    yield b
    b.close()


def items(steps: int = 30):
    programs = [load("adamw"), load("lion"), load("momentum"), DIVERGES]
    return make_work(programs, ["quadratic", "logistic", "mlp"], [0.5, 1.0, 2.0], [0, 1], steps=steps, chunk=2)


def losses(results):
    return [r.val_loss for r in results]


def test_same_losses_as_local_in_item_order(backend, one_thread):
    work = items()
    local = LocalBackend().run(work)
    remote = backend.run(work)
    assert losses(remote) == losses(local) and len(remote) == 6
    for item, res in zip(work, remote):
        for prog, row in zip(item.programs, res.val_loss):
            assert all(v == float("inf") for v in row) == (prog.name == "diverges")
    assert losses(backend.run(work[::-1])) == losses(local)[::-1]
    assert len(backend.worker_pids()) == 2 and os.getpid() not in backend.worker_pids()


def test_killed_worker_mid_run_loses_nothing(backend, one_thread):
    work = items(steps=60)
    local = LocalBackend().run(work)
    backend.run(work[:2])  # both workers up
    pids = backend.worker_pids()
    killed = []

    def kill_a_worker(index):
        if index == 1 and not killed:  # two items in flight: SIGKILL one worker
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    backend.on_dispatch = kill_a_worker
    try:
        before = (backend.restarts, backend.resubmitted)
        remote = backend.run(work)
    finally:
        backend.on_dispatch = None
    assert losses(remote) == losses(local)
    assert killed and backend.restarts == before[0] + 1 and backend.resubmitted >= before[1] + 1
    assert killed[0] not in backend.worker_pids()


def test_item_error_is_raised_as_locally_and_backend_still_works(backend, one_thread):
    work = items(steps=10)
    bad = make_work([load("sgd")], ["no_such_task"], [1.0], [0], steps=10)
    with pytest.raises(ValueError, match="unknown task"):
        backend.run(work[:3] + bad + work[3:])
    assert losses(backend.run(work)) == losses(LocalBackend().run(work))


def test_a_worker_that_always_dies_gives_up_instead_of_looping():
    b = ProcessPoolBackend(workers=1, threads=1, max_retries=1)
    work = make_work([load("sgd")], ["quadratic"], [1.0], [0], steps=2000)
    b.on_dispatch = lambda index: [os.kill(pid, signal.SIGKILL) for pid in b.worker_pids()]
    try:
        with pytest.raises(RuntimeError, match="died 2 times"):
            b.run(work)
        assert b.restarts == 1
    finally:
        b.close()
