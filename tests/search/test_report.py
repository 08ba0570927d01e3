"""`report`: results are a function of the state alone -- a checkpoint rewrites a run's summary,
hall of fame and best.opt exactly -- and the verdict and failure kinds by hand."""
import json
from pathlib import Path

from discover import load
from discover.search import SearchConfig
from discover.search.individual import Individual
from discover.search.report import best_program, failure_kind, failure_kinds, verdict, write_results
from discover.search.rundir import RunDir
from discover.search.state import SearchState

OLD_RUN = Path(__file__).resolve().parent / "data" / "run_v2"
TIMINGS = ("seconds", "evaluations_per_second", "trained_per_second", "train_seconds")


def ended_state() -> SearchState:
    """The old run's state with its final stage applied, as its results were written."""
    state = SearchState.from_json(json.loads((OLD_RUN / "checkpoint.json").read_text()))
    final = state.final
    state.meta.update(final["meta"])
    state.hall_of_fame = [Individual.from_json(d) for d in final["hall_of_fame"]]
    state.references, state.funnels = final["references"], final["funnels"]
    return state


def test_a_checkpoint_rewrites_the_run_s_results_exactly(tmp_path):
    saved = json.loads((OLD_RUN / "summary.json").read_text())
    config = SearchConfig.from_json(json.loads((OLD_RUN / "config.json").read_text()))
    out = RunDir(tmp_path / "again")
    out.path.mkdir()
    summary = write_results(out, config, ended_state(), completed=True,
                            fitness_noise=saved["noise"]["search_fitness"])
    summary = json.loads(json.dumps(summary))  # as written: tuples become lists
    assert {k: v for k, v in summary.items() if k not in TIMINGS} == {k: v for k, v in saved.items() if k not in TIMINGS}
    assert json.loads((out.path / "summary.json").read_text())["verdict"] == saved["verdict"]
    names = sorted(p.name for p in (out.path / "hall_of_fame").glob("*.opt"))
    assert names == [f"{r:02d}_{h['fingerprint'][:8]}.opt" for r, h in enumerate(saved["hall_of_fame"], 1)]
    best = (out.path / "best.opt").read_text()
    assert f"def {load(str(out.path / 'best.opt')).name}(" in best and "Discovered by `discover search`" in best


def test_verdict_and_best_program():
    state = ended_state()
    found = verdict(state)
    assert found["warm_start"] == state.inits[0].fp  # the one warm start, meta-scored by the funnel
    winners = {w["fingerprint"] for w in found["beats_warm_start"]}
    best = best_program(state, found, has_meta=True)
    assert best is not None and (best.fp in winners or (not winners and best.born < 0))
    # without meta tasks there is no verdict to pass: the hall of fame's best
    assert best_program(state, found, has_meta=False) is state.hall_of_fame[0]
    nothing = SearchState(inits=state.inits, hall_of_fame=state.hall_of_fame)  # no meta records: no bar
    assert verdict(nothing)["warm_start"] is None and best_program(nothing, verdict(nothing), True) is state.inits[0]


def test_failure_kinds_by_hand():
    assert failure_kind(["mlp: train loss above 10x the start at step 3"]) == "train loss above"
    assert failure_kind(["mlp: something new and odd happened here, said at length"]) == \
        "something new and odd happened here, sai"  # an unknown kind: its first 40 characters
    assert failure_kind([]) == "unknown"
    cache = {"a": {"fitness": float("inf"), "reasons": ["t: time limit of 5 s"]},
             "b": {"fitness": float("inf"), "reasons": ["t: time limit of 5 s"]},
             "c": {"fitness": float("nan"), "reasons": ["t: raised ValueError"]},
             "d": {"fitness": 0.9, "reasons": ["t: stopped early at step 5"]}}
    assert failure_kinds(cache) == {"time limit": 2, "raised": 1}
