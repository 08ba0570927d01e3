"""The peak-temporary-memory measurement (discover/benchmarks/memory.py) on cases worked out by hand."""
import pytest
import torch

from discover.benchmarks.memory import peak_temporary_bytes, running_peak

SCALAR_WRAPPERS = 64  # bytes: CPU ops wrap a Python scalar in a 0-d tensor or two (4-8 bytes each)


def test_foreach_add_result_list_is_the_peak():
    xs = [torch.zeros(1000) for _ in range(10)]  # 10 x 1000 float32
    peak = peak_temporary_bytes(lambda: torch._foreach_add(xs, 1.0))
    assert 40_000 <= peak <= 40_000 + SCALAR_WRAPPERS


def test_in_place_ops_allocate_nothing_and_existing_buffers_do_not_count():
    xs = [torch.zeros(1000) for _ in range(10)]
    assert peak_temporary_bytes(lambda: torch._foreach_add_(xs, 1.0)) <= SCALAR_WRAPPERS


def test_freed_temporaries_do_not_add_up():
    x = torch.zeros(1000, dtype=torch.float64)  # 8 kB

    def two_in_turn():
        a = x + 1  # 8 kB, freed before the next
        del a
        b = x * 2  # 8 kB
        c = b + x  # +8 kB: the peak, 16 kB
        return c

    assert 16_000 <= peak_temporary_bytes(two_in_turn) <= 16_000 + SCALAR_WRAPPERS


def test_running_peak():
    assert running_peak([]) == 0
    assert running_peak([-100, 50]) == 0  # freeing what existed before does not make a peak
    assert running_peak([100, -100, 60, 60, -120, 10]) == 120


def test_other_devices_are_refused():
    with pytest.raises(ValueError, match="cpu or cuda"):
        peak_temporary_bytes(lambda: None, "meta")
