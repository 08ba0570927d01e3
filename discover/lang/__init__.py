"""The optimizer language: IR, op table, parser, type checker and printer."""
from .check import check
from .errors import ProgramError
from .ir import INPUTS, Const, HParam, Operand, Program, Ref, State, Stmt, is_temp
from .ops import OPS, Op, Type
from .parse import parse, parse_file
from .printer import format_number, unparse

__all__ = [
    "INPUTS", "OPS", "Const", "HParam", "Op", "Operand", "Program", "ProgramError", "Ref", "State",
    "Stmt", "Type", "check", "format_number", "is_temp", "parse", "parse_file", "unparse",
]
