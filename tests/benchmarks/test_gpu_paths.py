"""The benchmarks' CUDA paths, exercised on CPU where they can be: `--device cuda` parses, the Triton
contenders run in Triton's interpreter (`--kernel triton`), and the device check fits its 8 minutes.
No timing is asserted."""
from __future__ import annotations

import importlib.util

import pytest

from discover.benchmarks import gpu_check
from discover.cli import build_parser

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                  reason="triton is not installed (pip install -e '.[gpu]')")


def test_bench_commands_take_device_cuda():
    parser = build_parser()
    for argv in (["bench", "step", "--device", "cuda"], ["bench", "search", "--device", "cuda"]):
        assert parser.parse_args(argv).device == "cuda"


def test_device_check_fits_in_eight_minutes():
    assert sum(seconds for _, seconds, _ in gpu_check.STAGES) <= 8 * 60
    assert any("tests/compile/test_triton.py" in cmd for _, _, cmd in gpu_check.STAGES)


@needs_triton
@pytest.mark.triton
def test_bench_step_runs_the_triton_contender(capsys):
    from discover.benchmarks import step

    args = build_parser().parse_args(["bench", "step", "--configs", "2x300", "--repeat", "1", "--programs", "adam",
                                      "--kernel", "triton", "--device", "cpu"])
    assert step.main(args) == 0
    out = capsys.readouterr().out
    assert "discover triton" in out and "torch fused" in out


@needs_triton
@pytest.mark.triton
def test_bench_search_runs_the_triton_population_kernel(capsys):
    from discover.benchmarks import search

    args = build_parser().parse_args(["bench", "search", "--trials", "2", "--steps", "2", "--kernel", "triton"])
    assert search.main(args) == 0
    out = capsys.readouterr().out
    assert "population kernel: Triton interpreter" in out
    assert "kernel vs torch batched step: final validation loss max relative difference 0.00e+00" in out
