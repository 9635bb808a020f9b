"""The one reader of the environment: typed settings with the ``FRAUD_`` prefix.

Nested groups use ``__``: ``FRAUD_KAFKA__BOOTSTRAP_SERVERS``, ``FRAUD_GENERATOR__RATE``.
A missing or invalid value fails at start with a message that names the variable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraud_detection.rules.velocity import DEFAULT_THRESHOLD, DEFAULT_WINDOW_MS

ENV_PREFIX = "FRAUD_"
NESTED_DELIMITER = "__"

CardSpace = Annotated[str, Field(pattern=r"^[a-z0-9]{1,12}$")]
# The detector's stateful operator (velocity-operator): flatMapGroupsWithState on buckets of cards, or
# transformWithState per card with event-time timers (RocksDB only). A checkpoint is tied to one of them.
Operator = Literal["mapgroups", "transformwithstate"]
# How Spark runs the query: micro-batches, or Spark 4.3's real-time mode, whose long-running tasks process
# and commit each record as it arrives; its trigger's duration is only the checkpoint interval.
Trigger = Literal["microbatch", "realtime"]


class Group(BaseModel):
    """A group of settings (``FRAUD_<GROUP>__<FIELD>``): a variable it does not know is a mistake, not noise."""

    model_config = ConfigDict(extra="forbid")


class KafkaSettings(Group):
    bootstrap_servers: str = Field("127.0.0.1:9092", min_length=1)
    topic: str = Field("transactions", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    alerts_topic: str = Field("alerts", pattern=r"^[A-Za-z0-9._-]{1,249}$",
                              description="new and changed alerts, published by `fraud-detection relay`")
    # When `make run` or `topics create` makes the topics. Two suit one machine: on 2 cores a live batch read
    # from 6 partitions took 550 ms, from 2 313 ms (BENCHMARKS.md, "Topic partitions"); the chart sets its own.
    partitions: int = Field(2, ge=1, le=1000)
    # Optional client security (MSK and other managed brokers); empty means PLAINTEXT.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @field_validator("sasl_password")
    @classmethod
    def _no_leading_space(cls, password: SecretStr | None) -> SecretStr | None:
        # Seen against a real broker: librdkafka (every Python client here) drops a leading space of
        # sasl.password, so the login fails though the broker and Spark's Java client take the password whole.
        if password is not None and password.get_secret_value()[:1].isspace():
            raise ValueError("begins with whitespace, which librdkafka drops: choose a password that does not")
        return password


class RuleSettings(Group):
    """The velocity rule, shared by the detector and the generator (which sizes attacks and decoys by it)."""

    threshold: int = Field(DEFAULT_THRESHOLD, ge=1, le=10_000, description="alert on more than this many transactions")
    window: int = Field(DEFAULT_WINDOW_MS // 1000, ge=1, le=7 * 86_400, description="seconds of the sliding window")

    @property
    def window_ms(self) -> int:
        return self.window * 1000


class DetectorSettings(Group):
    """The Spark Structured Streaming job (``fraud-detection detect``)."""

    master: str = Field("local[2]", min_length=1,
                        description="Spark master of local runs; under spark-submit (Spark Operator, EMR) its own")
    checkpoint_dir: str = Field(".local/checkpoints/detector", min_length=1,
                                description="state and offsets; a path or a Hadoop URL such as s3a://")
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    trigger: Trigger = Field("microbatch", description="micro-batches, or real-time mode (Spark 4.3 or later)")
    trigger_interval: float = Field(0.0, ge=0, le=3600, description="seconds between micro-batches; 0 = back to back")
    # Each batch end holds the input for a moment and a crash replays up to one batch: at 30 s, p99 was
    # 499 ms over 30 minutes at 5,000 tx/s (BENCHMARKS.md, "Real-time mode"). Spark's default is 300.
    realtime_checkpoint_interval: int = Field(30, ge=5, le=3600,
                                              description="real-time mode: seconds between checkpoints")
    allowed_lateness: int = Field(120, ge=0, le=86_400, description="watermark delay, seconds")
    # A backlog (a first start, an outage) is read in batches of at most this many records, so each commits its
    # offsets, state and alerts in seconds instead of all at the end. Memory does not depend on it: the sink
    # streams each partition's rows in bounded units (detector/sink.py).
    max_offsets_per_trigger: int = Field(1_000_000, ge=0, description="cap on records per micro-batch; 0 = none")
    shuffle_partitions: int = Field(2, ge=1, le=10_000,
                                    description="state partitions; frozen once a checkpoint exists")
    state_buckets: int = Field(1 << 20, ge=1, le=1 << 28,
                               description="cards are kept in this many state groups; frozen by the checkpoint")
    state_store: Literal["hdfs", "rocksdb"] = "rocksdb"
    operator: Operator = Field("mapgroups", description="the stateful operator; frozen once a checkpoint exists")
    max_record_bytes: int = Field(4096, ge=256, le=1_048_576, description="larger records are rejected")
    max_future: int = Field(86_400, ge=0, description="seconds an event time may lead its Kafka timestamp")
    fail_on_data_loss: bool = Field(False, description="stop if Kafka deleted records not yet read")
    sink_retry_timeout: int = Field(600, ge=0, le=86_400,
                                    description="seconds a batch keeps retrying an unreachable PostgreSQL")
    kafka_retry_timeout: int = Field(120, ge=1, le=3600,
                                     description="seconds the Kafka source keeps retrying an unreachable broker")
    local_heap: str = Field("2g", pattern=r"^[1-9][0-9]*[mg]$",
                            description="JVM heap of local runs (e.g. 2g, 1536m), fixed from the start; under"
                                        " spark-submit the submission's spark.driver/executor.memory")
    jars_dir: Path | None = Field(None, description="built operator + Kafka connector jars (the image sets it)")
    ready_file: Path | None = Field(None, description="touched once the query runs (make run waits for it)")

    @model_validator(mode="before")
    @classmethod
    def _no_sink_choice(cls, values: object) -> object:
        # FRAUD_DETECTOR__SINK chose between a Python and the JVM sink until the JVM one became the only one.
        if isinstance(values, dict) and "sink" in values:
            raise ValueError(f"{ENV_PREFIX}DETECTOR__SINK is gone: the detector always commits from the JVM (the"
                             " former `foreach` sink, README 'The detector'); unset it")
        return values

    @model_validator(mode="after")
    def _transformwithstate_needs_rocksdb(self) -> DetectorSettings:
        # Checked here so that the detector fails at start with what to set, before Spark plans the query.
        if self.operator == "transformwithstate" and self.state_store != "rocksdb":
            raise ValueError(f"operator {self.operator} keeps its state and timers in RocksDB column families: set"
                             f" {ENV_PREFIX}DETECTOR__STATE_STORE=rocksdb, or {ENV_PREFIX}DETECTOR__OPERATOR=mapgroups")
        if self.trigger == "realtime":
            self._check_realtime()
        return self

    def _check_realtime(self) -> None:
        """Real-time mode runs the JVM transformWithState operator only (task slots: Settings)."""
        prefix = f"{ENV_PREFIX}DETECTOR__"
        if self.operator != "transformwithstate":
            raise ValueError(f"real-time mode runs the transformWithState operator only: set"
                             f" {prefix}OPERATOR=transformwithstate")
        if self.trigger_interval:
            raise ValueError(f"{prefix}TRIGGER_INTERVAL paces micro-batches; real-time mode checkpoints every"
                             f" {prefix}REALTIME_CHECKPOINT_INTERVAL seconds instead: leave it at 0")


class GeneratorSettings(Group):
    rate: float = Field(1000.0, gt=0, le=1_000_000, description="transactions per second, wall clock")
    population: int = Field(2_000_000, ge=1000, le=200_000_000, description="cards in this replica's space")
    attack_interval: float = Field(20.0, gt=0, description="mean event-time seconds between injected attacks")
    decoy_ratio: float = Field(0.5, ge=0, le=10, description="decoys injected per attack")
    clock_speed: float = Field(1.0, gt=0, le=100_000, description="event-time seconds per wall second")
    seed: int | None = None
    card_space: CardSpace | None = None
    heartbeat_file: Path | None = Field(None, description="touched while sending; Kubernetes probes read its age")


SecretUrl = Annotated[SecretStr, Field(description="an http:// or https:// URL; a secret (it may carry a token)")]
RuleNames = Annotated[str, Field(pattern=r"^([A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*)?$")]
SnsTopicArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")]


class NotifySettings(Group):
    """``fraud-detection notify``: the alerts topic delivered to Slack, a signed webhook and/or SNS."""

    slack_webhook_url: SecretUrl | None = None
    webhook_url: SecretUrl | None = None
    webhook_secret: SecretStr | None = Field(None, min_length=16, description="HMAC-SHA256 key of the webhook")
    sns_topic_arn: SnsTopicArn | None = None
    sns_region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="default: the ARN's")
    sns_endpoint_url: str | None = Field(None, pattern=r"^https?://", description="VPC endpoint or a stand-in")
    rules: RuleNames = Field("", description="comma-separated rules to deliver; empty = every rule")
    min_count: int = Field(1, ge=1, description="deliver alert versions with at least this many transactions")
    slack_min_count: int | None = Field(None, ge=1, description="Slack's own minimum; default min_count")
    webhook_min_count: int | None = Field(None, ge=1, description="the webhook's own minimum; default min_count")
    sns_min_count: int | None = Field(None, ge=1, description="SNS's own minimum; default min_count")
    give_up_after: float = Field(600.0, gt=0, le=7 * 86_400, description="seconds from the first attempt")
    timeout: float = Field(10.0, gt=0, le=300, description="seconds per request (connect and read)")
    rate_limit: float = Field(1.0, gt=0, le=10_000, description="requests per second to each destination")
    starting_offsets: Literal["earliest", "latest"] = Field(
        "earliest", description="where a destination's new consumer group starts on the alerts topic")
    grafana_url: str = Field("http://127.0.0.1:3000", pattern=r"^https?://\S+$",
                             description="Grafana's address as readers of the messages reach it")

    @field_validator("slack_webhook_url", "webhook_url")
    @classmethod
    def _http_only(cls, url: SecretStr | None) -> SecretStr | None:
        # urllib also opens file:// and ftp://; only web hooks are meant.
        if url is not None and not url.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url

    @model_validator(mode="after")
    def _webhook_is_signed(self) -> NotifySettings:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError(f"{ENV_PREFIX}NOTIFY__WEBHOOK_SECRET is required with {ENV_PREFIX}NOTIFY__WEBHOOK_URL: "
                             "receivers verify the X-Fraud-Signature with it (e.g. `openssl rand -hex 32`)")
        return self

    @property
    def has_destination(self) -> bool:
        """Whether any destination is set: `notify` has work, and `make run` starts it."""
        return any(value is not None for value in (self.slack_webhook_url, self.webhook_url, self.sns_topic_arn))

    @property
    def rule_set(self) -> frozenset[str]:
        return frozenset(filter(None, self.rules.split(",")))


class LocalSettings(Group):
    """The local stack of ``make run`` and the integration tests (no Kubernetes)."""

    dir: Path = Field(Path(".local"), description="Kafka and PostgreSQL data, checkpoints")
    cache_dir: Path = Field(Path(".cache"), description="jars that Maven resolves")
    kafka_port: int = Field(9092, ge=1024, le=65535)

    @property
    def database_url_file(self) -> Path:
        """Where `make run` / `make stack` leave their embedded PostgreSQL's URL (owner-only) while they run."""
        return self.dir / "database.url"

    @property
    def reader_url_file(self) -> Path:
        """The same server's URL as the read-only role (owner-only file), for readers such as `evaluate`."""
        return self.dir / "reader.url"


