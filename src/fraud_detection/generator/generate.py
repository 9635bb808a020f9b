"""``fraud-detection generate``: the traffic model, paced against the wall clock, into Kafka."""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass

from fraud_detection.display import Progress
from fraud_detection.generator.publish import DeliveryReport, Publisher
from fraud_detection.generator.simulate import TrafficModel
from fraud_detection.ground_truth import ATTACK
from fraud_detection.heartbeat import Heartbeat
from fraud_detection.kafka_clients import check_topic
from fraud_detection.settings import Settings, SettingsError
from fraud_detection.shutdown import StopFlag
from fraud_detection.storage.postgres import GroundTruthRecorder

log = logging.getLogger(__name__)

WALL_SLICE_S = 0.1  # event time is made in slices worth this much wall time


@dataclass(frozen=True)
class GeneratorSummary:
    card_space: str
    sent: int
    episodes: dict[str, int]
    delivery: DeliveryReport
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def card_space_for(settings: Settings) -> str:
    """This replica's card-id prefix: configured, derived from the seed, or random (disjoint replicas)."""
    g = settings.generator
    if g.card_space:
        return g.card_space
    return f"s{g.seed}" if g.seed is not None else secrets.token_hex(4)


def generate(
    settings: Settings,
    *,
    duration_s: float | None = None,
    count: int | None = None,
    start_ms: int | None = None,
    record_truth: bool = True,
    stop: StopFlag | None = None,
) -> GeneratorSummary:
    """Send traffic until ``duration_s`` (wall), ``count`` transactions (at a slice end) or ``stop``."""
    g = settings.generator
    stop = stop if stop is not None else StopFlag()
    space = card_space_for(settings)
    start_ms = start_ms if start_ms is not None else int(time.time() * 1000)
    try:
        model = TrafficModel(
            card_space=space, population=g.population,
            seed=g.seed if g.seed is not None else secrets.randbits(63), start_ms=start_ms,
            rate_per_second=g.rate / g.clock_speed, attack_interval_s=g.attack_interval,
            decoy_ratio=g.decoy_ratio, slice_ms=max(1, round(WALL_SLICE_S * g.clock_speed * 1000)),
            threshold=settings.rule.threshold, window_ms=settings.rule.window_ms,
        )
    except ValueError as err:  # the settings cannot work together, e.g. too few cards for the rate
        raise SettingsError(str(err)) from None
    check_topic(settings.kafka)
    recorder = GroundTruthRecorder(settings.require_database_url(), f"generator:{space}") if record_truth else None
    publisher = Publisher(settings.kafka)
    episodes: Counter[str] = Counter()
    sent = 0

    def record(found) -> None:
        episodes.update(e.kind for e in found)
        if recorder is not None and found:
            recorder.record(found)

    heartbeat = Heartbeat(g.heartbeat_file, status=lambda: {
        "sent": sent, "attacks_injected": model.injected[ATTACK],
        "attacks_in_progress": model.attacks_in_progress(),
    })
    progress = Progress(lambda: (
        f"generator {space}: sent {sent:,} ({sent / max(time.monotonic() - began, 1e-9):,.0f} tx/s), "
        f"attacks injected {model.injected[ATTACK]:,}, decoys {model.injected.total() - model.injected[ATTACK]:,}, "
        f"failed {publisher.report.failed:,}"
    ))
    log.info("event=generator_start card_space=%s rate=%g clock_speed=%g population=%d topic=%s",
             space, g.rate, g.clock_speed, g.population, settings.kafka.topic)
    began = time.monotonic()
    try:
        while not stop:
            heartbeat.beat()
            if duration_s is not None and time.monotonic() - began >= duration_s:
                break
            if count is not None and sent >= count:
                break
            # A slice goes out once the wall clock reaches its end, so event times never run ahead.
            due_s = (model.cursor_ms + model.slice_ms - start_ms) / 1000 / g.clock_speed
            delay = due_s - (time.monotonic() - began)
            if delay > 0:
                publisher.poll()
                if stop.wait(min(delay, 0.25)):
                    break
                continue
            batch = model.next_slice()
            sent += publisher.send_rows(batch.rows())
            record(batch.finished_episodes)
            progress.tick()
    finally:
        delivery = publisher.close()
        record(model.cut_open_episodes(model.cursor_ms))
        if recorder is not None:
            recorder.close()
        progress.done()
    summary = GeneratorSummary(space, sent, dict(episodes), delivery, time.monotonic() - began)
    log.info(
        "event=generator_stop card_space=%s sent=%d delivered=%d failed=%d undelivered=%d rate=%.0f episodes=%s",
        space, sent, delivery.delivered, delivery.failed, delivery.undelivered, summary.rate, dict(episodes),
    )
    return summary
