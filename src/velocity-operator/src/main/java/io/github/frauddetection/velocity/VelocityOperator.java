package io.github.frauddetection.velocity;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.api.java.function.FlatMapGroupsWithStateFunction;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.GroupState;
import org.apache.spark.sql.streaming.GroupStateTimeout;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.types.StructType;

/**
 * The detector's stateful step, called from PySpark ({@code detector/velocity_state.py}).
 *
 * <p>Input: the parsed records, one row per Kafka record, with a watermark on {@code event_time}. Rows that
 * parsing rejected have a null {@code card_id} and a {@code reason}; they are grouped apart and passed
 * through. Output: {@link DetectorOutput} rows. Per-card state is a {@link CardState} that Spark
 * checkpoints; it is dropped once nothing in it can matter, and at the latest {@code stateTimeoutMs} of
 * processing time after the card was last seen.
 *
 * <p>Why a processing-time timeout: with an event-time timeout Spark silently drops rows behind the
 * watermark before the function sees them, and the detector must store them as rejected.
 */
public final class VelocityOperator {
  /** The group of records that failed parsing; no card id is empty (the schema requires one). */
  static final String REJECTED_GROUP = "";

  static final String[] INPUT_COLUMNS = {
    "card_id", "transaction_id", "event_time_ms", "amount_cents", "kafka_timestamp_ms", "topic",
    "kafka_partition", "kafka_offset", "raw_key", "raw_value", "reason", "detail"
  };

  private VelocityOperator() {}

  public static Dataset<Row> apply(Dataset<Row> parsed, int threshold, long windowMs, long stateTimeoutMs) {
    StructType schema = parsed.schema();
    int[] columns = new int[INPUT_COLUMNS.length];
    for (int i = 0; i < columns.length; i++) {
      columns[i] = schema.fieldIndex(INPUT_COLUMNS[i]);
    }
    int cardColumn = columns[0];
    MapFunction<Row, String> key = row -> row.isNullAt(cardColumn) ? REJECTED_GROUP : row.getString(cardColumn);
    return parsed
        .groupByKey(key, Encoders.STRING())
        .flatMapGroupsWithState(
            new Step(columns, threshold, windowMs, stateTimeoutMs),
            OutputMode.Update(),
            Encoders.bean(CardState.class),
            Encoders.bean(DetectorOutput.class),
            GroupStateTimeout.ProcessingTimeTimeout())
        .toDF();
  }

  static final class Step implements FlatMapGroupsWithStateFunction<String, Row, CardState, DetectorOutput> {
    private static final long serialVersionUID = 1L;
    private final int[] c;
    private final int threshold;
    private final long windowMs;
    private final long stateTimeoutMs;

    Step(int[] columns, int threshold, long windowMs, long stateTimeoutMs) {
      this.c = columns;
      this.threshold = threshold;
      this.windowMs = windowMs;
      this.stateTimeoutMs = stateTimeoutMs;
    }

    @Override
    public Iterator<DetectorOutput> call(String cardId, Iterator<Row> rows, GroupState<CardState> state) {
      long watermarkMs = state.getCurrentWatermarkMs();
      if (state.hasTimedOut()) {
        VelocityWindow window = VelocityWindow.load(cardId, state.get(), threshold, windowMs);
        window.prune(watermarkMs);
        save(window, state);
        return Collections.emptyIterator();
      }
      if (cardId.equals(REJECTED_GROUP)) {
        List<DetectorOutput> rejected = new ArrayList<>();
        rows.forEachRemaining(row -> rejected.add(rejectedRow(row)));
        return rejected.iterator();
      }
      List<Txn> batch = new ArrayList<>();
      rows.forEachRemaining(row -> batch.add(txn(row)));
      VelocityWindow window = state.exists()
          ? VelocityWindow.load(cardId, state.get(), threshold, windowMs)
          : new VelocityWindow(cardId, threshold, windowMs);
      List<DetectorOutput> out = window.add(batch, watermarkMs);
      window.prune(watermarkMs);
      save(window, state);
      return out.iterator();
    }

    private void save(VelocityWindow window, GroupState<CardState> state) {
      if (window.isEmpty()) {
        state.remove();
      } else {
        state.update(window.save());
        state.setTimeoutDuration(stateTimeoutMs);
      }
    }

    private Txn txn(Row r) {
      return new Txn(r.getString(c[1]), r.getLong(c[2]), r.getLong(c[3]), r.getLong(c[4]), r.getString(c[5]),
          r.getInt(c[6]), r.getLong(c[7]), bytes(r, c[8]), bytes(r, c[9]));
    }

    private DetectorOutput rejectedRow(Row r) {
      DetectorOutput o = new DetectorOutput();
      o.setKind(DetectorOutput.REJECTED);
      o.setReason(r.getString(c[10]));
      o.setDetail(r.isNullAt(c[11]) ? null : r.getString(c[11]));
      o.setTopic(r.getString(c[5]));
      o.setKafkaPartition(r.getInt(c[6]));
      o.setKafkaOffset(r.getLong(c[7]));
      o.setKafkaTimestampMs(r.getLong(c[4]));
      o.setRawKey(bytes(r, c[8]));
      o.setRawValue(bytes(r, c[9]));
      return o;
    }

    private static byte[] bytes(Row r, int i) {
      return r.isNullAt(i) ? null : (byte[]) r.get(i);
    }
  }
}
