"""`discover plot`: a run's events read back as what happened (best so far, failure rate, restarts,
funnel scores), for today's event format and for the one with `time`, restart and funnel records;
PNGs written and drawn; what a run did not record is said, not guessed."""
import json
import math

import pytest

from discover.analysis.runplot import load_run, rolling_rate, run_notes
from discover.cli import main

pytest.importorskip("matplotlib")
INF = math.inf
FITNESS = [1.3, INF, 1.1, 1.15, INF, 0.95, 1.0, INF, 0.9, 0.97]  # children, evaluations 0..9
HITS = [False, False, True, False, False, False, True, False, False, True]


def make_run(path, *, timed: bool):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"budget": 12}))
    events = [{"kind": "init", "eval": -1, "fitness": 1.2, "cache_hit": False}]
    for i, (f, hit) in enumerate(zip(FITNESS, HITS)):
        events.append({"kind": "child", "eval": i, "batch": i // 4, "fitness": f, "cache_hit": hit,
                       **({"time": 2.0 + 1.5 * i} if timed else {})})
        if timed and i == 5:
            events.append({"kind": "restart", "eval": 6, "batch": 1, "time": 10.0, "to": "best"})
        if timed and i == 7:
            events += [{"kind": "funnel", "eval": 8, "batch": 2, "time": 13.0, "fingerprint": "a", "candidate": 5,
                        "meta": 0.97, "se": 0.02, "final": False},
                       {"kind": "funnel", "eval": 8, "batch": 2, "time": 13.0, "fingerprint": "w", "candidate": -1,
                        "meta": 1.0, "se": 0.01, "final": False}]
    if timed:
        events.append({"kind": "funnel", "eval": 10, "batch": 2, "time": 17.0, "fingerprint": "b", "candidate": 8,
                       "meta": 0.93, "se": 0.015, "final": True})
    text = "".join(json.dumps(e) + "\n" for e in events)  # json writes inf as Infinity, as the search does
    (path / "events.jsonl").write_text(text)
    if not timed:  # today's runs: meta scores only in the checkpoint, restarts only counted
        (path / "checkpoint.json").write_text(json.dumps({"restarts": 1, "meta": {
            "a": {"fitness": 0.97, "eval": 5}, "w": {"fitness": 1.0, "eval": -1}}}))
        (path / "summary.json").write_text(json.dumps({"restarts": 1}))
    return path


@pytest.fixture
def runs(tmp_path):
    return make_run(tmp_path / "old", timed=False), make_run(tmp_path / "new", timed=True)


def test_best_so_far_and_rates_are_what_happened(runs):
    old, _ = runs
    run = load_run(old)
    assert run.evals == list(range(10)) and run.warm == [1.2]
    # hand-computed: the warm start's 1.2 until 1.1 at evaluation 2, then 0.95, then 0.9
    assert run.best_so_far() == [1.2, 1.2, 1.1, 1.1, 1.1, 0.95, 0.95, 0.95, 0.9, 0.9]
    failed = [not math.isfinite(f) for f in run.fitness]
    assert rolling_rate(failed, 4) == [0.0, 0.5, 1 / 3, 0.25, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25]
    assert run.cache_hits == HITS


def test_todays_events_fall_back_and_say_so(runs):
    old, _ = runs
    with open(old / "events.jsonl", "a") as f:
        f.write('{"kind": "child", "ev')  # a run killed mid-write leaves a torn last line
    run = load_run(old)
    assert run.skipped_lines == 1 and len(run.evals) == 10
    assert not run.has_time and run.restarts is None and run.restart_count == 1
    assert run.funnel_source == "checkpoint" and sorted((p.candidate, p.meta, p.se) for p in run.funnel) == \
        [(-1, 1.0, None), (5, 0.97, None)]
    notes = " | ".join(run_notes([run]))
    assert "no `time` field" in notes and "1 restart, positions not recorded" in notes
    assert "no standard errors" in notes and "1 unreadable line(s) in events.jsonl skipped" in notes


