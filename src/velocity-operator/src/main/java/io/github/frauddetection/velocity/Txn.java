package io.github.frauddetection.velocity;

/** A parsed transaction as the operator sees it, with the Kafka coordinates needed to report it. */
public record Txn(
    String transactionId,
    long eventTimeMs,
    long amountCents,
    long kafkaTimestampMs,
    String topic,
    int kafkaPartition,
    long kafkaOffset,
    byte[] rawKey,
    byte[] rawValue) {}
