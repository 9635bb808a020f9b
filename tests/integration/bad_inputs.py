"""The hostile-input corpus: one record per class, with what the detector must do with it.

``expected`` is a reason code (the record goes to rejected_transactions with it) or ``ACCEPTED`` (a
well-formed transaction whose oddity the rule does not care about: it is counted for its card).
The corpus is sent after a warm-up batch, so the watermark is set and an old event is ``late``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from fraud_detection.transaction import format_event_time

ACCEPTED = "accepted"


@dataclass(frozen=True)
class BadInput:
    name: str
    key: bytes | None
    value: bytes | None
    expected: str


def record(card: str, tid: str, time_ms: int, **changes) -> bytes:
    doc = {"transaction_id": tid, "card_id": card, "amount": 12.5, "currency": "EUR", "merchant_id": "m1",
           "merchant_category": "5411", "country": "DE", "channel": "pos", "event_time": format_event_time(time_ms),
           "schema_version": 1}
    doc.update(changes)
    for name in [k for k, v in changes.items() if v is DROP]:
        del doc[name]
    return json.dumps(doc, allow_nan=True).encode()


DROP = object()


def corpus(t0: int) -> list[BadInput]:
    """At least one record of every class in the issue, and a few more; ``t0`` is a current event time."""
    nested = b"[" * 2000 + b"]" * 2000  # deeper than the JSON parser's nesting limit, within the size limit
    sql = "'; DROP TABLE alerts; --"
    return [
        BadInput("random bytes", b"k", os.urandom(64).replace(b"{", b"x"), "invalid_json"),
        BadInput("empty value", b"k", b"", "invalid_json"),
        BadInput("null value (tombstone)", b"k", None, "invalid_json"),
        BadInput("1 MB payload", b"k", record("c", "big", t0, merchant_id="m" * 1_000_000), "oversized"),
        BadInput("deeply nested JSON", b"k", nested, "invalid_json"),
        BadInput("JSON array", b"k", b"[1, 2, 3]", "invalid_json"),
        BadInput("amount as text", b"k", record("c", "t1", t0, amount="12.50"), "bad_type"),
        BadInput("schema_version as text", b"k", record("c", "t2", t0, schema_version="one"), "bad_type"),
        BadInput("card id is an object", b"k", record({"pan": 1}, "t3", t0), "bad_id"),
        BadInput("empty card id", b"k", record("", "t4", t0), "bad_id"),
        BadInput("NUL in card id", b"k", record("ca\x00rd", "t5", t0), "bad_id"),
        BadInput("NaN amount", b"k", record("c", "t6", t0, amount=float("nan")), "non_finite_amount"),
        BadInput("Infinity amount", b"k", record("c", "t7", t0, amount=float("inf")), "non_finite_amount"),
        BadInput("negative amount", b"k", record("c", "t8", t0, amount=-3), "non_positive_amount"),
        BadInput("huge amount", b"k", record("c", "t9", t0, amount=1e12), "bad_amount"),
        BadInput("amount far below a cent", b"k", record("c", "t21", t0, amount=1e-9), "bad_amount"),
        BadInput("far-future time", b"k", record("c", "t10", t0, event_time="2999-01-01T00:00:00.000Z"),
                 "future_event_time"),
        BadInput("far-past time", b"k", record("c", "t11", t0, event_time="1971-01-01T00:00:00.000Z"), "late"),
        BadInput("time without zone", b"k", record("c", "t12", t0, event_time="2026-11-28 10:00:00"),
                 "bad_event_time"),
        BadInput("missing card id", b"k", record("c", "t13", t0, card_id=DROP), "missing_field"),
        BadInput("schema_version 2", b"k", record("c", "t14", t0, schema_version=2), "unsupported_schema_version"),
        BadInput("control characters in a detail", b"k", record("c", "t15", t0, event_time="\x00\x07\x1b[2J"),
                 "bad_event_time"),
        BadInput("unknown currency", b"k", record("odd-currency", "t16", t0, currency="ZZZ"), ACCEPTED),
        BadInput("SQL-looking card id", b"k", record(sql, "t17", t0), ACCEPTED),
        BadInput("control characters in merchant", b"k", record("c-ctl", "t18", t0, merchant_id="m\x00\x1b\n"),
                 ACCEPTED),
        BadInput("no Kafka key", None, record("keyless", "t19", t0), ACCEPTED),
        BadInput("unknown extra field", b"k", record("extra", "t20", t0, loyalty_tier="gold"), ACCEPTED),
    ]
