"""`SearchState`: the checkpoint as data. It round-trips through JSON, reads checkpoints written before
it existed, restores the hall of fame in its saved order, and names the field of a damaged file."""
import json
import shutil
from pathlib import Path

import pytest

from discover import load
from discover.search import SearchConfig, run
from discover.search.individual import Individual
from discover.search.rundir import write_json_atomic
from discover.search.state import CheckpointError, SearchState, hall_of_fame

OLD_RUN = Path(__file__).resolve().parent / "data" / "run_v2"


def old_checkpoint() -> dict:
    return json.loads((OLD_RUN / "checkpoint.json").read_text())


def test_a_checkpoint_written_before_search_state_reads_back_byte_for_byte(tmp_path):
    data = old_checkpoint()
    state = SearchState.from_json(data)
    assert state.evaluations == 8 and state.final is not None and len(state.population) == 4
    assert [i.fp for i in state.hall_of_fame] == [d["fp"] for d in data["hall_of_fame"]]
    write_json_atomic(tmp_path / "again.json", state.to_json())
    assert (tmp_path / "again.json").read_bytes() == (OLD_RUN / "checkpoint.json").read_bytes()


def test_an_old_run_resumes(tmp_path):
    d = tmp_path / "run"
    shutil.copytree(OLD_RUN, d)
    saved = old_checkpoint()
    same = run(SearchConfig(progress=False), resume=d)  # ended, same budget: nothing to do
    assert same.evaluations == 8 and [i.fp for i in same.hall_of_fame] == [x["fp"] for x in saved["final"]["hall_of_fame"]]
    longer = run(SearchConfig(budget=12, progress=False), resume=d)
    assert longer.completed and longer.evaluations == 12
    ck = json.loads((d / "checkpoint.json").read_text())
    assert ck["version"] == 2 and ck["evaluations"] == 12 and ck["inits"] == saved["inits"]


def test_a_fresh_run_s_checkpoint_round_trips(tmp_path):
    result = run(SearchConfig(init=["sgd"], tasks=["quadratic"], meta_tasks=[], steps=10, budget=8, batch=4,
                              population=4, out=str(tmp_path / "r"), progress=False), stop_after_batches=1)
    data = json.loads((result.run_dir / "checkpoint.json").read_text())
    state = SearchState.from_json(data)
    assert state.to_json() == data and state.batch == 1 and state.evaluations == 4
    assert len(state.logbook) == 1 and state.logbook[0]["evals"] == 4  # DEAP's logbook, rebuilt


def _ind(fp: str, fitness: float) -> Individual:
    return Individual(load("sgd"), fp, fitness, born=0)


def test_hall_of_fame_keeps_the_saved_order_of_ties_and_still_ranks_newcomers():
    saved = [_ind("b", 1.0), _ind("a", 1.0), _ind("c", 2.0)]  # b before a: not alphabetical, not re-sorted
    hof = hall_of_fame(3, saved)
    assert [i.fp for i in hof] == ["b", "a", "c"]
    hof.update([_ind("d", 0.5), _ind("b", 0.1)])  # d displaces the worst; b is already there (same program)
    assert [i.fp for i in hof] == ["d", "b", "a"]


def test_a_snapshot_does_not_change_with_the_state():
    state = SearchState(cache={"x": {"fitness": 1.0}}, population=[_ind("p", 1.0)])
    snap = state.to_json()
    state.cache["y"] = {"fitness": 2.0}
    state.population.append(_ind("q", 1.0))
    assert list(snap["cache"]) == ["x"] and len(snap["population"]) == 1


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.update(version=1), "field 'version': 1 is not a checkpoint version"),
    (lambda d: d.pop("inits"), "field 'inits': missing"),
    (lambda d: d.update(hall_of_fame={}), "field 'hall_of_fame': not a list of individuals"),
    (lambda d: d["population"].__setitem__(1, 3), r"population\[1\]: an individual is an object, not int"),
    (lambda d: d["best"].pop("fp"), "best: missing field 'fp'"),
    (lambda d: d.pop("batch"), "field 'batch': missing"),
    (lambda d: d.update(evaluations="8"), "field 'evaluations': '8' is not an integer"),
    (lambda d: d.update(elapsed=None), "field 'elapsed': None is not a number"),
    (lambda d: d.update(cache=[]), "field 'cache': not an object"),
])
def test_a_damaged_checkpoint_names_its_field(damage, message):
    data = old_checkpoint()
    damage(data)
    with pytest.raises(CheckpointError, match=message):
        SearchState.from_json(data)
