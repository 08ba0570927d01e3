"""What a search run never does to a run directory: overwrite results, start over beside them,
share the directory with another run, or start work before every argument is checked."""
import json
import shutil

import pytest

from discover.cli import main as cli_main
from discover.search import SearchConfig, run
from discover.search.evolution import Search
from discover.search.rundir import RunDirError

FILES = ("config.json", "events.jsonl", "checkpoint.json", "summary.json", "best.opt")


def tiny(out, **kw):
    cfg = dict(init=["sgd"], tasks=["quadratic", "logistic"], meta_tasks=["logistic"], steps=15, meta_steps=20,
               budget=20, batch=4, population=6, tournament=2, funnel_every=8, funnel_top=1, plateau=8, hof_size=3,
               out=None if out is None else str(out), progress=False)
    cfg.update(kw)
    return SearchConfig(**cfg)


def snapshot(d):
    """Every file of a run directory (but its lock) by relative path -> bytes."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != "lock"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    return out, run(tiny(out))


@pytest.fixture
def copy_of(finished, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(finished[0], d)
    return d


def fps(result):
    return [(i.fp, i.value) for i in result.hall_of_fame]


# ---------------------------------------------------------------- resuming a finished run


def test_resuming_a_finished_run_with_its_budget_changes_nothing(finished, copy_of, capsys):
    _, res = finished
    assert len(res.hall_of_fame) == 3 and res.completed
    before = snapshot(copy_of)
    again = run(tiny(None), resume=copy_of)
    assert fps(again) == fps(res) and again.completed and again.evaluations == 20
    assert snapshot(copy_of) == before
    assert cli_main(["search", "--resume", str(copy_of), "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "already ran to its end" in out.err and "evaluations: 20" in out.out
    assert snapshot(copy_of) == before
    run(tiny(None, budget=10), resume=copy_of)  # a smaller budget: nothing to undo, nothing done
    assert snapshot(copy_of) == before


def test_resuming_a_finished_run_with_a_larger_budget_keeps_its_hall_of_fame(finished, copy_of):
    _, res = finished
    events_before = (copy_of / "events.jsonl").read_text().splitlines()
    longer = run(tiny(None, budget=28), resume=copy_of)
    assert longer.completed and longer.evaluations == 28
    events = (copy_of / "events.jsonl").read_text().splitlines()
    assert events[:len(events_before)] == events_before and len(events) > len(events_before)
    new = {i.fp: i.value for i in longer.hall_of_fame}
    worst_new = max(new.values())
    for ind in res.hall_of_fame:  # every member stays unless enough better ones displaced it
        assert ind.fp in new or (len(new) == 3 and worst_new < ind.value), ind.fp
    on_disk = json.loads((copy_of / "summary.json").read_text())["hall_of_fame"]
    assert [h["fingerprint"] for h in on_disk] == list(new)
    # and that longer run, finished in turn, is left alone by a resume with its budget
    before = snapshot(copy_of)
    assert fps(run(tiny(None, budget=28), resume=copy_of)) == fps(longer)
    assert snapshot(copy_of) == before


def test_an_interrupted_longer_run_keeps_the_earlier_finalists(finished, copy_of):
    """The first run's final-stage finalists survive a continued run that is stopped and resumed."""
    _, res = finished
    part = run(tiny(None, budget=40), resume=copy_of, stop_after_batches=1)
    assert not part.completed and 20 < part.evaluations < 40
    ck = json.loads((copy_of / "checkpoint.json").read_text())
    assert [d["fp"] for d in ck["final"]["hall_of_fame"]] == [i.fp for i in res.hall_of_fame]
    longer = run(tiny(None, budget=40), resume=copy_of)
    assert longer.completed and longer.evaluations == 40
    new = {i.fp: i.value for i in longer.hall_of_fame}
    for ind in res.hall_of_fame:
        assert ind.fp in new or (len(new) == 3 and max(new.values()) < ind.value)


def test_references_asked_of_a_finished_run_are_added_without_touching_its_hall_of_fame(tmp_path):
    d = tmp_path / "run"  # its own run: hall-of-fame files name their directory, so a copy would differ
    res = run(tiny(d))
    before = snapshot(d)
    again = run(tiny(None), resume=d, references=["momentum"])
    assert fps(again) == fps(res) and "momentum" in again.summary["references"]
    after = snapshot(d)
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == ["checkpoint.json", "summary.json"]
    run(tiny(None), resume=d, references=["momentum"])
    assert snapshot(d) == after


