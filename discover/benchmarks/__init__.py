"""Benchmarks behind `discover bench ...`: ratios against torch measured side by side in one process."""
import os

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "67108864", "MALLOC_TRIM_THRESHOLD_": "268435456"}
"""glibc malloc settings that keep eager torch from returning big buffers to the OS on every free."""


def malloc_note() -> str:
    """One line saying whether the malloc environment is set (it must be set before Python starts)."""
    missing = [k for k, v in MALLOC_ENV.items() if os.environ.get(k) != v]
    if not missing:
        return "malloc: " + " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items())
    return ("malloc: NOT set (" + ", ".join(missing) + "); eager torch may be several times slower. "
            "Run as: " + " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()) + " discover bench ...")
