"""``fraud-detection replay``: a labelled CSV (plain or gzip) into Kafka in event-time order.

Parsing is pure (``read_csv``); bad rows come back with their line numbers and a reason, never dropped
silently. Fraud labels become ground truth (``ground_truth.episodes_from_labels``, with the rule's window).

``send`` keeps the topic's partitions close in event time, so a detector that is running while the file
is replayed sees no record behind its watermark, at any speed (see ``send``).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from fraud_detection.iso_time import parse_iso
from fraud_detection.transaction import CHANNELS, MAX_AMOUNT, Transaction

TRUE_LABELS = frozenset({"1", "true", "t", "yes", "y", "fraud"})
# Mapping keys: the record field each names a CSV column for. Required ones first.
REQUIRED_COLUMNS = ("card", "time", "amount")
OPTIONAL_COLUMNS = ("id", "label", "merchant", "category", "country", "channel", "currency")
DEFAULT_MAPPING = {"card": "card_id", "time": "event_time", "amount": "amount", "id": "transaction_id"}


class ReplayError(ValueError):
    """The file or its mapping cannot be replayed at all (as opposed to single bad rows)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str
    detail: str


@dataclass
class ParsedCsv:
    rows: list[Transaction] = field(default_factory=list)  # sorted by event time
    labels: list[bool] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    def fraud_swipes(self) -> list[tuple[str, int]]:
        """``(card_id, event_time_ms)`` of every row labelled as fraud."""
        return [(row.card_id, row.event_time_ms) for row, fraud in zip(self.rows, self.labels, strict=True) if fraud]


def parse_mapping(text: str | None) -> dict[str, str]:
    """``card=cc_num,time=unix_time,amount=amt`` over the defaults; unknown keys are an error."""
    mapping = dict(DEFAULT_MAPPING)
    if not text:
        return mapping
    for part in text.split(","):
        key, sep, column = part.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or not column or key not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
            raise ReplayError(
                f"bad mapping entry {part!r}: use KEY=COLUMN with KEY one of "
                f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
            )
        mapping[key] = column
    return mapping


def time_parser(time_format: str):
    """Epoch milliseconds from a cell: ``auto`` (epoch seconds or ISO-8601), ``epoch``, ``epoch_ms``,
    ``iso``, or a ``strptime`` pattern. Times without a zone are UTC."""
    def from_datetime(moment: datetime) -> int:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return round(moment.timestamp() * 1000)

    def epoch(cell: str) -> int:
        value = float(cell)
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return round(value * 1000)

    if time_format == "epoch":
        return epoch
    if time_format == "epoch_ms":
        return lambda cell: int(cell)
    if time_format == "iso":
        return lambda cell: from_datetime(parse_iso(cell))
    if time_format == "auto":
        def auto(cell: str) -> int:
            try:
                return epoch(cell)
            except ValueError:
                return from_datetime(parse_iso(cell))
        return auto
    if "%" in time_format:
        return lambda cell: from_datetime(datetime.strptime(cell, time_format))
    raise ReplayError(f"unknown time format {time_format!r}: use auto, epoch, epoch_ms, iso or a strptime pattern")


