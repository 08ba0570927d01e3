"""discover: symbolic optimizer discovery.

Optimizers are small programs in a Python-syntax mini-language. discover
parses and checks them, compiles them to vectorized torch code, runs any of
them as a real `torch.optim.Optimizer`, evolves new ones, and simplifies what
it finds.

Example:
    >>> import torch, discover
    >>> model = torch.nn.Linear(4, 1)
    >>> opt = discover.ProgramOptimizer(model.parameters(), "lion", lr=1e-4)
    >>> model(torch.randn(8, 4)).pow(2).mean().backward()
    >>> opt.step()
"""
from .extras import VERSION
from .lang import OPS, Program, ProgramError, check, parse, parse_file, unparse
from .library import builtin_names, compose, load
from .optim import ProgramOptimizer

__version__ = VERSION

__all__ = [
    "OPS", "Program", "ProgramError", "ProgramOptimizer", "builtin_names", "check", "compose", "load",
    "parse", "parse_file", "unparse",
]
