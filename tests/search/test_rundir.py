"""The run directory on its own: the lock (held, stale, released), where a new run may start, and
what a resume refuses to start over from."""
import json
import os
import signal
import subprocess
import sys

import pytest

from discover.search.rundir import CHECKPOINT, CONFIG, EVENTS, LOCK, RunDir, RunDirError

HOLD = ("import sys, time\nfrom discover.search.rundir import RunDir\n"
        "RunDir(sys.argv[1]).lock()\nprint('locked', flush=True)\ntime.sleep(600)\n")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/run, as a running search does."""
    d = tmp_path / "run"
    d.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield d, proc
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_held_by_another_process_is_refused_naming_its_pid(holder):
    d, proc = holder
    with pytest.raises(RunDirError, match=f"is in use by another discover search: pid {proc.pid} on "):
        RunDir(d).lock()


def test_the_lock_of_a_killed_process_is_no_obstacle(holder):
    d, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert f"pid {proc.pid}" in (d / LOCK).read_text()  # the file is still there, naming a dead pid
    rd = RunDir(d).lock()
    assert (d / LOCK).read_text().startswith(f"pid {os.getpid()} on ")
    rd.unlock()


def test_a_stale_lock_file_from_a_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / LOCK).write_text(f"pid {pid} on somehost\n")
    rd = RunDir(tmp_path).lock()
    assert (tmp_path / LOCK).read_text().startswith(f"pid {os.getpid()} on ")
    rd.unlock()


def test_two_runs_in_one_process_exclude_each_other_until_unlock(tmp_path):
    first = RunDir(tmp_path).lock()
    with pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
        RunDir(tmp_path).lock()
    first.unlock()
    RunDir(tmp_path).lock().unlock()


def test_create_refuses_a_file_a_run_and_a_foreign_non_empty_directory(tmp_path):
    f = tmp_path / "afile"
    f.write_text("keep me")
    with pytest.raises(RunDirError, match="is a file, not a directory"):
        RunDir(f).create({})
    assert f.read_text() == "keep me"

    foreign = tmp_path / "foreign"
    (foreign / "hall_of_fame").mkdir(parents=True)
    (foreign / "hall_of_fame" / "mine.opt").write_text("x")
    (foreign / "best.opt").write_text("y")
    with pytest.raises(RunDirError, match=r"is not empty \(2 entries: best.opt, hall_of_fame\) and is not a search run"):
        RunDir(foreign).create({})
    assert sorted(p.name for p in foreign.rglob("*")) == ["best.opt", "hall_of_fame", "mine.opt"]

    run = tmp_path / "run"
    RunDir(run).create({"budget": 1}).unlock()
    with pytest.raises(RunDirError, match="already holds a run; continue it with --resume"):
        RunDir(run).create({"budget": 2})
    assert json.loads((run / CONFIG).read_text()) == {"budget": 1}


def test_create_accepts_a_new_an_empty_or_a_lock_only_directory(tmp_path):
    for d in (tmp_path / "new" / "deep", tmp_path / "empty", tmp_path / "lockonly"):
        if d.name != "deep":
            d.mkdir()
        if d.name == "lockonly":
            (d / LOCK).write_text("pid 1 on x\n")
        RunDir(d).create({"budget": 1}).unlock()
        assert (d / CONFIG).exists() and (d / EVENTS).exists()


def _run_dir(tmp_path, events):
    d = tmp_path / "r"
    d.mkdir()
    (d / CONFIG).write_text("{}")
    (d / EVENTS).write_text("".join(json.dumps(e) + "\n" for e in events))
    return RunDir(d)


@pytest.mark.parametrize("content, message", [
    (None, "checkpoint.json is missing but the directory holds 3 lines of events.jsonl"),
    ("", "is empty"),
    ("null", "holds null, not a checkpoint object"),
    ("[]", r"holds \[\], not a checkpoint object"),
    ("{'a", "is not a checkpoint: invalid JSON"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe", "is not a checkpoint: it is not UTF-8 text"),
])
def test_a_missing_or_broken_checkpoint_beside_results_is_refused(tmp_path, content, message):
    events = [{"kind": "init"}, {"kind": "child"}, {"kind": "child"}]
    rd = _run_dir(tmp_path, events)
    if content is not None:
        (rd.path / CHECKPOINT).write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RunDirError, match=message) as info:
        rd.read_checkpoint()
    assert str(rd.path) in str(info.value)
    assert (rd.path / EVENTS).read_text().count("\n") == 3


def test_no_checkpoint_after_a_warm_start_only_is_a_fresh_start(tmp_path):
    """Killed during the warm start: its events are not covered by any checkpoint, nothing is lost."""
    rd = _run_dir(tmp_path, [{"kind": "init"}])
    assert rd.read_checkpoint() is None
    (rd.path / "summary.json").write_text("{}")
    with pytest.raises(RunDirError, match="summary.json"):
        rd.read_checkpoint()


def test_truncate_events_drops_a_torn_tail_and_refuses_a_cut_log(tmp_path):
    rd = _run_dir(tmp_path, [{"kind": "init"}, {"kind": "child"}])
    with open(rd.path / EVENTS, "ab") as f:
        f.write(b'{"kind": "ch')  # a line torn by kill -9
    rd.truncate_events(2)
    assert (rd.path / EVENTS).read_text().splitlines() == ['{"kind": "init"}', '{"kind": "child"}']
    with pytest.raises(RunDirError, match="holds 2 complete lines but checkpoint.json covers 5"):
        rd.truncate_events(5)
    assert (rd.path / EVENTS).read_text().count("\n") == 2
