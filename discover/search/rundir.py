"""The run directory: ``config.json``, ``events.jsonl``, ``checkpoint.json``, ``hall_of_fame/``, ``best.opt``,
``summary.json``, and ``lock``.

Every file is plain text. JSON files are written atomically (a temporary file
in the same directory, flushed and fsynced, then ``os.replace``), so a run
killed at any moment leaves either the old or the new version, never half of
one. ``events.jsonl`` gets one line per evaluation, appended and flushed
before the checkpoint that covers them is written; the checkpoint records how
many lines it covers, and a resumed run drops any lines after that.

One run at a time: a run holds an exclusive lock on ``lock`` (``flock``, which the
kernel releases when the process exits, even on kill -9, so a lock left by a dead
process is never in the way) and writes its pid and host there for the message a
second run gets. A new run only starts in a directory that is new, empty, or holds
nothing but a ``lock``: never in one that holds a run or other files.

Example:
    >>> import tempfile
    >>> rd = RunDir(tempfile.mkdtemp()).create({"budget": 8})
    >>> try:
    ...     RunDir(rd.path).lock()
    ... except RunDirError as exc:
    ...     print(str(exc).split(":")[0].endswith("is in use by another discover search"))
    True
    >>> rd.unlock()
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

CONFIG, EVENTS, CHECKPOINT, SUMMARY, BEST, HOF_DIR, LOCK = (
    "config.json", "events.jsonl", "checkpoint.json", "summary.json", "best.opt", "hall_of_fame", "lock")


def default_run_dir(root: str | Path = "runs") -> Path:
    """``runs/<date-time>`` (with a suffix if it exists already)."""
    base = Path(root) / time.strftime("%Y%m%d-%H%M%S")
    path, k = base, 1
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` atomically."""
    _write_atomic(path, json.dumps(data, indent=1, sort_keys=False).encode("utf-8"))


def write_text_atomic(path: Path, text: str) -> None:
    _write_atomic(path, text.encode("utf-8"))


class RunDirError(ValueError):
    """A run directory that cannot be used as asked: in use, not a run, not empty, unreadable files."""


