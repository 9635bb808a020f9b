import gzip

import pytest

from fraud_detection.generator.replay import ReplayError, parse_mapping, read_csv, send, time_parser
from fraud_detection.ground_truth import LABELLED_FRAUD, episodes_from_labels
from fraud_detection.shutdown import StopFlag

KAGGLE_STYLE = """trans_num,cc_num,unix_time,amt,is_fraud,merchant
a1,111,1700000060,12.50,0,shop
a2,111,1700000000,3.10,1,shop
a3,222,1700000120,abc,0,shop
a4,,1700000130,5,0,shop
a5,222,yesterday,5,0,shop
a6,222,1700000140,-4,0,shop
a7,111,1700000100,8,1,shop
a8,222,1700000150,nan,0,shop
"""
MAPPING = "card=cc_num,time=unix_time,amount=amt,id=trans_num,label=is_fraud,merchant=merchant"


def write(tmp_path, text, name="data.csv", compress=False):
    path = tmp_path / name
    if compress:
        with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
            out.write(text)
    else:
        path.write_text(text)
    return path


def test_good_rows_in_time_order_with_mapping(tmp_path):
    """Mapped columns become records, sorted by event time; labels follow their rows."""
    parsed = read_csv(write(tmp_path, KAGGLE_STYLE), parse_mapping(MAPPING))
    assert [r.transaction_id for r in parsed.rows] == ["a2", "a1", "a7"]
    assert [r.event_time_ms for r in parsed.rows] == [1700000000000, 1700000060000, 1700000100000]
    first = parsed.rows[0]
    assert (first.card_id, first.amount_cents, first.merchant_id) == ("111", 310, "shop")
    assert parsed.labels == [True, False, True]


def test_bad_rows_have_line_numbers_and_reasons(tmp_path):
    """Every bad row is reported with its line number and why; none is dropped silently."""
    parsed = read_csv(write(tmp_path, KAGGLE_STYLE), parse_mapping(MAPPING))
    assert [(b.line, b.reason) for b in parsed.bad] == [
        (4, "bad_type"), (5, "missing_field"), (6, "bad_time"), (7, "bad_amount"), (9, "bad_amount"),
    ]
    assert len(parsed.rows) + len(parsed.bad) == KAGGLE_STYLE.count("\n") - 1


def test_gzip_is_detected_by_content(tmp_path):
    """A gzip file is read as such whatever its name."""
    parsed = read_csv(write(tmp_path, KAGGLE_STYLE, name="data.bin", compress=True), parse_mapping(MAPPING))
    assert len(parsed.rows) == 3


def test_labels_become_episodes_per_card(tmp_path):
    """A card's fraud-labelled rows within a window form one labelled_fraud episode."""
    parsed = read_csv(write(tmp_path, KAGGLE_STYLE), parse_mapping(MAPPING))
    [episode] = episodes_from_labels(parsed.fraud_swipes(), window_ms=600_000)
    assert (episode.card_id, episode.kind, episode.txn_count) == ("111", LABELLED_FRAUD, 2)
    assert (episode.first_event_time_ms, episode.last_event_time_ms) == (1700000000000, 1700000100000)


def test_missing_column_says_which_and_how_to_map(tmp_path):
    """A mapping naming an absent column fails before anything is sent, listing the real columns."""
    with pytest.raises(ReplayError, match=r"card=card_id.*--map"):
        read_csv(write(tmp_path, KAGGLE_STYLE), parse_mapping(None))


@pytest.mark.parametrize("text", ["card", "colour=x", "card="])
def test_bad_mapping_entries_are_refused(text):
    """A mapping entry must be KEY=COLUMN with a known key."""
    with pytest.raises(ReplayError, match="KEY=COLUMN"):
        parse_mapping(text)


@pytest.mark.parametrize(("fmt", "cell", "expected"), [
    ("auto", "1700000000.5", 1700000000500),
    ("auto", "2023-11-14 22:13:20", 1700000000000),
    ("auto", "2023-11-14T23:13:20+01:00", 1700000000000),
    ("epoch_ms", "1700000000123", 1700000000123),
    ("%d/%m/%Y %H:%M", "14/11/2023 22:13", 1699999980000),
])
def test_time_formats(fmt, cell, expected):
    """Epoch seconds, epoch milliseconds, ISO-8601 and strptime patterns; no zone means UTC."""
    assert time_parser(fmt)(cell) == expected


def test_unknown_time_format_is_refused():
    """A time format that is none of the known ones fails with the list of choices."""
    with pytest.raises(ReplayError, match="auto, epoch"):
        time_parser("julian")


def test_empty_file_is_an_error(tmp_path):
    """A file without even a header row cannot be replayed."""
    with pytest.raises(ReplayError, match="empty"):
        read_csv(write(tmp_path, ""), parse_mapping(None))


def test_labelled_episodes_split_where_swipes_are_more_than_the_rule_window_apart():
    """The grouping window is the rule's: the same swipes make two episodes under 60 s, one under 10 minutes."""
    swipes = [("c", t * 1000) for t in (0, 30, 60, 200, 230)]
    assert [e.txn_count for e in episodes_from_labels(swipes, window_ms=60_000)] == [3, 2]
    assert [e.txn_count for e in episodes_from_labels(swipes, window_ms=600_000)] == [5]


class _RecordingPublisher:
    """Stands in for the Kafka publisher: records what was sent and where the flushes came."""

    def __init__(self):
        self.events: list = []

    def send_rows(self, rows):
        self.events.extend(("send", row.event_time_ms) for row in rows)
        return len(rows)

    def flush(self):
        self.events.append(("flush", None))

    def poll(self):
        pass


def test_replay_flushes_so_no_record_can_fall_behind_a_running_detectors_watermark(tmp_path):
    """Before a record goes out, every record at least a lateness older has been sent and flushed."""
    rows = "".join(f"c{i % 7},{1_700_000_000 + i * 37},1.00\n" for i in range(400))  # ~4 hours of event time
    parsed = read_csv(write(tmp_path, "card_id,event_time,amount\n" + rows), parse_mapping(None))
    publisher, lateness_ms = _RecordingPublisher(), 120_000
    assert send(publisher, parsed, speed=None, stop=StopFlag(), barrier_ms=lateness_ms) == 400
    times = [row.event_time_ms for row in parsed.rows]
    flushed_up_to, newest_sent = None, None  # newest record covered by the last flush; newest sent
    for kind, event_ms in publisher.events:
        if kind == "flush":
            flushed_up_to = newest_sent
            continue
        older = [t for t in times if t <= event_ms - lateness_ms]
        if older:  # a detector may already be past these by the lateness: they must be in Kafka first
            assert flushed_up_to is not None and flushed_up_to >= max(older), event_ms
        newest_sent = event_ms
    # ...at a bounded cost: at most one flush per lateness of event time, not one per record.
    assert sum(kind == "flush" for kind, _ in publisher.events) <= (times[-1] - times[0]) // lateness_ms + 1
