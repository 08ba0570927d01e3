"""`discover plot RUN [RUN...]`: see a search run -- fitness per candidate and best so far over
evaluations and wall time, the failure and cache-hit rates, restarts, and the funnel's
meta-validation scores with their standard errors; several runs overlaid.

Everything comes from the run directory: ``events.jsonl`` (one line per evaluation;
``restart`` and ``funnel`` records and a ``time`` field, seconds since the run
started, where the run wrote them) and, for runs whose events have no funnel records,
the meta scores kept in ``checkpoint.json`` / ``summary.json``. What a run did not
record is said on the plot, never guessed: without ``time`` the wall-time panel uses
the evaluation index; without restart records only their number is known.

Example::

    runs = [load_run("runs/a"), load_run("runs/b")]
    plot_runs(runs, Path("runs/a/progress.png"))
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence


@dataclass
class FunnelPoint:
    """One finalist's meta-validation score: found at evaluation `candidate`, scored `meta` ± `se`
    by the funnel that ran at evaluation `at` (when the events say)."""

    candidate: int
    meta: float
    se: float | None = None
    final: bool = False
    time: float | None = None
    at: int | None = None


@dataclass
class RunData:
    """What `load_run` reads from one run directory (children in evaluation order)."""

    name: str
    path: Path
    evals: list[int] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    fitness: list[float] = field(default_factory=list)  # inf for a failed candidate
    times: list[float | None] = field(default_factory=list)
    cache_hits: list[bool] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    restarts: list[int] | None = None  # evaluation indices; None when the events do not record them
    restart_count: int | None = None
    funnel: list[FunnelPoint] = field(default_factory=list)
    funnel_source: str = "none"
    budget: int | None = None
    skipped_lines: int = 0

    @property
    def has_time(self) -> bool:
        return bool(self.times) and all(t is not None for t in self.times)

    def best_so_far(self) -> list[float]:
        """The best fitness after each evaluation (the warm start counts from the start)."""
        best = min((w for w in self.warm if math.isfinite(w)), default=math.inf)
        out = []
        for f in self.fitness:
            best = min(best, f) if math.isfinite(f) else best
            out.append(best)
        return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else math.inf
    except (TypeError, ValueError):
        return math.inf


def load_run(path: str | Path, name: str | None = None) -> RunData:
    """Read a run directory; `ValueError` if it is not one or has no evaluations yet."""
    path = Path(path)
    events_path = path / "events.jsonl"
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory (give a search run directory such as runs/<name>)")
    if not events_path.exists():
        raise ValueError(f"{path} is not a search run directory: it has no events.jsonl")
    run = RunData(name or str(path), path)
    funnel_events: list[FunnelPoint] = []
    restarts: list[int] = []
    for line in events_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            e = json.loads(line)
            kind = e.get("kind")
        except (ValueError, AttributeError):  # a torn last line of a run killed mid-write
            run.skipped_lines += 1
            continue
        t = e.get("time")
        t = float(t) if isinstance(t, (int, float)) else None
        if kind == "child":
            run.evals.append(int(e.get("eval", len(run.evals))))
            run.batches.append(int(e.get("batch", 0)))
            run.fitness.append(_number(e.get("fitness")))
            run.times.append(t)
            run.cache_hits.append(bool(e.get("cache_hit")))
        elif kind == "init":
            run.warm.append(_number(e.get("fitness")))
        elif kind == "restart":
            restarts.append(int(e.get("eval", 0)))
        elif kind == "funnel":
            se = e.get("se")
            funnel_events.append(FunnelPoint(int(e.get("candidate", e.get("eval", 0))), _number(e.get("meta")),
                                             float(se) if isinstance(se, (int, float)) else None,
                                             bool(e.get("final")), t, int(e.get("eval", 0))))
    if not run.evals and not run.warm:
        raise ValueError(f"{path} has no evaluations yet (events.jsonl is empty)")
    config = _read_json(path / "config.json") or {}
    run.budget = config.get("budget") if isinstance(config.get("budget"), int) else None
    summary = _read_json(path / "summary.json") or {}
    checkpoint = _read_json(path / "checkpoint.json") or {}
    if restarts or run.has_time:  # the event format with timestamps also records restarts
        run.restarts = restarts
    run.restart_count = len(restarts) if run.restarts is not None else \
        (summary.get("restarts") if isinstance(summary.get("restarts"), int) else checkpoint.get("restarts"))
    if funnel_events:
        run.funnel, run.funnel_source = funnel_events, "events"
    else:
        run.funnel = _funnel_from_files(checkpoint, summary)
        run.funnel_source = "checkpoint" if run.funnel else "none"
    return run


def _funnel_from_files(checkpoint: dict, summary: dict) -> list[FunnelPoint]:
    """Meta scores from a run whose events have no funnel records: the checkpoint's meta records
    (and its final stage's), else the summary's hall of fame. No standard errors there."""
    records: dict[str, dict] = {}
    for source in (checkpoint.get("meta"), (checkpoint.get("final") or {}).get("meta")):
        if isinstance(source, dict):
            records.update({k: v for k, v in source.items() if isinstance(v, dict)})
    points = [FunnelPoint(int(r.get("eval", 0)), _number(r.get("fitness")),
                          r.get("se") if isinstance(r.get("se"), (int, float)) else None)
              for r in records.values()]
    if not points:
        points = [FunnelPoint(int(h.get("eval", 0)), _number(h.get("meta")))
                  for h in summary.get("hall_of_fame", []) if isinstance(h, dict)]
    return sorted(points, key=lambda p: p.candidate)


def _window(run: RunData) -> int:
    return max(16, len(run.evals) // 12)


def rolling_rate(flags: Sequence[bool], window: int) -> list[float]:
    """The fraction of true values among the last `window` (fewer at the start).

    Example:
        >>> rolling_rate([True, False, False, True], 2)
        [1.0, 0.5, 0.0, 0.5]
    """
    out, total = [], 0
    for i, f in enumerate(flags):
        total += bool(f)
        if i >= window:
            total -= bool(flags[i - window])
        out.append(total / min(i + 1, window))
    return out


def run_notes(runs: Sequence[RunData]) -> list[str]:
    """What the runs did not record, as the plot says it (one line each)."""
    notes = []
    for r in runs:
        if r.restarts is None and r.restart_count:
            notes.append(f"{r.name}: {r.restart_count} restart{'s' if r.restart_count != 1 else ''}, "
                         "positions not recorded in its events")
        if r.funnel_source == "checkpoint":
            notes.append(f"{r.name}: meta scores from checkpoint/summary (its events have no funnel records, "
                         "so no standard errors)")
        elif r.funnel_source == "none":
            notes.append(f"{r.name}: no meta-validation scores (no funnel has run, or no meta tasks)")
        if r.skipped_lines:
            notes.append(f"{r.name}: {r.skipped_lines} unreadable line(s) in events.jsonl skipped")
    if not all(r.has_time for r in runs):
        notes.append("no `time` field in events.jsonl: the wall-time panel is drawn over the evaluation index")
    return notes


def _fitness_limits(runs: Sequence[RunData]) -> tuple[float, float]:
    """A y range that shows the interesting part: from the best to half again above the warm start
    (the upper quartile without one), so very bad candidates do not flatten everything else; they
    are drawn on the top edge."""
    finite = sorted(f for r in runs for f in r.fitness + r.warm if math.isfinite(f))
    if not finite:
        return 0.0, 1.0
    low = finite[0]
    warm = [w for r in runs for w in r.warm if math.isfinite(w)]
    q3 = finite[int(0.75 * (len(finite) - 1))]
    high = min(finite[-1], max(warm) * 1.5 if warm else q3 * 1.15)
    if high <= low:
        high = low + max(abs(low) * 0.1, 1e-6)
    pad = 0.04 * (high - low)
    return low - pad, high + pad


def plot_runs(runs: Sequence[RunData], path: Path) -> Path:
    """Write a 2x2 PNG: (a) fitness per candidate and best so far, restarts marked; (b) best so far
    over wall time; (c) failure and cache-hit rates; (d) the funnel's meta scores ± s.e."""
    from ..plotting import pyplot

    plt = pyplot("discover plot")
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.2))
    (a, b), (c, d) = axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    low, high = _fitness_limits(runs)
    several = len(runs) > 1
    notes = run_notes(runs)
    timed = all(r.has_time for r in runs)
    scale = 60.0 if timed and max((t for r in runs for t in r.times if t is not None), default=0) > 600 else 1.0
    for k, r in enumerate(runs):
        color = colors[k % len(colors)]
        label = r.name if several else None
        finite = [(e, f) for e, f in zip(r.evals, r.fitness) if math.isfinite(f)]
        shown = [(e, min(f, high)) for e, f in finite]
        above = [(e, f) for e, f in finite if f > high]
        failed = [e for e, f in zip(r.evals, r.fitness) if not math.isfinite(f)]
        a.scatter([e for e, _ in shown], [f for _, f in shown], s=9, color=color, alpha=0.35, linewidths=0,
                  label=None if several else "candidate")
        if above:
            a.scatter([e for e, _ in above], [high] * len(above), s=14, marker="^", color=color, alpha=0.5,
                      label=None if several else f"worse than {high:.3g} ({len(above)})")
        if failed:
            a.scatter(failed, [high] * len(failed), s=16, marker="x", color="tab:red", alpha=0.6,
                      label=None if (several and k) else "failed (inf)")
        best = r.best_so_far()
        a.step(r.evals, best, where="post", color=color, linewidth=2, label=label or "best so far")
        for w in r.warm:
            if math.isfinite(w):
                a.axhline(w, color=color, linestyle=":", linewidth=1,
                          label=None if (several or w != r.warm[0]) else "warm start")
        for e in r.restarts or []:
            a.axvline(e, color=color, linestyle="--", linewidth=0.8, alpha=0.6)
        # (b) best so far over wall time, or over evaluations when a run has no timestamps
        xs = [t / scale for t in r.times] if timed else r.evals
        b.step(xs, best, where="post", color=color, linewidth=2, label=label)
        # (c) failure and cache-hit rates
        window = _window(r)
        c.plot(r.evals, [100 * v for v in rolling_rate([not math.isfinite(f) for f in r.fitness], window)],
               color=color, linewidth=1.6, label=f"{r.name}: failed" if several else "failed")
        c.plot(r.evals, [100 * v for v in rolling_rate(r.cache_hits, window)], color=color, linewidth=1,
               linestyle="--", alpha=0.8, label=f"{r.name}: cache hits" if several else "cache hits")
        # (d) funnel
        pts = [p for p in r.funnel if math.isfinite(p.meta) and p.candidate >= 0]
        for w in (p for p in r.funnel if math.isfinite(p.meta) and p.candidate < 0):
            d.axhline(w.meta, color=color, linestyle=":", linewidth=1.2,
                      label=None if several else "warm start (the bar to pass)")
            if w.se:
                d.axhspan(w.meta - w.se, w.meta + w.se, color=color, alpha=0.08, linewidth=0)
        if pts:
            d.errorbar([p.candidate for p in pts], [p.meta for p in pts],
                       yerr=[p.se if p.se is not None else 0.0 for p in pts], fmt="D", markersize=5,
                       color=color, ecolor=color, elinewidth=1, capsize=3, alpha=0.85,
                       label=label or "finalist: meta fitness ± s.e.")
            if any(p.final for p in pts):
                fin = [p for p in pts if p.final]
                d.scatter([p.candidate for p in fin], [p.meta for p in fin], s=70, facecolors="none",
                          edgecolors=color, linewidths=1.2, label=None if several else "scored by the final funnel")
    a.set_ylim(low, high * 1.0 + (high - low) * 0.03)
    a.set_title("fitness per candidate (lower is better; 1 = tuned baseline)")
    a.set_xlabel("evaluation")
    a.set_ylabel("search fitness")
    if several:  # the per-run colours are in the legend already; say what the marks mean
        a.plot([], [], color="gray", linestyle=":", linewidth=1, label="warm start")
        a.scatter([], [], s=14, marker="^", color="gray", label=f"worse than {high:.3g}")
    if any(r.restarts for r in runs):
        a.plot([], [], color="gray", linestyle="--", linewidth=0.8, label="restart")
    b.set_ylim(*a.get_ylim())
    if timed:
        b.set_title("best so far over wall time")
        b.set_xlabel("minutes since the run started" if scale == 60 else "seconds since the run started")
    else:
        b.set_title("best so far (events have no timestamps: by evaluation)")
        b.set_xlabel("evaluation (wall time not recorded in events.jsonl)")
    b.set_ylabel("best search fitness")
    c.set_title(f"failed candidates and cache hits (rolling, over the last {_window(runs[0])})")
    c.set_xlabel("evaluation")
    c.set_ylabel("% of candidates")
    c.set_ylim(-3, 103)
    d.set_title("funnel: meta-validation fitness of finalists")
    d.set_xlabel("evaluation that found the candidate")
    d.set_ylabel("meta fitness (lower is better)")
    for ax in (a, b, c, d):
        ax.grid(True, alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=7, loc="best")
    if not any(r.funnel for r in runs):
        d.text(0.5, 0.5, "no meta-validation scores", ha="center", va="center", transform=d.transAxes, color="gray")
    title = (f"discover run {runs[0].name}: {len(runs[0].evals)} evaluations"
             + (f" of {runs[0].budget}" if runs[0].budget else "")) if not several else \
        f"{len(runs)} discover runs: " + ", ".join(r.name for r in runs)
    fig.suptitle(title, fontsize=11)
    if notes:
        fig.text(0.01, 0.005, "\n".join(dict.fromkeys(notes)), fontsize=7, color="dimgray", va="bottom")
    fig.tight_layout(rect=(0, 0.015 * (1 + len(set(notes))), 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
