"""`discover bench step`: optimizer step time against torch.optim, measured side by side in one process.

For each config — (A) 50 tensors / 1M values, (B) 200 small tensors / 100k values,
(L) one 16M-value tensor on CPU, (XL) one 256M-value tensor on CUDA — and each of the adam,
adamw, lion and momentum programs it times one ``optimizer.step()`` of discover's kernel backend
(``fused`` on CPU, ``triton`` on CUDA) and foreach backend and of torch.optim's fused and foreach
implementations (and, for Lion,
a straightforward Lion written with torch ops, as the popular Lion packages do).
Contenders run round-robin (one step each per round) so that load from other
processes hits all of them alike; the table shows medians over rounds and ratios
(< 1 means discover is faster). On the one-tensor configs it also prints the
memory-bandwidth bound: bytes read + written per step / the bandwidth of a large
``dst.copy_(src)``.

Each row also shows the step's peak temporary memory: the most bytes allocated
during one step beyond what was allocated before it (parameters, gradients and
state excluded), in MB and as a ratio to torch's foreach Adam on the same config
(`memory.peak_temporary_bytes`: allocator counters on CUDA, the profiler's memory
events on CPU). It is measured on one extra untimed step before the timed rounds,
so profiling does not touch the timings.

The programs of the newer optimizers compare with their references: ``muon`` with torch.optim.Muon and
``adafactor`` with torch.optim.Adafactor (both on matrices, config M: 16 of 256 x 256), ``adan``,
``ademamix`` and ``lamb`` with pytorch_optimizer's classes (when it is installed: the dev extra)::

    $ discover bench step --programs muon,adafactor,adan,ademamix,lamb --configs M,B

``--configs`` also takes ``NxM`` (N tensors of M values each), and
``--foreach-budgets 0,2,4`` adds discover's foreach step chunked at those budgets
(MiB per list; 0 = unchunked): how `discover.compile.chunked.CHUNK_BYTES` was chosen.

Example:
    $ MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456 discover bench step --repeat 30
    $ discover bench step --device cuda          # configs A, B, XL: Triton kernel vs torch fused
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Callable

import torch

from ..commands import ListAction
from . import malloc_note
from .memory import peak_temporary_bytes

CONFIGS = {"A": (50, 1_000_000), "B": (200, 100_000), "L": (1, 16_000_000), "XL": (1, 256_000_000),
           "M": (16, 16 * 256 * 256)}
CONFIG_LABELS = {"A": "A: 50 tensors / 1M values", "B": "B: 200 tensors / 100k values", "L": "L: 1 tensor / 16M values",
                 "XL": "XL: 1 tensor / 256M values", "M": "M: 16 matrices of 256 x 256"}
DEFAULT_CONFIGS = {"cpu": ["A", "B", "L"], "cuda": ["A", "B", "XL"]}
ONE_TENSOR = ("L", "XL")  # configs with a bandwidth bound
PROGRAMS = ("adam", "adamw", "lion", "momentum")
HPARAMS = {
    "adam": dict(lr=1e-3, weight_decay=0.0),
    "adamw": dict(lr=1e-3, weight_decay=1e-2),
    "lion": dict(lr=1e-4, weight_decay=1e-2),
    "momentum": dict(lr=1e-3, momentum=0.9),
}
HPARAMS.update({  # the programs of issue 13 against torch.optim's and pytorch_optimizer's own
    "muon": dict(lr=1e-3, weight_decay=0.1),
    "adafactor": dict(lr=1e-2),
    "adan": dict(lr=1e-3),
    "ademamix": dict(lr=1e-3),
    "lamb": dict(lr=1e-3),
})
MATRIX_PROGRAMS = ("muon", "adafactor")
"""Programs timed on matrices: each tensor of a config is shaped (r, c) with r * c its size and r the
largest divisor up to its square root (config M: 256 x 256), not a vector."""
# tensors read and written per element by one step (for the bandwidth bound)
TRAFFIC = {"adam": (4, 3), "adamw": (4, 3), "lion": (3, 2), "momentum": (3, 2)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeat", type=int, default=25, help="timed rounds per config (median reported; default 25)")
    p.add_argument("--configs", nargs="+", action=ListAction, default=None, metavar="CONFIG",
                   help="a subset of A,B,L,XL,M, or NxM for N tensors of M values (default A,B,L on CPU, "
                        "A,B,XL on CUDA; M: 16 matrices of 256 x 256, for muon and adafactor)")
    p.add_argument("--programs", nargs="+", action=ListAction, default=list(PROGRAMS), metavar="PROG",
                   help=f"programs (default {','.join(PROGRAMS)})")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--kernel", choices=["auto", "fused", "triton"], default="auto",
                   help="discover's kernel backend: auto (triton on CUDA, fused on CPU); triton on CPU needs "
                        "TRITON_INTERPRET=1 and is slow (a check of the CUDA path, not a timing)")
    p.add_argument("--foreach-budgets", nargs="+", action=ListAction, item=float, default=[], metavar="MIB",
                   help="also time discover's foreach step chunked with these budgets, MiB per list (0: the "
                        "whole bucket, unchunked); how the default budget was chosen")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLion(torch.optim.Optimizer):
    """Lion as the popular packages write it with torch ops (per tensor, in place)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, wd, (beta1, beta2) = group["lr"], group["weight_decay"], group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                exp_avg = state["exp_avg"]
                p.mul_(1 - lr * wd)
                update = exp_avg.mul(beta1).add_(p.grad, alpha=1 - beta1).sign_()
                p.add_(update, alpha=-lr)
                exp_avg.mul_(beta2).add_(p.grad, alpha=1 - beta2)


