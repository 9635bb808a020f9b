package io.github.frauddetection.velocity;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;

/**
 * The velocity rule for one card, incrementally, on out-of-order input behind a watermark. No Spark here.
 *
 * <p>A transaction at event time t triggers when the card has more than {@code threshold} transactions in
 * (t - window, t]. Consecutive triggering transactions form a burst = one alert, covering the transactions
 * from the first one in its first trigger's window to its last trigger (the same rule as the Python oracle
 * {@code fraud_detection.rules.velocity}).
 *
 * <p>Why it is exact on out-of-order input: an accepted transaction is newer than the watermark, so it can
 * only change the trigger state of transactions newer than the watermark, whose windows are all retained.
 * Adding a transaction never turns a trigger off, and one that lands between two triggers of a burst is
 * itself a trigger; so bursts only grow, start earlier or merge, and an alert whose last trigger is at or
 * before watermark - window can no longer change. When bursts merge, the alert published first keeps its id
 * and the others are reported as merged into it.
 */
final class VelocityWindow {
  static final String RULE = DetectorOutput.VELOCITY_RULE;

  private static final Comparator<Entry> ORDER =
      Comparator.comparingLong((Entry e) -> e.eventTime).thenComparing(e -> e.transactionId);

  final String cardId;
  final int threshold;
  final long windowMs;
  final ArrayList<Entry> entries = new ArrayList<>();
  final ArrayList<AlertInfo> alerts = new ArrayList<>();

  static final class Entry {
    final long eventTime;
    final String transactionId;
    final long amountCents;
    final long kafkaTimestamp;
    boolean triggered;
    String burstAlertId;
    boolean dirty; // added or changed in the current call

    Entry(long eventTime, String transactionId, long amountCents, long kafkaTimestamp) {
      this.eventTime = eventTime;
      this.transactionId = transactionId;
      this.amountCents = amountCents;
      this.kafkaTimestamp = kafkaTimestamp;
    }
  }

  static final class AlertInfo {
    final String id;
    final String triggerId;
    final long triggerKafkaTimestamp;
    final long triggerEventTime;
    long first, last, count, amount;

    AlertInfo(String id, String triggerId, long triggerKafkaTimestamp, long triggerEventTime) {
      this.id = id;
      this.triggerId = triggerId;
      this.triggerKafkaTimestamp = triggerKafkaTimestamp;
      this.triggerEventTime = triggerEventTime;
    }
  }

  VelocityWindow(String cardId, int threshold, long windowMs) {
    if (threshold < 1 || windowMs < 1) {
      throw new IllegalArgumentException("threshold and window must be positive");
    }
    this.cardId = cardId;
    this.threshold = threshold;
    this.windowMs = windowMs;
  }

  /**
   * The deterministic id of an alert: the same rule parameters, card and raising transaction give the same id.
   * The parameters are part of it so that a new checkpoint with another threshold or window, reading the
   * same transactions again, raises alerts of its own instead of growing those of the old rule.
   */
  static String alertId(int threshold, long windowMs, String cardId, String triggerTransactionId) {
    String name = String.join("\u0000", RULE, Integer.toString(threshold), Long.toString(windowMs), cardId,
        triggerTransactionId);
    return UUID.nameUUIDFromBytes(name.getBytes(StandardCharsets.UTF_8)).toString();
  }

  boolean isEmpty() {
    return entries.isEmpty();
  }

  int size() {
    return entries.size();
  }

  /**
   * Takes one micro-batch of the card's transactions; returns the alerts that are new or changed, alerts
   * merged away, and the transactions not counted (behind the watermark, or an id already seen).
   */
  List<DetectorOutput> add(List<Txn> batch, long watermarkMs) {
    List<DetectorOutput> out = new ArrayList<>();
    Set<String> known = new HashSet<>(entries.size() + batch.size());
    for (Entry e : entries) {
      known.add(e.transactionId);
    }
    boolean added = false;
    for (Txn t : batch) {
      if (t.eventTimeMs() <= watermarkMs) {
        out.add(notCounted(t, DetectorOutput.LATE, "event time is at or behind the watermark " + watermarkMs));
      } else if (!known.add(t.transactionId())) {
        out.add(notCounted(t, DetectorOutput.DUPLICATE, null));
      } else {
        Entry e = new Entry(t.eventTimeMs(), t.transactionId(), t.amountCents(), t.kafkaTimestampMs());
        e.dirty = true;
        entries.add(e);
        added = true;
      }
    }
    if (added) {
      entries.sort(ORDER);
      updateTriggers(watermarkMs);
      publishChangedBursts(out);
      for (Entry e : entries) {
        e.dirty = false;
      }
    }
    return out;
  }

  /** Recomputes triggers newer than the watermark (older ones are final and may lack their window). */
  private void updateTriggers(long watermarkMs) {
    int n = entries.size();
    int lo = 0;
    int i = 0;
    while (i < n) {
      long t = entries.get(i).eventTime;
      int tiesEnd = i;
      while (tiesEnd + 1 < n && entries.get(tiesEnd + 1).eventTime == t) {
        tiesEnd++;
      }
      if (t > watermarkMs) {
        while (entries.get(lo).eventTime <= t - windowMs) {
          lo++;
        }
        boolean triggers = tiesEnd - lo + 1 > threshold;
        for (int k = i; k <= tiesEnd; k++) {
          Entry e = entries.get(k);
          if (triggers && !e.triggered) {
            e.triggered = true;
            e.dirty = true;
          }
        }
      }
      i = tiesEnd + 1;
    }
  }

