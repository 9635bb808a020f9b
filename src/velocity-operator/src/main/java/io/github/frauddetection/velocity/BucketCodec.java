package io.github.frauddetection.velocity;

import java.util.Collection;
import java.util.HashMap;
import java.util.Map;

/** A bucket's cards to and from the {@link BucketState} bean that Spark checkpoints. */
final class BucketCodec {
  private BucketCodec() {}

  /** Every card in a bucket's state, by card id. */
  static Map<String, VelocityWindow> load(BucketState s, int threshold, long windowMs) {
    Map<String, VelocityWindow> cards = new HashMap<>();
    String[] eventCards = s.getEventCardIds();
    for (int i = 0; i < eventCards.length; i++) {
      VelocityWindow.Entry e = new VelocityWindow.Entry(
          s.getEventTimes()[i], s.getTransactionIds()[i], s.getAmountsCents()[i], s.getKafkaTimestamps()[i]);
      e.triggered = s.getTriggered()[i];
      e.burstAlertId = s.getBurstAlertIds()[i];
      cards.computeIfAbsent(eventCards[i], id -> new VelocityWindow(id, threshold, windowMs)).entries.add(e);
    }
    String[] alertCards = s.getAlertCardIds();
    for (int i = 0; i < alertCards.length; i++) {
      VelocityWindow.AlertInfo a = new VelocityWindow.AlertInfo(
          s.getAlertIds()[i], s.getAlertTriggerIds()[i], s.getAlertTriggerKafkaTimestamps()[i],
          s.getAlertTriggerEventTimes()[i]);
      a.first = s.getAlertFirstEventTimes()[i];
      a.last = s.getAlertLastEventTimes()[i];
      a.count = s.getAlertTxnCounts()[i];
      a.amount = s.getAlertAmountsCents()[i];
      cards.computeIfAbsent(alertCards[i], id -> new VelocityWindow(id, threshold, windowMs)).alerts.add(a);
    }
    return cards;
  }

  /** One bucket's state from its cards (each card's rows contiguous, in their order). */
  static BucketState save(Collection<VelocityWindow> cards, int buckets) {
    int n = 0, m = 0;
    for (VelocityWindow w : cards) {
      n += w.entries.size();
      m += w.alerts.size();
    }
    long[] times = new long[n], amounts = new long[n], kafkaTs = new long[n];
    String[] eventCards = new String[n], txIds = new String[n], burstIds = new String[n];
    boolean[] triggered = new boolean[n];
    String[] alertCards = new String[m], ids = new String[m], triggerIds = new String[m];
    long[] triggerTs = new long[m], triggerTimes = new long[m], first = new long[m], last = new long[m], count = new long[m], amount = new long[m];
    int i = 0, k = 0;
    for (VelocityWindow w : cards) {
      for (VelocityWindow.Entry e : w.entries) {
        eventCards[i] = w.cardId;
        times[i] = e.eventTime;
        txIds[i] = e.transactionId;
        amounts[i] = e.amountCents;
        kafkaTs[i] = e.kafkaTimestamp;
        triggered[i] = e.triggered;
        burstIds[i++] = e.burstAlertId;
      }
      for (VelocityWindow.AlertInfo a : w.alerts) {
        alertCards[k] = w.cardId;
        ids[k] = a.id;
        triggerIds[k] = a.triggerId;
        triggerTs[k] = a.triggerKafkaTimestamp;
        triggerTimes[k] = a.triggerEventTime;
        first[k] = a.first;
        last[k] = a.last;
        count[k] = a.count;
        amount[k++] = a.amount;
      }
    }
    BucketState s = new BucketState();
    s.setBuckets(buckets);
    s.setEventCardIds(eventCards);
    s.setEventTimes(times);
    s.setTransactionIds(txIds);
    s.setAmountsCents(amounts);
    s.setKafkaTimestamps(kafkaTs);
    s.setTriggered(triggered);
    s.setBurstAlertIds(burstIds);
    s.setAlertCardIds(alertCards);
    s.setAlertIds(ids);
    s.setAlertTriggerIds(triggerIds);
    s.setAlertTriggerKafkaTimestamps(triggerTs);
    s.setAlertTriggerEventTimes(triggerTimes);
    s.setAlertFirstEventTimes(first);
    s.setAlertLastEventTimes(last);
    s.setAlertTxnCounts(count);
    s.setAlertAmountsCents(amount);
    return s;
  }
}
