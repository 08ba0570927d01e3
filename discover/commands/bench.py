"""`discover bench step|search|fidelity`: benchmarks that print ratios against torch, measured in one process."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..benchmarks import MALLOC_ENV

_BENCHES = {
    "step": ("discover.benchmarks.step", "optimizer step time against torch.optim (fused, foreach) and plain-torch Lion"),
    "search": ("discover.benchmarks.search", "batched candidate evaluation against one-at-a-time training"),
    "fidelity": ("discover.benchmarks.fidelity", "multi-fidelity stopping: trial-steps saved and winners lost, "
                                                 "replayed on the search's own children"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (ratios against torch)",
                       description="Benchmarks print ratios measured side by side in one process. Unless they "
                                   "are set already, they re-run themselves with glibc malloc settings "
                                   + " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items())
                                   + ": without them glibc returns large buffers to the system on every free, "
                                     "which can slow eager torch several-fold.")
    benches = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, (module, help_text) in _BENCHES.items():
        b = benches.add_parser(name, help=help_text)
        importlib.import_module(module).add_arguments(b)
        b.set_defaults(func=run, bench_module=module)


def run(args: argparse.Namespace) -> int:
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()) and not os.environ.get("DISCOVER_BENCH_CHILD"):
        # malloc reads its environment at start-up: re-run this process with it set.
        env = {**os.environ, **MALLOC_ENV, "DISCOVER_BENCH_CHILD": "1"}
        os.execve(sys.executable, [sys.executable, "-m", "discover", *sys.argv[1:]], env)
    return int(importlib.import_module(args.bench_module).main(args) or 0)
