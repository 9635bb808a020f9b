package io.github.frauddetection.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.SQLException;
import java.util.HashMap;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.expressions.GenericRowWithSchema;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;

class CommitUnitTest {
  // The sink's columns, as detector/velocity_state.py names the operator's output.
  private static final StructType SCHEMA = new StructType(new StructField[] {
      field("kind", DataTypes.StringType), field("rule", DataTypes.StringType), field("card_id", DataTypes.StringType),
      field("alert_id", DataTypes.StringType), field("first_event_time_ms", DataTypes.LongType),
      field("last_event_time_ms", DataTypes.LongType), field("txn_count", DataTypes.LongType),
      field("amount_total_cents", DataTypes.LongType), field("trigger_transaction_id", DataTypes.StringType),
      field("trigger_kafka_timestamp_ms", DataTypes.LongType), field("trigger_event_time_ms", DataTypes.LongType),
      field("merged_into", DataTypes.StringType), field("transaction_id", DataTypes.StringType),
      field("topic", DataTypes.StringType),
      field("kafka_partition", DataTypes.IntegerType), field("kafka_offset", DataTypes.LongType),
      field("kafka_timestamp_ms", DataTypes.LongType), field("reason", DataTypes.StringType),
      field("detail", DataTypes.StringType), field("raw_key", DataTypes.BinaryType),
      field("raw_value", DataTypes.BinaryType)});

  private static StructField field(String name, DataType type) {
    return new StructField(name, type, true, org.apache.spark.sql.types.Metadata.empty());
  }

  private static Row row(Map<String, Object> values) {
    Object[] cells = new Object[SCHEMA.size()];
    values.forEach((name, value) -> cells[SCHEMA.fieldIndex(name)] = value);
    return new GenericRowWithSchema(cells, SCHEMA);
  }

  private static Map<String, Object> of(Object... pairs) {
    Map<String, Object> map = new HashMap<>();
    for (int i = 0; i < pairs.length; i += 2) {
      map.put((String) pairs[i], pairs[i + 1]);
    }
    return map;
  }

  @Test
  void sortsRowsIntoTheFunctionsArraysWithBytesAsBase64() {
    CommitUnit unit = new CommitUnit();
    unit.add(row(of("kind", "alert", "rule", "velocity", "card_id", "c1", "alert_id", "a1", "first_event_time_ms", 1L,
        "last_event_time_ms", 2L, "txn_count", 6L, "amount_total_cents", 1250L, "trigger_transaction_id", "t\"6",
        "trigger_kafka_timestamp_ms", 3L, "trigger_event_time_ms", 2L)));
    unit.add(row(of("kind", "merged", "card_id", "c1", "alert_id", "a2", "merged_into", "a1")));
    unit.add(row(of("kind", "duplicate", "card_id", "c1", "transaction_id", "t5", "topic", "tx", "kafka_partition", 4,
        "kafka_offset", 8L, "kafka_timestamp_ms", 4L)));
    unit.add(row(of("kind", "rejected", "topic", "tx", "kafka_partition", 4, "kafka_offset", 9L, "reason",
        "invalid_json", "raw_value", new byte[] {(byte) 0xff, 0}, "kafka_timestamp_ms", 5L)));
    unit.add(row(of("kind", "late", "topic", "tx", "kafka_partition", 4, "kafka_offset", 10L, "reason", "late")));

    assertEquals(5, unit.size());
    assertEquals("[{\"alert_id\":\"a1\",\"rule\":\"velocity\",\"card_id\":\"c1\",\"first_event_time_ms\":1,\"last_event_time_ms\":2,"
        + "\"txn_count\":6,\"amount_total_cents\":1250,\"trigger_transaction_id\":\"t\\\"6\","
        + "\"trigger_kafka_timestamp_ms\":3,\"trigger_event_time_ms\":2}]", unit.alertsJson());
    assertEquals("[{\"alert_id\":\"a2\",\"merged_into\":\"a1\"}]", unit.mergesJson());
    assertEquals("[{\"topic\":\"tx\",\"kafka_partition\":4,\"kafka_offset\":9,\"reason\":\"invalid_json\","
        + "\"detail\":null,\"raw_key\":null,\"raw_value\":\"/wA=\",\"kafka_timestamp_ms\":5},"
        + "{\"topic\":\"tx\",\"kafka_partition\":4,\"kafka_offset\":10,\"reason\":\"late\",\"detail\":null,"
        + "\"raw_key\":null,\"raw_value\":null,\"kafka_timestamp_ms\":null}]", unit.rejectedJson());
    assertEquals("[{\"topic\":\"tx\",\"kafka_partition\":4,\"kafka_offset\":8,\"transaction_id\":\"t5\","
        + "\"card_id\":\"c1\",\"kafka_timestamp_ms\":4}]", unit.duplicatesJson());
  }

  @Test
  void aUnitsSizeInCharactersCountsWhatItHoldsWhateverItsRowCount() {
    CommitUnit unit = new CommitUnit();
    long empty = unit.chars();
    unit.add(row(of("kind", "rejected", "topic", "tx", "kafka_partition", 0, "kafka_offset", 1L, "reason",
        "oversized", "raw_value", new byte[300_000])));
    assertTrue(unit.chars() - empty >= 400_000, "300,000 bytes are 400,000 characters of base64");
    assertEquals(1, unit.size());
  }

  @Test
  void anEmptyUnitGivesEmptyArrays() {
    CommitUnit unit = new CommitUnit();
    assertEquals(0, unit.size());
    assertEquals("[]", unit.alertsJson());
    assertEquals("[]", unit.rejectedJson());
    assertEquals("[]", unit.duplicatesJson());
  }

  @Test
  void anUnknownKindIsAnErrorNotASilentDrop() {
    assertThrows(IllegalArgumentException.class, () -> new CommitUnit().add(row(of("kind", "mystery"))));
  }

  @Test
  void onlyConnectionFailuresAreRetried() {
    assertTrue(PostgresTarget.unreachable(new SQLException("refused", "08001")));
    assertTrue(PostgresTarget.unreachable(new SQLException("shutting down", "57P01")));
    assertFalse(PostgresTarget.unreachable(new SQLException("no such function", "42883")));
    assertFalse(PostgresTarget.unreachable(new SQLException("no state")));
  }
}