def open_text(path: Path) -> io.TextIOBase:
    """A text stream of ``path``; gzip is recognised by its magic bytes, not the name."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    if gzipped:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_csv(
    path: Path, mapping: dict[str, str], *, time_format: str = "auto", currency: str = "USD",
) -> ParsedCsv:
    """Every row of ``path`` parsed into a transaction or a ``BadRow``; rows sorted by event time."""
    parse_time = time_parser(time_format)
    parsed = ParsedCsv()
    with open_text(path) as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            raise ReplayError(f"{path} is empty: a header row naming the columns is needed")
        index = {name.strip(): i for i, name in enumerate(header)}
        missing = [f"{key}={mapping[key]}" for key in REQUIRED_COLUMNS if mapping[key] not in index]
        if missing:
            raise ReplayError(
                f"{path} has no column for {', '.join(missing)}; its columns are {', '.join(index)}. "
                "Name yours with --map, e.g. --map card=cc_num,time=unix_time,amount=amt"
            )
        col = {key: index.get(mapping.get(key, "")) for key in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
        stem = path.name.split(".")[0]
        for cells in reader:
            line = reader.line_num
            try:
                row, fraud = _parse_row(cells, col, parse_time, currency, stem, line)
            except _BadRowError as bad:
                parsed.bad.append(BadRow(line, bad.reason, bad.detail))
                continue
            parsed.rows.append(row)
            parsed.labels.append(fraud)
    order = sorted(range(len(parsed.rows)), key=lambda i: parsed.rows[i].event_time_ms)
    parsed.rows = [parsed.rows[i] for i in order]
    parsed.labels = [parsed.labels[i] for i in order]
    return parsed


class _BadRowError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail


def _cell(cells: list[str], position: int | None, name: str, required: bool = False) -> str | None:
    if position is None or position >= len(cells) or not cells[position].strip():
        if required:
            raise _BadRowError("missing_field", f"no value for {name}")
        return None
    return cells[position].strip()


def _parse_row(cells, col, parse_time, currency, stem, line) -> tuple[Transaction, bool]:
    card = _cell(cells, col["card"], "card", required=True)
    time_text = _cell(cells, col["time"], "time", required=True)
    amount_text = _cell(cells, col["amount"], "amount", required=True)
    try:
        event_ms = parse_time(time_text)
    except (ValueError, OverflowError) as err:
        raise _BadRowError("bad_time", f"{time_text!r}: {err}") from None
    try:
        amount = float(amount_text)
    except ValueError:
        raise _BadRowError("bad_type", f"amount {amount_text!r} is not a number") from None
    if not math.isfinite(amount) or amount <= 0 or amount > MAX_AMOUNT:
        raise _BadRowError("bad_amount", f"amount {amount_text!r} is not in (0, {MAX_AMOUNT}]")
    channel = _cell(cells, col["channel"], "channel") or "pos"
    if channel not in CHANNELS:
        raise _BadRowError("bad_channel", f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    row = Transaction(
        _cell(cells, col["id"], "id") or f"{stem}-{line}",
        card,
        max(1, round(amount * 100)),
        (_cell(cells, col["currency"], "currency") or currency).upper(),
        _cell(cells, col["merchant"], "merchant") or "unknown",
        _cell(cells, col["category"], "category") or "5999",
        (_cell(cells, col["country"], "country") or "ZZ").upper(),
        channel,
        event_ms,
    )
    label = _cell(cells, col["label"], "label")
    return row, label is not None and label.lower() in TRUE_LABELS


def send(publisher, parsed: ParsedCsv, *, speed: float | None, stop, barrier_ms: int, progress=None,
         chunk: int = 5000) -> int:
    """Produce the parsed rows in order: as fast as possible (``speed`` None) or ``speed`` times faster
    than their event times. Returns how many were sent before the end or ``stop``.

    Every ``barrier_ms`` of event time (the detector's allowed lateness) the producer is flushed before
    a later record goes out. A micro-batch that reads a later record then also reads every earlier one,
    whatever partition it is in, so no record can fall behind the watermark: without the barrier, one
    partition's records could reach Kafka a few milliseconds after another's, which at a high speed-up
    is more event time than the lateness allows.
    """
    import time

    rows = parsed.rows
    if not rows:
        return 0
    began, first_ms = time.monotonic(), rows[0].event_time_ms
    barrier = first_ms + barrier_ms
    sent = 0
    while sent < len(rows) and not stop:
        if rows[sent].event_time_ms >= barrier:
            publisher.flush()
            barrier = rows[sent].event_time_ms + barrier_ms
        limit = min(len(rows), sent + chunk)
        due_ms = barrier - 1
        if speed is not None:
            due_ms = min(due_ms, first_ms + (time.monotonic() - began) * 1000 * speed)
        end = sent
        while end < limit and rows[end].event_time_ms <= due_ms:
            end += 1
        if end == sent:  # paced: the next row is not due yet
            wait_s = (rows[sent].event_time_ms - due_ms) / 1000 / speed
            publisher.poll()
            stop.wait(min(max(wait_s, 0.001), 0.25))
            continue
        sent += publisher.send_rows(rows[sent:end])
        if progress is not None:
            progress.tick()
    return sent