class Settings(BaseSettings):
    """Every component's configuration; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    database_url: SecretStr | None = None
    # A login as the read-only role fraud_reader (R__reader_role.sql), for commands that only read.
    reader_database_url: SecretStr | None = None
    kafka: KafkaSettings = KafkaSettings()
    rule: RuleSettings = RuleSettings()
    detector: DetectorSettings = DetectorSettings()
    generator: GeneratorSettings = GeneratorSettings()
    notify: NotifySettings = NotifySettings()
    local: LocalSettings = LocalSettings()
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @model_validator(mode="after")
    def _realtime_needs_a_slot_per_task(self) -> Settings:
        # Real-time mode runs the Kafka stage and the state stage side by side for the whole batch, so each of
        # their tasks holds a slot; Spark refuses to start the batch otherwise. Checked for local masters.
        d = self.detector
        slots = re.fullmatch(r"local\[(\d+)\]", d.master)
        needed = self.kafka.partitions + d.shuffle_partitions
        if d.trigger == "realtime" and slots and int(slots[1]) < needed:
            raise ValueError(f"{ENV_PREFIX}DETECTOR__MASTER={d.master}: real-time mode needs a task slot for each of"
                             f" the {self.kafka.partitions} Kafka partitions and {d.shuffle_partitions} state"
                             f" partitions at once: set local[{needed}]")
        return self

    def require_database_url(self) -> str:
        """``FRAUD_DATABASE_URL``, or else the embedded PostgreSQL of a running `make run` / `make stack`."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        if self.local.database_url_file.exists():
            return self.local.database_url_file.read_text().strip()
        raise SettingsError(f"{ENV_PREFIX}DATABASE_URL is not set: give a PostgreSQL URL (postgresql://...), "
                            "or start the local stack (`make stack` or `make run`) in another terminal")

    def require_reader_url(self) -> str:
        """For commands that only read: ``FRAUD_READER_DATABASE_URL`` (the read-only role), else the local
        stack's reader, else whatever ``require_database_url`` gives."""
        if self.reader_database_url is not None:
            return self.reader_database_url.get_secret_value()
        if self.database_url is None and self.local.reader_url_file.exists():
            return self.local.reader_url_file.read_text().strip()
        return self.require_database_url()


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def env_name(location: tuple[str | int, ...]) -> str:
    """The environment variable behind a pydantic error location."""
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in location)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, then apply explicit overrides (e.g. from CLI flags)."""
    try:
        settings = Settings()
        if overrides:
            settings = Settings.model_validate({**settings.model_dump(), **_merge(settings, overrides)})
    except ValidationError as err:
        problems = "; ".join(f"{env_name(e['loc'])}: {e['msg']}" if e["loc"] else e["msg"] for e in err.errors())
        raise SettingsError(f"invalid configuration: {problems}") from None
    return settings


def _merge(settings: Settings, overrides: dict[str, object]) -> dict[str, object]:
    """Overrides such as ``{"generator": {"rate": 5}}`` merged into the nested groups."""
    merged: dict[str, object] = {}
    for key, value in overrides.items():
        current = getattr(settings, key)
        if isinstance(value, dict) and isinstance(current, BaseModel):
            merged[key] = {**current.model_dump(), **{k: v for k, v in value.items() if v is not None}}
        elif value is not None:
            merged[key] = value
    return merged
