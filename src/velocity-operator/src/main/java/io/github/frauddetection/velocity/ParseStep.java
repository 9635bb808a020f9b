package io.github.frauddetection.velocity;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.unix_millis;

import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * Kafka source rows to the operators' input ({@link InputColumns}), one row per record, valid or rejected,
 * called from PySpark ({@code detector/parse.py}). A plain JVM map: no Python, nothing Real-time Mode forbids.
 */
public final class ParseStep {
  private ParseStep() {}

  /** {@link InputColumns#NAMES}, typed; a rejected row has a null card id, event time and amount. */
  static final StructType SCHEMA = new StructType(new StructField[] {
    field("card_id", DataTypes.StringType),
    field("transaction_id", DataTypes.StringType),
    field("event_time_ms", DataTypes.LongType),
    field("amount_cents", DataTypes.LongType),
    field("kafka_timestamp_ms", DataTypes.LongType),
    field("topic", DataTypes.StringType),
    field("kafka_partition", DataTypes.IntegerType),
    field("kafka_offset", DataTypes.LongType),
    field("raw_key", DataTypes.BinaryType),
    field("raw_value", DataTypes.BinaryType),
    field("reason", DataTypes.StringType),
    field("detail", DataTypes.StringType),
  });

  private static StructField field(String name, DataType type) {
    return DataTypes.createStructField(name, type, true);
  }

  public static Dataset<Row> apply(Dataset<Row> kafka, RecordParser parser) {
    Dataset<Row> records = kafka.select(col("key"), col("value"), col("topic"), col("partition"), col("offset"),
        unix_millis(col("timestamp")));
    MapFunction<Row, Row> parse = r -> {
      byte[] value = r.isNullAt(1) ? null : (byte[]) r.get(1);
      long kafkaTimestampMs = r.getLong(5);
      RecordParser.Parsed p = parser.parse(value, kafkaTimestampMs);
      boolean valid = p.isValid();
      return RowFactory.create(p.cardId(), p.transactionId(), valid ? p.eventTimeMs() : null,
          valid ? p.amountCents() : null, kafkaTimestampMs, r.getString(2), r.getInt(3), r.getLong(4), r.get(0), value,
          p.reason(), p.detail());
    };
    return records.map(parse, Encoders.row(SCHEMA));
  }
}
