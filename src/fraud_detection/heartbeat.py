"""A liveness signal for long-running commands: a file touched while work progresses.

Kubernetes probes run ``fraud-detection check --heartbeat FILE``, which fails when the file is stale, so a
generator stuck on a dead broker is restarted rather than left looking healthy.
"""

from __future__ import annotations

import time
from pathlib import Path


class Heartbeat:
    """Touches ``path`` at most every ``every_s`` seconds; a no-op without a path."""

    def __init__(self, path: Path | None, every_s: float = 2.0) -> None:
        self._path = path
        self._every_s = every_s
        self._next = 0.0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def beat(self) -> None:
        now = time.monotonic()
        if self._path is not None and now >= self._next:
            self._next = now + self._every_s
            self._path.touch()


def age_s(path: Path) -> float:
    """Seconds since ``path`` was last touched; FileNotFoundError before the first beat."""
    return time.time() - path.stat().st_mtime
