"""The ``fraud-detection`` command: one entry point, a subcommand per job (the jobs are in commands.py).

Wrong arguments exit 2 with argparse's message; a bad setting exits 2 naming the variable; an
unreachable service exits 1 with what to start.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fraud_detection import __version__
from fraud_detection.commands import COMMANDS
from fraud_detection.settings import SettingsError, load_settings
from fraud_detection.triage.status import Status

log = logging.getLogger("fraud_detection")


def configure_logging(level: str) -> None:
    """Our events at ``level``; other libraries' at WARNING (py4j, for one, logs a stack trace at INFO on the
    root logger whenever the JVM has gone, which is the normal end of a group-wide SIGTERM)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("fraud_detection").setLevel(level)


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
    for add in (_add_generate, _add_replay, _add_detect, _add_relay, _add_notify, _add_alerts, _add_db,
                _add_evaluate, _add_grafana, _add_check, _add_create_topic, _add_run):
        add(sub)
    return parser


def _add_generate(sub) -> None:
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


def _add_replay(sub) -> None:
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


def _add_detect(sub) -> None:
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


def _add_relay(sub) -> None:
    sub.add_parser("relay", help="publish committed alerts to the alerts topic (FRAUD_KAFKA__ALERTS_TOPIC)",
                   description="Publish each new or changed alert from the detector's outbox (alert_outbox) to "
                               "the alerts topic, keyed by card, in commit order; SIGTERM stops it cleanly.")


def _add_notify(sub) -> None:
    sub.add_parser("notify", help="deliver alerts to Slack, a signed webhook and/or SNS (FRAUD_NOTIFY__*)",
                   description="Deliver each alert version from the alerts topic to every configured destination "
                               "(FRAUD_NOTIFY__SLACK_WEBHOOK_URL, __WEBHOOK_URL, __SNS_TOPIC_ARN): retried with "
                               "backoff, rate-limited, recorded in notification_deliveries so a restart resumes "
                               "without sending again what a destination acknowledged; SIGTERM stops it cleanly.")


