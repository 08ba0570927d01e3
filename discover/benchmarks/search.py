"""`discover bench search`: trials per second of the batched evaluator against one-at-a-time training.

The same trials -- (program, learning rate, seed) on one task -- are trained
three times in this process: all together by the batched evaluator (one
forward/backward per step for the whole population, each candidate's slice
updated by the population kernel, `discover.compile.population_kernel`); the same
with the updates done by the torch batched step (`discover.compile.population_torch`,
what the kernel replaces); and one after another, each with
`discover.ProgramOptimizer` on its own copy of the task's parameters. It
prints trials per second of each, the ratios, and the largest difference in final
validation loss (they must agree to float round-off).

On CUDA the population kernel is the Triton block interpreter (`discover.compile.triton_population`);
there it also prints the time the batch spent in its updates against what compiling one Triton
kernel per program would have cost (each program's step kernels compiled for this GPU with an
empty cache): the measurement behind one shared interpreter rather than a kernel per candidate.
``--kernel triton`` runs the Triton interpreter on CPU tensors too (with ``TRITON_INTERPRET=1``:
slow, a check of the path, not a timing).
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from . import malloc_note

PROGRAMS = ("adamw", "lion", "momentum", "rmsprop")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="mlp", help="proxy task (default mlp)")
    p.add_argument("--trials", type=int, default=32, help="number of trials (default 32)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the task's own)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--repeat", type=int, default=1, help="timed repetitions of each side (best is kept)")
    p.add_argument("--kernel", choices=["auto", "triton"], default="auto",
                   help="population kernel: auto (C++ on CPU, Triton on CUDA) or triton (on CPU: needs "
                        "TRITON_INTERPRET=1, slow)")


def make_trials(n: int) -> tuple[list, list[tuple[float, ...]], list[int]]:
    """`n` trials: the built-ins of `PROGRAMS` round robin over 4 learning rates (1/9x .. 3x their
    default, a stable range), then over seeds. Returns (programs, their lrs, seeds)."""
    from ..evaluate.work import ensure_lr
    from ..library import load

    factors = (1 / 9, 1 / 3, 1.0, 3.0)
    n_seeds = max(1, math.ceil(n / (len(PROGRAMS) * len(factors))))
    per_program = len(factors) * n_seeds
    programs, lrs = [], []
    left = n
    for name in PROGRAMS:
        if left <= 0:
            break
        p = ensure_lr(load(name))
        k = min(len(factors), math.ceil(min(per_program, left) / n_seeds))
        programs.append(p)
        lrs.append(tuple(p.defaults["lr"] * f for f in factors[:k]))
        left -= k * n_seeds
    return programs, lrs, list(range(n_seeds))


def sequential(task, programs, lrs, seeds, steps: int) -> list[float]:
    """Train each trial alone with ProgramOptimizer; final validation losses in trial order."""
    from ..optim import ProgramOptimizer

    out = []
    trials = [(program, lr, seed) for program, group in zip(programs, lrs) for lr in group for seed in seeds]
    for program, lr, seed in trials:
        params = task.init_params([seed])
        opt = ProgramOptimizer(params, program, lr=lr)
        for step in range(1, steps + 1):
            loss = task.train_loss(params, step)
            loss.sum().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            v = float(task.val_loss(params)[0])
        out.append(v if math.isfinite(v) else math.inf)
    return out


def triton_kernel(program):  # noqa: ANN001, ANN201
    """The Triton population interpreter's step for `program` on any device (else the torch batched step)."""
    from ..compile.population_torch import compile_batched
    from ..compile.triton_population import population_kernel_step

    return population_kernel_step(program) or compile_batched(program)


def timed(factory, total: list[float], sync):  # noqa: ANN001, ANN201
    """A step factory whose steps add their time (device synchronized around each) to total[0]."""
    def make(program):  # noqa: ANN001, ANN202
        step = factory(program)

        def run(*args):  # noqa: ANN002, ANN202
            sync()
            t0 = time.perf_counter()
            step(*args)
            sync()
            total[0] += time.perf_counter() - t0
        return run
    return make