  private void publishChangedBursts(List<DetectorOutput> out) {
    for (int first = nextTrigger(0); first < entries.size(); first = nextTrigger(burstEnd(first) + 1)) {
      int last = burstEnd(first);
      int start = windowStart(entries.get(first).eventTime);
      boolean changed = false;
      for (int k = start; k <= last && !changed; k++) {
        changed = entries.get(k).dirty;
      }
      if (changed) {
        publishBurst(start, first, last, out);
      }
    }
  }

  private int nextTrigger(int from) {
    int i = from;
    while (i < entries.size() && !entries.get(i).triggered) {
      i++;
    }
    return i;
  }

  private int burstEnd(int first) {
    int i = first;
    while (i + 1 < entries.size() && entries.get(i + 1).triggered) {
      i++;
    }
    return i;
  }

  private void publishBurst(int start, int first, int last, List<DetectorOutput> out) {
    List<AlertInfo> members = new ArrayList<>();
    for (AlertInfo a : alerts) { // publish order, so the first member is the oldest alert
      for (int k = first; k <= last; k++) {
        if (a.id.equals(entries.get(k).burstAlertId)) {
          members.add(a);
          break;
        }
      }
    }
    AlertInfo alert;
    if (members.isEmpty()) {
      Entry trigger = entries.get(first);
      alert = new AlertInfo(alertId(threshold, windowMs, cardId, trigger.transactionId), trigger.transactionId,
          trigger.kafkaTimestamp, trigger.eventTime);
      alerts.add(alert);
    } else {
      alert = members.get(0);
      for (AlertInfo merged : members.subList(1, members.size())) {
        alerts.remove(merged);
        DetectorOutput o = alertRow(merged);
        o.setKind(DetectorOutput.MERGED);
        o.setMergedInto(alert.id);
        out.add(o);
      }
    }
    long amount = 0;
    for (int k = start; k <= last; k++) {
      amount += entries.get(k).amountCents;
    }
    for (int k = first; k <= last; k++) {
      entries.get(k).burstAlertId = alert.id;
    }
    long firstTime = entries.get(start).eventTime, lastTime = entries.get(last).eventTime;
    long count = last - start + 1;
    if (alert.first != firstTime || alert.last != lastTime || alert.count != count || alert.amount != amount) {
      alert.first = firstTime;
      alert.last = lastTime;
      alert.count = count;
      alert.amount = amount;
      out.add(alertRow(alert));
    }
  }

  /** Drops what can no longer matter: transactions at or before watermark - window outside open alerts. */
  void prune(long watermarkMs) {
    long horizon = watermarkMs - windowMs;
    int keepFrom = windowStart(horizon + windowMs); // first entry after the horizon
    for (int first = nextTrigger(0); first < entries.size(); first = nextTrigger(burstEnd(first) + 1)) {
      int last = burstEnd(first);
      if (entries.get(last).eventTime > horizon) { // the oldest open burst: keep all it covers
        keepFrom = Math.min(keepFrom, windowStart(entries.get(first).eventTime));
        break;
      }
    }
    if (keepFrom > 0) {
      entries.subList(0, keepFrom).clear();
    }
    Set<String> referenced = new HashSet<>();
    for (Entry e : entries) {
      if (e.burstAlertId != null) {
        referenced.add(e.burstAlertId);
      }
    }
    alerts.removeIf(a -> !referenced.contains(a.id));
  }

  /**
   * The watermark at which {@link #prune} leaves this card empty: its newest transaction's time + window
   * (every transaction and every burst's last trigger is then at or before watermark - window).
   */
  long expiresAt() {
    if (entries.isEmpty()) {
      throw new IllegalStateException("an empty card has nothing to expire");
    }
    return entries.get(entries.size() - 1).eventTime + windowMs;
  }

  /** Index of the first entry with event time after {@code t - window}. */
  private int windowStart(long t) {
    long bound = t - windowMs;
    int lo = 0, hi = entries.size();
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (entries.get(mid).eventTime <= bound) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  private DetectorOutput alertRow(AlertInfo a) {
    DetectorOutput o = new DetectorOutput();
    o.setKind(DetectorOutput.ALERT);
    o.setRule(RULE);
    o.setCardId(cardId);
    o.setAlertId(a.id);
    o.setFirstEventTimeMs(a.first);
    o.setLastEventTimeMs(a.last);
    o.setTxnCount(a.count);
    o.setAmountTotalCents(a.amount);
    o.setTriggerTransactionId(a.triggerId);
    o.setTriggerKafkaTimestampMs(a.triggerKafkaTimestamp);
    o.setTriggerEventTimeMs(a.triggerEventTime);
    return o;
  }

  private DetectorOutput notCounted(Txn t, String kind, String detail) {
    DetectorOutput o = new DetectorOutput();
    o.setKind(kind);
    o.setCardId(cardId);
    o.setReason(kind);
    o.setDetail(detail);
    o.setTransactionId(t.transactionId());
    o.setTopic(t.topic());
    o.setKafkaPartition(t.kafkaPartition());
    o.setKafkaOffset(t.kafkaOffset());
    o.setKafkaTimestampMs(t.kafkaTimestampMs());
    o.setRawKey(t.rawKey());
    o.setRawValue(t.rawValue());
    return o;
  }
}
