"""The run directory: ``config.json``, ``events.jsonl``, ``checkpoint.json``, ``hall_of_fame/``, ``best.opt``, ``summary.json``.

Every file is plain text. JSON files are written atomically (a temporary file
in the same directory, flushed and fsynced, then ``os.replace``), so a run
killed at any moment leaves either the old or the new version, never half of
one. ``events.jsonl`` gets one line per evaluation, appended and flushed
before the checkpoint that covers them is written; the checkpoint records how
many lines it covers, and a resumed run drops any lines after that.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

CONFIG, EVENTS, CHECKPOINT, SUMMARY, BEST, HOF_DIR = (
    "config.json", "events.jsonl", "checkpoint.json", "summary.json", "best.opt", "hall_of_fame")


def default_run_dir(root: str | Path = "runs") -> Path:
    """``runs/<date-time>`` (with a suffix if it exists already)."""
    base = Path(root) / time.strftime("%Y%m%d-%H%M%S")
    path, k = base, 1
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    return path


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` atomically."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunDir:
    """One search run's directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ create / open
    def create(self, config: dict) -> "RunDir":
        if (self.path / CHECKPOINT).exists() or (self.path / CONFIG).exists():
            raise ValueError(f"run directory {self.path} already holds a run; "
                             f"continue it with --resume {self.path}, or choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / CONFIG, config)
        (self.path / EVENTS).touch()
        return self

    def read_config(self) -> dict:
        path = self.path / CONFIG
        if not path.exists():
            raise ValueError(f"cannot resume {self.path}: no {CONFIG} there (is it a search run directory?)")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"cannot resume {self.path}: {CONFIG} is not valid JSON ({exc})") from None

    def write_config(self, config: dict) -> None:
        write_json_atomic(self.path / CONFIG, config)

    def read_checkpoint(self) -> dict | None:
        path = self.path / CHECKPOINT
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"cannot resume {self.path}: {CHECKPOINT} is corrupt ({exc})") from None

    def write_checkpoint(self, state: dict) -> None:
        write_json_atomic(self.path / CHECKPOINT, state)

    # ------------------------------------------------------------------ events
    def append_events(self, events: Iterable[dict]) -> int:
        lines = [json.dumps(e, sort_keys=False) + "\n" for e in events]
        if lines:
            with open(self.path / EVENTS, "a", encoding="utf-8") as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())
        return len(lines)

    def truncate_events(self, n_lines: int) -> None:
        """Keep the first `n_lines` events (those a checkpoint covers); drop a torn or later tail."""
        path = self.path / EVENTS
        if not path.exists():
            path.touch()
            return
        with open(path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines[:n_lines])
        if kept != data:
            write_text_atomic(path, kept.decode("utf-8"))

    def read_events(self) -> list[dict]:
        path = self.path / EVENTS
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    # ------------------------------------------------------------------ results
    def write_hall_of_fame(self, entries: list[tuple[str, str]]) -> None:
        """`entries`: (file stem, program text), best first; replaces the previous hall of fame."""
        hof = self.path / HOF_DIR
        hof.mkdir(exist_ok=True)
        keep = set()
        for stem, text in entries:
            write_text_atomic(hof / f"{stem}.opt", text)
            keep.add(f"{stem}.opt")
        for old in hof.glob("*.opt"):
            if old.name not in keep:
                old.unlink()

    def write_best(self, text: str) -> None:
        write_text_atomic(self.path / BEST, text)

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.path / SUMMARY, summary)
