"""Where alerts go: an HTTP POST (Slack incoming webhook, the signed generic webhook) or an SNS publish.

Each ``send`` makes one attempt and returns an Outcome; retrying is the notifier's job. Errors are
described without the URL, which may carry a token.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from fraud_detection.notifications import messages
from fraud_detection.notifications.delivery_policy import Kind, Outcome, classify_status, parse_retry_after
from fraud_detection.notifications.messages import Alert
from fraud_detection.notifications.routing import Route
from fraud_detection.settings import NotifySettings, SettingsError

_MAX_RESPONSE_BYTES = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body and call it delivered.
    def redirect_request(self, *_args, **_kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float, now: Callable[[], float]) -> Outcome:
    """One POST, its response classified: 2xx delivered; 408, 429, 5xx and network failures retryable."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (http(s) only: settings)
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read(_MAX_RESPONSE_BYTES)
            return Outcome(classify_status(response.status), f"HTTP {response.status}")
    except urllib.error.HTTPError as err:
        with err:
            text = err.read(200).decode("utf-8", "replace").strip()
        detail = f"HTTP {err.code}" + (f": {text}" if text else "")
        return Outcome(classify_status(err.code), detail, parse_retry_after(err.headers.get("Retry-After"), now()))
    except urllib.error.URLError as err:  # refused, unresolvable, TLS; a timeout while connecting
        return Outcome(Kind.RETRYABLE, f"connection failed: {err.reason}")
    except (TimeoutError, ConnectionError, http.client.HTTPException) as err:  # read timeout, reset, bad reply
        return Outcome(Kind.RETRYABLE, f"{type(err).__name__}: {err}" if str(err) else type(err).__name__)


@dataclass
class Destination:
    """A named target; ``send`` attempts one delivery. The name (never the URL) identifies it in logs,
    in the database and in its Kafka consumer group."""

    name: str
    route: Route
    send: Callable[[Alert], Outcome] = field(repr=False)


def slack(url: str, grafana_url: str, timeout_s: float, route: Route) -> Destination:
    def send(alert: Alert) -> Outcome:
        headers = {"Content-Type": "application/json", messages.IDEMPOTENCY_HEADER: alert.idempotency_key}
        return post(url, messages.slack_body(alert, grafana_url), headers, timeout_s, time.time)

    return Destination("slack", route, send)


def webhook(url: str, secret: bytes, timeout_s: float, route: Route) -> Destination:
    def send(alert: Alert) -> Outcome:
        # A fresh timestamp per attempt: receivers reject old ones, so a captured request cannot be replayed.
        headers = messages.webhook_headers(alert, secret, int(time.time()))
        return post(url, alert.body, headers, timeout_s, time.time)

    return Destination("webhook", route, send)


def sns(topic_arn: str, region: str, endpoint_url: str | None, timeout_s: float, route: Route) -> Destination:
    """Publish the alert JSON to an SNS topic; FIFO topics deduplicate on the idempotency key."""
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError:
        raise SettingsError("FRAUD_NOTIFY__SNS_TOPIC_ARN needs boto3: pip install 'fraud-detection[sns]'") from None

    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        raise SettingsError("no AWS credentials for FRAUD_NOTIFY__SNS_TOPIC_ARN: set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role")
    # Our own retries with backoff and give-up apply; botocore's would hide attempts from them.
    config = botocore.config.Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                                    retries={"total_max_attempts": 1, "mode": "standard"})
    client = session.client("sns", endpoint_url=endpoint_url, config=config)
    fifo = topic_arn.endswith(".fifo")

    def send(alert: Alert) -> Outcome:
        request = {"TopicArn": topic_arn, "Message": alert.body.decode(), "MessageAttributes": _attributes(alert)}
        if fifo:  # only FIFO topics take these; a standard topic rejects them
            request |= {"MessageGroupId": alert.card_id, "MessageDeduplicationId": alert.idempotency_key}
        try:
            reply = client.publish(**request)
        except botocore.exceptions.ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
            code = err.response.get("Error", {}).get("Code", "")
            throttled = code in ("Throttling", "ThrottlingException", "ThrottledException")
            kind = Kind.RETRYABLE if throttled else classify_status(status)
            return Outcome(kind, f"SNS {status} {code}: {err.response.get('Error', {}).get('Message', '')}"[:300])
        except botocore.exceptions.ParamValidationError as err:
            return Outcome(Kind.PERMANENT, f"SNS refused the request: {err}"[:300])
        except botocore.exceptions.BotoCoreError as err:  # connect/read timeouts, dropped connections, credentials
            return Outcome(Kind.RETRYABLE, f"{type(err).__name__}: {err}"[:300])
        return Outcome(Kind.DELIVERED, f"SNS message {reply.get('MessageId', '?')}")

    return Destination("sns", route, send)


def _attributes(alert: Alert) -> dict[str, dict[str, str]]:
    """For subscription filter policies (e.g. only some rules to a pager) and deduplication downstream."""
    def text(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value}

    return {"rule": text(alert.rule), "card_id": text(alert.card_id), "status": text(alert.status),
            "idempotency_key": text(alert.idempotency_key),
            "txn_count": {"DataType": "Number", "StringValue": str(alert.txn_count)}}


def configured(notify: NotifySettings) -> list[Destination]:
    """The destinations the settings name, each with its route; empty when none is configured."""
    def route(own_min: int | None) -> Route:
        return Route(notify.rule_set, own_min or notify.min_count)

    found = []
    if notify.slack_webhook_url is not None:
        found.append(slack(notify.slack_webhook_url.get_secret_value(), notify.grafana_url, notify.timeout,
                           route(notify.slack_min_count)))
    if notify.webhook_url is not None and notify.webhook_secret is not None:
        found.append(webhook(notify.webhook_url.get_secret_value(), notify.webhook_secret.get_secret_value().encode(),
                             notify.timeout, route(notify.webhook_min_count)))
    if notify.sns_topic_arn is not None:
        region = notify.sns_region or notify.sns_topic_arn.split(":")[3]
        found.append(sns(notify.sns_topic_arn, region, notify.sns_endpoint_url, notify.timeout,
                         route(notify.sns_min_count)))
    return found