def test_timed_events_with_restart_and_funnel_records_are_used(runs):
    _, new = runs
    run = load_run(new)
    assert run.has_time and run.times[:2] == [2.0, 3.5]
    assert run.restarts == [6]
    assert run.funnel_source == "events"
    assert [(p.candidate, p.meta, p.se, p.final) for p in run.funnel] == \
        [(5, 0.97, 0.02, False), (-1, 1.0, 0.01, False), (8, 0.93, 0.015, True)]
    assert run_notes([run]) == []


def _drawn(png):
    from matplotlib.image import imread

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(png)
    colors = {tuple(px) for px in image.reshape(-1, image.shape[-1])[::5].round(2).tolist()}
    return image.shape[0] > 500 and len(colors) > 30


def test_cli_plots_one_run_and_overlays_several(runs, tmp_path, capsys):
    old, new = runs
    assert main(["plot", str(old)]) == 0
    assert _drawn(old / "progress.png")
    out = tmp_path / "both.png"
    assert main(["plot", str(old), str(new), "-o", str(out)]) == 0
    assert _drawn(out)
    printed = capsys.readouterr().out
    assert f"{new}: 10 evaluations, best search fitness 0.9000, 3 meta-scored" in printed


def test_cli_plots_a_real_search_run(tmp_path, capsys):
    from discover.search import SearchConfig, run

    d = tmp_path / "run"
    run(SearchConfig(init=["sgd"], tasks=["quadratic"], meta_tasks=["logistic"], steps=8, meta_steps=8, budget=8,
                     batch=4, population=4, tournament=2, funnel_every=4, out=str(d), progress=False))
    assert main(["plot", str(d)]) == 0
    assert _drawn(d / "progress.png")
    events = [json.loads(line) for line in open(d / "events.jsonl")]
    assert {"funnel"} <= {e["kind"] for e in events}  # funnel records beside the evaluations
    best = min(e["fitness"] for e in events if e["kind"] in ("init", "child"))
    assert f"best search fitness {best:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "is not a directory"),
    (lambda p: p.mkdir(), "is not a search run directory: it has no events.jsonl"),
    (lambda p: (p.mkdir(), (p / "events.jsonl").write_text("")), "has no evaluations yet"),
])
def test_bad_runs_are_clear_errors(tmp_path, capsys, setup, message):
    target = tmp_path / "x"
    setup(target)
    assert main(["plot", str(target)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_tensorboard_scalars_per_batch(runs, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, new = runs
    logdir = tmp_path / "tb"
    for _ in range(2):  # a second call rewrites the run's folder, it does not add to it
        assert main(["plot", str(new), "-o", str(tmp_path / "p.png"), "--tensorboard", str(logdir)]) == 0
    assert len(list((logdir / "new").glob("events.out.tfevents.*"))) == 1
    acc = EventAccumulator(str(logdir / "new"))
    acc.Reload()
    best = [(s.step, round(s.value, 6)) for s in acc.Scalars("search/best_fitness")]
    # batches of 4 children (evaluations 0-3, 4-7, 8-9); best so far by hand from FITNESS and the warm 1.2
    assert best == [(4, 1.1), (8, 0.95), (10, 0.9)]
    failed = [(s.step, round(s.value, 6)) for s in acc.Scalars("search/failed_fraction")]
    assert failed == [(4, 0.25), (8, 0.5), (10, 0.0)]
    meta = [(s.step, round(s.value, 6)) for s in acc.Scalars("funnel/best_meta_fitness")]
    assert meta == [(8, 0.97), (8, 0.97), (10, 0.93)]
    walls = [s.wall_time for s in acc.Scalars("search/best_fitness")]
    assert walls[1] - walls[0] == pytest.approx(6.0, abs=1e-3)  # times 6.5 and 12.5 s of the last children
