"""ISO timestamps parse the same on every Python the package claims (3.10 is run in CI: make test)."""

from datetime import datetime, timedelta, timezone

import pytest

from fraud_detection.iso_time import parse_iso

UTC = timezone.utc


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-28T14:07:00.123Z", datetime(2026, 11, 28, 14, 7, 0, 123_000, UTC)),
    ("2026-11-28T14:07:00Z", datetime(2026, 11, 28, 14, 7, tzinfo=UTC)),
    ("2026-11-28T14:07:00.5+01:00", datetime(2026, 11, 28, 14, 7, 0, 500_000, timezone(timedelta(hours=1)))),
    ("2026-11-28 14:07:00.123456-0230", datetime(2026, 11, 28, 14, 7, 0, 123_456,
                                                 timezone(-timedelta(hours=2, minutes=30)))),
    ("2019-01-01 00:00:18", datetime(2019, 1, 1, 0, 0, 18)),
    ("2019-01-01T00:00", datetime(2019, 1, 1)),
    ("2019-01-01", datetime(2019, 1, 1)),
])
def test_the_forms_inputs_use(text, expected):
    assert parse_iso(text) == expected
    assert parse_iso(text).tzinfo == expected.tzinfo


@pytest.mark.parametrize("text", ["", "yesterday", "2019-13-01", "2019-01-01T25:00", "2019-01-01T00:00:00.1234567",
                                  "20190101T000018"])
def test_anything_else_is_a_value_error(text):
    with pytest.raises(ValueError):
        parse_iso(text)
