from decimal import Decimal

import pytest

from fraud_detection.rules.model import (
    DEFAULT_MAX_WINDOW_MS,
    TRANSACTION_FIELDS,
    Aggregate,
    Filter,
    Function,
    RuleError,
    Status,
    parse_rule,
    velocity_rule,
)


def doc(**changes):
    base = {"rule_id": 2, "name": "many countries", "key": "card_id", "aggregate": "count_distinct(country)",
            "limit": 2, "window_seconds": 3600}
    return {**base, **changes}


def test_a_full_rule_parses():
    """Every field of the document form lands in the rule, amounts in cents and the window in milliseconds."""
    rule = parse_rule(doc(
        version=3, status="shadow", comparison=">=", effective_from_ms=1_000, aggregate="sum(amount)", limit="2500.50",
        filter={"channels": ["ecommerce"], "merchant_categories": ["5411"], "min_amount": 1, "max_amount": "999.99"},
    ))
    assert (rule.version, rule.status, rule.comparison, rule.window_ms) == (3, Status.SHADOW, ">=", 3_600_000)
    assert rule.aggregate == Aggregate(Function.SUM, "amount") and rule.limit == Decimal("2500.50")
    assert rule.filter == Filter(frozenset({"ecommerce"}), frozenset({"5411"}), 100, 99_999)
    assert rule.effective_from_ms == 1_000


def test_defaults_are_an_active_first_version_compared_with_more_than():
    """Version, status, comparison, filter and effective time are optional."""
    rule = parse_rule(doc())
    assert (rule.version, rule.status, rule.comparison, rule.filter, rule.effective_from_ms) == (
        1, Status.ACTIVE, ">", Filter(), 0)


def test_rule_one_is_todays_velocity_rule():
    """Rule 1 counts a card's transactions and alerts on more than the threshold in the window."""
    rule = velocity_rule(7, 60_000)
    assert (rule.rule_id, rule.key, str(rule.aggregate), rule.comparison, rule.limit, rule.window_ms) == (
        1, "card_id", "count", ">", 7, 60_000)
    assert not rule.triggers(7) and rule.triggers(8)


def test_a_sum_compares_cents_with_a_limit_in_currency_units():
    """sum(amount) > 100.00 triggers at 100.01, not at 100.00; >= triggers at 100.00."""
    rule = parse_rule(doc(aggregate="sum(amount)", limit=100))
    assert not rule.triggers(10_000) and rule.triggers(10_001)
    assert parse_rule(doc(aggregate="sum(amount)", limit=100, comparison=">=")).triggers(10_000)


@pytest.mark.parametrize(("changes", "message"), [
    ({"threshold": 5}, "unknown field 'threshold'"),
    ({"aggregate": "avg(amount)"}, "is not count, sum(amount) or count_distinct(FIELD)"),
    ({"aggregate": "count_distinct(device_id)"}, "the source has no field 'device_id'"),
    ({"aggregate": "count_distinct"}, "count_distinct needs a field"),
    ({"aggregate": "sum(merchant_id)"}, "only sum(amount)"),
    ({"aggregate": "count(card_id)"}, "count takes no field"),
    ({"key": "ip"}, "key: the source has no field 'ip'"),
    ({"window_seconds": 2 * 86_400}, "window_seconds 172800 is above the maximum 86400"),
    ({"window_seconds": 0}, "window_seconds must be 1 or more"),
    ({"limit": 2.5}, "a count is a whole number"),
    ({"limit": -1}, "must be zero or more"),
    ({"limit": "lots"}, "is not a number"),
    ({"aggregate": "sum(amount)", "limit": "1.001"}, "at most two decimals"),
    ({"status": "on"}, "status 'on' is not one of active, shadow, disabled"),
    ({"comparison": "<"}, "comparison '<' is not one of >, >="),
    ({"version": 0}, "version must be 1 or more"),
    ({"rule_id": True}, "rule_id True is not a whole number"),
    ({"name": " "}, "name must be text"),
    ({"filter": {"channel": ["pos"]}}, "unknown filter field 'channel'"),
    ({"filter": {"channels": ["phone"]}}, "'phone' is not one of pos, contactless, ecommerce, atm"),
    ({"filter": {"channels": "pos"}}, "filter.channels must be a list of strings"),
    ({"filter": {"channels": 5}}, "filter.channels must be a list of strings"),
    ({"filter": ["pos"]}, "filter must be a mapping"),
    ({"key": ["card_id"]}, "key: the source has no field \\['card_id'\\]"),
    ({"filter": {"merchant_categories": ["54"]}}, "'54' is not a 4-digit merchant category code"),
    ({"filter": {"min_amount": 10, "max_amount": 5}}, "min_amount is above filter.max_amount"),
    ({"filter": {"min_amount": 0}}, "must be above 0"),
])
def test_bad_rules_say_what_to_fix(changes, message):
    """Each invalid field is refused with the field's name and what would be accepted."""
    with pytest.raises(RuleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_rule(doc(**changes))


def test_a_rule_that_is_not_a_mapping_is_refused():
    """A list where a rule should be says what a rule is."""
    with pytest.raises(RuleError, match="a rule is a mapping of rule_id, name"):
        parse_rule(["rule_id", 2])


def test_a_missing_field_is_named():
    """A rule without a window says so."""
    without = doc()
    del without["window_seconds"]
    with pytest.raises(RuleError, match="needs 'window_seconds'"):
        parse_rule(without)


def test_a_source_with_more_fields_allows_them():
    """A source that carries a device id can key and count by it; the maximum window is a parameter."""
    fields = TRANSACTION_FIELDS | {"device_id"}
    rule = parse_rule(doc(key="device_id", aggregate="count_distinct(card_id)", window_seconds=2 * 86_400),
                      source_fields=fields, max_window_ms=2 * DEFAULT_MAX_WINDOW_MS)
    assert (rule.key, rule.aggregate.field, rule.window_ms) == ("device_id", "card_id", 2 * DEFAULT_MAX_WINDOW_MS)


@pytest.mark.parametrize(("channel", "mcc", "cents", "admitted"), [
    ("ecommerce", "5411", 500, True), ("pos", "5411", 500, False), ("ecommerce", "5999", 500, False),
    ("ecommerce", "5411", 99, False), ("ecommerce", "5411", 1_001, False), ("ecommerce", "5411", 1_000, True),
])
def test_filter_admits_within_every_bound(channel, mcc, cents, admitted):
    """Channels, categories and the amount range all apply; the amount bounds are inclusive."""
    rule_filter = Filter(frozenset({"ecommerce"}), frozenset({"5411"}), 100, 1_000)
    assert rule_filter.admits(channel, mcc, cents) is admitted
