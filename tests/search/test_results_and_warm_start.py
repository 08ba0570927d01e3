"""What a finished search shows and keeps (hall of fame as saved, summary counts), and warm starts
from an earlier run (`--init RUN_DIR`, `--init RUN_DIR/best.opt`)."""
import json
import re

import pytest

from discover import parse, parse_file
from discover.cli import main as cli_main
from discover.lang.ir import Ref
from discover.search import SearchConfig, run


def tiny(out, **kw):
    cfg = dict(init=["sgd"], tasks=["quadratic"], meta_tasks=["logistic"], steps=10, meta_steps=10, budget=8,
               batch=4, population=4, tournament=2, funnel_every=4, funnel_top=1, plateau=8, out=str(out),
               progress=False)
    cfg.update(kw)
    return SearchConfig(**cfg)


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("old") / "run"
    logs: list[str] = []
    result = run(tiny(out), log=logs.append)
    return out, result, logs


def _dead_statements(program) -> list[str]:
    """Assignments whose value nothing reads afterwards (a reference written here, not prune())."""
    dead = []
    for i, stmt in enumerate(program.body):
        later_reads = {a.name for s in program.body[i + 1:] for a in s.args if isinstance(a, Ref)}
        redefined_before_read = False
        for s in program.body[i + 1:]:
            if any(isinstance(a, Ref) and a.name == stmt.target for a in s.args):
                break
            if s.target == stmt.target:
                redefined_before_read = True
                break
        returned = any(isinstance(a, Ref) and a.name == stmt.target for a in program.returns)
        if redefined_before_read or not (stmt.target in later_reads or returned):
            dead.append(stmt.target)
    return dead


def test_summary_counts_the_final_funnel(old_run):
    out, _, logs = old_run
    ran = [line for line in logs if line.startswith("funnel")]
    assert any("(final)" in line for line in ran)
    assert json.loads((out / "summary.json").read_text())["funnels"] == len(ran)


def test_printed_hall_of_fame_is_the_saved_one(tmp_path, capsys):
    d = tmp_path / "cli"
    assert cli_main(["search", "--init", "sgd", "--tasks", "quadratic", "--meta-tasks", "logistic", "--steps", "10",
                     "--meta-steps", "10", "--budget", "8", "--batch", "4", "--population", "4", "--funnel-every",
                     "4", "--out", str(d), "--no-progress"]) == 0
    out = capsys.readouterr().out
    printed = [parse(block) for block in re.findall(r"^(def .+?)(?=^\n|^files:)", out, flags=re.M | re.S)]
    saved = [parse_file(f) for f in sorted((d / "hall_of_fame").glob("*.opt"))]
    assert len(printed) == len(saved) >= 2
    for p, s in zip(printed, saved):
        assert p == s.with_(doc=""), (p, s)
        assert _dead_statements(p) == []
    names = [p.name for p in printed]
    assert sum(n == "sgd" for n in names) <= 1  # only the warm start itself keeps its name
    assert all(n == "sgd" or re.fullmatch(r"discovered_[0-9a-f]{8}", n) for n in names), names


def test_init_from_a_run_directory_starts_from_its_hall_of_fame(old_run, tmp_path):
    out, _, _ = old_run
    hof_files = sorted((out / "hall_of_fame").glob("*.opt"))
    new = run(tiny(tmp_path / "new", init=[str(out)], budget=4))
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    assert config["init"] == [str(f) for f in hof_files]  # recorded as the programs it started from
    inits = [json.loads(line) for line in open(tmp_path / "new" / "events.jsonl")]
    inits = [e for e in inits if e["kind"] == "init"]
    assert len(inits) == len(hof_files)
    for event, f in zip(inits, hof_files):
        started, saved = parse(event["program"]), parse_file(f)
        # the same update rule (the lr is re-tuned by the warm start's grid; spare state slots added)
        assert started.body == saved.body and started.returns[0] == saved.returns[0]
    assert new.evaluations == 4


def test_init_from_a_best_opt_file(old_run, tmp_path, capsys):
    out, _, _ = old_run
    d = tmp_path / "from_best"
    assert cli_main(["search", "--init", str(out / "best.opt"), "--tasks", "quadratic", "--meta-tasks", "",
                     "--steps", "10", "--budget", "4", "--batch", "4", "--population", "4", "--out", str(d),
                     "--no-progress"]) == 0
    assert json.loads((d / "config.json").read_text())["init"] == [str(out / "best.opt")]
    assert "warm start" in capsys.readouterr().out


def test_init_from_a_directory_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli_main(["search", "--init", str(tmp_path / "empty"), "--no-progress", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "no hall_of_fame/*.opt or best.opt" in err and "Traceback" not in err
