"""What every evaluation backend is: runs a batch of `WorkItem` and returns one `ItemResult` per
item, in order (`discover.evaluate.backends` picks one by name).

Example::

    with get_backend("process", workers=4) as backend:
        results = backend.run(items)
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from .work import ItemResult, WorkItem


class Backend(ABC):
    """Runs evaluation work; `run` returns results in the order of `items`."""

    name = "backend"

    @abstractmethod
    def run(self, items: Sequence[WorkItem]) -> list[ItemResult]:
        ...

    def close(self) -> None:
        """Release workers (a no-op for in-process backends)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
