"""What a destination receives for one alert version: the parsed alert, Slack's text, the webhook's body,
its idempotency key and HMAC signature. Pure: no I/O, no clock (callers pass the time).

The webhook body is the alert's JSON exactly as the relay published it (alert.schema.json), so a receiver
validates it with the same schema as any Kafka consumer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from fraud_detection.iso_time import parse_iso

# charts/fraud-detection/dashboards/fraud-detection.json; a unit test holds the two to each other.
DASHBOARD_UID = "fraud-detection"
DASHBOARD_CARD_VARIABLE = "card"
SIGNATURE_HEADER = "X-Fraud-Signature"
TIMESTAMP_HEADER = "X-Fraud-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_FIELDS = ("alert_id", "version", "rule", "card_id", "status", "txn_count", "amount_total",
           "first_event_time", "last_event_time", "detected_at")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert version off the alerts topic; ``body`` keeps the bytes as published."""

    alert_id: str
    version: int
    rule: str
    card_id: str
    status: str
    merged_into: str | None
    txn_count: int
    amount_total: float
    first_event_time: str
    last_event_time: str
    detected_at: str
    body: bytes

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt and every redelivery of this version, different for the next one."""
        return f"{self.alert_id}:{self.version}"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not an alert: kept with its reason so the caller can log its coordinates."""

    reason: str
    detail: str


def parse_alert(raw: bytes | None) -> Alert | Rejected:
    try:
        data = json.loads(raw or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return Rejected("invalid_json", str(err)[:200])
    if not isinstance(data, dict):
        return Rejected("invalid_json", "not a JSON object")
    missing = [name for name in _FIELDS if name not in data]
    if missing:
        return Rejected("missing_field", ", ".join(missing))
    try:
        return Alert(str(data["alert_id"]), _whole(data["version"]), str(data["rule"]), str(data["card_id"]),
                     str(data["status"]), data.get("merged_into"), _whole(data["txn_count"]),
                     float(data["amount_total"]), str(data["first_event_time"]), str(data["last_event_time"]),
                     str(data["detected_at"]), raw or b"")
    except (TypeError, ValueError) as err:
        return Rejected("bad_type", str(err)[:200])


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not a whole number")
    return value


def dashboard_url(grafana_url: str, alert: Alert) -> str:
    """The dashboard filtered on the alert's card and rule, over the hours around its detection (the alert
    panels filter on detection time, which a replayed data set's event times are far from)."""
    params: dict[str, str | int] = {f"var-{DASHBOARD_CARD_VARIABLE}": alert.card_id, "var-rule": alert.rule}
    detected = instant(alert.detected_at)
    if detected is not None:
        params |= {"from": _epoch_ms(detected - timedelta(hours=1)), "to": _epoch_ms(detected + timedelta(hours=1))}
    return f"{grafana_url.rstrip('/')}/d/{DASHBOARD_UID}?{urlencode(params)}"


def slack_text(alert: Alert, grafana_url: str) -> str:
    """One Slack mrkdwn line: card, count, window, amount, rule, link."""
    start, end = instant(alert.first_event_time), instant(alert.last_event_time)
    window = (f"{start:%Y-%m-%d %H:%M:%S}–{end:%H:%M:%S} UTC" if start and end
              else f"{alert.first_event_time} – {alert.last_event_time}")
    merged = f", merged into `{_escape(alert.merged_into or '?')}`" if alert.status == "merged" else ""
    return (f":rotating_light: *{_escape(alert.rule)} alert* on card `{_escape(alert.card_id)}`: "
            f"{alert.txn_count} transactions, {alert.amount_total:,.2f} in total, {window} "
            f"(alert `{_escape(alert.alert_id)}` v{alert.version}{merged}) "
            f"<{dashboard_url(grafana_url, alert)}|Open in Grafana>")


def slack_body(alert: Alert, grafana_url: str) -> bytes:
    return json.dumps({"text": slack_text(alert, grafana_url)}).encode()


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>``: the header value receivers recompute."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str, now: float,
                     tolerance_s: float = 300.0) -> bool:
    """What a receiver does: a fresh timestamp (no replays of old requests) and a matching signature."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), header)


def webhook_headers(alert: Alert, secret: bytes, timestamp: int) -> dict[str, str]:
    return {"Content-Type": "application/json", IDEMPOTENCY_HEADER: alert.idempotency_key,
            TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, alert.body)}


def instant(text: str) -> datetime | None:
    """PostgreSQL's JSON timestamps (any count of fraction digits, ``Z`` or an offset), in UTC; None if not one."""
    try:
        moment = parse_iso(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _escape(text: str) -> str:
    # Slack mrkdwn treats &, < and > as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
