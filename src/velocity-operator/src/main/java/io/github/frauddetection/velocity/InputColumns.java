package io.github.frauddetection.velocity;

import java.io.Serializable;
import java.util.Iterator;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructType;

/** The operators' input row ({@code detector/parse.py}) by column position: a transaction or a rejected record. */
final class InputColumns implements Serializable {
  private static final long serialVersionUID = 1L;

  static final String[] NAMES = {
    "card_id", "transaction_id", "event_time_ms", "amount_cents", "kafka_timestamp_ms", "topic",
    "kafka_partition", "kafka_offset", "raw_key", "raw_value", "reason", "detail"
  };

  private final int[] c = new int[NAMES.length];

  InputColumns(StructType schema) {
    for (int i = 0; i < c.length; i++) {
      c[i] = schema.fieldIndex(NAMES[i]);
    }
  }

  /** Null for a record that parsing rejected. */
  String cardId(Row r) {
    return r.isNullAt(c[0]) ? null : r.getString(c[0]);
  }

  Txn txn(Row r) {
    return new Txn(r.getString(c[1]), r.getLong(c[2]), r.getLong(c[3]), r.getLong(c[4]), r.getString(c[5]),
        r.getInt(c[6]), r.getLong(c[7]), bytes(r, c[8]), bytes(r, c[9]));
  }

  DetectorOutput rejected(Row r) {
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

  /**
   * The rejected records of a batch, one output row each, converted as they are read: the group can hold
   * a whole backlog of large malformed records, which Spark streams from its sorted shuffle; a list would
   * hold them all.
   */
  Iterator<DetectorOutput> passThrough(Iterator<Row> rows) {
    return new Iterator<>() {
      @Override
      public boolean hasNext() {
        return rows.hasNext();
      }

      @Override
      public DetectorOutput next() {
        return rejected(rows.next());
      }
    };
  }

  private static byte[] bytes(Row r, int i) {
    return r.isNullAt(i) ? null : (byte[]) r.get(i);
  }
}
