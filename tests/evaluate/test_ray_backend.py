"""The Ray backend: same results as the local backend, a killed worker loses nothing, same search.

The module starts one local two-worker Ray instance (through `RayBackend`
itself, so the start-up path with a long temp dir is exercised) and shuts it
down in the last test. CI installs the ``ray`` extra; without Ray these tests
fail rather than skip.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import ray  # not importorskip: CI installs the ray extra, and a skipped Ray test does not count
import torch

from discover import load
from discover.evaluate import LocalBackend, make_work
from discover.evaluate.ray_backend import MAX_TEMP_DIR, RayBackend, short_temp_dir
from discover.lang.ir import HParam
from discover.lang.printer import unparse
from discover.search import SearchConfig
from discover.search import run as run_search

DIVERGES = load("sgd").with_(name="diverges", hparams=(HParam("lr", 1e6), HParam("weight_decay", 0.0)))


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    deep = tmp_path_factory.mktemp("run") / ("a-long-run-directory-name-" * 3) / "ray"
    b = RayBackend(workers=2, cpus_per_worker=1, temp_dir=deep)
    assert not ray.is_initialized()
    infos = b.worker_info()  # starts the local instance and both actors
    b.test_temp_dir = deep
    b.test_first_pids = sorted(i["pid"] for i in infos)
    yield b
    b.close()
    shutil.rmtree(deep.resolve(), ignore_errors=True)  # the short dir in /tmp the run dir linked to


def items(steps: int = 30, chunk: int = 2):
    programs = [load("adamw"), load("lion"), load("momentum"), DIVERGES]
    return make_work(programs, ["quadratic", "logistic", "mlp"], [0.5, 1.0, 2.0], [0, 1], steps=steps, chunk=chunk)


def losses(results):
    return [r.val_loss for r in results]


def test_starts_local_ray_with_short_temp_dir_linked_from_the_run_dir(backend):
    assert backend.started_ray and ray.is_initialized()
    assert ray.cluster_resources().get("CPU") == 2
    link = backend.test_temp_dir
    assert len(str(link)) > MAX_TEMP_DIR and link.is_symlink()
    target = link.resolve()
    assert len(str(target)) <= MAX_TEMP_DIR and any(target.glob("session_*"))
    assert len(backend.test_first_pids) == 2 and os.getpid() not in backend.test_first_pids
    assert all(i["threads"] == 1 for i in backend.worker_info())


def test_same_losses_as_local_whatever_order_results_arrive(backend, one_thread):
    work = items()
    local = LocalBackend().run(work)
    remote = backend.run(work)
    assert losses(remote) == losses(local)
    assert len(remote) == len(work) == 6
    # the diverging candidate is scored worst (inf) as locally, and only it
    for item, res in zip(work, remote):
        for prog, row in zip(item.programs, res.val_loss):
            assert all(v == float("inf") for v in row) == (prog.name == "diverges")
    # reversed input order: results still follow the items
    assert losses(backend.run(work[::-1])) == losses(local)[::-1]


def test_killed_worker_mid_run_loses_nothing(backend, one_thread):
    work = items(steps=60)
    local = LocalBackend().run(work)
    killed = []

    def kill_first_dispatched(index, info):
        if not killed:  # SIGKILL the actor's process while it holds this item
            killed.append(info["pid"])
            os.kill(info["pid"], signal.SIGKILL)

    backend.on_dispatch = kill_first_dispatched
    try:
        before = (backend.resubmitted, backend.replaced)
        remote = backend.run(work)
    finally:
        backend.on_dispatch = None
    assert losses(remote) == losses(local)
    assert killed and (backend.resubmitted, backend.replaced) == (before[0] + 1, before[1] + 1)
    pids = [i["pid"] for i in backend.worker_info()]
    assert len(pids) == 2 and killed[0] not in pids


def test_item_error_is_raised_as_locally_and_backend_still_works(backend, one_thread):
    work = items(steps=10)
    bad = make_work([load("sgd")], ["no_such_task"], [1.0], [0], steps=10)
    with pytest.raises(ValueError, match="unknown task"):
        LocalBackend().run(bad)
    with pytest.raises(ValueError, match="unknown task"):
        backend.run(work[:3] + bad + work[3:])
    assert losses(backend.run(work)) == losses(LocalBackend().run(work))


def test_cuda_without_gpus_is_refused_before_running():
    b = RayBackend(workers=1)
    work = make_work([load("sgd")], ["quadratic"], [1.0], [0], steps=5, device="cuda")
    with pytest.raises(ValueError, match="gpus-per-worker"):
        b.run(work)
    assert not b._actors


def _hof(result):
    return [(unparse(i.program), i.value, i.search_fitness, i.born) for i in result.hall_of_fame]


def _events(run_dir):
    rows = [json.loads(line) for line in open(run_dir / "events.jsonl")]
    return [(r["eval"], r["program"], r["fitness"], r["losses"], r["cache_hit"]) if "program" in r
            else (r["kind"], r["eval"], r.get("meta"), r.get("se")) for r in rows]


class _Shared(RayBackend):
    """The module's backend as the search sees it: its actors (the instance has CPUs for two only)."""

    def __init__(self, inner: RayBackend) -> None:  # no super().__init__: a view on `inner`
        self.inner, self.closed = inner, 0

    def run(self, items):
        return self.inner.run(items)

    def close(self) -> None:
        self.closed += 1


