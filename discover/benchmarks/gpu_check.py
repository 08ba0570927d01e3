"""The one device check for a GPU machine: CUDA tests, then the speed tables, in under 8 minutes.

Run from a checkout's root on a machine with an NVIDIA GPU, torch and triton::

    PYTHONUNBUFFERED=1 python3 -m discover.benchmarks.gpu_check

Each stage runs in its own process under its own time limit (a stage that fails or runs out
says so and the next one starts), printing as it goes:

1. the machine: GPU, driver, torch, triton;
2. the Triton tests on CUDA, every case (``tests/compile/test_triton.py -m triton``), every op
   at edge values (``tests/compile/test_op_table.py -m triton -k triton``) and the Triton
   hostile-name tests (``tests/compile/test_injection.py -k triton``);
3. ``discover bench step --device cuda``: Adam, AdamW, Lion and momentum against
   ``torch.optim.Adam(fused=True)``, ``AdamW(fused=True)``, ``SGD(fused=True)`` and a plain-torch
   Lion on configs A (50 x 1M), B (200 x 100k) and XL (one 256M-value tensor) with the measured
   copy bandwidth;
4. ``discover bench search --device cuda``: population trials/s with the Triton interpreter
   against the torch batched step and one-at-a-time training, and the compile-time report;
5. a short real ``discover search --device cuda`` and its evaluations/s.

The checkout needs no install (it runs from the source tree). Packages the machine lacks
(``deap`` on this workplace's GPU image) are carried as wheels: see ``--help``.

Goals (issue 15): Adam step <= 1.0x ``Adam(fused=True)`` on A and B; within 10% of the
copy-bandwidth bound on XL; population update >= 3x the torch batched step; search
evaluations/s >= 10x the 2-core CPU's. The same search command on the 2-core CPU
(``--device cpu``, 2026-12-04): 0.85 evaluations/s (39 in 46 s).
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

STAGES = [
    # (name, seconds, command)
    ("machine", 20, [sys.executable, "-c",
                     "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, "
                     "'triton', triton.__version__); print(torch.cuda.get_device_name(0), "
                     "torch.cuda.get_device_properties(0).multi_processor_count, 'SMs')"]),
    ("CUDA tests", 140, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "triton",
                         "tests/compile/test_triton.py", "-rs"]),
    ("op table at edge values (Triton)", 40, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                              "-m", "triton", "tests/compile/test_op_table.py", "-k", "triton",
                                              "-rs"]),
    ("hostile-name tests (Triton)", 30, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                         "tests/compile/test_injection.py", "-k", "triton", "-rs"]),
    ("bench step", 110, [sys.executable, "-m", "discover", "bench", "step", "--device", "cuda", "--repeat", "15"]),
    ("bench search", 70, [sys.executable, "-m", "discover", "bench", "search", "--device", "cuda", "--trials", "32"]),
    ("search", 60, [sys.executable, "-m", "discover", "search", "--device", "cuda", "--budget", "48",
                    "--time-limit", "40", "--meta-tasks", "", "--no-progress", "--out", "/tmp/discover-gpu-search"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m discover.benchmarks.gpu_check", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Missing packages as wheels (on a machine with pip and the network), from the checkout's root:\n"
               "  echo /.whl/ >> .git/info/exclude\n"
               "  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "
               "--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl deap==1.4.4\n"
               "then on the GPU machine, before this module:\n"
               "  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && "
               "export PYTHONPATH=/tmp/site:$PWD")
    parser.add_argument("--only", nargs="*", default=None, help="run only these stages (by name)")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("TRITON_INTERPRET", None)  # the real GPU
    root = os.getcwd()
    env["PYTHONPATH"] = os.pathsep.join([p for p in (env.get("PYTHONPATH", ""), root) if p])
    started = time.perf_counter()
    failed = []
    for name, seconds, cmd in STAGES:
        if args.only is not None and name not in args.only:
            continue
        print(f"\n===== {name} (limit {seconds} s): {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(cmd, env=env, timeout=seconds).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        print(f"===== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(f"{name} ({rc})")
    print(f"\n===== done in {time.perf_counter() - started:.0f} s; "
          + (f"failed: {', '.join(failed)}" if failed else "every stage exited 0"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
