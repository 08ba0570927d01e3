"""`discover search`: evolve optimizer programs (regularized evolution, warm-started from --init).

With no arguments it runs a short real search (a few minutes on 2 CPU cores)
warm-started from AdamW on the default proxy tasks, and prints the hall of fame.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..search.config import SearchConfig
from ..search.report import pm
from . import ListAction, WeightsAction

_DEFAULTS = SearchConfig()


def register(sub: argparse._SubParsersAction) -> None:
    d = _DEFAULTS
    p = sub.add_parser(
        "search", help="evolve optimizer programs (regularized evolution)",
        description="Evolve optimizer programs the way the Lion paper did: regularized evolution warm-started "
                    "from --init, candidates trained together on proxy tasks, equivalent programs cached, the "
                    "best re-scored on larger meta-validation tasks. Writes runs/<date-time>/ (or --out).",
        epilog="examples:\n  discover search\n  discover search --init sgd --budget 2000 --time-limit 1800\n"
               "  discover search --resume runs/20240101-120000\n"
               "  discover search --backend ray --address auto --workers 16 --gpus-per-worker 0.25 --device cuda\n"
               "  discover search --tasks quadratic,mypkg.tasks:MyTask --budget 100\n"
               "  discover search --init runs/old --budget 500      (warm start from a run's hall of fame)\n"
               "lists take commas or spaces: --tasks mlp,charlm or --tasks mlp charlm",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to search")
    g.add_argument("--init", nargs="+", action=ListAction, default=None, metavar="PROG",
                   help=f"warm-start programs: built-in names, .opt paths, A+B, or a run directory (its hall of "
                        f"fame); default {','.join(d.init)}")
    g.add_argument("--tasks", nargs="+", action=ListAction, default=None, metavar="TASK",
                   help=f"proxy tasks: registered names or pkg.mod:Class; default {','.join(d.tasks)}")
    g.add_argument("--meta-tasks", nargs="+", action=ListAction, default=None, metavar="TASK",
                   help=f"meta-validation tasks for the funnel ('' for none); default {','.join(d.meta_tasks)}")
    g.add_argument("--baseline", default=None, help=f"program fitness is normalized against; default {d.baseline}")
    g.add_argument("--ops", nargs="+", action=ListAction, default=None, metavar="SET",
                   help="op sets added to the search space: matrix (matmul, transpose, newton_schulz, row_mean, "
                        "col_mean, rows, cols), group (group_sum, group_norm); default none: elementwise ops and "
                        "norm/rms/mean, as runs made before these ops")
    g.add_argument("--mutations", nargs="+", action=WeightsAction, default=None, metavar="KIND=W",
                   help="change mutation weights: insert, delete, arg, op, perturb, resample (defaults 2, 1, 2, "
                        "1.5, 1, 0.5) and ema (a state that remembers one use of a value: momentum from SGD; "
                        "default 0, off), e.g. --mutations ema=1")
    g.add_argument("--steps", type=int, default=None, help="training steps per search task (default: each task's own)")
    g.add_argument("--meta-steps", type=int, default=None,
                   help="training steps per meta task (default: --meta-horizon x each task's own)")
    g.add_argument("--meta-horizon", type=float, default=None, metavar="X",
                   help=f"meta tasks train X times their own steps (default {d.meta_horizon:g}: longer than any search "
                        "task, so programs tuned to the search's horizon fail the funnel)")
    g = p.add_argument_group("how long")
    g.add_argument("--budget", type=int, default=None, help=f"number of candidate evaluations; default {d.budget}")
    g.add_argument("--time-limit", type=float, default=None, metavar="SECONDS", help="stop the search after this long")
    g = p.add_argument_group("evolution")
    g.add_argument("--seed", type=int, default=None, help=f"random seed (default {d.seed})")
    g.add_argument("--population", type=int, default=None, help=f"population size P (default {d.population})")
    g.add_argument("--tournament", type=int, default=None, help=f"tournament size T (default {d.tournament})")
    g.add_argument("--batch", type=int, default=None, help=f"candidates trained together (default {d.batch})")
    g.add_argument("--seeds", type=int, default=None, help=f"initialisation seeds per trial (default {d.seeds})")
    g.add_argument("--factors", nargs="+", action=ListAction, item=float, default=None, metavar="F",
                   help=f"lr grid, multiples of each program's lr (default {','.join(f'{f:.3g}' for f in d.factors)})")
    g.add_argument("--lr-protocol", choices=["per_task", "shared"], default=None,
                   help="per_task: each task scored at its own best lr of the grid, as users tune (default); "
                        "shared: one lr factor for every task (the self-tuning track)")
    g.add_argument("--no-early-stop", dest="early_stop", action="store_const", const=False, default=None,
                   help="train every trial to the end (default: stop trials far behind at 25%% and 50%% of the steps)")
    g.add_argument("--funnel-seeds", type=int, default=None,
                   help=f"fresh seeds each finalist is re-scored on in the funnel (default {d.funnel_seeds})")
    g.add_argument("--max-len", type=int, default=None, help=f"most statements per program (default {d.max_len})")
    g.add_argument("--plateau", type=int, default=None,
                   help=f"evaluations without improvement before a restart (default {d.plateau})")
    g.add_argument("--funnel-every", type=int, default=None,
                   help=f"evaluations between meta-validation funnels (default {d.funnel_every})")
    g.add_argument("--funnel-top", type=int, default=None, help=f"candidates per funnel (default {d.funnel_top})")
    g.add_argument("--hof-size", type=int, default=None, help=f"hall of fame size (default {d.hof_size})")
    g.add_argument("--candidate-time-limit", type=float, default=None,
                   help=f"seconds of update time per candidate and task before it fails (default {d.candidate_time_limit:g})")
    g.add_argument("--references", nargs="+", action=ListAction, default=[], metavar="PROG",
                   help="programs tuned on the meta tasks at the end, for comparison in summary.json (e.g. momentum)")
    g = p.add_argument_group("where")
    g.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    g.add_argument("--workers", type=int, default=None,
                   help="evaluation workers: processes, or Ray actors with --backend ray (default on CPU: one per "
                        "CPU core this process may use, at most one per search task; 1 (in process) on CUDA or "
                        "with --backend local or ray; the run is the same whatever the number)")
    g.add_argument("--backend", choices=["auto", "local", "process", "ray"], default=None,
                   help="where candidates train: in process, local processes, or Ray (pip install 'discover-optimizers[ray]'); "
                        "default auto: local for 1 worker, process for more")
    g.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (default: start a local Ray "
                        "instance for the run)")
    g.add_argument("--gpus-per-worker", type=float, default=None, metavar="F",
                   help="GPUs each Ray worker reserves; fractions share a GPU (default 0; >0 with --device cuda)")
    g.add_argument("--cpus-per-worker", type=float, default=None, metavar="N",
                   help="torch threads of in-process evaluation, and the CPUs (and threads) each Ray worker "
                        "reserves (default 1: small models train fastest on one thread)")
    g.add_argument("--out", default=None, metavar="DIR", help="run directory (default runs/<date-time>)")
    g.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


_FIELDS = ["init", "ops", "mutations", "tasks", "meta_tasks", "baseline", "steps", "meta_steps", "meta_horizon", "budget", "time_limit",
           "seed", "population", "tournament", "batch", "seeds", "factors", "lr_protocol", "early_stop",
           "funnel_seeds", "max_len", "plateau", "funnel_every", "funnel_top", "hof_size", "candidate_time_limit",
           "device", "workers", "backend", "address", "gpus_per_worker", "cpus_per_worker", "out"]


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """A `SearchConfig` from the defaults and the options given."""
    cfg = SearchConfig()
    for name in _FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    cfg.progress = not args.no_progress
    if args.workers is None and args.resume is None:  # a resumed run keeps its own
        cfg.workers = default_workers(cfg)
    return cfg


def default_workers(cfg: SearchConfig) -> int:
    """Evaluation workers when ``--workers`` is not given: on CPU with the local process backend, one
    per core this process may use, at most one per search task (a batch is one work item per task);
    else 1. The run is the same for any number (results are merged in a fixed order), only faster:
    on a 2-core machine the default search takes 148 s with 2 workers against 278 s with 1.

    Example:
        >>> default_workers(SearchConfig(device="cuda")), default_workers(SearchConfig(backend="ray"))
        (1, 1)
    """
    if cfg.device != "cpu" or cfg.backend not in ("auto", "process"):
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, len(cfg.tasks)))


def run(args: argparse.Namespace) -> int:
    from ..lang.printer import unparse
    from ..search import prune, run as run_search

    cfg = config_from_args(args)
    # on --resume, the options given change the saved config as `resume_config` allows (one policy)
    given = [k for k in _FIELDS if getattr(args, k, None) is not None]
    result = run_search(cfg, resume=args.resume, given=given, references=args.references)
    s = result.summary
    print(f"run: {result.run_dir}  ({'complete' if result.completed else 'stopped early; --resume to continue'})")
    print(f"evaluations: {result.evaluations}, cache hits: {result.cache_hits} "
          f"({result.cache_hits / max(1, result.evaluations):.0%}), "
          f"{s.get('evaluations_per_second', 0):.2f} evaluations/s, {s.get('restarts', 0)} restarts")
    for w in s.get("warm_start", []):
        meta = w.get("meta")
        print(f"warm start: search fitness {w['fitness']:.4f}"
              + (f", meta {pm(meta, w.get('meta_se'))}" if meta is not None else ""))
    for name, ref in s.get("references", {}).items():
        print(f"reference {name}: meta {pm(ref['meta'], ref.get('se'))} (lr tuned per task)")
    noise = (s.get("noise") or {}).get("search_fitness")
    if noise is not None:
        print(f"noise: a single search fitness varies by about ±{noise:.2%} from seed to seed")
    print(f"\nhall of fame (meta = loss / tuned {cfg.baseline or 'adamw'} on the meta tasks, each task at "
          f"its own tuned lr, mean ± standard error over seeds; lower is better):")
    for rank, ind in enumerate(result.hall_of_fame, 1):
        vs = next((h.get("versus_warm_start") for h in s.get("hall_of_fame", []) if h["fingerprint"] == ind.fp), None)
        vs_text = f"  vs warm start {pm(vs[0], vs[1])}" if vs else ""
        print(f"\n#{rank}  meta {pm(ind.value, ind.meta_se)}  search {ind.search_fitness:.4f}{vs_text}  "
              f"({'warm start' if ind.born < 0 else f'evaluation {ind.born}'})")
        # as saved in hall_of_fame/: its own name, without statements the update does not use
        print(unparse(prune(ind.program).with_(name=ind.name), header=False), end="")
    verdict = s.get("verdict") or {}
    if verdict.get("warm_start") is not None:
        wins = verdict.get("beats_warm_start", [])
        if wins:
            print(f"\n{len(wins)} program(s) beat the warm start by more than 2 standard errors; "
                  f"best.opt is the best of them.")
        else:
            print("\nnothing beat the warm start by more than the noise (2 standard errors, paired by seed); "
                  "best.opt is the warm start.")
    print(f"\nfiles: {result.run_dir}/best.opt, {result.run_dir}/hall_of_fame/, {result.run_dir}/summary.json")
    return 0
