package io.github.frauddetection.velocity;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

class VelocityWindowTest {
  static final int THRESHOLD = 5;
  static final long MINUTE = 60_000;
  static final long WINDOW = 10 * MINUTE;
  static final long NO_WATERMARK = 0;

  /** Times start an hour after the epoch: the watermark starts at 0 and nothing at or before it counts. */
  static final long BASE = 60 * MINUTE;

  static Txn tx(String id, long minutes) {
    return txAt(id, BASE + minutes * MINUTE, 100);
  }

  static Txn txAt(String id, long timeMs, long amountCents) {
    return new Txn(id, timeMs, amountCents, timeMs, "t", 0, 0, null, null);
  }

  /** Alert rows by id, last version wins; merged-away ids removed: what the alerts table ends up holding. */
  static Map<String, DetectorOutput> apply(Map<String, DetectorOutput> table, List<DetectorOutput> out) {
    for (DetectorOutput o : out) {
      if (o.getKind().equals(DetectorOutput.ALERT)) {
        table.put(o.getAlertId(), o);
      } else if (o.getKind().equals(DetectorOutput.MERGED)) {
        table.remove(o.getAlertId());
      }
    }
    return table;
  }

  static List<String> summary(Map<String, DetectorOutput> table) {
    return table.values().stream()
        .sorted(Comparator.comparingLong(DetectorOutput::getFirstEventTimeMs))
        .map(o -> o.getFirstEventTimeMs() + ".." + o.getLastEventTimeMs() + " n=" + o.getTxnCount()
            + " amount=" + o.getAmountTotalCents())
        .collect(Collectors.toList());
  }

  static long kindCount(List<DetectorOutput> out, String kind) {
    return out.stream().filter(o -> o.getKind().equals(kind)).count();
  }

  @Test
  void anAlertIdNamesTheRulesParametersTheCardAndTheRaisingTransaction() {
    String id = VelocityWindow.alertId(THRESHOLD, WINDOW, "c", "f");
    assertEquals(id, VelocityWindow.alertId(THRESHOLD, WINDOW, "c", "f"));
    assertNotEquals(id, VelocityWindow.alertId(THRESHOLD + 1, WINDOW, "c", "f"), "another threshold");
    assertNotEquals(id, VelocityWindow.alertId(THRESHOLD, WINDOW + 1, "c", "f"), "another window");
    assertNotEquals(id, VelocityWindow.alertId(THRESHOLD, WINDOW, "c", "g"));
  }

