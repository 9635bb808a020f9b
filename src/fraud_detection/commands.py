"""What each ``fraud-detection`` subcommand does, given its parsed arguments and the settings.

Each returns the exit code; imports are local so a command loads only what it uses (the generator's
image has no PySpark).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta
from pathlib import Path

from fraud_detection.settings import Settings

log = logging.getLogger("fraud_detection")


def _detect(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.detector.job import run_detector
    from fraud_detection.shutdown import StopFlag

    return run_detector(settings, StopFlag().install(), available_now=args.until_drained)


def _relay(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.alerting.relay import run_relay
    from fraud_detection.shutdown import StopFlag

    return run_relay(settings, StopFlag().install())


def _notify(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.notifications.notifier import run_notify
    from fraud_detection.shutdown import StopFlag

    return run_notify(settings, StopFlag().install())


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.generator.generate import generate
    from fraud_detection.shutdown import StopFlag

    summary = generate(
        settings, duration_s=args.duration, count=args.count, start_ms=args.start_time,
        record_truth=not args.no_ground_truth, stop=StopFlag().install(),
    )
    return 0 if summary.delivery.failed == 0 and summary.delivery.undelivered == 0 else 1


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.display import Progress
    from fraud_detection.generator import replay
    from fraud_detection.generator.publish import Publisher
    from fraud_detection.ground_truth import episodes_from_labels
    from fraud_detection.kafka_clients import check_topic
    from fraud_detection.shutdown import StopFlag
    from fraud_detection.storage.postgres import GroundTruthRecorder

    try:
        parsed = replay.read_csv(args.file, replay.parse_mapping(args.mapping), time_format=args.time_format,
                                 currency=args.currency)
    except replay.ReplayError as err:  # the file or --map/--time-format cannot work: an argument error
        print(f"fraud-detection replay: {err}", file=sys.stderr)
        return 2
    if parsed.bad:
        shown = ", ".join(f"line {b.line}: {b.reason}" for b in parsed.bad[:10])
        more = f" and {len(parsed.bad) - 10} more" if len(parsed.bad) > 10 else ""
        log.warning("event=replay_bad_rows count=%d %s%s", len(parsed.bad), shown, more)
    if args.rejects:
        _write_rejects(args.rejects, parsed.bad)
    check_topic(settings.kafka)
    recorder = None if args.no_ground_truth else GroundTruthRecorder(settings.require_database_url(),
                                                                       f"replay:{args.file.name}")
    publisher = Publisher(settings.kafka)
    progress = Progress(lambda: f"replay {args.file.name}: sent {publisher.report.produced:,}/{len(parsed.rows):,}")
    sent = replay.send(publisher, parsed, speed=args.speed, stop=StopFlag().install(), progress=progress,
                       barrier_ms=max(1, settings.detector.allowed_lateness * 1000))
    delivery = publisher.close()
    progress.done()
    episodes = episodes_from_labels(parsed.fraud_swipes(), settings.rule.window_ms)
    lost = 0
    if recorder is not None:
        recorder.record(episodes)
        lost = recorder.close(timeout_s=60)
    log.info("event=replay_done file=%s rows=%d sent=%d bad_rows=%d delivered=%d failed=%d labelled_episodes=%d",
             args.file, len(parsed.rows), sent, len(parsed.bad), delivery.delivered, delivery.failed, len(episodes))
    return 0 if delivery.failed == 0 and delivery.undelivered == 0 and sent == len(parsed.rows) and not lost else 1


def _write_rejects(path: Path, bad) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "reason", "detail"])
        writer.writerows((b.line, b.reason, b.detail) for b in bad)


def _alerts(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.storage import postgres
    from fraud_detection.triage import status, store, table

    if args.alerts_command == "list":
        wanted = None if args.status == "all" else status.Status(args.status)
        with postgres.connection(settings.require_reader_url()) as conn:
            listed, now = store.list_alerts(conn, wanted, args.card, args.limit)
        print(table.render(listed, now))
        return 0
    url = settings.require_database_url()
    name = f"fraud-detection alerts {args.alerts_command}"
    by = args.by or _os_user()
    if by is None:
        print(f"{name}: cannot tell who you are: give --by NAME", file=sys.stderr)
        return 2
    to = status.Status.ACKNOWLEDGED if args.alerts_command == "ack" else status.Status.RESOLVED
    with postgres.connection(url) as conn:
        try:
            done = store.change_status(conn, args.alert_id, to, by, args.note)
        except (store.UnknownAlertError, status.TransitionError) as err:
            print(f"{name}: {err.args[0]}", file=sys.stderr)
            return 1
    print(f"alert {done.alert_id}: {done.from_status.value} -> {done.to_status.value} by {done.changed_by} "
          f"at {status.moment(done.changed_at)}")
    return 0


def _os_user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment nor in the password database
        return None


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.storage import schema

    if args.db_command == "prune":
        from fraud_detection.storage import retention

        url = settings.require_database_url()
        if schema.pending_migrations(url):
            raise RuntimeError("the schema is not current: run `fraud-detection db migrate` first")
        deleted = retention.prune_history(url, timedelta(days=args.keep_days))
        log.info("event=prune_done keep_days=%d %s", args.keep_days, " ".join(f"{k}={v}" for k, v in deleted.items()))
        return 0
    applied = schema.migrate(settings.require_database_url())
    log.info("event=migrate_done applied=%d", len(applied))
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.evaluation import quality, report
    from fraud_detection.storage import postgres, reports

    def moment(epoch_ms: int | None):
        return None if epoch_ms is None else postgres.utc(epoch_ms)

    if args.since is not None and args.until is not None and args.until <= args.since:
        print("fraud-detection evaluate: --until must be after --since", file=sys.stderr)
        return 2
    with postgres.connection(settings.require_reader_url()) as conn:
        truth, alerts = reports.evaluation_rows(conn, moment(args.since), moment(args.until), args.source)
        rejected = reports.rejected_by_card(conn, sorted({row["card_id"] for row in truth}))
    evaluation = quality.evaluate([quality.Truth(**row) for row in truth],
                                  [quality.AlertRecord(**row) for row in alerts],
                                  settings.rule.threshold, settings.rule.window_ms, rejected)
    print(report.to_json(evaluation) if args.format == "json" else report.to_table(evaluation))
    if args.html:
        args.html.write_text(report.to_html(evaluation), encoding="utf-8")
        log.info("event=evaluation_report file=%s", args.html)
    return 0


def _grafana(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.local_stack.grafana import find_grafana, run_grafana

    find_grafana()  # first: without Grafana nothing else matters, and the message says what to install
    return run_grafana(settings.require_reader_url(), settings.local.dir / "grafana")


def _check(args: argparse.Namespace, settings: Settings) -> int:
    if not (args.postgres or args.kafka or args.heartbeat):
        print("fraud-detection check: name what to check: --postgres, --kafka and/or --heartbeat FILE", file=sys.stderr)
        return 2
    if args.heartbeat:
        from fraud_detection.heartbeat import age_s

        try:
            age = age_s(args.heartbeat)
        except FileNotFoundError:
            raise RuntimeError(f"no heartbeat yet at {args.heartbeat}") from None
        if age > args.max_age:
            raise RuntimeError(f"heartbeat {args.heartbeat} is {age:.0f} s old (limit {args.max_age:g} s)")
    if args.postgres:
        from fraud_detection.storage import schema

        pending = schema.pending_migrations(settings.require_database_url())
        if pending:
            first = pending[0].version or pending[0].name
            raise RuntimeError(f"{len(pending)} migration(s) not applied, first {first}: "
                               "run `fraud-detection db migrate`")
    if args.kafka:
        from fraud_detection.kafka_clients import check_topic

        partitions = check_topic(settings.kafka)
        log.info("event=check_kafka topic=%s partitions=%d", settings.kafka.topic, partitions)
    log.info("event=check_ok postgres=%s kafka=%s heartbeat=%s", args.postgres, args.kafka, bool(args.heartbeat))
    return 0


def _create_topic(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.kafka_clients import client_config, create_topic

    for topic in (settings.kafka.topic, settings.kafka.alerts_topic):
        create_topic(client_config(settings.kafka), topic, args.partitions or settings.kafka.partitions)
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.local_stack.run import run_local

    return run_local(settings, duration_s=args.duration, generator=not args.no_generator)


COMMANDS = {"generate": _generate, "replay": _replay, "detect": _detect, "relay": _relay, "notify": _notify,
            "alerts": _alerts, "evaluate": _evaluate, "db": _db, "check": _check, "create-topic": _create_topic,
            "run": _run, "grafana": _grafana}
