package io.github.frauddetection.velocity;

import java.io.Serializable;

/**
 * One row out of the operator: an alert as it now stands ({@code alert}), an alert folded into another
 * ({@code merged}), or an input record the detector did not count ({@code rejected}, {@code late},
 * {@code duplicate}) with its Kafka coordinates. Unused fields are null.
 */
public class DetectorOutput implements Serializable {
  private static final long serialVersionUID = 1L;

  public static final String ALERT = "alert";
  public static final String MERGED = "merged";
  public static final String REJECTED = "rejected";
  public static final String LATE = "late";
  public static final String DUPLICATE = "duplicate";
  /** The rule an alert row names: its one definition (the sink stores it, the detector records its runs). */
  public static final String VELOCITY_RULE = "velocity";

  private String kind;
  private String cardId;
  // Alert fields.
  private String rule;
  private String alertId;
  private Long firstEventTimeMs;
  private Long lastEventTimeMs;
  private Long txnCount;
  private Long amountTotalCents;
  private String triggerTransactionId;
  private Long triggerKafkaTimestampMs;
  private Long triggerEventTimeMs;
  private String mergedInto;
  // Record fields.
  private String transactionId;
  private String topic;
  private Integer kafkaPartition;
  private Long kafkaOffset;
  private Long kafkaTimestampMs;
  private String reason;
  private String detail;
  private byte[] rawKey;
  private byte[] rawValue;

  public String getKind() { return kind; }
  public void setKind(String v) { kind = v; }
  public String getCardId() { return cardId; }
  public void setCardId(String v) { cardId = v; }
  public String getRule() { return rule; }
  public void setRule(String v) { rule = v; }
  public String getAlertId() { return alertId; }
  public void setAlertId(String v) { alertId = v; }
  public Long getFirstEventTimeMs() { return firstEventTimeMs; }
  public void setFirstEventTimeMs(Long v) { firstEventTimeMs = v; }
  public Long getLastEventTimeMs() { return lastEventTimeMs; }
  public void setLastEventTimeMs(Long v) { lastEventTimeMs = v; }
  public Long getTxnCount() { return txnCount; }
  public void setTxnCount(Long v) { txnCount = v; }
  public Long getAmountTotalCents() { return amountTotalCents; }
  public void setAmountTotalCents(Long v) { amountTotalCents = v; }
  public String getTriggerTransactionId() { return triggerTransactionId; }
  public void setTriggerTransactionId(String v) { triggerTransactionId = v; }
  public Long getTriggerKafkaTimestampMs() { return triggerKafkaTimestampMs; }
  public void setTriggerKafkaTimestampMs(Long v) { triggerKafkaTimestampMs = v; }
  public Long getTriggerEventTimeMs() { return triggerEventTimeMs; }
  public void setTriggerEventTimeMs(Long v) { triggerEventTimeMs = v; }
  public String getMergedInto() { return mergedInto; }
  public void setMergedInto(String v) { mergedInto = v; }
  public String getTransactionId() { return transactionId; }
  public void setTransactionId(String v) { transactionId = v; }
  public String getTopic() { return topic; }
  public void setTopic(String v) { topic = v; }
  public Integer getKafkaPartition() { return kafkaPartition; }
  public void setKafkaPartition(Integer v) { kafkaPartition = v; }
  public Long getKafkaOffset() { return kafkaOffset; }
  public void setKafkaOffset(Long v) { kafkaOffset = v; }
  public Long getKafkaTimestampMs() { return kafkaTimestampMs; }
  public void setKafkaTimestampMs(Long v) { kafkaTimestampMs = v; }
  public String getReason() { return reason; }
  public void setReason(String v) { reason = v; }
  public String getDetail() { return detail; }
  public void setDetail(String v) { detail = v; }
  public byte[] getRawKey() { return rawKey; }
  public void setRawKey(byte[] v) { rawKey = v; }
  public byte[] getRawValue() { return rawValue; }
  public void setRawValue(byte[] v) { rawValue = v; }
}
