package io.github.frauddetection.velocity;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.function.FlatMapGroupsWithStateFunction;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.GroupState;
import org.apache.spark.sql.streaming.GroupStateTimeout;
import org.apache.spark.sql.streaming.OutputMode;

/**
 * The detector's stateful step, called from PySpark ({@code detector/velocity_state.py}).
 *
 * <p>Input: the parsed records, one row per Kafka record, with a watermark on {@code event_time}. Rows that
 * parsing rejected have a null {@code card_id} and a {@code reason}; they are grouped apart and passed
 * through. Output: {@link DetectorOutput} rows.
 *
 * <p>State is kept per bucket of cards (card id hash modulo {@code buckets}), not per card, and without
 * Spark timeouts. Why: a timeout makes Spark read and decode every state row in every micro-batch (cost
 * grows with all cards seen in the last window, seconds per batch at millions), and an event-time timeout
 * would also drop late rows unseen, which the detector must store as rejected. Instead, whenever a bucket
 * gets a transaction, all its cards are pruned; with many buckets a batch touches few cards beyond its own.
 *
 * <p>So a quiet card leaves only when its bucket is next visited, not when its window ends: at r
 * transactions a second a bucket waits about buckets / r seconds for its next one (3 hours at 100 tx/s with
 * 2^20 buckets, 3.5 minutes at 5,000). The state therefore holds, beyond the cards active within window +
 * lateness, about one card per bucket waiting for that visit: at most ~{@code buckets} idle cards, whatever
 * the rate, each a few transactions. {@link VelocityProcessor} evicts each card on time instead.
 *
 * <p>{@link VelocityProcessor} is the same step on transformWithState (FRAUD_DETECTOR__OPERATOR).
 */
public final class VelocityOperator {
  /** The group of records that failed parsing. */
  static final int REJECTED_GROUP = -1;

  private VelocityOperator() {}

  /** The state bucket of a card; stable across JVMs (String.hashCode is specified). */
  static int bucketOf(String cardId, int buckets) {
    return Math.floorMod(cardId.hashCode(), buckets);
  }

  /** @param stateFormat the checkpoint's ({@link StateFormat}) */
  public static Dataset<Row> apply(Dataset<Row> parsed, int threshold, long windowMs, int buckets,
      int stateFormat) {
    if (buckets < 1) {
      throw new IllegalArgumentException("buckets must be positive");
    }
    return run(parsed, new Step<>(new InputColumns(parsed.schema()), threshold, windowMs, buckets,
        StateFormat.of(stateFormat)));
  }

  private static <S> Dataset<Row> run(Dataset<Row> parsed, Step<S> step) {
    InputColumns columns = step.c;
    int buckets = step.buckets;
    MapFunction<Row, Integer> key = row -> {
      String card = columns.cardId(row);
      return card == null ? REJECTED_GROUP : bucketOf(card, buckets);
    };
    return parsed
        .groupByKey(key, Encoders.INT())
        .flatMapGroupsWithState(step, OutputMode.Update(), step.format.encoder(),
            Encoders.bean(DetectorOutput.class), GroupStateTimeout.NoTimeout())
        .toDF();
  }

  static final class Step<S> implements FlatMapGroupsWithStateFunction<Integer, Row, S, DetectorOutput> {
    private static final long serialVersionUID = 1L;
    private final InputColumns c;
    private final int threshold;
    private final long windowMs;
    private final int buckets;
    private final StateFormat<S> format;

    @SuppressWarnings("unchecked")
    Step(InputColumns columns, int threshold, long windowMs, int buckets, StateFormat<?> format) {
      this.c = columns;
      this.threshold = threshold;
      this.windowMs = windowMs;
      this.buckets = buckets;
      this.format = (StateFormat<S>) format;
    }

    @Override
    public Iterator<DetectorOutput> call(Integer bucket, Iterator<Row> rows, GroupState<S> state) {
      if (bucket == REJECTED_GROUP) {
        return c.passThrough(rows);
      }
      List<DetectorOutput> out = new ArrayList<>();
      long watermarkMs = state.getCurrentWatermarkMs();
      Map<String, VelocityWindow> cards =
          state.exists() ? format.load(state.get(), buckets, threshold, windowMs) : new HashMap<>();
      Map<String, List<Txn>> batch = new LinkedHashMap<>();
      rows.forEachRemaining(row -> batch.computeIfAbsent(c.cardId(row), k -> new ArrayList<>()).add(c.txn(row)));
      for (Map.Entry<String, List<Txn>> card : batch.entrySet()) {
        VelocityWindow window = cards.computeIfAbsent(
            card.getKey(), id -> new VelocityWindow(id, threshold, windowMs));
        out.addAll(window.add(card.getValue(), watermarkMs));
      }
      cards.values().forEach(w -> w.prune(watermarkMs));
      cards.values().removeIf(VelocityWindow::isEmpty);
      if (cards.isEmpty()) {
        state.remove();
      } else {
        state.update(format.save(cards.values(), buckets));
      }
      return out.iterator();
    }
  }
}
