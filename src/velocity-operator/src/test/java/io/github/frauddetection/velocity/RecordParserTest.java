package io.github.frauddetection.velocity;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.frauddetection.velocity.RecordParser.Parsed;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.time.format.ResolverStyle;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class RecordParserTest {
  static final List<String> FIELDS = List.of("transaction_id", "card_id", "amount", "currency", "merchant_id",
      "merchant_category", "country", "channel", "event_time", "schema_version");
  static final RecordParser PARSER = new RecordParser(FIELDS, 1, 1_000_000, 64, 4096, 86_400_000);
  static final String TIME = "2026-11-28T14:07:00.123Z";
  static final long TIME_MS = 1_795_874_820_123L;
  static final long NOW_MS = TIME_MS + 1000;

  /** A valid record with {@code field} set to the raw JSON {@code json}; a null json drops the field. */
  static byte[] record(String field, String json) {
    StringBuilder out = new StringBuilder("{");
    String[][] base = {
      {"transaction_id", "\"t-1\""}, {"card_id", "\"card-1\""}, {"amount", "12.5"}, {"currency", "\"EUR\""},
      {"merchant_id", "\"m1\""}, {"merchant_category", "\"5411\""}, {"country", "\"DE\""}, {"channel", "\"pos\""},
      {"event_time", "\"" + TIME + "\""}, {"schema_version", "1"},
    };
    for (String[] kv : base) {
      String value = kv[0].equals(field) ? json : kv[1];
      if (value != null) {
        out.append(out.length() > 1 ? "," : "").append('"').append(kv[0]).append("\":").append(value);
      }
    }
    if (field != null && FIELDS.stream().noneMatch(field::equals)) {
      out.append(",\"").append(field).append("\":").append(json);
    }
    return out.append('}').toString().getBytes(StandardCharsets.UTF_8);
  }

  static Parsed parse(byte[] value) {
    return PARSER.parse(value, NOW_MS);
  }

  static void assertRejected(String reason, String detail, byte[] value) {
    Parsed p = parse(value);
    assertEquals(reason, p.reason(), () -> new String(value, StandardCharsets.UTF_8));
    assertEquals(detail, p.detail());
    assertNull(p.cardId(), "a rejected record has no card, so it can never reach a card's state");
  }

  @Test
  void aValidRecordGivesItsTransaction() {
    assertEquals(new Parsed("card-1", "t-1", TIME_MS, 1250, null, null), parse(record(null, null)));
    assertEquals(1999, parse(record("amount", "19.99")).amountCents(), "cents rounded, not truncated");
    assertEquals(TIME_MS, parse(record("event_time", "\"2026-11-28T15:07:00.123+01\"")).eventTimeMs(), "any offset");
  }

  @Test
  void oddButWellFormedRecordsAreAccepted() {
    assertEquals("card-1", parse(record("loyalty_tier", "{\"a\": [1, 2]}")).cardId(), "unknown fields ignored");
    assertEquals("'; DROP TABLE alerts; --", parse(record("card_id", "\"'; DROP TABLE alerts; --\"")).cardId());
    assertEquals("card-1", parse(record("merchant_id", "\"m\\u0000\\u001b\"")).cardId(),
        "only ids are held to printable characters");
    assertEquals("c2", parse(record("card_id", "\"c1\",\"card_id\":\"c2\"")).cardId(),
        "a repeated field keeps its last value");
    assertEquals("123", parse(record("card_id", "123")).cardId(), "a number as an id is its JSON text, as in Spark");
    assertEquals("card-1", parse(record("currency", "[\"EUR\"]")).cardId(), "a string field takes any JSON value");
  }

  @Test
  void notOneJsonObjectIsInvalidJson() {
    String[] bad = {"", "   ", "[1, 2, 3]", "\"text\"", "42", "null", "{\"card_id\": \"c\"", "{} {}", "{\"a\":1} x",
        "{\"card_id\": 'c'}", "{card_id: \"c\"}", "{\"a\":\"\u0001\"}"};
    for (String value : bad) {
      assertRejected(RecordParser.INVALID_JSON, "not a JSON object", value.getBytes(StandardCharsets.UTF_8));
    }
    assertRejected(RecordParser.INVALID_JSON, "not a JSON object", null);
    byte[] nested = ("[".repeat(2000) + "]".repeat(2000)).getBytes(StandardCharsets.UTF_8);
    assertRejected(RecordParser.INVALID_JSON, "not a JSON object", nested);
    byte[] deepField = record("extra", "[".repeat(1500) + "]".repeat(1500));
    assertRejected(RecordParser.INVALID_JSON, "not a JSON object", deepField);
    Random random = new Random(7);
    for (int i = 0; i < 1000; i++) {
      byte[] noise = new byte[1 + random.nextInt(100)];
      random.nextBytes(noise);
      noise[0] = 'x';
      assertRejected(RecordParser.INVALID_JSON, "not a JSON object", noise);
    }
  }

  @Test
  void sizeIsCheckedFirst() {
    byte[] big = record("merchant_id", "\"" + "m".repeat(5000) + "\"");
    assertRejected(RecordParser.OVERSIZED, big.length + " bytes > 4096", big);
    assertRejected(RecordParser.OVERSIZED, "5000 bytes > 4096", new byte[5000]);
  }

  @Test
  void missingAndNullFieldsAreNamedInSchemaOrder() {
    assertRejected(RecordParser.MISSING_FIELD, "card_id", record("card_id", null));
    assertRejected(RecordParser.MISSING_FIELD, "amount", record("amount", "null"));
    assertRejected(RecordParser.MISSING_FIELD, String.join(",", FIELDS), "{}".getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void onlyNumbersAreTypeChecked() {
    assertRejected(RecordParser.BAD_TYPE, "amount", record("amount", "\"12.50\""));
    assertRejected(RecordParser.BAD_TYPE, "amount", record("amount", "{\"value\": 1}"));
    assertRejected(RecordParser.BAD_TYPE, "schema_version", record("schema_version", "\"one\""));
    assertRejected(RecordParser.BAD_TYPE, "schema_version", record("schema_version", "1.0"));
    assertRejected(RecordParser.BAD_TYPE, "schema_version", record("schema_version", "123456789012345678901234"));
  }

  @Test
  void idsMustBeShortPrintableAndNotContainers() {
    assertRejected(RecordParser.BAD_ID, "card_id", record("card_id", "{\"pan\": 1}"));
    assertRejected(RecordParser.BAD_ID, "card_id", record("card_id", "[1]"));
    assertRejected(RecordParser.BAD_ID, "card_id", record("card_id", "\"\""));
    assertRejected(RecordParser.BAD_ID, "card_id", record("card_id", "\"ca\\u0000rd\""));
    assertRejected(RecordParser.BAD_ID, "card_id", record("card_id", "\"c\\u0085\""));
    assertRejected(RecordParser.BAD_ID, "card_id", record("card_id", "\"" + "x".repeat(65) + "\""));
    assertEquals(64, parse(record("card_id", "\"" + "\uD83D\uDCB3".repeat(64) + "\"")).cardId().codePointCount(
        0, 128), "64 characters, counted as code points, are allowed");
    assertRejected(RecordParser.BAD_ID, "transaction_id,card_id",
        record("channel", "\"pos\",\"transaction_id\":\"\",\"card_id\":\"\""));
  }

  @Test
  void amountsMustBeFinitePositiveWholeCentsAndBounded() {
    assertRejected(RecordParser.NON_FINITE_AMOUNT, "NaN", record("amount", "NaN"));
    assertRejected(RecordParser.NON_FINITE_AMOUNT, "Infinity", record("amount", "Infinity"));
    assertRejected(RecordParser.NON_FINITE_AMOUNT, "-Infinity", record("amount", "-Infinity"));
    assertRejected(RecordParser.NON_FINITE_AMOUNT, "Infinity", record("amount", "1e400"));
    assertRejected(RecordParser.NON_POSITIVE_AMOUNT, "-3.0", record("amount", "-3"));
    assertRejected(RecordParser.NON_POSITIVE_AMOUNT, "0.0", record("amount", "0"));
    assertRejected(RecordParser.BAD_AMOUNT, "1.0E12", record("amount", "1e12"));
    assertRejected(RecordParser.BAD_AMOUNT, "0.125", record("amount", "0.125"));
    assertRejected(RecordParser.BAD_AMOUNT, "1.0E-9", record("amount", "1e-9"));  // 0 cents, within the tolerance
    assertRejected(RecordParser.BAD_AMOUNT, "2.23042225818252E-112", record("amount", "2.23042225818252e-112"));
    assertEquals(1, parse(record("amount", "0.01")).amountCents(), "one cent is the least amount");
    assertEquals(100_000_000, parse(record("amount", "1000000")).amountCents(), "the maximum itself is allowed");
  }

  @Test
  void eventTimesMustBeIsoWithMillisAndZoneAndNotTooFarAhead() {
    assertRejected(RecordParser.BAD_EVENT_TIME, "2026-11-28 10:00:00", record("event_time", "\"2026-11-28 10:00:00\""));
    assertRejected(RecordParser.BAD_EVENT_TIME, "2026-02-30T10:00:00.000Z",
        record("event_time", "\"2026-02-30T10:00:00.000Z\""));
    assertRejected(RecordParser.BAD_EVENT_TIME, "2026-11-28T10:00:00Z", record("event_time", "\"2026-11-28T10:00:00Z\""));
    assertRejected(RecordParser.BAD_EVENT_TIME, "???[2J", record("event_time", "\"\\u0000\\u0007\\u001b[2J\""));
    assertRejected(RecordParser.BAD_EVENT_TIME, "12", record("event_time", "12"));
    assertRejected(RecordParser.FUTURE_EVENT_TIME, "2999-01-01T00:00:00.000Z",
        record("event_time", "\"2999-01-01T00:00:00.000Z\""));
    assertEquals(TIME_MS, PARSER.parse(record(null, null), TIME_MS - 86_400_000).eventTimeMs(),
        "exactly at the limit is allowed");
    assertEquals(RecordParser.FUTURE_EVENT_TIME, PARSER.parse(record(null, null), TIME_MS - 86_400_001).reason());
  }

  @Test
  void theProducersTimeFormatReadsAsTheGeneralFormatterReadsIt() {
    DateTimeFormatter general = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSSX")
        .withResolverStyle(ResolverStyle.STRICT);
    Random random = new Random(11);
    for (int i = 0; i < 20_000; i++) {
      long ms = random.nextLong(-62_000_000_000_000L, 253_000_000_000_000L); // years 0005 to 9987
      String text = general.format(Instant.ofEpochMilli(ms).atOffset(ZoneOffset.UTC));
      assertEquals(ms, RecordParser.eventTimeMs(text), text);
    }
    String[] invalid = {"2026-02-29T00:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-00-10T00:00:00.000Z",
        "2026-04-31T00:00:00.000Z", "2026-01-01T24:00:00.000Z", "2026-01-01T00:60:00.000Z",
        "2026-01-01T00:00:60.000Z", "2026-01-01 00:00:00.000Z", "2026-01-01T00:00:00,000Z",
        "+026-01-01T00:00:00.000Z", "2026-1-01T00:00:00.0000Z", "2026-01-01T00:00:0a.000Z"};
    for (String text : invalid) {
      assertNull(RecordParser.eventTimeMs(text), text);
      assertThrows(DateTimeParseException.class, () -> OffsetDateTime.parse(text, general), text);
    }
    assertEquals(951_782_400_000L, RecordParser.eventTimeMs("2000-02-29T00:00:00.000Z"), "a leap day");
  }

  @Test
  void otherSchemaVersionsAreRefused() {
    assertRejected(RecordParser.UNSUPPORTED_SCHEMA_VERSION, "2", record("schema_version", "2"));
  }

  @Test
  void theFirstFailingCheckIsTheReason() {
    byte[] twoFaults = record("amount", "-1,\"card_id\":\"\"");
    assertEquals(RecordParser.BAD_ID, parse(twoFaults).reason(), "ids are checked before the amount");
    assertEquals(RecordParser.MISSING_FIELD, parse(record("amount", "\"x\",\"card_id\":null")).reason(),
        "a missing field before a badly typed one");
  }

  @Test
  void detailsArePrintableAndBounded() {
    String detail = RecordParser.printable("a\u0000b\nc" + "x".repeat(1000));
    assertEquals(500, detail.length());
    assertTrue(detail.startsWith("a?b?c"));
    Parsed p = parse(record("event_time", "\"" + "\\u0007".repeat(600) + "\""));
    assertEquals("?".repeat(500), p.detail());
  }

  @Test
  void theSchemaMustNameTheCheckedFields() {
    assertThrows(IllegalArgumentException.class, () -> new RecordParser(List.of("card_id"), 1, 1, 64, 1, 1));
  }

  @Test
  void theSparkStepsColumnsAreTheOperatorsInput() {
    assertArrayEquals(InputColumns.NAMES, ParseStep.SCHEMA.fieldNames());
  }
}
