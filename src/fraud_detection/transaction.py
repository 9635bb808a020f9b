"""The Transaction record: its fields, its JSON form on Kafka and its published JSON Schema.

``transaction.schema.json`` beside this module is the one source of truth for the fields; producers
in other languages validate against it. Encoding is hand-rolled because the generator formats tens
of thousands of records per second and ``json.dumps`` of a dict is the slowest step.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from json.encoder import encode_basestring_ascii as _quote
from typing import NamedTuple

from fraud_detection.iso_time import parse_iso

SCHEMA: dict = json.loads(resources.files(__package__).joinpath("transaction.schema.json").read_text())
FIELDS: tuple[str, ...] = tuple(SCHEMA["properties"])
CHANNELS: tuple[str, ...] = tuple(SCHEMA["properties"]["channel"]["enum"])
SCHEMA_VERSION: int = SCHEMA["properties"]["schema_version"]["const"]
MAX_AMOUNT: float = SCHEMA["properties"]["amount"]["maximum"]
# The ids that become state keys and alert columns: one limit, the schema's, which the detector's parser
# enforces (RecordParser's maxIdLength, passed from here).
ID_FIELDS = ("transaction_id", "card_id")
MAX_ID_LENGTH: int = SCHEMA["properties"]["transaction_id"]["maxLength"]


class Transaction(NamedTuple):
    """One card transaction, the row every producer hands the publisher (fields in the schema's order;
    ``schema_version`` is always ``SCHEMA_VERSION`` and is added on encoding)."""

    transaction_id: str
    card_id: str
    amount_cents: int
    currency: str
    merchant_id: str
    merchant_category: str
    country: str
    channel: str
    event_time_ms: int

    def to_json(self) -> bytes:
        return encode(*self)

    @classmethod
    def from_json(cls, payload: bytes | str) -> Transaction:
        """Decode a well-formed record of this schema version (tests and tools; the detector parses in Spark)."""
        doc = json.loads(payload)
        if doc["schema_version"] != SCHEMA_VERSION:
            raise ValueError(f"schema_version {doc['schema_version']!r} is not {SCHEMA_VERSION}")
        return cls(
            transaction_id=doc["transaction_id"], card_id=doc["card_id"],
            amount_cents=round(doc["amount"] * 100), currency=doc["currency"],
            merchant_id=doc["merchant_id"], merchant_category=doc["merchant_category"],
            country=doc["country"], channel=doc["channel"], event_time_ms=parse_event_time(doc["event_time"]),
        )


def encode(
    transaction_id: str, card_id: str, amount_cents: int, currency: str, merchant_id: str,
    merchant_category: str, country: str, channel: str, event_time_ms: int,
) -> bytes:
    """The record's JSON bytes; field order follows the schema."""
    return (
        f'{{"transaction_id":{_quote(transaction_id)},"card_id":{_quote(card_id)},'
        f'"amount":{amount_cents // 100}.{amount_cents % 100:02d},"currency":{_quote(currency)},'
        f'"merchant_id":{_quote(merchant_id)},"merchant_category":{_quote(merchant_category)},'
        f'"country":{_quote(country)},"channel":{_quote(channel)},'
        f'"event_time":"{format_event_time(event_time_ms)}","schema_version":{SCHEMA_VERSION}}}'
    ).encode()


def format_event_time(epoch_ms: int) -> str:
    """UTC ISO-8601 with milliseconds and a ``Z``: ``2026-11-28T14:07:00.123Z``."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_second_prefix(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _second_prefix(epoch_seconds: int) -> str:
    # Many records share a second at high rates, so the costly strftime runs once per second.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_seconds))


def parse_event_time(text: str) -> int:
    """Epoch milliseconds of an ``event_time`` string (UTC, as formatted above)."""
    return (parse_iso(text) - _EPOCH) // _MILLISECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)
