package io.github.frauddetection.velocity;

import java.io.Serializable;

/**
 * What Spark checkpoints per bucket of cards in state format 1 ({@link StateFormat}; checkpoints written
 * before format 2 keep it): each card's recent transactions and open alerts.
 *
 * <p>A Java bean of parallel arrays so that Spark's bean encoder stores it as plain columns; a card's rows
 * are contiguous. Transactions are kept while they can still fall into a future window (event time after
 * watermark - window) or belong to an alert that can still grow.
 */
public class BucketState implements Serializable {
  private static final long serialVersionUID = 1L;

  /** The bucket count the state was built with; a different count would route cards elsewhere. */
  private int buckets;
  private String[] eventCardIds = new String[0];
  private String[] alertCardIds = new String[0];

  // Transactions, sorted by (event time, transaction id).
  private long[] eventTimes = new long[0];
  private String[] transactionIds = new String[0];
  private long[] amountsCents = new long[0];
  private long[] kafkaTimestamps = new long[0];
  private boolean[] triggered = new boolean[0];
  /** The alert whose burst a triggering transaction belongs to; null for a non-triggering one. */
  private String[] burstAlertIds = new String[0];

  // Alerts, in the order they were first published.
  private String[] alertIds = new String[0];
  private String[] alertTriggerIds = new String[0];
  private long[] alertTriggerKafkaTimestamps = new long[0];
  private long[] alertTriggerEventTimes = new long[0];
  private long[] alertFirstEventTimes = new long[0];
  private long[] alertLastEventTimes = new long[0];
  private long[] alertTxnCounts = new long[0];
  private long[] alertAmountsCents = new long[0];

  public int getBuckets() { return buckets; }
  public void setBuckets(int v) { buckets = v; }
  public String[] getEventCardIds() { return eventCardIds; }
  public void setEventCardIds(String[] v) { eventCardIds = v; }
  public String[] getAlertCardIds() { return alertCardIds; }
  public void setAlertCardIds(String[] v) { alertCardIds = v; }
  public long[] getEventTimes() { return eventTimes; }
  public void setEventTimes(long[] v) { eventTimes = v; }
  public String[] getTransactionIds() { return transactionIds; }
  public void setTransactionIds(String[] v) { transactionIds = v; }
  public long[] getAmountsCents() { return amountsCents; }
  public void setAmountsCents(long[] v) { amountsCents = v; }
  public long[] getKafkaTimestamps() { return kafkaTimestamps; }
  public void setKafkaTimestamps(long[] v) { kafkaTimestamps = v; }
  public boolean[] getTriggered() { return triggered; }
  public void setTriggered(boolean[] v) { triggered = v; }
  public String[] getBurstAlertIds() { return burstAlertIds; }
  public void setBurstAlertIds(String[] v) { burstAlertIds = v; }
  public String[] getAlertIds() { return alertIds; }
  public void setAlertIds(String[] v) { alertIds = v; }
  public String[] getAlertTriggerIds() { return alertTriggerIds; }
  public void setAlertTriggerIds(String[] v) { alertTriggerIds = v; }
  public long[] getAlertTriggerKafkaTimestamps() { return alertTriggerKafkaTimestamps; }
  public void setAlertTriggerKafkaTimestamps(long[] v) { alertTriggerKafkaTimestamps = v; }
  public long[] getAlertTriggerEventTimes() { return alertTriggerEventTimes; }
  public void setAlertTriggerEventTimes(long[] v) { alertTriggerEventTimes = v; }
  public long[] getAlertFirstEventTimes() { return alertFirstEventTimes; }
  public void setAlertFirstEventTimes(long[] v) { alertFirstEventTimes = v; }
  public long[] getAlertLastEventTimes() { return alertLastEventTimes; }
  public void setAlertLastEventTimes(long[] v) { alertLastEventTimes = v; }
  public long[] getAlertTxnCounts() { return alertTxnCounts; }
  public void setAlertTxnCounts(long[] v) { alertTxnCounts = v; }
  public long[] getAlertAmountsCents() { return alertAmountsCents; }
  public void setAlertAmountsCents(long[] v) { alertAmountsCents = v; }
}
