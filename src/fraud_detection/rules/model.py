"""A detection rule as data: what it groups by, what it aggregates over a trailing window, what it compares.

A rule version is immutable: a change is a new version with the event time from which it applies. Parsing
(`parse_rule`) is the one place a rule from a user, a file or the database is checked, and each error says
which field is wrong and what would be accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum

from fraud_detection.rules.velocity import DEFAULT_THRESHOLD, DEFAULT_WINDOW_MS
from fraud_detection.transaction import CHANNELS, FIELDS, MAX_AMOUNT

VELOCITY_RULE_ID = 1
# The widest window any rule may use: the detector keeps each key's transactions this long, so a new rule
# sees the history it needs as soon as it applies.
DEFAULT_MAX_WINDOW_MS = 24 * 3600 * 1000
# Fields a key or a distinct count may name, as the Transaction record carries them; a source with more
# (a device id, an IP address) passes its own list to `parse_rule`.
TRANSACTION_FIELDS = frozenset(FIELDS) - {"transaction_id", "amount", "event_time", "schema_version"}
_MCC = re.compile(r"^[0-9]{4}$")


class RuleError(ValueError):
    """A rule that cannot run, with the field and what to fix."""


class Status(str, Enum):
    ACTIVE = "active"  # alerts are stored, notified and shown
    SHADOW = "shadow"  # alerts are stored apart: what the rule would do, before it fires
    DISABLED = "disabled"  # raises nothing


class Function(str, Enum):
    COUNT = "count"
    SUM = "sum"  # of the amount, in currency units
    COUNT_DISTINCT = "count_distinct"


@dataclass(frozen=True, slots=True)
class Aggregate:
    function: Function
    field: str | None = None  # `amount` for sum, the counted field for count_distinct, None for count

    def __str__(self) -> str:
        return self.function.value if self.field is None else f"{self.function.value}({self.field})"


@dataclass(frozen=True, slots=True)
class Filter:
    """Which transactions the rule sees; an empty field admits everything."""

    channels: frozenset[str] = frozenset()
    merchant_categories: frozenset[str] = frozenset()
    min_amount_cents: int | None = None
    max_amount_cents: int | None = None

    def admits(self, channel: str, merchant_category: str, amount_cents: int) -> bool:
        return (
            (not self.channels or channel in self.channels)
            and (not self.merchant_categories or merchant_category in self.merchant_categories)
            and (self.min_amount_cents is None or amount_cents >= self.min_amount_cents)
            and (self.max_amount_cents is None or amount_cents <= self.max_amount_cents)
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """One version of a rule. A transaction at event time t triggers when `aggregate` over the key's admitted
    transactions in (t - window_ms, t] is `comparison` `limit` (sums compare in cents)."""

    rule_id: int
    version: int
    name: str
    status: Status
    key: str
    aggregate: Aggregate
    comparison: str  # ">" or ">="
    limit: Decimal
    window_ms: int
    filter: Filter = Filter()
    effective_from_ms: int = 0  # event time from which this version applies

    def triggers(self, value: int) -> bool:
        """Whether an aggregate value (a count, or a sum in cents) passes the comparison."""
        limit = self.limit * 100 if self.aggregate.function is Function.SUM else self.limit
        return value > limit if self.comparison == ">" else value >= limit


COMPARISONS = (">", ">=")
_AGGREGATE = re.compile(r"^(count|sum|count_distinct)(?:\((\w+)\))?$")
_REQUIRED = ("rule_id", "name", "key", "aggregate", "limit", "window_seconds")
_OPTIONAL = ("version", "status", "comparison", "filter", "effective_from_ms")
_FILTER_FIELDS = ("channels", "merchant_categories", "min_amount", "max_amount")


def velocity_rule(threshold: int = DEFAULT_THRESHOLD, window_ms: int = DEFAULT_WINDOW_MS) -> Rule:
    """Rule 1, present on a fresh database: more than `threshold` transactions of a card in the window."""
    return Rule(
        rule_id=VELOCITY_RULE_ID, version=1, name="card velocity", status=Status.ACTIVE, key="card_id",
        aggregate=Aggregate(Function.COUNT), comparison=">", limit=Decimal(threshold), window_ms=window_ms,
    )


def parse_rule(
    doc: Mapping[str, object],
    *,
    source_fields: Iterable[str] = TRANSACTION_FIELDS,
    max_window_ms: int = DEFAULT_MAX_WINDOW_MS,
) -> Rule:
    """A rule from its document form (`window_seconds`, amounts in currency units), or RuleError."""
    if not isinstance(doc, Mapping):
        raise RuleError(f"a rule is a mapping of {', '.join(_REQUIRED + _OPTIONAL)}, not {type(doc).__name__}")
    unknown = sorted(set(doc) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise RuleError(f"unknown field {unknown[0]!r} in the rule; known: {', '.join(_REQUIRED + _OPTIONAL)}")
    missing = [name for name in _REQUIRED if name not in doc]
    if missing:
        raise RuleError(f"the rule needs {missing[0]!r}")
    fields = frozenset(source_fields)
    aggregate = _parse_aggregate(doc["aggregate"], fields)
    return Rule(
        rule_id=_positive_int(doc["rule_id"], "rule_id"),
        version=_positive_int(doc.get("version", 1), "version"),
        name=_name(doc["name"]),
        status=_choice(doc.get("status", "active"), Status, "status"),
        key=_field(doc["key"], fields, "key"),
        aggregate=aggregate,
        comparison=_comparison(doc.get("comparison", ">")),
        limit=_limit(doc["limit"], aggregate),
        window_ms=_window_ms(doc["window_seconds"], max_window_ms),
        filter=_parse_filter(doc.get("filter") or {}),
        effective_from_ms=_int(doc.get("effective_from_ms", 0), "effective_from_ms"),
    )


def _parse_aggregate(value: object, fields: frozenset[str]) -> Aggregate:
    match = _AGGREGATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise RuleError(f"aggregate {value!r} is not count, sum(amount) or count_distinct(FIELD)")
    function, field = Function(match[1]), match[2]
    if function is Function.COUNT and field is not None:
        raise RuleError(f"aggregate {value!r}: count takes no field")
    if function is Function.SUM and field != "amount":
        raise RuleError(f"aggregate {value!r}: only sum(amount) is supported")
    if function is Function.COUNT_DISTINCT:
        if field is None:
            raise RuleError(f"aggregate {value!r}: count_distinct needs a field, e.g. count_distinct(country)")
        _field(field, fields, "aggregate")
    return Aggregate(function, field)


def _parse_filter(doc: object) -> Filter:
    if not isinstance(doc, Mapping):
        raise RuleError(f"filter must be a mapping of {', '.join(_FILTER_FIELDS)}")
    unknown = sorted(set(doc) - set(_FILTER_FIELDS))
    if unknown:
        raise RuleError(f"unknown filter field {unknown[0]!r}; known: {', '.join(_FILTER_FIELDS)}")
    channels = _string_set(doc.get("channels", ()), "filter.channels")
    if channels - set(CHANNELS):
        raise RuleError(f"filter.channels: {sorted(channels - set(CHANNELS))[0]!r} is not one of {', '.join(CHANNELS)}")
    categories = _string_set(doc.get("merchant_categories", ()), "filter.merchant_categories")
    bad = sorted(c for c in categories if not _MCC.match(c))
    if bad:
        raise RuleError(f"filter.merchant_categories: {bad[0]!r} is not a 4-digit merchant category code")
    low = _amount_cents(doc.get("min_amount"), "filter.min_amount")
    high = _amount_cents(doc.get("max_amount"), "filter.max_amount")
    if low is not None and high is not None and low > high:
        raise RuleError("filter.min_amount is above filter.max_amount")
    return Filter(channels, categories, low, high)


def _field(value: object, fields: frozenset[str], what: str) -> str:
    if not isinstance(value, str) or value not in fields:
        raise RuleError(f"{what}: the source has no field {value!r}; it has {', '.join(sorted(fields))}")
    return value


def _limit(value: object, aggregate: Aggregate) -> Decimal:
    try:
        limit = Decimal(str(value))
    except InvalidOperation:
        raise RuleError(f"limit {value!r} is not a number") from None
    if not limit.is_finite() or limit < 0:
        raise RuleError(f"limit {value!r} must be zero or more")
    if aggregate.function is Function.SUM:
        if limit != limit.quantize(Decimal("0.01")):
            raise RuleError(f"limit {value!r}: an amount has at most two decimals")
    elif limit != limit.to_integral_value():
        raise RuleError(f"limit {value!r}: a count is a whole number")
    return limit


def _window_ms(value: object, max_window_ms: int) -> int:
    seconds = _positive_int(value, "window_seconds")
    if seconds * 1000 > max_window_ms:
        raise RuleError(
            f"window_seconds {seconds} is above the maximum {max_window_ms // 1000} (the detector keeps each "
            "key's transactions that long; raise the maximum first)"
        )
    return seconds * 1000


def _amount_cents(value: object, what: str) -> int | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise RuleError(f"{what} {value!r} is not a number") from None
    if not amount.is_finite() or amount <= 0 or amount > Decimal(str(MAX_AMOUNT)):
        raise RuleError(f"{what} {value!r} must be above 0 and at most {MAX_AMOUNT:g}")
    if amount != amount.quantize(Decimal("0.01")):
        raise RuleError(f"{what} {value!r}: an amount has at most two decimals")
    return int(amount * 100)


def _string_set(value: object, what: str) -> frozenset[str]:
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(item, str) for item in value):
        raise RuleError(f"{what} must be a list of strings")
    return frozenset(value)


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise RuleError("name must be text of 1 to 100 characters")
    return value.strip()


def _comparison(value: object) -> str:
    if value not in COMPARISONS:
        raise RuleError(f"comparison {value!r} is not one of {', '.join(COMPARISONS)}")
    return value


def _choice(value: object, enum: type[Enum], what: str):
    try:
        return enum(value)
    except ValueError:
        raise RuleError(f"{what} {value!r} is not one of {', '.join(m.value for m in enum)}") from None


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(f"{what} {value!r} is not a whole number")
    return value


def _positive_int(value: object, what: str) -> int:
    if _int(value, what) < 1:
        raise RuleError(f"{what} must be 1 or more, not {value}")
    return value
