"""Retry, give-up and rate-limit decisions, on a clock the tests hold."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from fraud_detection.notifications.delivery_policy import (
    Backoff,
    Kind,
    Outcome,
    TokenBucket,
    classify_status,
    gives_up,
    next_delay,
    parse_retry_after,
)

NOW = 1_764_000_000.0  # a fixed instant, not the wall clock


@pytest.mark.parametrize(("code", "kind"), [
    (200, Kind.DELIVERED), (202, Kind.DELIVERED), (204, Kind.DELIVERED),
    (429, Kind.RETRYABLE), (500, Kind.RETRYABLE), (502, Kind.RETRYABLE), (503, Kind.RETRYABLE), (408, Kind.RETRYABLE),
    (301, Kind.PERMANENT), (400, Kind.PERMANENT), (401, Kind.PERMANENT), (403, Kind.PERMANENT),
    (404, Kind.PERMANENT), (410, Kind.PERMANENT), (413, Kind.PERMANENT),
])
def test_status_codes_are_delivered_retryable_or_permanent(code, kind):
    """2xx delivered; 408, 429 and 5xx retryable; any other answer permanent."""
    assert classify_status(code) is kind


def test_retry_after_reads_seconds_and_http_dates():
    """Delta-seconds as given; an HTTP date as the seconds until it (0 once past); rubbish as absent."""
    soon = datetime.fromtimestamp(NOW + 90, tz=timezone.utc)
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    assert parse_retry_after(format_datetime(soon, usegmt=True), NOW) == pytest.approx(90.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0
    for unreadable in (None, "", "soon", "-5", "1.5", "Wed, 99 Foo 2015 07:28:00 GMT"):
        assert parse_retry_after(unreadable, NOW) is None, unreadable


def test_backoff_grows_exponentially_with_jitter_up_to_its_cap():
    """Attempt n waits between half and all of base * 2**(n-1), never more than the cap."""
    backoff, rng = Backoff(base_s=0.5, cap_s=10.0), random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (100, 10.0)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempt
        assert len(set(delays)) > 100, "jittered"


def test_the_servers_retry_after_beats_our_backoff():
    """A 429's Retry-After is honoured as given; without one, the backoff applies."""
    rng = random.Random(1)
    assert next_delay(Outcome(Kind.RETRYABLE, "HTTP 429", 30.0), 1, Backoff(), rng) == 30.0
    assert 0.25 <= next_delay(Outcome(Kind.RETRYABLE, "HTTP 503"), 1, Backoff(), rng) <= 0.5


def test_it_gives_up_when_the_next_attempt_would_start_after_the_deadline():
    """The deadline counts from the first attempt; a wait that ends on it is still allowed."""
    assert not gives_up(NOW, NOW + 50, 10, give_up_after_s=60)
    assert gives_up(NOW, NOW + 50, 10.5, give_up_after_s=60)
    assert gives_up(NOW, NOW + 61, 0, give_up_after_s=60)


def test_the_token_bucket_allows_a_burst_then_the_rate():
    """Capacity sends at once, then one per 1/rate seconds; idle time refills only up to capacity."""
    bucket = TokenBucket(rate=2.0, capacity=2, now=NOW)
    for _ in range(2):
        assert bucket.wait_s(NOW) == 0
        bucket.take(NOW)
    assert bucket.wait_s(NOW) == pytest.approx(0.5)
    assert bucket.wait_s(NOW + 0.25) == pytest.approx(0.25)
    assert bucket.wait_s(NOW + 0.5) == 0
    bucket.take(NOW + 0.5)
    assert bucket.wait_s(NOW + 1000) == 0
    bucket.take(NOW + 1000)
    bucket.take(NOW + 1000)
    assert bucket.wait_s(NOW + 1000) == pytest.approx(0.5), "refilled to capacity, not beyond"
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0, capacity=1, now=NOW)
