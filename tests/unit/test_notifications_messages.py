"""What a destination receives: the parsed alert, Slack's text, the signed webhook request."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from fraud_detection.notifications import messages
from fraud_detection.notifications.messages import Alert, Rejected, parse_alert
from tests.charts.rendering import CHART

GRAFANA = "https://grafana.example.com/"


def alert_json(**changes) -> bytes:
    """An alert as the relay publishes it (PostgreSQL's to_json timestamps)."""
    data = {"alert_id": "a-1", "version": 2, "rule": "velocity", "card_id": "c<42>", "status": "open",
            "merged_into": None, "txn_count": 7, "amount_total": 1234.5,
            "first_event_time": "2025-11-24T16:00:00+00:00", "last_event_time": "2025-11-24T16:07:30.25+00:00",
            "trigger_transaction_id": "t-7", "trigger_event_time": "2025-11-24T16:05:00+00:00",
            "detected_at": "2025-11-24T16:07:31.123456+00:00", "schema_version": 1, **changes}
    return json.dumps(data).encode()


def parsed(**changes) -> Alert:
    alert = parse_alert(alert_json(**changes))
    assert isinstance(alert, Alert), alert
    return alert


def test_an_alert_parses_and_keeps_the_bytes_as_published():
    """The webhook body is the published JSON byte for byte; the idempotency key is alert_id:version."""
    raw = alert_json()
    alert = parse_alert(raw)
    assert isinstance(alert, Alert)
    assert (alert.alert_id, alert.version, alert.card_id, alert.txn_count) == ("a-1", 2, "c<42>", 7)
    assert alert.body is raw
    assert alert.idempotency_key == "a-1:2"


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "invalid_json"), (b"\xff\xfe", "invalid_json"), (b"[1, 2]", "invalid_json"), (None, "invalid_json"),
    (b'{"alert_id": "a"}', "missing_field"),
    (alert_json(version="2"), "bad_type"), (alert_json(txn_count=True), "bad_type"),
    (alert_json(amount_total="lots"), "bad_type"),
])
def test_a_message_that_is_not_an_alert_is_rejected_with_a_reason(raw, reason):
    """Bad input is data: a reason code, never an exception."""
    result = parse_alert(raw)
    assert isinstance(result, Rejected) and result.reason == reason


def test_slack_text_names_card_count_window_amount_rule_and_links_the_card_on_the_dashboard():
    """One line a reader can act on, with the dashboard filtered on the card (escaped for Slack)."""
    text = messages.slack_text(parsed(), GRAFANA)
    head = text[:text.index("<https")]
    assert "`c&lt;42&gt;`" in head and "<42>" not in head
    assert "7 transactions" in text and "1,234.50" in text and "velocity alert" in text
    assert "2025-11-24 16:00:00–16:07:30 UTC" in text
    assert "v2" in text and "merged" not in text
    link = text[text.index("<https") + 1:text.index("|Open in Grafana>")]
    url = urlsplit(link)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"https://grafana.example.com/d/{messages.DASHBOARD_UID}"
    query = parse_qs(url.query)
    assert query["var-card"] == ["c<42>"] and query["var-rule"] == ["velocity"]
    assert int(query["from"][0]) < 1_764_000_451_123 < int(query["to"][0])  # the detection time


def test_slack_text_says_what_a_merged_alert_joined_and_survives_odd_timestamps():
    """A merged version names the alert it joined; a timestamp it cannot read is shown as it came."""
    text = messages.slack_text(parsed(status="merged", merged_into="a-0", first_event_time="soon"), GRAFANA)
    assert "merged into `a-0`" in text and "soon" in text
    body = json.loads(messages.slack_body(parsed(), GRAFANA))
    assert set(body) == {"text"}


@pytest.mark.parametrize(("text", "iso"), [
    ("2025-11-24T16:07:30+00:00", "2025-11-24T16:07:30+00:00"),
    ("2025-11-24T16:07:30.5Z", "2025-11-24T16:07:30.500000+00:00"),
    ("2025-11-24T17:07:30.123+01:00", "2025-11-24T16:07:30.123000+00:00"),
])
def test_postgres_timestamps_parse_on_any_python(text, iso):
    """to_json's timestamps (variable fraction digits, Z or offsets) read as UTC instants."""
    assert messages.instant(text).isoformat() == iso


def test_the_dashboard_link_matches_the_dashboard():
    """The uid and the card variable the links use are the dashboard's, and its alert panels filter on it."""
    dashboard = json.loads((CHART / "dashboards" / "fraud-detection.json").read_text())
    assert dashboard["uid"] == messages.DASHBOARD_UID
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {messages.DASHBOARD_CARD_VARIABLE, "rule"} <= names
    filtered = [p["title"] for p in dashboard["panels"] for t in p.get("targets", []) if "'$card'" in t["rawSql"]]
    assert {"Newest alerts", "Top cards"} <= set(filtered)


def test_the_signature_is_an_hmac_of_timestamp_dot_body_that_receivers_can_verify():
    """sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>; a changed body, key or stale timestamp fails."""
    alert, secret, ts = parsed(), b"0123456789abcdef", 1_764_000_000
    headers = messages.webhook_headers(alert, secret, ts)
    expected = hmac.new(secret, f"{ts}.".encode() + alert.body, hashlib.sha256).hexdigest()
    assert headers[messages.SIGNATURE_HEADER] == f"sha256={expected}"
    assert headers[messages.TIMESTAMP_HEADER] == str(ts)
    assert headers[messages.IDEMPOTENCY_HEADER] == "a-1:2"
    sig = headers[messages.SIGNATURE_HEADER]
    assert messages.verify_signature(secret, str(ts), alert.body, sig, now=ts + 10)
    assert not messages.verify_signature(secret, str(ts), alert.body + b" ", sig, now=ts + 10)
    assert not messages.verify_signature(b"another key, long", str(ts), alert.body, sig, now=ts + 10)
    assert not messages.verify_signature(secret, str(ts), alert.body, sig, now=ts + 301)
    assert not messages.verify_signature(secret, "yesterday", alert.body, sig, now=ts)
