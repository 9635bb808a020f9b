"""The ``fraud-detection`` command: one entry point, a subcommand per job.

Wrong arguments exit 2 with argparse's message; a bad setting exits 2 naming the variable; an
unreachable service exits 1 with what to start.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fraud_detection import __version__
from fraud_detection.generator.replay import ReplayError
from fraud_detection.settings import Settings, SettingsError, load_settings

log = logging.getLogger("fraud_detection")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("pgserver", "py4j", "stamina"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _speed(text: str) -> float | None:
    return None if text == "max" else _positive_float(text)


def _start_time(text: str) -> int:
    from fraud_detection.generator.replay import time_parser

    try:
        return time_parser("auto")(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither epoch seconds nor an ISO-8601 time") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraud-detection",
        description="Real-time card-fraud (velocity attack) detection. Settings come from FRAUD_* "
                    "environment variables (see the README); flags override them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="send simulated card traffic with injected attacks to Kafka",
                         description="Send simulated card traffic with velocity attacks and decoys to Kafka; "
                                     "record what was injected in PostgreSQL (injected_attacks).")
    gen.add_argument("--rate", type=_positive_float, help="transactions per second (FRAUD_GENERATOR__RATE)")
    stop = gen.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=_positive_float, metavar="SECONDS", help="stop after this many seconds")
    stop.add_argument("--count", type=_positive_int, help="stop once this many transactions are sent")
    gen.add_argument("--seed", type=int, help="seed for a reproducible stream (FRAUD_GENERATOR__SEED)")
    gen.add_argument("--population", type=_positive_int, help="cards in this replica's space")
    gen.add_argument("--card-space", help="card-id prefix owned by this replica, [a-z0-9]{1,12}")
    gen.add_argument("--attack-interval", type=_positive_float, metavar="SECONDS",
                     help="mean event-time seconds between attacks (default 20)")
    gen.add_argument("--clock-speed", type=_positive_float, metavar="FACTOR",
                     help="simulated clock: event-time seconds per wall second (default 1 = real time)")
    gen.add_argument("--start-time", type=_start_time, metavar="TIME",
                     help="event time of the first slice (epoch seconds or ISO-8601; default now)")
    gen.add_argument("--no-ground-truth", action="store_true",
                     help="do not write injected_attacks (no database needed), e.g. for benchmarks")

    rep = sub.add_parser("replay", help="replay a labelled CSV (or .csv.gz) into Kafka in time order",
                         description="Replay a CSV data set into Kafka in event-time order. Bad rows are "
                                     "reported with their line numbers; fraud labels become ground truth.")
    rep.add_argument("file", type=Path, help="CSV file with a header row; gzip is detected")
    rep.add_argument("--map", dest="mapping", metavar="KEY=COLUMN,...",
                     help="columns for card, time, amount, id, label, merchant, category, country, channel, "
                          "currency (defaults: card=card_id,time=event_time,amount=amount,id=transaction_id)")
    rep.add_argument("--time-format", default="auto",
                     help="auto (default), epoch, epoch_ms, iso, or a strptime pattern")
    rep.add_argument("--speed", type=_speed, default=None, metavar="FACTOR|max",
                     help="replay FACTOR times faster than the data's own clock; max (default) = at once")
    rep.add_argument("--currency", default="USD", help="currency when the file has no currency column")
    rep.add_argument("--rejects", type=Path, metavar="FILE", help="also write the bad rows to this CSV")
    rep.add_argument("--no-ground-truth", action="store_true", help="do not record the labels")

    det = sub.add_parser("detect", help="run the Spark streaming detector (Kafka -> alerts in PostgreSQL)",
                         description="Run the velocity detector: a Spark Structured Streaming query from the "
                                     "Kafka topic to PostgreSQL (alerts, rejected_transactions, "
                                     "pipeline_metrics). Resumes from its checkpoint; SIGTERM stops it cleanly.")
    det.add_argument("--starting-offsets", choices=("earliest", "latest"),
                     help="where a new checkpoint starts reading (FRAUD_DETECTOR__STARTING_OFFSETS)")
    det.add_argument("--trigger-interval", type=float, metavar="SECONDS",
                     help="seconds between micro-batches, 0 = back to back (FRAUD_DETECTOR__TRIGGER_INTERVAL)")
    det.add_argument("--checkpoint-dir", help="checkpoint path or URL (FRAUD_DETECTOR__CHECKPOINT_DIR)")
    det.add_argument("--until-drained", action="store_true",
                     help="process what the topic holds now, then exit (backfills, tests)")

    db = sub.add_parser("db", help="database tasks", description="Database tasks.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="TASK")
    db_sub.add_parser("migrate", help="apply pending schema migrations (idempotent)",
                      description="Apply the SQL migrations not yet recorded in schema_migrations.")

    evl = sub.add_parser("evaluate", help="detection quality: ground truth vs alerts (recall, precision, delays)",
                         description="Join the ground truth (injected_attacks: generator runs or a replayed CSV's "
                                     "labels) with the live alerts over an event-time range: recall, precision, "
                                     "detection delay percentiles, missed attacks and false alerts.")
    evl.add_argument("--since", type=_start_time, metavar="TIME",
                     help="first event time to include (epoch seconds or ISO-8601; default: all)")
    evl.add_argument("--until", type=_start_time, metavar="TIME", help="event time to stop before (default: all)")
    evl.add_argument("--source", metavar="PREFIX",
                     help="ground truth whose source starts with PREFIX, e.g. generator: or replay:fraud.csv")
    evl.add_argument("--format", choices=("table", "json"), default="table", help="stdout format (default table)")
    evl.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report with plots")

    sub.add_parser("grafana", help="a local Grafana on 127.0.0.1:3000 with the repository's dashboards (make grafana)",
                   description="Start a local Grafana (a `grafana` binary on PATH) with the repository's "
                               "provisioning: the PostgreSQL datasource of `make run` (or FRAUD_DATABASE_URL) "
                               "and the dashboards in charts/fraud-detection/dashboards.")

    chk = sub.add_parser("check", help="health checks for probes and `helm test`",
                         description="Check the services this deployment needs; exit 1 naming the first failure.")
    chk.add_argument("--postgres", action="store_true", help="PostgreSQL answers and every migration is applied")
    chk.add_argument("--kafka", action="store_true", help="Kafka answers and the transactions topic exists")
    chk.add_argument("--heartbeat", type=Path, metavar="FILE", help="FILE was touched within --max-age seconds")
    chk.add_argument("--max-age", type=_positive_float, default=30.0, metavar="SECONDS",
                     help="oldest acceptable heartbeat (default 30)")

    topic = sub.add_parser("create-topic", help="create the transactions topic (FRAUD_KAFKA__*)",
                           description="Create the transactions topic with FRAUD_KAFKA__PARTITIONS partitions.")
    topic.add_argument("--partitions", type=_positive_int)

    run = sub.add_parser("run", help="run the whole pipeline locally (make run)",
                         description="Start a local Kafka broker and PostgreSQL, migrate, create the topic, "
                                     "run the detector and the generator, and show the newest alerts and "
                                     "detection totals until Ctrl-C.")
    run.add_argument("--rate", type=_positive_float, help="generator transactions per second")
    run.add_argument("--clock-speed", type=_positive_float, metavar="FACTOR",
                     help="simulated clock for the generator (default 1 = real time)")
    run.add_argument("--duration", type=_positive_float, metavar="SECONDS", help="stop after this long")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(generator=_overrides(args, GENERATOR_FLAGS), detector=_overrides(args, DETECTOR_FLAGS))
    except SettingsError as err:
        print(f"fraud-detection: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        return COMMANDS[args.command](args, settings)
    except SettingsError as err:
        print(f"fraud-detection: {err}", file=sys.stderr)
        return 2
    except ReplayError as err:  # the file or --map/--time-format cannot work: an argument error
        print(f"fraud-detection replay: {err}", file=sys.stderr)
        return 2
    except (ConnectionError, LookupError, OSError, RuntimeError, ValueError) as err:
        log.error("event=failed command=%s error=%s", args.command, err)
        return 1


# Flags that override a settings group, by the group's field names.
GENERATOR_FLAGS = ("rate", "seed", "population", "card_space", "attack_interval", "clock_speed")
DETECTOR_FLAGS = ("starting_offsets", "trigger_interval", "checkpoint_dir")


def _overrides(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The given flags that the command has and the user set."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _detect(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.detector.job import run_detector
    from fraud_detection.shutdown import StopFlag

    return run_detector(settings, StopFlag().install(), available_now=args.until_drained)


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.generator.generate import generate
    from fraud_detection.shutdown import StopFlag

    summary = generate(
        settings, duration_s=args.duration, count=args.count, start_ms=args.start_time,
        record_truth=not args.no_ground_truth, stop=StopFlag().install(),
    )
    return 0 if summary.delivery.failed == 0 and summary.delivery.undelivered == 0 else 1


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.generator import replay
    from fraud_detection.generator.publish import Progress, Publisher, check_topic
    from fraud_detection.shutdown import StopFlag
    from fraud_detection.storage import postgres

    parsed = replay.read_csv(args.file, replay.parse_mapping(args.mapping), time_format=args.time_format,
                             currency=args.currency)
    if parsed.bad:
        shown = ", ".join(f"line {b.line}: {b.reason}" for b in parsed.bad[:10])
        more = f" and {len(parsed.bad) - 10} more" if len(parsed.bad) > 10 else ""
        log.warning("event=replay_bad_rows count=%d %s%s", len(parsed.bad), shown, more)
    if args.rejects:
        _write_rejects(args.rejects, parsed.bad)
    check_topic(settings.kafka)
    truth_url = None if args.no_ground_truth else settings.require_database_url()
    publisher = Publisher(settings.kafka)
    stop = StopFlag().install()
    progress = Progress(lambda: f"replay {args.file.name}: sent {publisher.report.produced:,}/{len(parsed.rows):,}")
    sent = replay.send(publisher, parsed, speed=args.speed, stop=stop, progress=progress)
    delivery = publisher.close()
    progress.done()
    episodes = parsed.ground_truth() if truth_url else []
    if truth_url and episodes:
        with postgres.connection(truth_url) as conn:
            postgres.record_ground_truth(conn, f"replay:{args.file.name}", episodes)
    log.info("event=replay_done file=%s rows=%d sent=%d bad_rows=%d delivered=%d failed=%d labelled_episodes=%d",
             args.file, len(parsed.rows), sent, len(parsed.bad), delivery.delivered, delivery.failed, len(episodes))
    return 0 if delivery.failed == 0 and delivery.undelivered == 0 and sent == len(parsed.rows) else 1


def _write_rejects(path: Path, bad) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "reason", "detail"])
        writer.writerows((b.line, b.reason, b.detail) for b in bad)


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.storage import postgres

    applied = postgres.migrate(settings.require_database_url())
    log.info("event=migrate_done applied=%d", len(applied))
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime, timezone

    from fraud_detection.evaluation import quality, report
    from fraud_detection.storage import postgres, reports

    def moment(epoch_ms: int | None):
        return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)

    if args.since is not None and args.until is not None and args.until <= args.since:
        print("fraud-detection evaluate: --until must be after --since", file=sys.stderr)
        return 2
    with postgres.connection(settings.require_database_url()) as conn:
        truth, alerts = reports.evaluation_rows(conn, moment(args.since), moment(args.until), args.source)
    evaluation = quality.evaluate([quality.Truth(*row) for row in truth], [quality.AlertRecord(*row) for row in alerts])
    print(report.to_json(evaluation) if args.format == "json" else report.to_table(evaluation))
    if args.html:
        args.html.write_text(report.to_html(evaluation), encoding="utf-8")
        log.info("event=evaluation_report file=%s", args.html)
    return 0


def _grafana(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.local_stack.grafana import find_grafana, run_grafana
    from fraud_detection.local_stack.run import DATABASE_URL_FILE

    find_grafana()  # first: without Grafana nothing else matters, and the message says what to install
    url_file = settings.local.dir / DATABASE_URL_FILE
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    elif url_file.exists():
        url = url_file.read_text().strip()
    else:
        raise ConnectionError("no database: start `make run` first (its embedded PostgreSQL) "
                              "or set FRAUD_DATABASE_URL")
    return run_grafana(url, settings.local.dir / "grafana")


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
        from fraud_detection.storage import postgres

        pending = postgres.pending_migrations(settings.require_database_url())
        if pending:
            raise RuntimeError(f"{len(pending)} migration(s) not applied, first {pending[0].version}: "
                               "run `fraud-detection db migrate`")
    if args.kafka:
        from fraud_detection.generator.publish import check_topic

        partitions = check_topic(settings.kafka)
        log.info("event=check_kafka topic=%s partitions=%d", settings.kafka.topic, partitions)
    log.info("event=check_ok postgres=%s kafka=%s heartbeat=%s", args.postgres, args.kafka, bool(args.heartbeat))
    return 0


def _create_topic(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.local_stack.kafka import create_topic

    create_topic(settings.kafka.client_config(), settings.kafka.topic, args.partitions or settings.kafka.partitions)
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from fraud_detection.local_stack.run import run_local

    return run_local(settings, duration_s=args.duration)


COMMANDS = {"generate": _generate, "replay": _replay, "detect": _detect, "evaluate": _evaluate, "db": _db,
            "check": _check, "create-topic": _create_topic, "run": _run, "grafana": _grafana}

if __name__ == "__main__":
    sys.exit(main())
