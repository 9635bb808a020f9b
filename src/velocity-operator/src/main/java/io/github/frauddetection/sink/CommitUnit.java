package io.github.frauddetection.sink;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import io.github.frauddetection.velocity.DetectorOutput;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.util.List;
import org.apache.spark.sql.Row;

/**
 * The operator's output rows of one commit unit, sorted into the four JSON arrays that {@code detector_apply}
 * takes (R__detector_sink.sql). The rows carry the sink's column names (detector/velocity_state.py renames the
 * operator's bean properties), which are the JSON keys as well. Pure: no I/O.
 */
final class CommitUnit {
  static final List<String> ALERT_FIELDS = List.of("alert_id", "rule", "card_id", "first_event_time_ms",
      "last_event_time_ms", "txn_count", "amount_total_cents", "trigger_transaction_id",
      "trigger_kafka_timestamp_ms", "trigger_event_time_ms");
  static final List<String> MERGE_FIELDS = List.of("alert_id", "merged_into");
  // Rejected by parsing, or late; raw_key and raw_value are bytes, sent as base64.
  static final List<String> REJECTED_FIELDS = List.of("topic", "kafka_partition", "kafka_offset", "reason",
      "detail", "raw_key", "raw_value", "kafka_timestamp_ms");
  // A transaction id the card had already: counted once by its Kafka coordinates, its payload not kept.
  static final List<String> DUPLICATE_FIELDS = List.of("topic", "kafka_partition", "kafka_offset",
      "transaction_id", "card_id", "kafka_timestamp_ms");

  private static final JsonFactory JSON = new JsonFactory();

  private final Array alerts = new Array();
  private final Array merges = new Array();
  private final Array rejected = new Array();
  private final Array duplicates = new Array();
  private int rows;

  void add(Row row) {
    rows++;
    String kind = row.getAs("kind");
    switch (kind) {
      case DetectorOutput.ALERT -> alerts.add(row, ALERT_FIELDS);
      case DetectorOutput.MERGED -> merges.add(row, MERGE_FIELDS);
      case DetectorOutput.DUPLICATE -> duplicates.add(row, DUPLICATE_FIELDS);
      case DetectorOutput.REJECTED, DetectorOutput.LATE -> rejected.add(row, REJECTED_FIELDS);
      default -> throw new IllegalArgumentException("unknown kind of operator row: " + kind);
    }
  }

  int size() {
    return rows;
  }

  /** The JSON text so far, in characters: what a unit holds in memory, whatever its row count. */
  long chars() {
    return alerts.chars() + merges.chars() + rejected.chars() + duplicates.chars();
  }

  String alertsJson() {
    return alerts.json();
  }

  String mergesJson() {
    return merges.json();
  }

  String rejectedJson() {
    return rejected.json();
  }

  String duplicatesJson() {
    return duplicates.json();
  }

  /** One JSON array of objects, written as rows arrive. */
  private static final class Array {
    private final StringWriter text = new StringWriter();
    private final JsonGenerator out;

    Array() {
      try {
        out = JSON.createGenerator(text);
        out.writeStartArray();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    void add(Row row, List<String> fields) {
      try {
        out.writeStartObject();
        for (String field : fields) {
          Object value = row.getAs(field);
          out.writeFieldName(field);
          if (value == null) {
            out.writeNull();
          } else if (value instanceof byte[] bytes) {
            out.writeBinary(bytes); // base64, decoded by the function
          } else if (value instanceof Number number) {
            out.writeNumber(number.longValue());
          } else {
            out.writeString(value.toString());
          }
        }
        out.writeEndObject();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    long chars() {
      try {
        out.flush(); // the generator buffers a few thousand characters of its own
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return text.getBuffer().length();
    }

    String json() {
      try {
        out.writeEndArray();
        out.close();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return text.toString();
    }
  }
}
