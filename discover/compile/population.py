"""Moved to `discover.compile.population_kernel`; this name stays for imports written before the move.

The module object is that one (so patching an attribute here patches it there).
"""
import sys

from . import population_kernel

sys.modules[__name__] = population_kernel
