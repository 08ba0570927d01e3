"""Inspecting and simplifying programs: fingerprints, simplification, views, diff, explain."""
from .fingerprint import equivalent, fingerprint, probe_trace

__all__ = ["equivalent", "fingerprint", "probe_trace"]