def compile_report(programs: list, t_updates: float, t_batched: float) -> str:
    """What one Triton kernel per program would cost next to the batch's update time (CUDA only)."""
    from ..compile import triton_step

    major, minor = torch.cuda.get_device_capability()
    arch = major * 10 + minor
    seconds = [triton_step.compile_offline(p, "fp32", arch) for p in programs]
    return (f"updates took {t_updates:.2f} s of the batched run ({t_batched:.2f} s, synchronized per update); "
            f"one Triton kernel per program would add {sum(seconds):.2f} s of compiling "
            f"({', '.join(f'{p.name} {s:.2f} s' for p, s in zip(programs, seconds))}: sm_{arch}, empty cache) "
            f"-- every candidate of a search is a new program; the shared interpreter compiles once per machine")


def main(args: argparse.Namespace) -> int:
    from ..compile.population_torch import compile_batched
    from ..evaluate.trials import run_item, task_instance
    from ..evaluate.work import WorkItem

    print(malloc_note())
    kernel_name = "Triton interpreter" if args.kernel == "triton" or args.device.startswith("cuda") else "C++ interpreter"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, population kernel: "
          f"{kernel_name}")
    kernel = triton_kernel if args.kernel == "triton" else None  # None: run_item's own (per device)
    task = task_instance(args.task, args.device)
    steps = args.steps or task.steps
    programs, lrs, seeds = make_trials(args.trials)
    n = sum(len(g) for g in lrs) * len(seeds)
    item = WorkItem(task=args.task, programs=tuple(programs), lrs=tuple(lrs), seeds=tuple(seeds), steps=steps,
                    device=args.device)
    print(f"task {args.task}: {n} trials ({', '.join(f'{p.name} x{len(g)}' for p, g in zip(programs, lrs))}), "
          f"x {len(seeds)} seeds, {steps} steps each")
    run_item(WorkItem(task=args.task, programs=tuple(programs), lrs=tuple(lrs), seeds=tuple(seeds), steps=3,
                      device=args.device), step_factory=kernel)  # warm-up (on CUDA: the kernels' first compile)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    t_batched, t_torch, t_seq = math.inf, math.inf, math.inf
    for _ in range(args.repeat):
        sync(); t0 = time.perf_counter()
        res = run_item(item, step_factory=kernel)
        sync(); t_batched = min(t_batched, time.perf_counter() - t0)
        sync(); t0 = time.perf_counter()
        res_torch = run_item(item, step_factory=compile_batched)  # the torch batched step, not the kernel
        sync(); t_torch = min(t_torch, time.perf_counter() - t0)
    batched = [v for c in res.val_loss for v in c]
    for _ in range(args.repeat):
        sync(); t0 = time.perf_counter()
        seq = sequential(task, programs, lrs, seeds, steps)
        sync(); t_seq = min(t_seq, time.perf_counter() - t0)
    diffs = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(batched, seq) if math.isfinite(a) and math.isfinite(b)]
    agree = sum(math.isfinite(a) == math.isfinite(b) for a, b in zip(batched, seq))
    print(f"batched evaluator, population kernel:   {n / t_batched:8.2f} trials/s  ({t_batched:.2f} s)")
    print(f"batched evaluator, torch batched step:  {n / t_torch:8.2f} trials/s  ({t_torch:.2f} s)")
    print(f"one at a time (ProgramOptimizer):       {n / t_seq:8.2f} trials/s  ({t_seq:.2f} s)")
    print(f"speed-up: kernel vs torch batched step {t_torch / t_batched:.2f}x; "
          f"batched vs one at a time {t_seq / t_batched:.1f}x")
    torch_losses = [v for c in res_torch.val_loss for v in c]
    same = max((abs(a - b) / max(abs(b), 1e-12) for a, b in zip(batched, torch_losses)
                if math.isfinite(a) and math.isfinite(b)), default=0.0)
    print(f"kernel vs torch batched step: final validation loss max relative difference {same:.2e}")
    print(f"final validation loss: max relative difference {max(diffs, default=0):.2e} over {len(diffs)} finite trials; "
          f"{agree}/{n} agree on failing or not")
    if args.device.startswith("cuda"):
        from ..compile.population_device import population_step

        spent = [0.0]
        sync(); t0 = time.perf_counter()
        run_item(item, step_factory=timed(kernel or population_step, spent, sync))
        sync(); t_timed = time.perf_counter() - t0
        try:
            print(compile_report(programs, spent[0], t_timed))
        except Exception as exc:  # the report is extra: a failure here must not hide the table above
            print(f"(compile-time report failed: {type(exc).__name__}: {exc})")
    return 0
