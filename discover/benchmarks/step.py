"""`discover bench step`: optimizer step time against torch.optim, measured side by side in one process.

For each config — (A) 50 tensors / 1M values, (B) 200 small tensors / 100k values,
(L) one 16M-value tensor — and each of the adam, adamw, lion and momentum
programs it times one ``optimizer.step()`` of discover's fused and foreach
backends and of torch.optim's fused and foreach implementations (and, for Lion,
a straightforward Lion written with torch ops, as the popular Lion packages do).
Contenders run round-robin (one step each per round) so that load from other
processes hits all of them alike; the table shows medians over rounds and ratios
(< 1 means discover is faster). On the 16M tensor it also prints the
memory-bandwidth bound: bytes read + written per step / the bandwidth of a large
``dst.copy_(src)``.

Example:
    $ MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456 discover bench step --repeat 30
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Callable

import torch

from . import malloc_note

CONFIGS = {"A": (50, 1_000_000), "B": (200, 100_000), "L": (1, 16_000_000)}
CONFIG_LABELS = {"A": "A: 50 tensors / 1M values", "B": "B: 200 tensors / 100k values", "L": "L: 1 tensor / 16M values"}
PROGRAMS = ("adam", "adamw", "lion", "momentum")
HPARAMS = {
    "adam": dict(lr=1e-3, weight_decay=0.0),
    "adamw": dict(lr=1e-3, weight_decay=1e-2),
    "lion": dict(lr=1e-4, weight_decay=1e-2),
    "momentum": dict(lr=1e-3, momentum=0.9),
}
# tensors read and written per element by one step (for the bandwidth bound)
TRAFFIC = {"adam": (4, 3), "adamw": (4, 3), "lion": (3, 2), "momentum": (3, 2)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeat", type=int, default=25, help="timed rounds per config (median reported; default 25)")
    p.add_argument("--configs", default="A,B,L", help="comma-separated subset of A,B,L (default all)")
    p.add_argument("--programs", default=",".join(PROGRAMS), help="comma-separated programs (default adam,adamw,lion,momentum)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")


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


def _contenders(program: str, device: torch.device) -> dict[str, Callable[[list], torch.optim.Optimizer]]:
    from ..optim import ProgramOptimizer

    hp = HPARAMS[program]
    out: dict[str, Callable] = {
        "discover fused": lambda ps: ProgramOptimizer(ps, program, backend="fused", **hp),
        "discover foreach": lambda ps: ProgramOptimizer(ps, program, backend="foreach", **hp),
    }
    if program in ("adam", "adamw"):
        cls = torch.optim.Adam if program == "adam" else torch.optim.AdamW
        out["torch fused"] = lambda ps: cls(ps, lr=hp["lr"], weight_decay=hp["weight_decay"], fused=True)
        out["torch foreach"] = lambda ps: cls(ps, lr=hp["lr"], weight_decay=hp["weight_decay"], foreach=True)
    elif program == "momentum":
        out["torch fused"] = lambda ps: torch.optim.SGD(ps, lr=hp["lr"], momentum=hp["momentum"], fused=True)
        out["torch foreach"] = lambda ps: torch.optim.SGD(ps, lr=hp["lr"], momentum=hp["momentum"], foreach=True)
    elif program == "lion":
        out["plain-torch Lion"] = lambda ps: PlainLion(ps, lr=hp["lr"], weight_decay=hp["weight_decay"])
    return out


def _params(n: int, total: int, device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    each = total // n
    ps = []
    for _ in range(n):
        p = torch.nn.Parameter(torch.randn(each, generator=gen).to(device))
        p.grad = torch.randn(each, generator=gen).to(device) * 1e-2
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


def time_config(program: str, n: int, total: int, device: torch.device, repeat: int) -> dict[str, float]:
    """Median microseconds per step of every contender, measured round-robin."""
    opts = {}
    for name, make in _contenders(program, device).items():
        opts[name] = make(_params(n, total, device))
        for _ in range(3):  # warm up (state init, kernel load, allocator)
            opts[name].step()
    times: dict[str, list[float]] = {name: [] for name in opts}
    for _ in range(repeat):
        for name, opt in opts.items():
            _sync(device)
            t = time.perf_counter()
            opt.step()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) * 1e6 for name, ts in times.items()}


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


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = [c.strip().upper() for c in args.configs.split(",") if c.strip()]
    programs = [p.strip() for p in args.programs.split(",") if p.strip()]
    print("discover bench step: median microseconds per optimizer.step(); ratio = discover / other (< 1: discover faster)")
    print(malloc_note())
    print(f"device: {device}  torch {torch.__version__}  threads: {torch.get_num_threads()}  rounds: {args.repeat}  "
          f"cpus: {os.cpu_count()} (timings are noisy when other processes share the CPU)")
    bandwidth = copy_bandwidth(device) if "L" in configs else None
    if bandwidth:
        print(f"copy bandwidth (dst.copy_(src), 128 MiB, best of 30): {bandwidth / 1e9:.1f} GB/s")
    print()
    header = f"{'config':<4} {'program':<9} {'contender':<17} {'us/step':>10} {'fused/this':>11} {'foreach/this':>13}"
    print(header)
    print("-" * len(header))
    for config in configs:
        n, total = CONFIGS[config]
        for program in programs:
            times = time_config(program, n, total, device, args.repeat)
            fused_t, foreach_t = times["discover fused"], times["discover foreach"]
            for name, t in times.items():
                r1 = f"{fused_t / t:.2f}" if not name.startswith("discover") else ""
                r2 = f"{foreach_t / t:.2f}" if not name.startswith("discover") else ""
                print(f"{config:<4} {program:<9} {name:<17} {t:>10.0f} {r1:>11} {r2:>13}")
            if config == "L" and bandwidth:
                reads, writes = TRAFFIC[program]
                bound = (reads + writes) * total * 4 / bandwidth * 1e6
                print(f"{config:<4} {program:<9} {'bandwidth bound':<17} {bound:>10.0f}   "
                      f"fused takes {fused_t / bound:.2f}x the bound ({reads} reads + {writes} writes per value)")
        print()
    if device.type == "cpu":
        ct = compile_times(programs)
        print("fused compile time per program (g++, empty cache / from disk cache): " +
              ", ".join(f"{k} {c:.2f} s / {w * 1e3:.0f} ms" for k, (c, w) in ct.items()))
    return 0