def _foreach_with_budget(params: list, program: str, mib: float) -> torch.optim.Optimizer:
    """discover's foreach optimizer with its step chunked at `mib` MiB per list (0: unchunked)."""
    from ..compile.chunked import chunked_step
    from ..compile.foreach import compile_foreach
    from ..optim import ProgramOptimizer

    def factory(p):  # the foreach step, cut at this budget instead of the default one
        step = compile_foreach(p)
        whole = getattr(step, "unchunked", step)  # reduction programs are never chunked
        return whole if mib == 0 else chunked_step(whole, p, budget_bytes=int(mib * 2**20))

    return ProgramOptimizer(params, program, backend=factory, **HPARAMS.get(program, {}))


def kernel_backend(device: torch.device, choice: str = "auto") -> str:
    """discover's kernel backend on `device`: the Triton kernel on CUDA, the C++ one elsewhere
    (`choice` names one instead: ``--kernel triton`` on CPU runs Triton's interpreter, for tests)."""
    if choice != "auto":
        return choice
    return "triton" if device.type == "cuda" else "fused"


def _contenders(program: str, device: torch.device, budgets: tuple[float, ...] = (),
                kernel: str = "auto") -> dict[str, Callable[[list], torch.optim.Optimizer]]:
    from ..optim import ProgramOptimizer

    hp = HPARAMS.get(program, {})  # other programs run at their own defaults, against discover's backends only
    kernel = kernel_backend(device, kernel)
    out: dict[str, Callable] = {
        f"discover {kernel}": lambda ps: ProgramOptimizer(ps, program, backend=kernel, **hp),
        "discover foreach": lambda ps: ProgramOptimizer(ps, program, backend="foreach", **hp),
    }
    for mib in budgets:
        out["foreach whole" if mib == 0 else f"foreach {mib:g} MiB"] = \
            lambda ps, mib=mib: _foreach_with_budget(ps, program, mib)
    if program in ("adam", "adamw"):
        cls = torch.optim.Adam if program == "adam" else torch.optim.AdamW
        out["torch fused"] = lambda ps: cls(ps, lr=hp["lr"], weight_decay=hp["weight_decay"], fused=True)
        out["torch foreach"] = lambda ps: cls(ps, lr=hp["lr"], weight_decay=hp["weight_decay"], foreach=True)
    elif program == "momentum":
        out["torch fused"] = lambda ps: torch.optim.SGD(ps, lr=hp["lr"], momentum=hp["momentum"], fused=True)
        out["torch foreach"] = lambda ps: torch.optim.SGD(ps, lr=hp["lr"], momentum=hp["momentum"], foreach=True)
    elif program == "lion":
        out["plain-torch Lion"] = lambda ps: PlainLion(ps, lr=hp["lr"], weight_decay=hp["weight_decay"])
    elif program == "muon":
        out["torch Muon"] = lambda ps: torch.optim.Muon(ps, **hp)
    elif program == "adafactor":
        out["torch Adafactor"] = lambda ps: torch.optim.Adafactor(ps, **hp)
        out["torch foreach"] = lambda ps: torch.optim.Adafactor(ps, **hp, foreach=True)
    elif program in ("adan", "ademamix", "lamb"):
        try:
            import pytorch_optimizer as po
        except ImportError:  # the dev extra's; without it discover's steps are timed alone
            return out
        cls = {"adan": po.Adan, "ademamix": po.AdEMAMix, "lamb": po.Lamb}[program]
        out[f"pytorch_optimizer {cls.__name__}"] = lambda ps: cls(ps, **hp)
    return out


