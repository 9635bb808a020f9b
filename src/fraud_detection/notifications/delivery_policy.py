"""When to try a delivery again, when to give up, and how fast to send. Pure: the caller passes the clock."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum


class Kind(str, Enum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"  # 429, 5xx, timeouts, refused or dropped connections
    PERMANENT = "permanent"  # any other 4xx, a redirect, a refused request: trying again cannot help


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result. ``detail`` goes into logs and the dead-letter row: never a URL or a secret."""

    kind: Kind
    detail: str
    retry_after_s: float | None = None


def classify_status(code: int) -> Kind:
    if 200 <= code < 300:
        return Kind.DELIVERED
    # 408: the server timed out reading the request, a timeout like ours.
    if code in (408, 429) or code >= 500:
        return Kind.RETRYABLE
    return Kind.PERMANENT


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110); None if absent
    or unreadable (then our own backoff applies)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # an HTTP date is GMT by definition
        return None
    return max(0.0, moment.timestamp() - now)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits between half and all of min(cap, base * 2**(n-1))."""

    base_s: float = 0.5
    cap_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt - 1, 60))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)  # the jitter keeps retries of many notifiers apart


def next_delay(outcome: Outcome, attempt: int, backoff: Backoff, rng: random.Random) -> float:
    """How long to wait after a retryable ``attempt`` (1 = the first): the server's Retry-After if it sent
    one, else our backoff."""
    if outcome.retry_after_s is not None:
        return outcome.retry_after_s
    return backoff.delay(attempt, rng)


def gives_up(first_attempt_at: float, now: float, delay_s: float, give_up_after_s: float) -> bool:
    """True when the next attempt would start after the deadline (``give_up_after_s`` from the first one)."""
    return now + delay_s > first_attempt_at + give_up_after_s


class TokenBucket:
    """At most ``rate`` sends per second on average, bursts of ``capacity``; times come from the caller."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate, self.capacity = rate, capacity
        self._tokens, self._at = capacity, now

    def wait_s(self, now: float) -> float:
        """Seconds until a send may go: 0 if it may go now."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self, now: float) -> None:
        """Spend one token (call when ``wait_s`` is 0)."""
        self._refill(now)
        self._tokens -= 1

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