  @Test
  void sixthTransactionInTenMinutesRaisesOneAlertThatGrows() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    List<DetectorOutput> first = w.add(List.of(tx("a", 0), tx("b", 1), tx("c", 2), tx("d", 3), tx("e", 4)), 0);
    assertTrue(first.isEmpty(), "five transactions are not more than five");
    List<DetectorOutput> second = w.add(List.of(tx("f", 5)), 0);
    assertEquals(1, second.size());
    DetectorOutput alert = second.get(0);
    assertEquals(6, alert.getTxnCount());
    assertEquals("f", alert.getTriggerTransactionId());
    assertEquals(BASE + 5 * MINUTE, alert.getTriggerEventTimeMs(), "the raising transaction's event time");
    assertEquals(VelocityWindow.alertId(THRESHOLD, WINDOW, "c", "f"), alert.getAlertId());
    List<DetectorOutput> third = w.add(List.of(tx("g", 6)), 0);
    assertEquals(alert.getAlertId(), third.get(0).getAlertId(), "the burst keeps its alert id");
    assertEquals(BASE + 5 * MINUTE, third.get(0).getTriggerEventTimeMs(), "and its raising transaction");
    assertEquals(7, third.get(0).getTxnCount());
  }

  @Test
  void burstStraddlingATenMinuteBoundaryIsCaught() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    List<DetectorOutput> out = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      out.addAll(w.add(List.of(tx("t" + i, 7 + i)), 0)); // minutes 7..12 cross the 10-minute mark
    }
    assertEquals(1, kindCount(out, DetectorOutput.ALERT));
  }

  @Test
  void exactlyTheWindowApartIsOutsideIt() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    List<DetectorOutput> out = w.add(List.of(tx("a", 0), tx("b", 2), tx("c", 4), tx("d", 6), tx("e", 8), tx("f", 10)), 0);
    assertTrue(out.isEmpty(), "the transaction at t - window is not in (t - window, t]");
  }

  @Test
  void equalTimestampsTriggerTogether() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    List<Txn> same = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      same.add(tx("t" + i, 3));
    }
    Map<String, DetectorOutput> table = apply(new LinkedHashMap<>(), w.add(same, 0));
    long t = BASE + 3 * MINUTE;
    assertEquals(List.of(t + ".." + t + " n=6 amount=600"), summary(table));
  }

  @Test
  void aRedeliveredIdCountsOnce() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    List<DetectorOutput> out = w.add(List.of(tx("a", 0), tx("b", 1), tx("c", 2), tx("d", 3), tx("e", 4)), 0);
    out.addAll(w.add(List.of(tx("e", 4), tx("e", 5)), 0));
    assertEquals(2, kindCount(out, DetectorOutput.DUPLICATE));
    assertEquals(0, kindCount(out, DetectorOutput.ALERT));
  }

  @Test
  void transactionsAtOrBehindTheWatermarkAreLate() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    List<DetectorOutput> out = w.add(List.of(tx("a", 5), tx("b", 6)), BASE + 5 * MINUTE);
    assertEquals(1, kindCount(out, DetectorOutput.LATE));
    assertEquals(BASE + 5 * MINUTE, out.get(0).getKafkaTimestampMs(), "the late row keeps its coordinates");
    assertEquals(1, w.size());
  }

  @Test
  void aLateFillerMergesTwoAlertsIntoTheFirstPublished() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    List<Txn> first = new ArrayList<>(), second = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      first.add(txAt("a" + i, BASE + i * 1000L, 1)); // burst A: six in six seconds
      second.add(txAt("b" + i, BASE + 11 * MINUTE + i * 1000L, 1)); // burst B, after A's window
    }
    Map<String, DetectorOutput> table = new LinkedHashMap<>();
    apply(table, w.add(first, NO_WATERMARK));
    apply(table, w.add(second, NO_WATERMARK));
    assertEquals(2, table.size());
    String firstId = table.keySet().iterator().next();
    // A transaction at 5.5 min is in the windows of A's tail, so every transaction up to B triggers.
    List<Txn> filler = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      filler.add(txAt("f" + i, BASE + 5 * MINUTE + i * 60_000L, 1));
    }
    List<DetectorOutput> out = w.add(filler, NO_WATERMARK);
    apply(table, out);
    assertEquals(1, kindCount(out, DetectorOutput.MERGED));
    assertEquals(List.of(firstId), new ArrayList<>(table.keySet()));
    assertEquals(18, table.get(firstId).getTxnCount());
  }

  @Test
  void pruningKeepsOnlyWhatCanStillMatter() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    w.add(List.of(tx("a", 0), tx("b", 1), tx("c", 30)), 0);
    w.prune(BASE + 25 * MINUTE); // horizon 15 min: a and b can no longer share a window with an accepted event
    assertEquals(1, w.size());
    w.prune(BASE + 41 * MINUTE);
    assertTrue(w.isEmpty());
  }

  @Test
  void pruningAtTheExpiryEmptiesTheCardAndNotAMillisecondBefore() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    w.add(List.of(tx("a", 0), tx("b", 1), tx("c", 2), tx("d", 3), tx("e", 4), tx("f", 5), tx("g", 30)), 0);
    long expiry = w.expiresAt();
    assertEquals(BASE + 30 * MINUTE + WINDOW, expiry);
    w.prune(expiry - 1);
    assertEquals(1, w.size(), "g's window is still open");
    w.prune(expiry);
    assertTrue(w.isEmpty());
  }

  @Test
  void anOpenBurstOutlivesTheHorizonButNotTheExpiry() {
    VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
    w.add(List.of(tx("a", 0), tx("b", 1), tx("c", 2), tx("d", 3), tx("e", 4), tx("f", 15)), 0);
    w.add(List.of(tx("g", 16), tx("h", 17), tx("i", 18), tx("j", 19), tx("k", 20)), 0); // f..k trigger
    w.prune(BASE + 29 * MINUTE); // horizon 19 min: the burst's last trigger (20) is still open
    assertEquals(6, w.size(), "the open burst keeps every transaction it covers");
    w.prune(w.expiresAt());
    assertTrue(w.isEmpty());
  }

  @Test
  @SuppressWarnings("unchecked")
  void aBucketsCardsRoundTripThroughEitherStateFormat() {
    for (int version : new int[] {StateFormat.BEAN, StateFormat.BYTES}) {
      VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
      w.add(List.of(tx("a", 0), tx("b", 1), tx("c", 2), tx("d", 3), tx("e", 4), tx("f", 5)), 0);
      VelocityWindow other = new VelocityWindow("d", THRESHOLD, WINDOW);
      other.add(List.of(tx("z", 0)), 0);
      Map<String, VelocityWindow> loaded = roundTrip(StateFormat.of(version), List.of(w, other), 8);
      assertEquals(2, loaded.size());
      assertEquals(1, loaded.get("d").size());
      VelocityWindow copy = loaded.get("c");
      List<DetectorOutput> out = copy.add(List.of(tx("g", 6)), 0);
      assertEquals(VelocityWindow.alertId(THRESHOLD, WINDOW, "c", "f"), out.get(0).getAlertId(), "format " + version);
      assertEquals(BASE + 5 * MINUTE, out.get(0).getTriggerEventTimeMs());
      assertEquals(7, out.get(0).getTxnCount());
      StateFormat<Object> format = (StateFormat<Object>) StateFormat.of(version);
      Object saved = format.save(List.of(w), 8);
      assertThrows(IllegalStateException.class, () -> format.load(saved, 16, THRESHOLD, WINDOW),
          "state built with another bucket count is refused");
    }
    assertThrows(IllegalArgumentException.class, () -> StateFormat.of(3));
  }

  @SuppressWarnings("unchecked")
  static Map<String, VelocityWindow> roundTrip(StateFormat<?> format, List<VelocityWindow> cards, int buckets) {
    StateFormat<Object> f = (StateFormat<Object>) format;
    return f.load(f.save(cards, buckets), buckets, THRESHOLD, WINDOW);
  }

  /** The rule by brute force over the whole (deduplicated) history. */
  static List<String> bruteForce(List<Txn> all, int threshold, long window) {
    TreeMap<String, Txn> unique = new TreeMap<>();
    for (Txn t : all) {
      unique.putIfAbsent(t.transactionId(), t);
    }
    List<Txn> s = new ArrayList<>(unique.values());
    s.sort(Comparator.comparingLong(Txn::eventTimeMs).thenComparing(Txn::transactionId));
    List<String> alerts = new ArrayList<>();
    int start = -1, last = -1;
    for (int i = 0; i <= s.size(); i++) {
      boolean triggers = false;
      int ws = 0;
      if (i < s.size()) {
        long t = s.get(i).eventTimeMs();
        int count = 0;
        ws = -1;
        for (int k = 0; k < s.size(); k++) {
          long u = s.get(k).eventTimeMs();
          if (u > t - window && u <= t) {
            count++;
            if (ws < 0) {
              ws = k;
            }
          }
        }
        triggers = count > threshold;
      }
      if (triggers) {
        if (start < 0) {
          start = ws;
        }
        last = i;
      } else if (start >= 0) {
        long amount = 0;
        for (int k = start; k <= last; k++) {
          amount += s.get(k).amountCents();
        }
        alerts.add(s.get(start).eventTimeMs() + ".." + s.get(last).eventTimeMs() + " n=" + (last - start + 1)
            + " amount=" + amount);
        start = -1;
      }
    }
    return alerts;
  }

  @Test
  void outOfOrderBatchesWithinTheWatermarkGiveTheAlertsOfTheWholeHistory() {
    Random random = new Random(42);
    long lateness = 2 * MINUTE;
    for (int round = 0; round < 300; round++) {
      List<Txn> history = new ArrayList<>();
      long t = BASE;
      int n = 20 + random.nextInt(80);
      for (int i = 0; i < n; i++) {
        t += random.nextInt(4) == 0 ? random.nextInt((int) (8 * MINUTE)) : random.nextInt(90_000);
        Txn txn = txAt("x" + i, t, 1 + random.nextInt(1000));
        history.add(txn);
        if (random.nextInt(10) == 0) {
          history.add(txn); // a redelivery
        }
      }
      // Arrival: event time plus a delay below the lateness, then cut into batches.
      List<long[]> arrival = new ArrayList<>();
      for (int i = 0; i < history.size(); i++) {
        arrival.add(new long[] {history.get(i).eventTimeMs() + random.nextInt((int) (lateness * 3 / 4)), i});
      }
      arrival.sort(Comparator.comparingLong(a -> a[0]));
      VelocityWindow w = new VelocityWindow("c", THRESHOLD, WINDOW);
      Map<String, DetectorOutput> table = new LinkedHashMap<>();
      long maxSeen = 0;
      int i = 0;
      while (i < arrival.size()) {
        int size = 1 + random.nextInt(6);
        List<Txn> batch = new ArrayList<>();
        for (int k = i; k < Math.min(arrival.size(), i + size); k++) {
          batch.add(history.get((int) arrival.get(k)[1]));
        }
        i += size;
        Collections.shuffle(batch, random);
        long watermark = Math.max(0, maxSeen - lateness);
        List<DetectorOutput> out = w.add(batch, watermark);
        assertEquals(0, kindCount(out, DetectorOutput.LATE), "round " + round);
        apply(table, out);
        w.prune(watermark);
        for (Txn x : batch) {
          maxSeen = Math.max(maxSeen, x.eventTimeMs());
        }
        // Through the checkpoint and back after each batch, in either state format.
        w = roundTrip(StateFormat.of(i % 2 == 0 ? StateFormat.BEAN : StateFormat.BYTES), List.of(w), 1)
            .getOrDefault("c", new VelocityWindow("c", THRESHOLD, WINDOW));
      }
      assertEquals(bruteForce(history, THRESHOLD, WINDOW), summary(table), "round " + round);
    }
  }
}