def _params(n: int, total: int, device: torch.device, seed: int = 0, matrix: bool = False) -> list[torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(seed)  # made where they live: 256M values in no time
    each = total // n
    shape: tuple[int, ...] = (each,)
    if matrix:  # (r, c): r the largest divisor of `each` up to its square root
        r = max(d for d in range(1, int(each ** 0.5) + 1) if each % d == 0)
        shape = (r, each // r)
    ps = []
    for _ in range(n):
        p = torch.nn.Parameter(torch.randn(shape, generator=gen, device=device))
        p.grad = torch.randn(shape, generator=gen, device=device) * 1e-2
        ps.append(p)
    return ps


def copy_bandwidth(device: torch.device, repeat: int = 30) -> float:
    """Bytes per second of a large ``dst.copy_(src)`` (read + write counted), best of `repeat`
    (the machine's capability; a median would count other processes' load against the bound)."""
    src = torch.ones(32 * 1024 * 1024, device=device)  # 128 MiB
    dst = torch.empty_like(src)
    times = []
    for _ in range(repeat + 2):
        _sync(device)
        t = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        times.append(time.perf_counter() - t)
    return 2 * src.numel() * src.element_size() / min(times[2:])


def time_config(program: str, n: int, total: int, device: torch.device, repeat: int,
                budgets: tuple[float, ...] = (), kernel: str = "auto") -> tuple[dict[str, float], dict[str, int]]:
    """Median microseconds per step of every contender, measured round-robin, and each one's
    peak temporary bytes (from one untimed step before the timed ones)."""
    opts = {}
    peaks = {}
    for name, make in _contenders(program, device, budgets, kernel).items():
        opts[name] = make(_params(n, total, device, matrix=program in MATRIX_PROGRAMS))
        for _ in range(3):  # warm up (state init, kernel load, allocator)
            opts[name].step()
        peaks[name] = peak_temporary_bytes(opts[name].step, device)
    times: dict[str, list[float]] = {name: [] for name in opts}
    for _ in range(repeat):
        for name, opt in opts.items():
            _sync(device)
            t = time.perf_counter()
            opt.step()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) * 1e6 for name, ts in times.items()}, peaks


def foreach_adam_peak(n: int, total: int, device: torch.device) -> int:
    """Peak temporary bytes of one torch.optim.Adam(foreach=True) step on a config (the memory yardstick)."""
    hp = HPARAMS["adam"]
    opt = torch.optim.Adam(_params(n, total, device), lr=hp["lr"], weight_decay=hp["weight_decay"], foreach=True)
    opt.step()  # state is allocated on the first step
    return peak_temporary_bytes(opt.step, device)


def compile_times(programs: list[str]) -> dict[str, tuple[float, float]]:
    """Seconds to build each program's fused step with an empty kernel cache, and again from the disk cache."""
    from ..compile import cxx, fused
    from ..library import load

    out = {}
    old = os.environ.get("DISCOVER_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DISCOVER_CACHE_DIR"] = tmp
        try:
            for name in programs:
                program = load(name)
                cxx.forget_loaded()
                t = time.perf_counter()
                fused.compile_fused(program)
                cold = time.perf_counter() - t
                cxx.forget_loaded()
                t = time.perf_counter()
                fused.compile_fused(program)
                out[name] = (cold, time.perf_counter() - t)
        finally:
            if old is None:
                os.environ.pop("DISCOVER_CACHE_DIR", None)
            else:
                os.environ["DISCOVER_CACHE_DIR"] = old
            cxx.forget_loaded()
    return out


