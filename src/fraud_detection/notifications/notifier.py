"""``fraud-detection notify``: the alerts topic delivered to each configured destination.

Each destination has its own thread and its own Kafka consumer group (``fraud-detection-notify-<name>``),
so a slow or failing destination never holds up another. Within one destination the versions go out in
topic order (per card: version order), one at a time: a message's offset is committed only once it is
settled (delivered, failed for good, or not for this destination), so a restart resumes with the first
unsettled one. notification_deliveries is read before each send: a version a destination acknowledged is
never sent to it again. Between a 2xx and its row (a crash) the same version can go twice: it carries the
same Idempotency-Key both times.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message

from fraud_detection.kafka_clients import check_topic, client_config
from fraud_detection.notifications import ledger
from fraud_detection.notifications.delivery_policy import Backoff, Kind, TokenBucket, gives_up, next_delay
from fraud_detection.notifications.destinations import Destination, configured
from fraud_detection.notifications.messages import Alert, Rejected, parse_alert
from fraud_detection.notifications.routing import Decision, Status, decide
from fraud_detection.settings import ENV_PREFIX, NotifySettings, Settings, SettingsError
from fraud_detection.shutdown import StopFlag
from fraud_detection.storage import schema
from fraud_detection.storage.postgres import LazyConnection

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often an idle consumer looks at the stop flag
GROUP_PREFIX = "fraud-detection-notify-"


class Worker:
    """One destination: its consumer, its rate limit, its retries."""

    def __init__(self, destination: Destination, settings: Settings, stop: StopFlag,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.destination, self.stop, self.clock = destination, stop, clock
        self.notify: NotifySettings = settings.notify
        self.kafka, self.topic = settings.kafka, settings.kafka.alerts_topic
        self.db = LazyConnection(settings.require_database_url())
        self.bucket = TokenBucket(self.notify.rate_limit, max(1.0, self.notify.rate_limit), clock())
        self.backoff, self.rng = Backoff(), rng or random.Random()
        self.error: BaseException | None = None

    def run(self) -> None:
        """Deliver until stopped; an infrastructure failure is kept in ``error`` for the caller."""
        try:
            self._consume()
        except Exception as err:  # noqa: BLE001 - handed to the main thread, which stops every worker and exits 1
            self.error = err
            log.error("event=notify_worker_failed destination=%s error=%s", self.destination.name, err)
        finally:
            self.db.close()

    def _consume(self) -> None:
        name = self.destination.name
        # One message may take until the give-up deadline; the group must not evict the consumer meanwhile.
        busy_s = self.notify.give_up_after + 2 * self.notify.timeout + 1 / self.notify.rate_limit + 60
        consumer = Consumer({
            **client_config(self.kafka), "group.id": GROUP_PREFIX + name, "client.id": GROUP_PREFIX + name,
            "enable.auto.commit": False, "auto.offset.reset": self.notify.starting_offsets,
            "max.poll.interval.ms": int(busy_s * 1000),
            # A restarted notifier waits for the group to drop the dead one's member: 10 s, not 45 s.
            "session.timeout.ms": 10_000,
        }, logger=log)
        consumer.subscribe([self.topic])
        log.info("event=notify_destination_started destination=%s group=%s rules=%s min_count=%d", name,
                 GROUP_PREFIX + name, ",".join(sorted(self.destination.route.rules)) or "*",
                 self.destination.route.min_count)
        try:
            while not self.stop:
                message = consumer.poll(POLL_S)
                if message is None:
                    continue
                if message.error() is not None:
                    if message.error().fatal():
                        raise KafkaException(message.error())
                    log.warning("event=notify_kafka_error destination=%s error=%s", name, message.error())
                    continue
                if not self.settle(message):
                    break  # stopped mid-retry: uncommitted, so the next run starts with this message
                consumer.commit(message=message, asynchronous=False)
        finally:
            consumer.close()

    def settle(self, message: Message) -> bool:
        """Deliver, skip or give up on one message; False if stopped before it was settled."""
        name = self.destination.name
        alert = parse_alert(message.value())
        if isinstance(alert, Rejected):
            log.warning("event=notify_rejected destination=%s topic=%s partition=%d offset=%d reason=%s detail=%s",
                        name, message.topic(), message.partition(), message.offset(), alert.reason,
                        json.dumps(alert.detail))
            return True
        if not self.destination.route.accepts(alert):
            log.debug("event=notify_not_routed destination=%s alert_id=%s version=%d rule=%s txn_count=%d",
                      name, alert.alert_id, alert.version, alert.rule, alert.txn_count)
            return True
        decision = decide(alert.version, ledger.versions(self.db.get(), name, alert.alert_id))
        if decision is not Decision.SEND:
            self._log("skipped", alert, 0, decision.value)
            return True
        return self._deliver(alert)

    def _deliver(self, alert: Alert) -> bool:
        name, conn = self.destination.name, self.db.get()
        first_at, attempts = ledger.begin(conn, name, alert, self.clock())
        while True:
            if not self._take_token():
                return False
            outcome = self.destination.send(alert)
            attempts += 1
            now = self.clock()
            if outcome.kind is Kind.DELIVERED:
                ledger.settle(conn, name, alert, Status.DELIVERED, attempts, None, now)
                self._log("delivered", alert, attempts, outcome.detail)
                return True
            if outcome.kind is Kind.RETRYABLE:
                delay = next_delay(outcome, attempts, self.backoff, self.rng)
                if not gives_up(first_at, now, delay, self.notify.give_up_after):
                    ledger.attempted(conn, name, alert, attempts, outcome.detail, now)
                    self._log("retry", alert, attempts, outcome.detail, delay_s=delay)
                    if self.stop.wait(delay):
                        return False
                    continue
            ledger.settle(conn, name, alert, Status.FAILED, attempts, outcome.detail, now)
            self._log("failed", alert, attempts, outcome.detail, level=logging.WARNING)
            return True

    def _take_token(self) -> bool:
        while (wait := self.bucket.wait_s(self.clock())) > 0:
            if self.stop.wait(wait):
                return False
        self.bucket.take(self.clock())
        return True

    def _log(self, outcome: str, alert: Alert, attempts: int, detail: str, delay_s: float | None = None,
             level: int = logging.INFO) -> None:
        delay = "" if delay_s is None else f" retry_in_s={delay_s:.2f}"
        log.log(level, "event=notify_%s destination=%s alert_id=%s version=%d card=%s attempts=%d%s detail=%s",
                outcome, self.destination.name, alert.alert_id, alert.version, alert.card_id, attempts, delay,
                json.dumps(detail))


def run_notify(settings: Settings, stop: StopFlag) -> int:
    """Deliver until stopped; a Kafka or PostgreSQL failure in any destination stops all with an error."""
    if not settings.notify.has_destination:
        raise SettingsError(f"no destination to notify: set {ENV_PREFIX}NOTIFY__SLACK_WEBHOOK_URL, "
                            f"{ENV_PREFIX}NOTIFY__WEBHOOK_URL (with __WEBHOOK_SECRET) and/or "
                            f"{ENV_PREFIX}NOTIFY__SNS_TOPIC_ARN")
    destinations = configured(settings.notify)  # fails here on a destination that cannot work (SNS credentials)
    pending = schema.pending_migrations(settings.require_database_url())
    if pending:
        raise RuntimeError(f"{len(pending)} migration(s) not applied, first {pending[0].version}: "
                           "run `fraud-detection db migrate`")
    check_topic(settings.kafka, settings.kafka.alerts_topic)
    workers = [Worker(destination, settings, stop) for destination in destinations]
    threads = [threading.Thread(target=w.run, name=f"notify-{w.destination.name}", daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    log.info("event=notify_started topic=%s destinations=%s", settings.kafka.alerts_topic,
             ",".join(d.name for d in destinations))
    while not stop and all(thread.is_alive() for thread in threads):
        stop.wait(POLL_S)
    stop.set()  # one worker failed or a signal came: the others finish the request in flight and stop
    for thread in threads:
        thread.join()
    failed = [w for w in workers if w.error is not None]
    if failed:
        raise RuntimeError(f"destination {failed[0].destination.name}: {failed[0].error}")
    log.info("event=notify_stopped")
    return 0
