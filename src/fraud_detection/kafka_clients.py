"""Kafka for every component: client settings, the Spark source's options, and topic checks and creation.

``KafkaSettings`` (settings.py) holds what the user configures; this module turns it into what each
client takes (librdkafka for the generator, replay and checks; the Spark Kafka source for the detector).
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException

from fraud_detection.settings import KafkaSettings

log = logging.getLogger(__name__)


def client_config(kafka: KafkaSettings) -> dict[str, str]:
    """librdkafka settings shared by every producer, consumer and admin client."""
    config = {"bootstrap.servers": kafka.bootstrap_servers, "security.protocol": kafka.security_protocol}
    if kafka.sasl_mechanism:
        config["sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username:
        config["sasl.username"] = kafka.sasl_username
    if kafka.sasl_password:
        config["sasl.password"] = kafka.sasl_password.get_secret_value()
    return config


def producer_config(kafka: KafkaSettings) -> dict:
    """The transaction producer: idempotent, ``acks=all``, batched and compressed."""
    return {
        **client_config(kafka),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "client.id": "fraud-detection-generator",
    }


def spark_source_options(kafka: KafkaSettings) -> dict[str, str]:
    """Spark Kafka source options for the same brokers and security as the Python clients."""
    options = {"kafka.bootstrap.servers": kafka.bootstrap_servers, "kafka.security.protocol": kafka.security_protocol}
    if kafka.sasl_mechanism:
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username and kafka.sasl_password:
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if kafka.sasl_mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        user, secret = jaas_quoted(kafka.sasl_username), jaas_quoted(kafka.sasl_password.get_secret_value())
        options["kafka.sasl.jaas.config"] = f"{module} required username={user} password={secret};"
    return options


def jaas_quoted(value: str) -> str:
    """``value`` as a quoted JAAS option value: Kafka's JaasConfig reads it with Java's StreamTokenizer, which
    takes a backslash as an escape, so backslashes are doubled before quotes are escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_topic(kafka: KafkaSettings, topic: str | None = None, timeout_s: float = 15.0) -> int:
    """The partition count of ``topic`` (default: the transactions topic); fails with a clear message when
    the broker or the topic is missing."""
    from confluent_kafka.admin import AdminClient

    topic_name = topic or kafka.topic
    admin = AdminClient(client_config(kafka))
    try:
        metadata = admin.list_topics(topic_name, timeout=timeout_s)
    except KafkaException as err:
        raise ConnectionError(
            f"Kafka at {kafka.bootstrap_servers} did not answer ({err}); start the local stack "
            "(`make stack`) or set FRAUD_KAFKA__BOOTSTRAP_SERVERS"
        ) from None
    found = metadata.topics.get(topic_name)
    if found is None or found.error is not None:
        raise LookupError(f"topic {topic_name!r} does not exist on {kafka.bootstrap_servers}: "
                          "create it with `fraud-detection create-topic`")
    return len(found.partitions)


def create_topic(config: dict, name: str, partitions: int) -> None:
    """Create ``name`` with ``partitions`` partitions and the broker's default replication; an existing
    topic is left as it is. ``config`` is a librdkafka client config (``client_config``)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(config)
    future = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=-1)])[name]
    try:
        future.result(timeout=30)
        log.info("event=topic_created topic=%s partitions=%d", name, partitions)
    except KafkaException as err:
        if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        log.info("event=topic_exists topic=%s", name)
