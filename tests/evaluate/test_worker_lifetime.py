"""Workers never outlive the search: a kill -9 of the process that started them leaves no worker
process (nor multiprocessing's resource tracker) behind."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

SCRIPT = """
import json, sys, time
from multiprocessing import resource_tracker
from discover import load
from discover.evaluate import make_work
from discover.evaluate.process_backend import ProcessPoolBackend

backend = ProcessPoolBackend(workers=2, threads=1)
backend.run(make_work([load("sgd")], ["quadratic"], [1.0], [0, 1], steps=3, chunk=1) * 2)  # both workers up
print(json.dumps({"workers": backend.worker_pids(), "tracker": resource_tracker._resource_tracker._pid}), flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to tell zombies from live processes")
def test_workers_and_resource_tracker_exit_when_the_search_is_killed():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    pids = info["workers"] + [info["tracker"]]
    assert len(info["workers"]) == 2 and all(isinstance(p, int) for p in pids)
    deadline = time.time() + 120  # generous: a loaded machine; they exit within a second when idle
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    left = [p for p in pids if alive(p)]
    for p in left:  # do not leave them behind if the test fails
        os.kill(p, signal.SIGKILL)
    assert not left, f"still running after the search was killed: {left}"
