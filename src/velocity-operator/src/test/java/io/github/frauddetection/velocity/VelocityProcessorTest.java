package io.github.frauddetection.velocity;

import static io.github.frauddetection.velocity.VelocityWindowTest.BASE;
import static io.github.frauddetection.velocity.VelocityWindowTest.MINUTE;
import static io.github.frauddetection.velocity.VelocityWindowTest.THRESHOLD;
import static io.github.frauddetection.velocity.VelocityWindowTest.WINDOW;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.expressions.GenericRowWithSchema;
import org.apache.spark.sql.streaming.ListState;
import org.apache.spark.sql.streaming.MapState;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.QueryInfo;
import org.apache.spark.sql.streaming.StatefulProcessorHandle;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The transformWithState processor against an in-memory stand-in for Spark's handle (Spark 4.0 ships no
 * public test harness for it): state per card, one timer per card, expired timers fired as Spark fires them
 * (expiry before the watermark, after the batch's input). Spark itself runs it in the Python integration tests.
 */
class VelocityProcessorTest {
  static final StructType SCHEMA = new StructType()
      .add("card_id", DataTypes.StringType).add("transaction_id", DataTypes.StringType)
      .add("event_time_ms", DataTypes.LongType).add("amount_cents", DataTypes.LongType)
      .add("kafka_timestamp_ms", DataTypes.LongType).add("topic", DataTypes.StringType)
      .add("kafka_partition", DataTypes.IntegerType).add("kafka_offset", DataTypes.LongType)
      .add("raw_key", DataTypes.BinaryType).add("raw_value", DataTypes.BinaryType)
      .add("reason", DataTypes.StringType).add("detail", DataTypes.StringType);

  /** Spark's side of the processor: values and timers per grouping key, the key set before each call. */
  static final class Harness implements StatefulProcessorHandle {
    final Map<String, Object> values = new HashMap<>();
    final Map<String, TreeSet<Long>> timers = new HashMap<>();
    final boolean realTime;
    final VelocityProcessor<?> processor;
    /** A query of its own, so that no other test's watermarks reach this one's {@link EventPace}. */
    final QueryInfo query = new QueryInfo() {
      private final UUID id = UUID.randomUUID();
      @Override public UUID getQueryId() { return id; }
      @Override public UUID getRunId() { return id; }
      @Override public long getBatchId() { return 0; }
    };
    String key;

    Harness() {
      this(false);
    }

    /** {@code realTime}: the processor of real-time mode, whose timers are processing-time ones. */
    Harness(boolean realTime) {
      this.realTime = realTime;
      processor = new VelocityProcessor<>(new InputColumns(SCHEMA), THRESHOLD, WINDOW,
          StateFormat.of(StateFormat.BYTES), realTime);
      processor.setHandle(this);
      processor.init(OutputMode.Update(), realTime ? TimeMode.ProcessingTime() : TimeMode.EventTime());
    }

    /** One micro-batch: each card's rows, then the timers that expired, as TransformWithStateExec runs them. */
    List<DetectorOutput> batch(Map<String, List<Row>> rowsByCard, long watermarkMs) {
      return batch(rowsByCard, watermarkMs, 0);
    }

    /** The same at the processing time {@code clockMs}, against which real-time mode's timers expire. */
    List<DetectorOutput> batch(Map<String, List<Row>> rowsByCard, long watermarkMs, long clockMs) {
      TimerValues now = new TimerValues() {
        @Override public long getCurrentProcessingTimeInMs() { return clockMs; }
        @Override public long getCurrentWatermarkInMs() { return watermarkMs; }
      };
      List<DetectorOutput> out = new ArrayList<>();
      for (Map.Entry<String, List<Row>> card : rowsByCard.entrySet()) {
        key = card.getKey();
        CollectionConverters.asJava(
            processor.handleInputRows(key, CollectionConverters.asScala(card.getValue().iterator()), now))
            .forEachRemaining(out::add);
      }
      for (String card : new ArrayList<>(timers.keySet())) {
        for (Long expiry : new ArrayList<>(timers.getOrDefault(card, new TreeSet<>()))) {
          if (expiry < (realTime ? clockMs : watermarkMs)) {
            key = card;
            CollectionConverters.asJava(processor.handleExpiredTimer(key, now, () -> expiry)).forEachRemaining(out::add);
            deleteTimer(expiry); // Spark deletes the timer that fired, after the handler
          }
        }
      }
      return out;
    }

    @Override
    @SuppressWarnings("unchecked")
    public <T> ValueState<T> getValueState(String name, Encoder<T> encoder, TTLConfig ttl) {
      return new ValueState<T>() {
        @Override public boolean exists() { return values.containsKey(key); }
        @Override public T get() { return (T) values.get(key); }
        @Override public void update(T v) { values.put(key, v); }
        @Override public void clear() { values.remove(key); }
      };
    }

    @Override
    public <T> ValueState<T> getValueState(String name, TTLConfig ttl, Encoder<T> encoder) {
      return getValueState(name, encoder, ttl);
    }

    @Override
    public void registerTimer(long expiryMs) {
      assertTrue(timers.computeIfAbsent(key, k -> new TreeSet<>()).add(expiryMs), "registered twice: " + expiryMs);
    }

    @Override
    public void deleteTimer(long expiryMs) {
      assertTrue(timers.getOrDefault(key, new TreeSet<>()).remove(expiryMs), "no such timer: " + expiryMs);
      if (timers.get(key).isEmpty()) {
        timers.remove(key);
      }
    }

    @Override
    public scala.collection.Iterator<Object> listTimers() {
      return CollectionConverters.asScala(new ArrayList<Object>(timers.getOrDefault(key, new TreeSet<>())).iterator());
    }

    @Override public <T> ListState<T> getListState(String n, Encoder<T> e, TTLConfig t) { throw unused(); }
    @Override public <T> ListState<T> getListState(String n, TTLConfig t, Encoder<T> e) { throw unused(); }
    @Override public <K, V> MapState<K, V> getMapState(String n, Encoder<K> k, Encoder<V> v, TTLConfig t) {
      throw unused();
    }
    @Override public <K, V> MapState<K, V> getMapState(String n, TTLConfig t, Encoder<K> k, Encoder<V> v) {
      throw unused();
    }
    @Override public QueryInfo getQueryInfo() {
      return query;
    }
    @Override public void deleteIfExists(String name) { throw unused(); }

    private static UnsupportedOperationException unused() {
      return new UnsupportedOperationException("not used by VelocityProcessor");
    }
  }

  static Row row(String card, Txn t) {
    return new GenericRowWithSchema(new Object[] {card, t.transactionId(), t.eventTimeMs(), t.amountCents(),
        t.kafkaTimestampMs(), t.topic(), t.kafkaPartition(), t.kafkaOffset(), null, null, null, null}, SCHEMA);
  }

  static Map<String, List<Row>> rows(String card, Txn... txns) {
    List<Row> list = new ArrayList<>();
    for (Txn t : txns) {
      list.add(row(card, t));
    }
    return Map.of(card, list);
  }

  static Txn tx(String id, long minutes) {
    return VelocityWindowTest.tx(id, minutes);
  }

  @Test
  void rejectedRecordsPassThroughAndTouchNoState() {
    Harness h = new Harness();
    Row bad = new GenericRowWithSchema(new Object[] {null, null, null, null, 7L, "t", 2, 9L, null,
        new byte[] {1}, "invalid_json", "not a JSON object"}, SCHEMA);
    Map<String, List<Row>> group = new HashMap<>();
    group.put(null, List.of(bad));
    List<DetectorOutput> out = h.batch(group, 0);
    assertEquals(1, out.size());
    assertEquals(DetectorOutput.REJECTED, out.get(0).getKind());
    assertEquals("invalid_json", out.get(0).getReason());
    assertEquals(9L, out.get(0).getKafkaOffset());
    assertTrue(h.values.isEmpty() && h.timers.isEmpty());
  }

  @Test
  void aBurstGivesTheWindowsRowsAndOneTimerAtTheCardsExpiry() {
    Harness h = new Harness();
    VelocityWindow reference = new VelocityWindow("c", THRESHOLD, WINDOW);
    List<Txn> first = List.of(tx("a", 0), tx("b", 1), tx("c", 2), tx("d", 3), tx("e", 4), tx("f", 5));
    List<DetectorOutput> out = h.batch(rows("c", first.toArray(new Txn[0])), 0);
    List<DetectorOutput> expected = reference.add(first, 0);
    assertEquals(1, out.size());
    assertEquals(expected.get(0).getAlertId(), out.get(0).getAlertId());
    assertEquals(VelocityWindow.alertId(THRESHOLD, WINDOW, "c", "f"), out.get(0).getAlertId());
    assertEquals(new TreeSet<>(List.of(BASE + 5 * MINUTE + WINDOW)), h.timers.get("c"));

    List<DetectorOutput> grown = h.batch(rows("c", tx("g", 7)), BASE);
    assertEquals(7, grown.get(0).getTxnCount());
    assertEquals(out.get(0).getAlertId(), grown.get(0).getAlertId(), "the burst keeps its alert id");
    assertEquals(new TreeSet<>(List.of(BASE + 7 * MINUTE + WINDOW)), h.timers.get("c"), "the timer moved");
  }

  @Test
  void aQuietCardLeavesTheStoreWhenTheWatermarkPassesItsExpiry() {
    Harness h = new Harness();
    h.batch(rows("quiet", tx("a", 0), tx("b", 1)), 0);
    h.batch(rows("busy", tx("x", 20)), BASE + 10 * MINUTE);
    assertTrue(h.values.containsKey("quiet"), "not yet: b's window is open until 11 minutes");
    h.batch(rows("busy", tx("y", 30)), BASE + 11 * MINUTE + 1);
    assertFalse(h.values.containsKey("quiet"));
    assertFalse(h.timers.containsKey("quiet"));
    assertEquals(List.of("busy"), new ArrayList<>(h.values.keySet()));
  }

  @Test
  void aBatchOfOnlyLateRowsLeavesTheCardAndItsTimerAsTheyWere() {
    Harness h = new Harness();
    h.batch(rows("c", tx("a", 10)), 0);
    List<DetectorOutput> out = h.batch(rows("c", tx("old", 1), tx("a", 10)), BASE + 5 * MINUTE);
    assertEquals(List.of(DetectorOutput.LATE, DetectorOutput.DUPLICATE), out.stream().map(DetectorOutput::getKind).toList());
    assertEquals(new TreeSet<>(List.of(BASE + 20 * MINUTE)), h.timers.get("c"));
    List<DetectorOutput> lateOnly = h.batch(rows("new", tx("z", 1)), BASE + 5 * MINUTE);
    assertEquals(1, lateOnly.size());
    assertFalse(h.values.containsKey("new") || h.timers.containsKey("new"), "a card with nothing counted keeps no state");
  }

  @Test
  void manyCardsOutOfOrderGiveTheAlertsOfTheWholeHistoryAndEndWithAnEmptyStore() {
    Random random = new Random(7);
    long lateness = 2 * MINUTE;
    for (int round = 0; round < 40; round++) {
      Map<String, List<Txn>> histories = new TreeMap<>();
      List<String[]> deliveries = new ArrayList<>(); // card, index into its history
      for (int card = 0; card < 8; card++) {
        String id = "card" + card;
        List<Txn> history = new ArrayList<>();
        long t = BASE + random.nextInt((int) (30 * MINUTE));
        for (int i = 0, n = 5 + random.nextInt(40); i < n; i++) {
          t += random.nextInt(4) == 0 ? random.nextInt((int) (15 * MINUTE)) : random.nextInt(90_000);
          history.add(VelocityWindowTest.txAt(id + "-" + i, t, 1 + random.nextInt(1000)));
          deliveries.add(new String[] {id, Integer.toString(i)});
          if (random.nextInt(10) == 0) {
            deliveries.add(new String[] {id, Integer.toString(i)}); // a redelivery
          }
        }
        histories.put(id, history);
      }
      List<long[]> arrival = new ArrayList<>();
      for (int i = 0; i < deliveries.size(); i++) {
        String[] d = deliveries.get(i);
        Txn txn = histories.get(d[0]).get(Integer.parseInt(d[1]));
        arrival.add(new long[] {txn.eventTimeMs() + random.nextInt((int) (lateness * 3 / 4)), i});
      }
      arrival.sort(Comparator.comparingLong(a -> a[0]));
      Harness h = new Harness();
      Map<String, DetectorOutput> table = new LinkedHashMap<>();
      long maxSeen = 0;
      for (int i = 0; i < arrival.size(); ) {
        int size = 1 + random.nextInt(12);
        Map<String, List<Row>> batch = new LinkedHashMap<>();
        List<Txn> seen = new ArrayList<>();
        for (int k = i; k < Math.min(arrival.size(), i + size); k++) {
          String[] d = deliveries.get((int) arrival.get(k)[1]);
          Txn txn = histories.get(d[0]).get(Integer.parseInt(d[1]));
          batch.computeIfAbsent(d[0], x -> new ArrayList<>()).add(row(d[0], txn));
          seen.add(txn);
        }
        i += size;
        batch.values().forEach(list -> Collections.shuffle(list, random));
        long watermark = Math.max(0, maxSeen - lateness);
        List<DetectorOutput> out = h.batch(batch, watermark);
        assertTrue(out.stream().noneMatch(o -> o.getKind().equals(DetectorOutput.LATE)), "round " + round);
        VelocityWindowTest.apply(table, out);
        for (Txn x : seen) {
          maxSeen = Math.max(maxSeen, x.eventTimeMs());
        }
      }
      List<String> expected = new ArrayList<>(), actual = new ArrayList<>();
      for (Map.Entry<String, List<Txn>> card : histories.entrySet()) {
        for (String alert : VelocityWindowTest.bruteForce(card.getValue(), THRESHOLD, WINDOW)) {
          expected.add(card.getKey() + " " + alert);
        }
        Map<String, DetectorOutput> cardTable = new LinkedHashMap<>();
        table.values().stream().filter(o -> o.getCardId().equals(card.getKey()))
            .forEach(o -> cardTable.put(o.getAlertId(), o));
        for (String alert : VelocityWindowTest.summary(cardTable)) {
          actual.add(card.getKey() + " " + alert);
        }
      }
      assertEquals(expected, actual, "round " + round);
      h.batch(Map.of(), maxSeen + WINDOW + 1); // the watermark passes everything: every card expires
      assertTrue(h.values.isEmpty() && h.timers.isEmpty(), "round " + round);
    }
  }

  @Test
  void inRealTimeModeACardsProcessingTimeTimerLooksAgainUntilTheWatermarkPassesItsExpiry() {
    Harness h = new Harness(true);
    long clock = 1_000_000;
    h.batch(rows("c", tx("a", 0), tx("b", 1)), 0, clock); // the watermark is not known yet: a window's wait
    assertEquals(new TreeSet<>(List.of(clock + WINDOW)), h.timers.get("c"));
    long expiry = BASE + 2 * MINUTE + WINDOW;
    long early = clock + WINDOW + 1; // the clock passes the timer before the watermark passes the expiry
    // The watermark then runs at the clock's pace: it moves as far as the clock from here to `early`.
    long paceSeen = early - (expiry - 5 * MINUTE - BASE);
    h.batch(rows("c", tx("x", 2)), BASE, paceSeen);
    assertEquals(new TreeSet<>(List.of(clock + WINDOW)), h.timers.get("c"), "a stored card keeps its one timer");

    h.batch(Map.of(), expiry - 5 * MINUTE, early);
    assertTrue(h.values.containsKey("c"), "kept: the watermark has not passed its expiry");
    assertEquals(new TreeSet<>(List.of(early + 5 * MINUTE)), h.timers.get("c"), "looks again when it should have");

    h.batch(Map.of(), expiry + 1, early + 5 * MINUTE + 1);
    assertFalse(h.values.containsKey("c"), "the watermark passed it: dropped");
    assertFalse(h.timers.containsKey("c"), "and no timer left");
  }

  @Test
  void inRealTimeModeATimerWaitsAtThePaceEventTimeRuns() {
    Harness h = new Harness(true);
    long clock = 1_000_000;
    h.batch(rows("b", tx("a", 1)), BASE, clock);
    long watermark = BASE + 20 * MINUTE; // 20 minutes of event time in one of the clock's: a catch-up
    h.batch(rows("c", tx("z", 21)), watermark, clock + MINUTE);
    long untilExpiry = BASE + 21 * MINUTE + WINDOW - watermark;
    assertEquals(new TreeSet<>(List.of(clock + MINUTE + untilExpiry / 20)), h.timers.get("c"),
        "event time until the card's expiry takes a twentieth of it on the clock");
  }
}