def _config(token: str) -> tuple[str, int, int]:
    """(label, tensors, total values) of a config: A, B, L, or NxM (N tensors of M values)."""
    if token in CONFIGS:
        return (token, *CONFIGS[token])
    try:
        n, each = (int(x) for x in token.lower().split("x"))
    except ValueError:
        raise SystemExit(f"unknown config {token!r}: use A, B, L or NxM (N tensors of M values)") from None
    return token.lower(), n, n * each


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = [_config(c.upper()) for c in (args.configs or DEFAULT_CONFIGS.get(device.type, ["A", "B", "L"]))]
    kernel = f"discover {kernel_backend(device, args.kernel)}"
    programs = list(args.programs)
    from ..library import load
    loaded = {name: load(name) for name in programs}  # an unknown name fails here, with the built-ins, not mid-table
    budgets = tuple(args.foreach_budgets)
    print("discover bench step: median microseconds per optimizer.step(); ratio = discover / other (< 1: discover faster)")
    print(malloc_note())
    print(f"device: {device}  torch {torch.__version__}  threads: {torch.get_num_threads()}  rounds: {args.repeat}  "
          f"cpus: {os.cpu_count()} (timings are noisy when other processes share the CPU)")
    bandwidth = copy_bandwidth(device) if any(c[0] in ONE_TENSOR for c in configs) else None
    if bandwidth:
        print(f"copy bandwidth (dst.copy_(src), 128 MiB, best of 30): {bandwidth / 1e9:.1f} GB/s")
    print()
    print("peak MB: temporary memory of one step beyond params, grads and state (an extra untimed step); "
          "mem ratio: that / torch foreach Adam's on the same config")
    width = max([4] + [len(c[0]) for c in configs])
    header = (f"{'config':<{width}} {'program':<9} {'contender':<27} {'us/step':>10} {'kernel/this':>11} "
              f"{'foreach/this':>13} {'peak MB':>9} {'mem ratio':>10}")
    print(header)
    print("-" * len(header))
    for config, n, total in configs:
        yardstick = foreach_adam_peak(n, total, device)
        for program in programs:
            times, peaks = time_config(program, n, total, device, args.repeat, budgets, args.kernel)
            fused_t, foreach_t = times[kernel], times["discover foreach"]
            for name, t in times.items():
                ours = name in (kernel, "discover foreach")
                r1 = f"{fused_t / t:.2f}" if not ours else ""
                r2 = f"{foreach_t / t:.2f}" if not ours else ""
                print(f"{config:<{width}} {program:<9} {name:<27} {t:>10.0f} {r1:>11} {r2:>13} "
                      f"{peaks[name] / 1e6:>9.2f} {peaks[name] / yardstick:>10.2f}")
            if config in ONE_TENSOR and bandwidth and program in TRAFFIC:
                reads, writes = TRAFFIC[program]
                bound = (reads + writes) * total * 4 / bandwidth * 1e6
                print(f"{config:<{width}} {program:<9} {'bandwidth bound':<27} {bound:>10.0f}   "
                      f"{kernel} takes {fused_t / bound:.2f}x the bound ({reads} reads + {writes} writes per value)")
        print()
    if device.type == "cpu" and kernel == "discover fused":
        from ..compile.lower import staged_reason

        staged = [p for p in programs if staged_reason(loaded[p])]
        if staged:
            print(f"{', '.join(staged)}: matrix, row/column or group ops, run as torch calls between foreach "
                  "passes (so 'discover fused' is the foreach step; see README, Backends)")
        ct = compile_times([p for p in programs if p not in staged])
        print("fused compile time per program (g++, empty cache / from disk cache): " +
              ", ".join(f"{k} {c:.2f} s / {w * 1e3:.0f} ms" for k, (c, w) in ct.items()))
    return 0
