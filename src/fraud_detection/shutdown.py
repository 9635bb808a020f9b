"""Clean shutdown on SIGTERM (Kubernetes, `make run`) and SIGINT (Ctrl-C) for every long-running command."""

from __future__ import annotations

import signal
import threading


class StopFlag:
    """Set by SIGTERM/SIGINT so long loops end cleanly, flushing what they buffered."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def set(self, *_args) -> None:
        self._event.set()

    def install(self) -> StopFlag:
        signal.signal(signal.SIGTERM, self.set)
        signal.signal(signal.SIGINT, self.set)
        return self

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)
