"""A liveness signal for long-running commands: a file touched while work progresses.

Kubernetes probes run ``fraud-detection check --heartbeat FILE``, which fails when the file is stale, so a
generator stuck on a dead broker is restarted rather than left looking healthy. The file may carry a
status as JSON (the generator's: sent, attacks under way), which ``make run``'s live view shows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path


class Heartbeat:
    """Touches ``path`` at most every ``every_s`` seconds, writing ``status()`` into it; a no-op without a path."""

    def __init__(self, path: Path | None, every_s: float = 2.0, status: Callable[[], dict] | None = None) -> None:
        self._path = path
        self._every_s = every_s
        self._status = status
        self._next = 0.0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def beat(self) -> None:
        now = time.monotonic()
        if self._path is None or now < self._next:
            return
        self._next = now + self._every_s
        if self._status is None:
            self._path.touch()
            return
        staged = self._path.with_name(self._path.name + ".tmp")
        staged.write_text(json.dumps(self._status()))
        os.replace(staged, self._path)  # readers never see half a status


def age_s(path: Path) -> float:
    """Seconds since ``path`` was last touched; FileNotFoundError before the first beat."""
    return time.time() - path.stat().st_mtime


def read_status(path: Path) -> dict | None:
    """The status in a heartbeat file, or None when there is none (yet)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
