"""Shared test settings and fixtures (one conftest: with --doctest-modules, several
conftest.py files in package-less test folders collide on the module name `conftest`)."""
import os
from pathlib import Path

import pytest
import torch

# Without a GPU, Triton kernels (tests/compile/test_triton.py) run in Triton's interpreter on CPU
# tensors; it is chosen when a kernel is decorated, so before any is built.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The tensors here are tiny: intra-op threads only contend (on a loaded 2-core CI machine,
# 2 threads made the 300-step runs 10-20x slower than 1 thread). Results do not depend on it.
torch.set_num_threads(1)

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def lion_raw_path() -> Path:
    """The raw 13-line program from the Lion paper, verbatim."""
    return TESTS / "analysis" / "lion_raw.opt"


@pytest.fixture
def one_thread():
    """Run the local backend with the workers' thread count (1), restoring it after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
