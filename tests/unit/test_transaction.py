import json
from decimal import Decimal

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraud_detection.transaction import (
    CHANNELS,
    FIELDS,
    ID_FIELDS,
    MAX_ID_LENGTH,
    SCHEMA,
    Transaction,
    format_event_time,
    parse_event_time,
)

# Exact decimals, as the schema's "multipleOf": 0.01 needs (with floats 0.07 / 0.01 != 7).
EXACT_SCHEMA = json.loads(json.dumps(SCHEMA), parse_float=Decimal)
VALIDATOR = jsonschema.Draft202012Validator(EXACT_SCHEMA, format_checker=jsonschema.FormatChecker())


def exact(payload):
    return json.loads(payload, parse_float=Decimal)

transactions = st.builds(
    Transaction,
    transaction_id=st.text(min_size=1, max_size=64),
    card_id=st.text(min_size=1, max_size=64),
    amount_cents=st.integers(1, 100_000_000),
    currency=st.from_regex(r"\A[A-Z]{3}\Z"),
    merchant_id=st.text(min_size=1, max_size=64),
    merchant_category=st.from_regex(r"\A[0-9]{4}\Z"),
    country=st.from_regex(r"\A[A-Z]{2}\Z"),
    channel=st.sampled_from(CHANNELS),
    event_time_ms=st.integers(0, 253402300799999),
)


def test_schema_is_a_valid_json_schema():
    """The published schema is itself valid Draft 2020-12."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert FIELDS[0] == "transaction_id" and "event_time" in FIELDS


@given(transactions)
def test_round_trip_and_schema(tx):
    """Any record encodes to JSON that the schema accepts and decodes to the same record."""
    payload = tx.to_json()
    VALIDATOR.validate(exact(payload))
    assert Transaction.from_json(payload) == tx


def test_encoding_is_plain_json_with_schema_field_order():
    """The wire form is the documented JSON, fields in schema order, amount with two decimals."""
    tx = Transaction("t-1", 'card "x"', 1205, "EUR", "m1", "5411", "DE", "pos", 1764338820007)
    doc = json.loads(tx.to_json())
    assert list(doc) == list(FIELDS)
    assert doc["amount"] == 12.05 and doc["card_id"] == 'card "x"'
    assert doc["event_time"] == "2025-11-28T14:07:00.007Z" and doc["schema_version"] == 1


@pytest.mark.parametrize("bad", [
    {"amount": 0}, {"amount": -1.5}, {"amount": 1.234}, {"currency": "eur"}, {"channel": "phone"},
    {"event_time": "2025-11-28 14:07:00"}, {"schema_version": 2}, {"extra": 1},
])
def test_schema_rejects_bad_records(bad):
    """The schema rejects what the detector rejects: non-positive or sub-cent amounts, bad codes."""
    doc = exact(Transaction("t", "c", 100, "EUR", "m", "5411", "DE", "pos", 0).to_json())
    doc.update(json.loads(json.dumps(bad), parse_float=Decimal))
    assert not VALIDATOR.is_valid(doc)


@given(st.integers(-10**12, 253402300799999))
def test_event_time_round_trip(ms):
    """Formatting and parsing event times is exact to the millisecond, before 1970 too."""
    assert parse_event_time(format_event_time(ms)) == ms


def test_the_ids_the_parser_checks_have_one_length_limit_the_schemas():
    """The schema states each id's maxLength; the parser gets one limit (MAX_ID_LENGTH): they must agree."""
    assert {SCHEMA["properties"][name]["maxLength"] for name in ID_FIELDS} == {MAX_ID_LENGTH}