def test_search_with_ray_gives_the_same_hall_of_fame_as_local(backend, tmp_path, monkeypatch, one_thread):
    import discover.evaluate.evaluator as evaluate  # where the search's Evaluator looks its backend up

    made = []
    original = evaluate.get_backend

    def get_backend(name="local", workers=1, **options):
        if name != "ray":
            return original(name, workers)
        assert workers == 2
        made.append(_Shared(backend))
        return made[-1]

    monkeypatch.setattr(evaluate, "get_backend", get_backend)
    common = dict(init=["sgd"], tasks=["quadratic", "logistic"], meta_tasks=["mlp"], budget=12, batch=4,
                  population=4, tournament=2, steps=20, meta_steps=20, funnel_every=4, funnel_top=1, hof_size=3,
                  seed=3, progress=False, candidate_time_limit=None)
    local = run_search(SearchConfig(backend="local", workers=1, out=str(tmp_path / "local"), **common))
    remote = run_search(SearchConfig(backend="ray", workers=2, out=str(tmp_path / "ray"), **common))
    assert len(made) == 1 and made[0].closed == 1  # the search ran on Ray and closed its backend
    assert local.evaluations == remote.evaluations == 12
    assert _hof(remote) == _hof(local) and len(_hof(local)) >= 2
    assert _events(tmp_path / "ray") == _events(tmp_path / "local")


def test_importing_discover_does_not_import_ray():
    code = ("import sys, discover, discover.evaluate, discover.evaluate.ray_backend, discover.search; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_short_temp_dir(tmp_path):
    short = Path(tempfile.mkdtemp(prefix="dr", dir="/tmp"))
    try:
        assert short_temp_dir(short / "ray") == short / "ray" and (short / "ray").is_dir()
    finally:
        shutil.rmtree(short)
    long = tmp_path / ("x" * 50) / "ray"
    target = short_temp_dir(long)
    try:
        assert long.is_symlink() and long.resolve() == target.resolve() and len(str(target)) <= MAX_TEMP_DIR
        assert short_temp_dir(long) == target  # again (a resumed run): the same directory
    finally:
        shutil.rmtree(target)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / ("y" * 50)).mkdir()
    with pytest.raises(ValueError, match="not a symlink"):
        short_temp_dir(tmp_path / "plain" / ("y" * 50))


def test_close_shuts_down_the_ray_it_started(backend):
    """Last in the module: the backend that started the local instance stops it."""
    assert ray.is_initialized()
    backend.close()
    assert not ray.is_initialized() and not backend._actors
    backend.close()  # twice is fine