# ---------------------------------------------------------------- never start over beside results


@pytest.mark.parametrize("damage, message", [
    ("delete", "checkpoint.json is missing but the directory holds"),
    ("", "is empty"),
    ("null", "holds null, not a checkpoint"),
])
def test_a_deleted_empty_or_null_checkpoint_is_refused_and_nothing_is_lost(copy_of, damage, message):
    ck = copy_of / "checkpoint.json"
    if damage == "delete":
        ck.unlink()
    else:
        ck.write_text(damage)
    before = snapshot(copy_of)
    assert before["events.jsonl"].count(b"\n") > 20
    with pytest.raises(RunDirError, match=message):
        run(tiny(None), resume=copy_of)
    assert snapshot(copy_of) == before


@pytest.mark.parametrize("file, content, message", [
    ("checkpoint.json", "[]", r"checkpoint.json holds \[\], not a checkpoint object"),
    ("checkpoint.json", '{"version": 2}', r"checkpoint.json: field 'inits': missing"),
    ("checkpoint.json", '{"version": 7}', r"checkpoint.json: field 'version': 7 is not a checkpoint version"),
    ("checkpoint.json", None, r"checkpoint.json: population\[0\]: missing field 'program'"),
    ("checkpoint.json", b"\x00\xff\x13random", "checkpoint.json is not a checkpoint: it is not UTF-8 text"),
    ("checkpoint.json", "{not json", "checkpoint.json is not a checkpoint: invalid JSON"),
    ("config.json", None, r"config.json: field 'population' must be an integer, got 'four'"),
    ("config.json", "[]", "config.json is not a search config: it holds list"),
    ("config.json", b"\xff\xfe\x00", "config.json is not a search config: it is not UTF-8 text"),
])
def test_wrong_files_name_the_file_and_the_field(copy_of, file, content, message, capsys):
    path = copy_of / file
    if content is None and file == "checkpoint.json":
        data = json.loads(path.read_text())
        data["population"][0] = {"x": 1}
        content = json.dumps(data)
    elif content is None:
        data = json.loads(path.read_text())
        data["population"] = "four"
        content = json.dumps(data)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = snapshot(copy_of)
    with pytest.raises(ValueError, match=message) as info:
        run(tiny(None), resume=copy_of)
    assert str(copy_of) in str(info.value)
    assert snapshot(copy_of) == before
    assert cli_main(["search", "--resume", str(copy_of), "--no-progress"]) == 1  # one line, no traceback
    err = capsys.readouterr().err
    assert "Traceback" not in err and file in err


def test_a_hostile_program_name_in_a_checkpoint_is_refused(copy_of, tmp_path):
    marker = tmp_path / "F"
    path = copy_of / "checkpoint.json"
    data = json.loads(path.read_text())
    data["population"][0]["program"]["name"] = f'x"""\n__import__("os").system("touch {marker}")\n"""'
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"population\[0\]: .*program name .* is not an identifier"):
        run(tiny(None), resume=copy_of)
    assert not marker.exists()


# ---------------------------------------------------------------- one run per directory


def test_a_second_run_on_a_directory_in_use_is_refused(tmp_path, monkeypatch):
    d = tmp_path / "busy"
    real = Search.step
    seen = {}

    def step(self):
        if "second" not in seen:
            events = (d / "events.jsonl").read_bytes()
            with pytest.raises(RunDirError, match="is in use by another discover search: pid ") as info:
                run(tiny(None), resume=d)
            seen["second"] = str(info.value)
            assert (d / "events.jsonl").read_bytes() == events  # the refused run wrote nothing
            with pytest.raises(RunDirError, match="already holds a run"):
                run(tiny(d))  # nor as a new run
        return real(self)

    monkeypatch.setattr(Search, "step", step)
    res = run(tiny(d, budget=8))
    assert "second" in seen and res.evaluations == 8
    children = [json.loads(l) for l in open(d / "events.jsonl") if '"child"' in l]
    assert [e["eval"] for e in children] == list(range(8))  # no duplicate evaluation ids
    monkeypatch.setattr(Search, "step", real)
    run(tiny(None, budget=12), resume=d)  # and the lock is released when the run ends


# ---------------------------------------------------------------- a new run never overwrites


