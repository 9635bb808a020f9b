"""The detector's checkpoint folder beyond what Spark keeps there: which operator, state format and rule its
state was built with (refused when they change), and what each committed batch read (its offset log).

Goes through Hadoop's FileSystem, as Spark does, so that an s3a:// checkpoint is handled too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from fraud_detection.settings import Operator

log = logging.getLogger(__name__)

# Files written beside Spark's: the operator whose state the checkpoint holds, how it stores it, and the rule.
OPERATOR_MARKER = "fraud-detection-operator"
STATE_FORMAT_MARKER = "fraud-detection-state-format"
RULE_MARKER = "fraud-detection-rule"
# StateFormat in velocity-operator: 1 the bean of arrays (checkpoints from before format markers), 2 bytes.
STATE_FORMAT = 2
LEGACY_STATE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Rule:
    """The rule parameters a checkpoint's state was built with: its bursts and pruned windows follow them."""

    threshold: int
    window_ms: int

    def describe(self) -> str:
        return f"threshold {self.threshold}, window {self.window_ms // 1000} s"


class CheckpointMismatchError(RuntimeError):
    """The checkpoint was built by another operator or rule; the message says what to do."""


def check_checkpoint_dir(path: Path) -> None:
    """Fail at start, saying so, when a local checkpoint directory cannot be created or written."""
    probe = path / ".write-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise OSError(f"checkpoint directory {path} is not writable ({err.strerror or err}): "
                      "fix its permissions or set FRAUD_DETECTOR__CHECKPOINT_DIR") from None


class CheckpointFiles:
    """Text files of one checkpoint folder, read and written through Hadoop's FileSystem."""

    def __init__(self, spark: SparkSession, checkpoint_dir: str) -> None:
        self._jvm = spark._jvm  # noqa: SLF001 (py4j gateway)
        self.root = self._jvm.org.apache.hadoop.fs.Path(checkpoint_dir)
        self._fs = self.root.getFileSystem(spark._jsc.hadoopConfiguration())  # noqa: SLF001 (py4j)

    def _path(self, name: str):
        return self._jvm.org.apache.hadoop.fs.Path(self.root, name)

    def exists(self, name: str) -> bool:
        return self._fs.exists(self._path(name))

    def read(self, name: str) -> str | None:
        if not self.exists(name):
            return None
        stream = self._fs.open(self._path(name))
        try:
            return self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8").strip()
        finally:
            stream.close()

    def write(self, name: str, text: str) -> None:
        stream = self._fs.create(self._path(name), True)
        try:
            stream.write(text.encode())
        finally:
            stream.close()

    def names(self, folder: str) -> list[str]:
        return [s.getPath().getName() for s in self._fs.listStatus(self._path(folder))] if self.exists(folder) else []

    def delete(self, name: str) -> None:
        self._fs.delete(self._path(name), True)


def claim_checkpoint(spark: SparkSession, checkpoint_dir: str, operator: Operator, rule: Rule) -> int:
    """Record which operator and rule a checkpoint's state is built with, and refuse to resume it with others;
    returns the checkpoint's state format (a new checkpoint gets STATE_FORMAT, an old one keeps its own).

    The two operators keep differently keyed state under different Spark operators, so neither can read the
    other's. A rule's state holds bursts raised and windows pruned under its parameters: another threshold
    would leave old bursts growing under the old one, a longer window would count from windows already cut.
    Also clears what a crash in the first batch left (_discard_an_uncommitted_start).
    """
    files = CheckpointFiles(spark, checkpoint_dir)
    if _discard_an_uncommitted_start(files):
        log.warning("event=checkpoint_uncommitted_start_discarded checkpoint=%s", checkpoint_dir)
    started = files.exists("offsets")  # Spark ran a batch there
    holder = files.read(OPERATOR_MARKER) or ("mapgroups" if started else None)  # from before the marker existed
    if started and holder != operator:
        raise CheckpointMismatchError(
            f"checkpoint {checkpoint_dir} holds the state of operator {holder}, not {operator}: set"
            f" FRAUD_DETECTOR__OPERATOR={holder} to resume it, or give a new FRAUD_DETECTOR__CHECKPOINT_DIR"
            " (docs/real-time-mode.md, 'Changing operator')")
    if holder != operator:
        files.write(OPERATOR_MARKER, operator)
    _claim_rule(files, checkpoint_dir, rule, started)
    recorded = files.read(STATE_FORMAT_MARKER)
    if recorded is not None:
        return int(recorded)
    state_format = LEGACY_STATE_FORMAT if started else STATE_FORMAT
    files.write(STATE_FORMAT_MARKER, str(state_format))
    return state_format


