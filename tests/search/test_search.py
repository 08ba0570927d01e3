"""End-to-end search runs on tiny configs: determinism, resume, interruption, kill -9, bad input, CLI."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from discover.cli import main as cli_main
from discover.search import SearchConfig, run
from discover.search.evolution import Search


def tiny(out, **kw):
    cfg = dict(init=["sgd"], tasks=["quadratic", "logistic"], meta_tasks=["logistic"], steps=15, meta_steps=20,
               budget=20, batch=4, population=6, tournament=2, funnel_every=8, funnel_top=1, plateau=8,
               out=None if out is None else str(out), progress=False)
    cfg.update(kw)
    return SearchConfig(**cfg)


def programs(run_dir):
    """The event log's sequence: each evaluation's program; funnel and restart records by kind."""
    return [e.get("program", e["kind"]) for e in map(json.loads, open(os.path.join(run_dir, "events.jsonl")))]


def hof(result):
    return [(i.fp, i.value, i.program) for i in result.hall_of_fame]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    return out, run(tiny(out))


def test_run_directory_contents_and_counts(reference):
    out, res = reference
    assert res.completed and res.evaluations == 20
    for name in ("config.json", "events.jsonl", "checkpoint.json", "summary.json", "best.opt"):
        assert (out / name).exists(), name
    events = [json.loads(l) for l in open(out / "events.jsonl")]
    children = [e for e in events if e["kind"] == "child"]
    assert len(children) == 20 and [e["eval"] for e in children] == list(range(20))
    assert {"program", "fingerprint", "scores", "cache_hit", "seconds"} <= set(children[0])
    summary = json.load(open(out / "summary.json"))
    assert summary["cache_hits"] == sum(e["cache_hit"] for e in children)
    # a cache hit reuses the score of the first evaluation with that fingerprint
    first = {}
    for e in children:
        if e["fingerprint"] in first and e["cache_hit"]:
            assert e["fitness"] == first[e["fingerprint"]]
        first.setdefault(e["fingerprint"], e["fitness"])
    assert len(list((out / "hall_of_fame").glob("*.opt"))) == len(res.hall_of_fame) >= 1
    ranks = [i.value for i in res.hall_of_fame]
    assert ranks == sorted(ranks)
    from discover import parse_file
    parse_file(out / "best.opt")  # the best program is a valid program file that runs as is


def test_same_seed_same_run(reference, tmp_path):
    out, res = reference
    again = run(tiny(tmp_path / "again"))
    assert programs(tmp_path / "again") == programs(out)
    assert hof(again) == hof(res)
    other = run(tiny(tmp_path / "other", seed=1, budget=8))
    assert programs(tmp_path / "other")[1:] != programs(out)[1:9]


def test_resume_after_stop_gives_same_hall_of_fame(reference, tmp_path):
    out, res = reference
    d = tmp_path / "stopped"
    part = run(tiny(d), stop_after_batches=2)
    assert not part.completed and 0 < part.evaluations < 20
    assert not (d / "summary.json").exists()
    resumed = run(tiny(None), resume=d)
    assert resumed.completed and programs(d) == programs(out) and hof(resumed) == hof(res)


def test_keyboard_interrupt_checkpoints_and_resumes(reference, tmp_path, monkeypatch):
    out, res = reference
    d = tmp_path / "ctrlc"
    real = Search.step
    calls = {"n": 0}

    def step(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Search, "step", step)
    with pytest.raises(KeyboardInterrupt):
        run(tiny(d))
    ck = json.load(open(d / "checkpoint.json"))
    assert 0 < ck["evaluations"] < 20 and len(programs(d)) == ck["n_events"]
    monkeypatch.setattr(Search, "step", real)
    resumed = run(tiny(None), resume=d)
    assert programs(d) == programs(out) and hof(resumed) == hof(res)


def test_kill_9_then_resume(reference, tmp_path):
    out, res = reference
    d = tmp_path / "killed"
    cmd = [sys.executable, "-m", "discover", "search", "--init", "sgd", "--tasks", "quadratic,logistic",
           "--meta-tasks", "logistic", "--steps", "15", "--meta-steps", "20", "--budget", "20", "--batch", "4",
           "--population", "6", "--tournament", "2", "--funnel-every", "8", "--funnel-top", "1", "--plateau", "8",
           "--out", str(d), "--no-progress"]
    # the same torch thread count as this process (tests/conftest.py): float results of the
    # tasks' forward/backward depend on it in the last bits, and selection can amplify that
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            ck = d / "checkpoint.json"
            if ck.exists() and json.load(open(ck))["evaluations"] >= 4:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (d / "summary.json").exists()  # killed mid-run
    resumed = run(tiny(None), resume=d)
    assert programs(d) == programs(out) and hof(resumed) == hof(res)


@pytest.mark.parametrize("kw, message", [
    ({"tasks": ["nosuchtask"]}, "unknown task 'nosuchtask'"),
    ({"init": ["nosuchprog"]}, "unknown program 'nosuchprog'"),
    ({"budget": 0}, "budget must be a positive"),
    ({"tournament": 9}, "tournament must be between"),
])
def test_bad_input_is_a_clear_error(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        run(tiny(tmp_path / "bad", **kw))


def test_resume_with_incompatible_config_is_refused(reference, tmp_path, capsys):
    out, _ = reference
    with pytest.raises(ValueError, match="population"):
        run(tiny(None, population=7), resume=out)
    assert cli_main(["search", "--resume", str(out), "--seed", "5", "--no-progress"]) == 1
    assert "--seed" in capsys.readouterr().err
    assert cli_main(["search", "--resume", str(tmp_path / "missing"), "--no-progress"]) == 1


def test_cli_end_to_end(tmp_path, capsys):
    d = tmp_path / "cli"
    rc = cli_main(["search", "--init", "adamw", "--tasks", "quadratic", "--meta-tasks", "logistic", "--steps", "10",
                   "--meta-steps", "10", "--budget", "6", "--batch", "3", "--population", "4", "--out", str(d),
                   "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "hall of fame" in out and "def " in out and "evaluations: 6" in out
    assert json.load(open(d / "config.json"))["init"] == ["adamw"]
    assert cli_main(["search", "--budget", "0", "--no-progress", "--out", str(tmp_path / "x")]) == 1
    assert "budget" in capsys.readouterr().err