def test_out_on_a_foreign_non_empty_directory_or_a_file_is_refused(tmp_path, monkeypatch):
    foreign = tmp_path / "mine"
    (foreign / "hall_of_fame").mkdir(parents=True)
    (foreign / "hall_of_fame" / "keep.opt").write_text("def f(w, g):\n    return g\n")
    (foreign / "best.opt").write_text("mine")
    before = snapshot(foreign)
    monkeypatch.setattr(Search, "__init__", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(RunDirError, match="is not empty"):
        run(tiny(foreign))
    assert snapshot(foreign) == before
    f = tmp_path / "afile"
    f.write_text("data")
    with pytest.raises(RunDirError, match="is a file"):
        run(tiny(f))
    assert f.read_text() == "data"
    assert cli_main(["search", "--out", str(f), "--no-progress", "--budget", "4"]) == 1


@pytest.mark.parametrize("kw, references, message", [
    ({}, ["nosuch"], "unknown program 'nosuch'"),
    ({}, ["lookahead"], "--references lookahead: it wraps another optimizer's update"),
    ({"meta_tasks": []}, ["momentum"], "--references are tuned on the meta tasks"),
    ({"init": ["lookahead"]}, [], "--init lookahead: it wraps another optimizer's update"),
    ({"baseline": "lookahead"}, [], "--baseline lookahead: it wraps"),
    ({"steps": -3}, [], "steps must be at least 1 training step"),
    ({"steps": 0}, [], "steps must be at least 1 training step"),
    ({"meta_steps": 0}, [], "meta steps must be at least 1"),
    ({"candidate_time_limit": -1.0}, [], "candidate time limit must be a positive number of seconds"),
    ({"candidate_time_limit": 0.0}, [], "candidate time limit must be a positive"),
    ({"population": "four"}, [], "field 'population' must be an integer"),
    ({"slots": ["m", "v\n"]}, [], "state slot: state 'v\\\\n' is not an identifier"),
])
def test_every_argument_is_checked_before_any_work_and_before_the_directory_exists(tmp_path, monkeypatch,
                                                                                    kw, references, message):
    d = tmp_path / "never"
    monkeypatch.setattr(Search, "__init__", lambda *a, **k: pytest.fail("work started before validation"))
    with pytest.raises(ValueError, match=message):
        run(tiny(d, **kw), references=references)
    assert not d.exists()


def test_cli_refuses_bad_arguments_without_creating_the_directory(tmp_path, capsys):
    d = tmp_path / "never"
    for argv in (["--references", "nosuch"], ["--steps", "-3"], ["--steps", "0"], ["--init", "lookahead"],
                 ["--candidate-time-limit", "-1"]):
        assert cli_main(["search", "--out", str(d), "--no-progress", *argv]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("discover search: error:") and "Traceback" not in err
        assert not d.exists()


def test_resume_with_another_out_is_refused(finished, copy_of, tmp_path, capsys):
    other = tmp_path / "other"
    with pytest.raises(ValueError, match="a resumed run continues in its own directory"):
        run(tiny(other), resume=copy_of)
    assert cli_main(["search", "--resume", str(copy_of), "--out", str(other), "--no-progress"]) == 1
    assert "--out" in capsys.readouterr().err and not other.exists()
    run(tiny(copy_of), resume=copy_of)  # naming the run directory itself is fine


def test_one_resume_policy_for_the_cli_and_the_api(copy_of, capsys):
    with pytest.raises(ValueError) as api:
        run(tiny(None, seed=5, population=7), resume=copy_of)
    assert cli_main(["search", "--resume", str(copy_of), "--seed", "5", "--population", "7", "--no-progress"]) == 1
    assert str(api.value) in capsys.readouterr().err  # the same words, from the same place
    assert "--seed, --population" in str(api.value) and "seed=0, population=6" in str(api.value)


# ---------------------------------------------------------------- Ctrl-C before the first checkpoint


def test_ctrl_c_during_the_warm_start_says_there_is_no_checkpoint_and_resume_starts_over(finished, tmp_path,
                                                                                        monkeypatch):
    d = tmp_path / "early"
    real = Search.warm_start
    logged = []

    def warm_start(self):
        self.dir.append_events([{"kind": "init", "note": "half a warm start"}])
        raise KeyboardInterrupt

    monkeypatch.setattr(Search, "warm_start", warm_start)
    with pytest.raises(KeyboardInterrupt):
        run(tiny(d), log=logged.append)
    assert not (d / "checkpoint.json").exists()
    assert "checkpoint written" not in logged[-1] and "before the first checkpoint" in logged[-1]
    monkeypatch.setattr(Search, "warm_start", real)
    resumed = run(tiny(None), resume=d, log=logged.append)
    assert "starting it over" in "\n".join(logged)
    assert fps(resumed) == fps(finished[1])
