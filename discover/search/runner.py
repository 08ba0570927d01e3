"""`run`: one search run, start to end, in its run directory -- the Python API of `discover search`.

What it guarantees (the README's "Reliability" notes):

* **Checked before any work.** Every setting, every program (``init``, ``baseline``,
  ``references``), every task and, on resume, the saved config and checkpoint are read and
  checked before anything trains; a new run directory is created only after that.
* **One run per directory.** The run holds the directory's lock (`RunDir.lock`) from before
  its first write to its end; a second run on it is refused, naming the holder's pid.
* **Nothing is overwritten.** A new run starts only in a new or empty directory; a resume
  whose checkpoint is missing, empty, ``null`` or unreadable while results exist is refused.
* **Resume.** A run stopped before its end (Ctrl-C, kill -9, a lost node) continues exactly
  as if it had not stopped. A run that reached its end (its budget, or ``time_limit``) and
  is resumed with no more to do is left as it is; given a larger budget it continues from
  where its search stopped, and every hall-of-fame member stays unless better ones displace it.

The checkpoint holds the search state *before* the final stage (the final funnel and the
references), so a longer run does not depend on where an earlier call ended; the final
stage's results are kept beside it under ``"final"``.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Callable, Iterable

from .config import SearchConfig, check_programs, resume_config
from .evolution import Search, SearchResult
from .individual import Individual
from .progress import ProgressBar
from .rundir import CHECKPOINT, CONFIG, SUMMARY, RunDir, RunDirError, default_run_dir
from .state import CheckpointError, SearchState


def run(config: SearchConfig, *, resume: str | Path | None = None, given: Iterable[str] | None = None,
        progress: bool | None = None, references: list[str] | None = None, log: Callable[[str], None] | None = None,
        stop_after_batches: int | None = None) -> SearchResult:
    """Run (or resume) a search; returns its `SearchResult`.

    ``resume``: a run directory to continue; its config is used, changed only as
    `resume_config` allows (``given``: the fields the caller set, as the CLI passes its
    options; by default those of `config` that differ from the defaults). ``references``:
    programs tuned on the meta tasks for comparison in ``summary.json``. ``stop_after_batches``
    stops (as an interruption would, without the final stage) after that many batches in this
    call -- for tests and demos. KeyboardInterrupt writes the checkpoint and is re-raised after
    saying how to resume.

    Example:
        >>> import tempfile
        >>> result = run(SearchConfig(budget=8, tasks=["quadratic"], meta_tasks=[], progress=False,
        ...                           out=tempfile.mkdtemp()))
        >>> result.best.program.name != ""
        True
        >>> again = run(SearchConfig(progress=False), resume=result.run_dir)  # finished: nothing to do
        >>> again.evaluations, [i.fp for i in again.hall_of_fame] == [i.fp for i in result.hall_of_fame]
        (8, True)
    """
    references = list(references or [])
    rd, cfg, state = _open(config, resume, given, references)
    try:
        return _run(rd, cfg, state, resume is not None, progress, references, log, stop_after_batches)
    finally:
        rd.unlock()


# ---------------------------------------------------------------------- before any work


def _open(config: SearchConfig, resume: str | Path | None, given: Iterable[str] | None,
          references: list[str]) -> tuple[RunDir, SearchConfig, SearchState | None]:
    """Check everything, then create (or lock) the run directory: (directory, config, checkpoint's state)."""
    if resume is None:
        cfg = copy.deepcopy(config).validate()
        _check_references(references, cfg)
        rd = RunDir(cfg.out or default_run_dir())
        cfg.out = str(rd.path)
        rd.create(cfg.to_json())  # refuses a file, a run, a non-empty directory; takes the lock
        return rd, cfg, None
    rd = RunDir(resume).open_existing()  # takes the lock before reading anything
    try:
        try:
            saved = SearchConfig.from_json(rd.read_config())
        except RunDirError:
            raise
        except ValueError as exc:
            raise RunDirError(f"cannot resume {rd.path}: {rd.path / CONFIG}: {exc}") from None
        cfg = resume_config(saved, config, rd.path, given).validate()
        _check_references(references, cfg)
        data = rd.read_checkpoint()
        return rd, cfg, None if data is None else _read_state(data, rd)
    except BaseException:
        rd.unlock()
        raise


def _check_references(references: list[str], cfg: SearchConfig) -> None:
    check_programs(references, "--references")
    if references and not cfg.meta_tasks:
        raise ValueError("--references are tuned on the meta tasks, and this run has none: give --meta-tasks, "
                         "or leave out --references")


def _read_state(data: dict, rd: RunDir) -> SearchState:
    """The checkpoint's state, or a `RunDirError` naming the file and its first wrong field."""
    try:
        return SearchState.from_json(data)
    except CheckpointError as exc:
        raise RunDirError(f"cannot resume {rd.path}: {rd.path / CHECKPOINT}: {exc}; restore the file, or start a new "
                          "run with another --out") from None


# ---------------------------------------------------------------------- the run


def _run(rd: RunDir, cfg: SearchConfig, state: SearchState | None, resuming: bool, progress: bool | None,
         references: list[str], log: Callable[[str], None] | None, stop_after_batches: int | None) -> SearchResult:
    show = cfg.progress if progress is None else progress
    # A bar only on a terminal; log lines and warnings go through it so they never garble it.
    with ProgressBar(cfg.budget, enabled=show, log=log) as bar:
        return _run_with_bar(rd, cfg, state, resuming, bar, references, stop_after_batches)


def _run_with_bar(rd: RunDir, cfg: SearchConfig, state: SearchState | None, resuming: bool, bar: ProgressBar,
                  references: list[str], stop_after_batches: int | None) -> SearchResult:
    logger = bar.log
    search = Search(cfg, rd, log=logger, state=state)
    s = search.state
    try:
        if state is not None:
            if s.final is not None:  # it reached its end once: its final stage's events are part of the log
                s.n_events = s.final.get("n_events", s.n_events)  # (`final` stays in every later checkpoint)
            rd.truncate_events(s.n_events)
            search.snapshot = s.to_json()
            if s.final is not None and s.evaluations >= cfg.budget:
                return _finished(search, rd, cfg, references, logger)
            rd.write_config(cfg.to_json())
            logger(f"resumed {rd.path} at evaluation {s.evaluations} (batch {s.batch})")
        else:
            if resuming:
                logger(f"{rd.path} has no checkpoint yet (it stopped during its warm start): starting it over")
                rd.write_config(cfg.to_json())
            rd.truncate_events(0)
            search.warm_start()
        bar.update(s.evaluations)
        batches = 0
        while s.evaluations < cfg.budget:
            if cfg.time_limit is not None and search.clock.seconds() + s.last_funnel_seconds > cfg.time_limit:
                logger(f"time limit of {cfg.time_limit:g} s reached at evaluation {s.evaluations}")
                break
            if stop_after_batches is not None and batches >= stop_after_batches:
                search.checkpoint()
                return SearchResult(rd.path, list(s.hall_of_fame), s.evaluations, s.hits, False, {})
            before = s.evaluations
            search.step()
            batches += 1
            el = search.clock.seconds()
            bar.update(s.evaluations - before, best=f"{s.best.value:.4f}",
                       hit=f"{s.hits / max(1, s.evaluations):.0%}",
                       eps=f"{s.evaluations / max(el, 1e-9):.2f}/s")
        return _final_stage(search, rd, s.evaluations >= cfg.budget, references)
    except KeyboardInterrupt:
        snap = search.snapshot
        if snap is not None:
            rd.write_checkpoint(snap)
            rd.truncate_events(snap["n_events"])
            logger(f"interrupted at evaluation {snap['evaluations']}; checkpoint written. "
                   f"Continue with: discover search --resume {rd.path}")
        else:
            logger(f"interrupted during the warm start, before the first checkpoint: nothing to keep yet. "
                   f"discover search --resume {rd.path} starts it over")
        raise
    finally:
        search.evaluator.close()


def _final_stage(search: Search, rd: RunDir, completed: bool, references: list[str]) -> SearchResult:
    """The final funnel, the references and the results; the checkpoint keeps the state from before it."""
    s = search.state
    resumable = copy.deepcopy(search.capture().to_json())  # the final stage must not reach into it
    earlier = s.final
    if earlier is not None:  # a run that ended before: its finalists count as scored and stay in the running
        for fp, rec in earlier.get("meta", {}).items():
            s.meta.setdefault(fp, rec)
        search.rank([Individual.from_json(d) for d in earlier.get("hall_of_fame", [])])
    search.funnel(final=True)
    search.score_references(references)
    summary = search.write_results(completed)
    resumable["references"] = s.references
    resumable["final"] = {
        "meta": {fp: rec for fp, rec in s.meta.items() if fp not in resumable["meta"]},
        "hall_of_fame": [i.to_json() for i in s.hall_of_fame], "references": s.references,
        "completed": completed, "funnels": s.funnels, "n_events": s.n_events}
    rd.write_checkpoint(resumable)
    return SearchResult(rd.path, [copy.deepcopy(i) for i in s.hall_of_fame], s.evaluations, s.hits,
                        completed, summary)


def _finished(search: Search, rd: RunDir, cfg: SearchConfig, references: list[str],
              logger: Callable[[str], None]) -> SearchResult:
    """A run that reached its end, resumed with nothing more to do: its results as they are. Only
    references it has not scored yet are added (and the results rewritten with them)."""
    s = search.state
    final = s.final
    s.meta.update(final.get("meta", {}))
    s.hall_of_fame = [Individual.from_json(d) for d in final.get("hall_of_fame", [])]  # best first, as saved
    s.references = dict(final.get("references", {}))
    s.funnels = final.get("funnels", s.funnels)
    summary = _read_summary(rd)
    todo = [r for r in references if r not in s.references]
    if todo or summary is None:  # asked for more, or its summary is gone: write the results again
        search.score_references(todo)
        summary = search.write_results(bool(final.get("completed")))
        state = copy.deepcopy(search.snapshot)
        state["final"] = {**final, "references": s.references}
        state["references"] = s.references
        rd.write_checkpoint(state)
    logger(f"{rd.path} already ran to its end ({s.evaluations} evaluations for a budget of {cfg.budget}); "
           "nothing to do. Give a larger --budget to continue it")
    return SearchResult(rd.path, [copy.deepcopy(i) for i in s.hall_of_fame], s.evaluations, s.hits,
                        bool(final.get("completed")), summary)


def _read_summary(rd: RunDir) -> dict | None:
    try:
        data = json.loads((rd.path / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
