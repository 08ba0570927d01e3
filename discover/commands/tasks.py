"""`discover tasks`: the proxy tasks, one line each, by the set they belong to."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list the proxy tasks (model, data, steps, schedule)",
                       description="List the registered proxy tasks, grouped by the set that uses them: search "
                                   "(fitness), meta-validation (the funnel) and validation (discover validate). "
                                   "The three sets are disjoint: the search is never judged on tasks it selected on.")
    p.set_defaults(func=run)


def describe(name: str) -> str:
    """One line for task `name`: its summary (or first docstring line), steps and lr schedule."""
    from ..tasks import get_task

    task = get_task(name)
    text = getattr(task, "summary", None) or (type(task).__doc__ or "").strip().split("\n")[0]
    schedule = task.schedule if task.schedule == "constant" else f"{task.schedule} (warmup {task.warmup:.0%})"
    steps = "" if f"{task.steps} steps" in text else f"; {task.steps} steps"
    return f"{name:<16} {text.rstrip('.')}{steps}; lr schedule {schedule}"


def run(args: argparse.Namespace) -> int:
    from ..tasks import DEFAULT_TASKS, META_TASKS, TASKS, VALIDATE_TASKS

    groups = [("search (default --tasks)", DEFAULT_TASKS), ("meta-validation (default --meta-tasks)", META_TASKS),
              ("validation (discover validate)", VALIDATE_TASKS)]
    seen: set[str] = set()
    for title, names in groups:
        print(f"{title}:")
        for n in names:
            print("  " + describe(n))
            seen.add(n)
        print()
    rest = [n for n in TASKS if n not in seen]
    if rest:
        print("other registered tasks:")
        for n in rest:
            print("  " + describe(n))
    print("\nyour own: --tasks mypkg.mod:MyTask (a discover.tasks.Task subclass)")
    return 0