def _claim_rule(files: CheckpointFiles, checkpoint_dir: str, rule: Rule, started: bool) -> None:
    recorded = files.read(RULE_MARKER)
    if recorded is None:
        if started:  # written before the marker existed: its rule is unknown, the one given now is taken
            log.warning("event=checkpoint_rule_adopted checkpoint=%s threshold=%d window_ms=%d", checkpoint_dir,
                        rule.threshold, rule.window_ms)
        files.write(RULE_MARKER, json.dumps({"threshold": rule.threshold, "window_ms": rule.window_ms}))
        return
    built = Rule(**json.loads(recorded))
    if built != rule:
        raise CheckpointMismatchError(
            f"checkpoint {checkpoint_dir} was built for the rule {built.describe()}, not {rule.describe()}: its"
            f" state holds bursts and windows of the old rule. Set FRAUD_RULE__THRESHOLD={built.threshold} and"
            f" FRAUD_RULE__WINDOW={built.window_ms // 1000} to resume it, or give a new"
            " FRAUD_DETECTOR__CHECKPOINT_DIR for the new rule (it reads the topic from"
            " FRAUD_DETECTOR__STARTING_OFFSETS; its alerts get ids of their own)")


def _discard_an_uncommitted_start(files: CheckpointFiles) -> bool:
    """A checkpoint whose first batch never committed holds nothing to resume, but after a crash in that
    batch Spark 4.3 refuses to start over its leftovers (STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY: the
    commit log's temp file, the batch's uncommitted state) until they are deleted by hand. Deletes those two
    folders; the offset log (which Spark truncates itself) and the source's starting offsets stay."""
    if not files.exists("commits") or any(name.isdigit() for name in files.names("commits")):
        return False
    for name in ("commits", "state"):
        files.delete(name)
    return True


def query_id(spark: SparkSession, checkpoint_dir: str) -> str | None:
    """The streaming query's id, which Spark keeps in the checkpoint's metadata file (None before the first)."""
    metadata = CheckpointFiles(spark, checkpoint_dir).read("metadata")
    return None if metadata is None else json.loads(metadata)["id"]


def committed_input_rows(spark: SparkSession, checkpoint_dir: str) -> dict[int, int]:
    """Records read by each committed batch whose offset log is still kept: the sum over the Kafka partitions
    of its end offsets minus the previous batch's (the first batch's: the source's initial offsets)."""
    files = CheckpointFiles(spark, checkpoint_dir)
    committed = sorted(int(name) for name in files.names("commits") if name.isdigit())
    ends = {}
    for batch in {b for c in committed for b in (c - 1, c) if b >= 0}:
        if (text := files.read(f"offsets/{batch}")) is not None:
            ends[batch] = kafka_offsets(text.splitlines()[2])  # the version, the batch's metadata, the source's
    initial = files.read("sources/0/0")  # the Kafka source's starting offsets: a NUL, the version, then JSON
    return batch_input_rows(ends, kafka_offsets(initial.splitlines()[-1]) if initial else None, committed)


def kafka_offsets(line: str) -> dict[tuple[str, int], int]:
    """The Kafka source's offsets JSON (``{"topic": {"0": 42, ...}}``) as (topic, partition) -> offset."""
    return {(topic, int(p)): offset for topic, partitions in json.loads(line).items()
            for p, offset in partitions.items()}


def batch_input_rows(ends: dict[int, dict], initial: dict | None, committed: list[int]) -> dict[int, int]:
    """Records per committed batch: its end offsets minus its start (the previous batch's end, ``initial`` for
    batch 0); a partition new in a batch starts at 0. Batches whose start or end is unknown are left out."""
    counts = {}
    for batch in committed:
        start = ends.get(batch - 1) if batch > 0 else initial
        end = ends.get(batch)
        if end is not None and start is not None:
            counts[batch] = sum(offset - start.get(partition, 0) for partition, offset in end.items())
    return counts
