package io.github.frauddetection.velocity;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.streaming.ExpiredTimerInfo;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The detector's stateful step on Spark's {@code transformWithState}: the rule, input and output rows of
 * {@link VelocityOperator}, with state per card and one event-time timer per card instead of buckets.
 *
 * <p>Why per card: transformWithState keeps timers in their own RocksDB column family ordered by time, so a
 * batch reads only the timers that expired, not every state row as flatMapGroupsWithState's timeouts do;
 * the buckets that {@link VelocityOperator} uses to avoid that are not needed. A card's timer is set where
 * pruning empties it ({@link VelocityWindow#expiresAt}): a quiet card leaves the store once the watermark
 * passes its last transaction + window. A card is one {@code ValueState}: every batch that touches a card
 * reads and rewrites all its transactions, whose triggers change as new ones arrive, so a ListState or
 * MapState would only add reads. The value is a one-card bucket in the checkpoint's {@link StateFormat}, so
 * both operators share one state codec.
 *
 * <p>Why the input leaves out {@code event_time}: in {@code TimeMode.EventTime} Spark drops input rows at
 * or behind the watermark before the processor sees them when the input carries the watermark column, and
 * the detector must store those as {@code late}. The rule reads {@code event_time_ms}; the watermark still
 * reaches the processor through {@link TimerValues}.
 *
 * <p>In real-time mode ({@code realTime}) the watermark moves only at batch ends, so event-time timers would
 * all fire there at once and hold the input for seconds. The processor then keeps one processing-time
 * timer per card instead, set for when the watermark should pass the card's expiry (at the pace event time
 * has been running, {@link EventPace}) and set again while it has not: evictions spread over the batch, and
 * a card still leaves only once the watermark passes it.
 *
 * <p>Needs the RocksDB state store provider. A checkpoint of one operator cannot be resumed by the other
 * (different operator, state schema and keys); {@code detector/session.py} refuses to.
 */
public final class VelocityProcessor<S> extends StatefulProcessor<String, Row, DetectorOutput> {
  private static final long serialVersionUID = 1L;
  private static final long NO_TIMER = Long.MIN_VALUE;
  /** A card's state is a bucket of that one card. */
  private static final int ONE_CARD = 1;
  /** Real-time mode: the soonest a card's timer looks again whether the watermark has passed its expiry. */
  private static final long MIN_RECHECK_MS = 1_000;

  private final InputColumns c;
  private final int threshold;
  private final long windowMs;
  private final StateFormat<S> format;
  private final boolean realTime;
  private transient ValueState<S> card;
  private transient EventPace pace;

  VelocityProcessor(InputColumns columns, int threshold, long windowMs, StateFormat<?> format) {
    this(columns, threshold, windowMs, format, false);
  }

  @SuppressWarnings("unchecked")
  VelocityProcessor(InputColumns columns, int threshold, long windowMs, StateFormat<?> format,
      boolean realTime) {
    if (threshold < 1 || windowMs < 1) {
      throw new IllegalArgumentException("threshold and window must be positive");
    }
    this.c = columns;
    this.threshold = threshold;
    this.windowMs = windowMs;
    this.format = (StateFormat<S>) format;
    this.realTime = realTime;
  }

  /**
   * @param stateFormat the checkpoint's ({@link StateFormat})
   * @param realTime for Spark's real-time mode: processing-time timers (see the class comment)
   */
  public static Dataset<Row> apply(Dataset<Row> parsed, int threshold, long windowMs, int stateFormat,
      boolean realTime) {
    Column[] names = new Column[InputColumns.NAMES.length];
    for (int i = 0; i < names.length; i++) {
      names[i] = functions.col(InputColumns.NAMES[i]);
    }
    Dataset<Row> input = parsed.select(names);
    InputColumns columns = new InputColumns(input.schema());
    // Rejected records (null card) form one group, which never touches state.
    MapFunction<Row, String> key = columns::cardId;
    return input
        .groupByKey(key, Encoders.STRING())
        .transformWithState(
            new VelocityProcessor<>(columns, threshold, windowMs, StateFormat.of(stateFormat), realTime),
            realTime ? TimeMode.ProcessingTime() : TimeMode.EventTime(),
            OutputMode.Update(),
            Encoders.bean(DetectorOutput.class))
        .toDF();
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    card = getHandle().getValueState("card", format.encoder(), TTLConfig.NONE());
    if (realTime) {
      pace = EventPace.of(getHandle().getQueryInfo().getQueryId().toString());
    }
  }

  @Override
  public Iterator<DetectorOutput> handleInputRows(String cardId, Iterator<Row> rows, TimerValues timers) {
    if (cardId == null) {
      return CollectionConverters.asScala(c.passThrough(CollectionConverters.asJava(rows)));
    }
    List<DetectorOutput> out = new ArrayList<>();
    List<Txn> batch = new ArrayList<>();
    while (rows.hasNext()) {
      batch.add(c.txn(rows.next()));
    }
    long watermarkMs = timers.getCurrentWatermarkInMs();
    VelocityWindow window = load(cardId);
    long timer = window.isEmpty() ? NO_TIMER : window.expiresAt();
    out.addAll(window.add(batch, watermarkMs));
    window.prune(watermarkMs);
    save(window, timer, timers);
    return CollectionConverters.asScala(out.iterator());
  }

  /** A quiet card's expiry: it is pruned, hence dropped. Spark deletes the timer that fired. */
  @Override
  public Iterator<DetectorOutput> handleExpiredTimer(String cardId, TimerValues timers, ExpiredTimerInfo expired) {
    VelocityWindow window = load(cardId);
    window.prune(timers.getCurrentWatermarkInMs());
    // A card left non-empty expires later than now (event time), or the watermark has not passed it yet
    // (real-time mode): either way it needs a new timer.
    save(window, NO_TIMER, timers);
    return CollectionConverters.asScala(Collections.<DetectorOutput>emptyIterator());
  }

  /**
   * Real-time mode: when the watermark should pass the card's expiry, at the pace event time has been
   * running ({@link EventPace}). The wait is at least MIN_RECHECK_MS and at most a window (a whole window
   * while the watermark is not yet known).
   */
  private long recheckAt(VelocityWindow window, TimerValues timers) {
    long watermarkMs = timers.getCurrentWatermarkInMs();
    long nowMs = timers.getCurrentProcessingTimeInMs();
    pace.observe(nowMs, watermarkMs);
    long wait = watermarkMs > 0 ? Math.min(pace.clockMs(window.expiresAt() - watermarkMs), windowMs) : windowMs;
    return nowMs + Math.max(wait, MIN_RECHECK_MS);
  }

  private VelocityWindow load(String cardId) {
    VelocityWindow fresh = new VelocityWindow(cardId, threshold, windowMs);
    return card.exists()
        ? format.load(card.get(), ONE_CARD, threshold, windowMs).getOrDefault(cardId, fresh)
        : fresh;
  }

  /**
   * Stores the card, or drops it once empty, and keeps one timer for it ({@code timer}: the one set, or
   * NO_TIMER). Event time: the timer is at the card's expiry, moved as the card grows. Real-time mode: a
   * card's one processing-time timer stays until it fires ({@link #recheckAt}).
   */
  private void save(VelocityWindow window, long timer, TimerValues timers) {
    if (window.isEmpty()) {
      card.clear();
    } else {
      card.update(format.save(List.of(window), ONE_CARD));
    }
    if (realTime) {
      if (timer == NO_TIMER && !window.isEmpty()) {
        getHandle().registerTimer(recheckAt(window, timers));
      }
      return;
    }
    long next = window.isEmpty() ? NO_TIMER : window.expiresAt();
    if (next != timer) {
      if (timer != NO_TIMER) {
        getHandle().deleteTimer(timer);
      }
      if (next != NO_TIMER) {
        getHandle().registerTimer(next);
      }
    }
  }
}