def _person(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name someone")
    return text.strip()


def _add_alerts(sub) -> None:
    alerts = sub.add_parser("alerts", help="triage: list, acknowledge and resolve alerts",
                            description="Triage the detector's alerts: list them, acknowledge one (someone is on "
                                        "it) and resolve it. open -> acknowledged -> resolved, or open -> resolved; "
                                        "each change is recorded with who, when and a note.")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    lst = alerts_sub.add_parser("list", help="live alerts, newest first, as a table",
                                description="Live (not merged) alerts, newest first: id, card, transactions, "
                                            "event-time window, status, who set it, age.")
    lst.add_argument("--status", choices=(*(s.value for s in Status), "all"), default="open",
                     help="which alerts (default open)")
    lst.add_argument("--card", metavar="CARD", help="only this card's alerts")
    lst.add_argument("--limit", type=_positive_int, default=50, metavar="N", help="at most N alerts (default 50)")
    for action, verb in (("ack", "acknowledge: someone is looking into it"), ("resolve", "resolve: dealt with")):
        change = alerts_sub.add_parser(action, help=verb, description=f"{verb.capitalize()}.")
        change.add_argument("alert_id", metavar="ALERT_ID", help="the alert's id, as `alerts list` shows it")
        change.add_argument("--by", type=_person, metavar="NAME", help="who (default: your OS user name)")
        change.add_argument("--note", metavar="TEXT", help="why, or what was done")


def _add_db(sub) -> None:
    db = sub.add_parser("db", help="database tasks", description="Database tasks.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="TASK")
    db_sub.add_parser("migrate", help="apply pending schema migrations (idempotent)",
                      description="Apply the versioned SQL migrations not yet recorded in schema_migrations, then"
                                  " the repeatable ones (functions) whose text changed.")
    prune = db_sub.add_parser("prune", help="delete old per-batch metrics, duplicates and published outbox rows",
                              description="Delete the pipeline's bookkeeping older than --keep-days: per-batch "
                                          "metrics, the duplicates the detector counted and outbox messages "
                                          "already published. Alerts, dead letters and ground truth are kept. "
                                          "The chart runs it daily as a CronJob.")
    prune.add_argument("--keep-days", type=_positive_int, default=30, metavar="DAYS",
                       help="keep this many days (default 30)")


def _add_evaluate(sub) -> None:
    evl = sub.add_parser("evaluate", help="detection quality: ground truth vs alerts (recall, precision, delays)",
                         description="Join the ground truth (injected_attacks: generator runs or a replayed CSV's "
                                     "labels) with the live alerts over an event-time range: recall, precision, "
                                     "detection delay percentiles, missed attacks (each with a reason, judged against "
                                     "FRAUD_RULE__THRESHOLD and FRAUD_RULE__WINDOW) and false alerts.")
    evl.add_argument("--since", type=_start_time, metavar="TIME",
                     help="first event time to include (epoch seconds or ISO-8601; default: all)")
    evl.add_argument("--until", type=_start_time, metavar="TIME", help="event time to stop before (default: all)")
    evl.add_argument("--source", metavar="PREFIX",
                     help="ground truth whose source starts with PREFIX, e.g. generator: or replay:fraud.csv")
    evl.add_argument("--format", choices=("table", "json"), default="table", help="stdout format (default table)")
    evl.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report with plots")


def _add_grafana(sub) -> None:
    sub.add_parser("grafana", help="a local Grafana on 127.0.0.1:3000 with the repository's dashboards (make grafana)",
                   description="Start a local Grafana (a `grafana` binary on PATH) with the repository's "
                               "provisioning: the PostgreSQL datasource of `make run` (or FRAUD_DATABASE_URL) "
                               "and the dashboards in charts/fraud-detection/dashboards.")


def _add_check(sub) -> None:
    chk = sub.add_parser("check", help="health checks for probes and `helm test`",
                         description="Check the services this deployment needs; exit 1 naming the first failure.")
    chk.add_argument("--postgres", action="store_true", help="PostgreSQL answers and every migration is applied")
    chk.add_argument("--kafka", action="store_true", help="Kafka answers and the transactions topic exists")
    chk.add_argument("--heartbeat", type=Path, metavar="FILE", help="FILE was touched within --max-age seconds")
    chk.add_argument("--max-age", type=_positive_float, default=30.0, metavar="SECONDS",
                     help="oldest acceptable heartbeat (default 30)")


def _add_create_topic(sub) -> None:
    topic = sub.add_parser("create-topic", help="create the transactions and alerts topics (FRAUD_KAFKA__*)",
                           description="Create the transactions and alerts topics with FRAUD_KAFKA__PARTITIONS "
                                       "partitions (an existing topic is left as it is).")
    topic.add_argument("--partitions", type=_positive_int)


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="run the whole pipeline locally (make run)",
                         description="Start a local Kafka broker and PostgreSQL, migrate, create the topic, "
                                     "run the detector and the generator, and show the newest alerts and "
                                     "detection totals until Ctrl-C.")
    run.add_argument("--rate", type=_positive_float, help="generator transactions per second")
    run.add_argument("--clock-speed", type=_positive_float, metavar="FACTOR",
                     help="simulated clock for the generator (default 1 = real time)")
    run.add_argument("--duration", type=_positive_float, metavar="SECONDS", help="stop after this long")
    run.add_argument("--no-generator", action="store_true",
                     help="Kafka, PostgreSQL and the detector only, for your own data (make stack): replay a CSV "
                          "from another terminal")


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
    except (ConnectionError, LookupError, OSError, RuntimeError, ValueError) as err:
        log.error("event=failed command=%s error=%s", args.command, err)
        return 1


# Flags that override a settings group, by the group's field names.
GENERATOR_FLAGS = ("rate", "seed", "population", "card_space", "attack_interval", "clock_speed")
DETECTOR_FLAGS = ("starting_offsets", "trigger_interval", "checkpoint_dir")


def _overrides(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The given flags that the command has and the user set."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


if __name__ == "__main__":
    sys.exit(main())