def _read_json(path: Path, what: str) -> Any:
    """`path` parsed as JSON; a `RunDirError` naming the file for anything else (missing, not UTF-8,
    not JSON)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RunDirError(f"{path} is not {what}: it is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not {what}: invalid JSON ({exc})") from None


class RunDir:
    """One search run's directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ one run at a time
    def lock(self) -> "RunDir":
        """Take the directory's exclusive lock (until `unlock` or this process exits), or raise
        `RunDirError` naming the process that holds it. The directory must exist."""
        import fcntl
        import socket

        path = self.path / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "a process that has not written its pid yet"
            os.close(fd)
            raise RunDirError(f"{self.path} is in use by another discover search: {holder}. Wait for it to "
                              f"end or stop it (the lock is released when it exits), or use another directory") from None
        except OSError as exc:  # a filesystem without locks (some network mounts): say so, go on
            print(f"warning: cannot lock {self.path} ({exc.strerror or exc}); make sure no other search "
                  "uses it at the same time", file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        """Release the lock (the ``lock`` file stays: removing it would race with the next run)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # ------------------------------------------------------------------ create / open
    def check_new(self) -> None:
        """Refuse a path where a new run must not start: a file, a run, a non-empty directory."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--out {self.path} is a file, not a directory; give a new or empty directory")
        if not self.path.is_dir():
            return
        entries = sorted(p.name for p in self.path.iterdir() if p.name != LOCK)
        if CHECKPOINT in entries or CONFIG in entries:
            raise RunDirError(f"run directory {self.path} already holds a run; continue it with "
                              f"--resume {self.path}, or choose another --out")
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise RunDirError(f"--out {self.path} is not empty ({len(entries)} entries: {shown}) and is not a "
                              "search run; a new run only starts in a new or empty directory: choose another --out")

    def create(self, config: dict) -> "RunDir":
        """Make the directory, take its lock and write ``config.json``; refuses what `check_new` refuses."""
        self.check_new()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {self.path}: {exc.strerror or exc}") from None
        self.lock()
        try:
            self.check_new()  # again, holding the lock: another run may have started here meanwhile
            write_json_atomic(self.path / CONFIG, config)
            (self.path / EVENTS).touch()
        except BaseException:
            self.unlock()
            raise
        return self

    def open_existing(self) -> "RunDir":
        """Lock an existing run directory for resuming (`RunDirError` if it is not one or is in use)."""
        if not self.path.is_dir():
            raise RunDirError(f"cannot resume {self.path}: no such directory")
        if not (self.path / CONFIG).exists():
            raise RunDirError(f"cannot resume {self.path}: no {CONFIG} there (is it a search run directory?)")
        return self.lock()

    def read_config(self) -> dict:
        path = self.path / CONFIG
        if not path.exists():
            raise RunDirError(f"cannot resume {self.path}: no {CONFIG} there (is it a search run directory?)")
        data = _read_json(path, "a search config")
        if not isinstance(data, dict):
            raise RunDirError(f"{path} is not a search config: it holds {type(data).__name__}, not an object")
        return data

    def write_config(self, config: dict) -> None:
        write_json_atomic(self.path / CONFIG, config)

    def read_checkpoint(self) -> dict | None:
        """The checkpoint, or None when there is none yet and nothing would be lost by starting over
        (no event but warm-start ones: a run stopped during its warm start). A missing, empty or
        ``null`` checkpoint in a directory that holds results is refused, never started over."""
        path = self.path / CHECKPOINT
        if not path.exists():
            held = self._results_held()
            if held:
                raise RunDirError(f"cannot resume {self.path}: {CHECKPOINT} is missing but the directory holds "
                                  f"{held}; starting over would lose them. Restore {CHECKPOINT} (e.g. from a "
                                  "backup), or start a new run with another --out")
            return None
        if path.stat().st_size == 0:
            raise RunDirError(f"cannot resume {self.path}: {path} is empty (it is always written whole, so it was "
                              f"truncated outside discover); restore it, or start a new run with another --out")
        data = _read_json(path, "a checkpoint")
        if not isinstance(data, dict):
            raise RunDirError(f"cannot resume {self.path}: {path} holds {json.dumps(data)[:40]}, not a checkpoint "
                              "object; restore it, or start a new run with another --out")
        return data

    def _results_held(self) -> str:
        """What in the directory a restart would lose ('' if nothing): evaluations beyond the warm
        start, a summary, a hall of fame."""
        held = []
        kinds = []
        path = self.path / EVENTS
        if path.exists():
            with open(path, "rb") as f:
                for line in f:
                    try:
                        kinds.append(json.loads(line).get("kind"))
                    except (ValueError, AttributeError):
                        kinds.append(None)
        if any(k != "init" for k in kinds):
            held.append(f"{len(kinds)} lines of {EVENTS}")
        held += [name for name in (SUMMARY, BEST) if (self.path / name).exists()]
        if any((self.path / HOF_DIR).glob("*.opt")):
            held.append(f"{HOF_DIR}/")
        return ", ".join(held)

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
        """Keep the first `n_lines` events (those a checkpoint covers); drop a torn or later tail.
        Fewer lines than that means the log was cut outside discover: refused, not papered over."""
        path = self.path / EVENTS
        data = path.read_bytes() if path.exists() else b""
        lines = data.split(b"\n")
        if len(lines) - 1 < n_lines:  # the last item is whatever follows the last newline
            raise RunDirError(f"cannot resume {self.path}: {EVENTS} holds {len(lines) - 1} complete lines but "
                              f"{CHECKPOINT} covers {n_lines}; it was cut or replaced outside discover. Restore it, "
                              "or start a new run with another --out")
        kept = b"".join(line + b"\n" for line in lines[:n_lines])
        if kept != data or not path.exists():
            _write_atomic(path, kept)

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
