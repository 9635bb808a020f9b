"""Status for people: redrawn in place on a terminal, a log line now and then elsewhere (CI, pipes, pods).

``Display`` decides when and where; ``Progress`` is the one-line form the generator and replay use;
``live_view.LiveView`` draws a whole screen through the same ``Display``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

CLEAR_SCREEN = "\033[H\033[2J"
CLEAR_LINE = "\r\033[K"


class Display:
    """Shows text at most every ``every_s`` on a terminal, every ``log_every_s`` as a log line otherwise.

    ``screen`` redraws the whole terminal (a view); without it one line is rewritten (progress).
    """

    def __init__(self, stream=None, *, every_s: float = 1.0, log_every_s: float | None = None,
                 screen: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.on_terminal = self._stream.isatty()
        self._every_s = every_s if self.on_terminal or log_every_s is None else log_every_s
        self._screen = screen
        self._next = time.monotonic() + (0 if screen else self._every_s)

    def due(self) -> bool:
        """True when the next frame is due (and then not again for the interval)."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._every_s
        return True

    def show(self, text: str) -> None:
        if not self.on_terminal:
            log.info(text)
            return
        self._stream.write(CLEAR_SCREEN + text + "\n" if self._screen else CLEAR_LINE + text)
        self._stream.flush()

    def end(self) -> None:
        """Leave the cursor on a fresh line after a progress line."""
        if self.on_terminal and not self._screen:
            self._stream.write("\n")


class Progress:
    """One status line of long work: ``describe()`` is called only when a frame is due."""

    def __init__(self, describe: Callable[[], str], every_s: float = 1.0, stream=None) -> None:
        self._describe = describe
        self._display = Display(stream, every_s=every_s)

    def tick(self) -> None:
        if self._display.due():
            self.show()

    def show(self) -> None:
        text = self._describe()
        self._display.show(text if self._display.on_terminal else f"event=progress {text}")

    def done(self) -> None:
        self.show()
        self._display.end()
