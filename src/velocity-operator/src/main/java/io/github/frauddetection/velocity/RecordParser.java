package io.github.frauddetection.velocity;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import java.io.IOException;
import java.io.Serializable;
import java.io.StringWriter;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.YearMonth;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.time.format.ResolverStyle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * A Kafka record's value to a transaction or a reason code: pure, one streaming pass over the bytes.
 *
 * <p>The record must be one JSON object with every schema field present and not null. Ids, the amount, the
 * event time and the schema version are then checked in a fixed order; the first failure is the reason, with a
 * detail that is printable and at most {@link #MAX_DETAIL} characters. Fields the schema does not name are
 * ignored; a repeated field keeps its last value. A string field given another JSON value takes that value's
 * JSON text (so an object as card id is a {@code bad_id}); only the numbers are type-checked.
 */
public final class RecordParser implements Serializable {
  private static final long serialVersionUID = 1L;

  // Reason codes, in the order they are checked (detector/parse.py names them for Python).
  public static final String OVERSIZED = "oversized";
  public static final String INVALID_JSON = "invalid_json";
  public static final String MISSING_FIELD = "missing_field";
  public static final String BAD_TYPE = "bad_type";
  public static final String BAD_ID = "bad_id";
  public static final String NON_FINITE_AMOUNT = "non_finite_amount";
  public static final String NON_POSITIVE_AMOUNT = "non_positive_amount";
  public static final String BAD_AMOUNT = "bad_amount";
  public static final String BAD_EVENT_TIME = "bad_event_time";
  public static final String FUTURE_EVENT_TIME = "future_event_time";
  public static final String UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version";
  public static final String[] REASONS = {
    OVERSIZED, INVALID_JSON, MISSING_FIELD, BAD_TYPE, BAD_ID, NON_FINITE_AMOUNT, NON_POSITIVE_AMOUNT,
    BAD_AMOUNT, BAD_EVENT_TIME, FUTURE_EVENT_TIME, UNSUPPORTED_SCHEMA_VERSION
  };

  static final int MAX_DETAIL = 500;
  // Thread-safe and costly to build: one per JVM. NaN and Infinity are read as numbers, to be named as such.
  private static final JsonFactory JSON =
      JsonFactory.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();
  private static final DateTimeFormatter EVENT_TIME =
      DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSSX").withResolverStyle(ResolverStyle.STRICT);

  /** What a record became: a transaction ({@code reason} null) or a rejection with its reason and detail. */
  public record Parsed(
      String cardId, String transactionId, long eventTimeMs, long amountCents, String reason, String detail) {
    static Parsed rejected(String reason, String detail) {
      return new Parsed(null, null, 0, 0, reason, detail == null ? null : printable(detail));
    }

    boolean isValid() {
      return reason == null;
    }
  }

  private final String[] fields;
  private final Map<String, Integer> index = new HashMap<>();
  private final int cardId;
  private final int transactionId;
  private final int amount;
  private final int eventTime;
  private final int schemaVersion;
  private final long expectedSchemaVersion;
  private final double maxAmount;
  private final int maxIdLength;
  private final int maxRecordBytes;
  private final long maxFutureMs;

  /**
   * @param fields the schema's fields, all required (transaction.schema.json, passed in by Python)
   * @param maxIdLength the schema's maxLength of the ids, in characters
   */
  public RecordParser(List<String> fields, long schemaVersion, double maxAmount, int maxIdLength,
      int maxRecordBytes, long maxFutureMs) {
    this.fields = fields.toArray(new String[0]);
    for (int i = 0; i < this.fields.length; i++) {
      index.put(this.fields[i], i);
    }
    this.cardId = required("card_id");
    this.transactionId = required("transaction_id");
    this.amount = required("amount");
    this.eventTime = required("event_time");
    this.schemaVersion = required("schema_version");
    this.expectedSchemaVersion = schemaVersion;
    this.maxAmount = maxAmount;
    this.maxIdLength = maxIdLength;
    this.maxRecordBytes = maxRecordBytes;
    this.maxFutureMs = maxFutureMs;
  }

  private int required(String name) {
    Integer i = index.get(name);
    if (i == null) {
      throw new IllegalArgumentException("the schema's fields lack " + name);
    }
    return i;
  }

  /** The record's verdict; {@code kafkaTimestampMs} bounds how far in the future its event time may be. */
  public Parsed parse(byte[] value, long kafkaTimestampMs) {
    if (value != null && value.length > maxRecordBytes) {
      return Parsed.rejected(OVERSIZED, value.length + " bytes > " + maxRecordBytes);
    }
    Object[] values = value == null ? null : read(value);
    if (values == null) {
      return Parsed.rejected(INVALID_JSON, "not a JSON object");
    }
    String missing = names(values, v -> v == null);
    if (!missing.isEmpty()) {
      return Parsed.rejected(MISSING_FIELD, missing);
    }
    String badlyTyped = names(values, v -> v == WRONG_TYPE);
    if (!badlyTyped.isEmpty()) {
      return Parsed.rejected(BAD_TYPE, badlyTyped);
    }
    String card = (String) values[cardId];
    String transaction = (String) values[transactionId];
    List<String> badIds = new ArrayList<>(2);
    if (badId(transaction)) {
      badIds.add(fields[transactionId]);
    }
    if (badId(card)) {
      badIds.add(fields[cardId]);
    }
    if (!badIds.isEmpty()) {
      return Parsed.rejected(BAD_ID, String.join(",", badIds));
    }
    double amountValue = (Double) values[amount];
    if (!Double.isFinite(amountValue)) {
      return Parsed.rejected(NON_FINITE_AMOUNT, Double.toString(amountValue));
    }
    if (amountValue <= 0) {
      return Parsed.rejected(NON_POSITIVE_AMOUNT, Double.toString(amountValue));
    }
    // Whole cents, at least one: a positive amount far below a cent (1e-9) is within the tolerance of 0 cents.
    double cents = amountValue * 100;
    long wholeCents = Math.round(cents);
    if (wholeCents < 1 || Math.abs(cents - wholeCents) > 1e-6 || amountValue > maxAmount) {
      return Parsed.rejected(BAD_AMOUNT, Double.toString(amountValue));
    }
    String time = (String) values[eventTime];
    Long eventTimeMs = eventTimeMs(time);
    if (eventTimeMs == null) {
      return Parsed.rejected(BAD_EVENT_TIME, time);
    }
    if (eventTimeMs > kafkaTimestampMs + maxFutureMs) {
      return Parsed.rejected(FUTURE_EVENT_TIME, time);
    }
    long version = (Long) values[schemaVersion];
    if (version != expectedSchemaVersion) {
      return Parsed.rejected(UNSUPPORTED_SCHEMA_VERSION, Long.toString(version));
    }
    return new Parsed(card, transaction, eventTimeMs, wholeCents, null, null);
  }

  /** Marks a present field whose JSON value has the wrong type. */
  private static final Object WRONG_TYPE = new Object();

  /** The schema fields' values (null: absent or JSON null), or null when the bytes are not one JSON object. */
  private Object[] read(byte[] value) {
    Object[] values = new Object[fields.length];
    try (JsonParser p = JSON.createParser(value)) {
      if (p.nextToken() != JsonToken.START_OBJECT) {
        return null;
      }
      while (p.nextToken() == JsonToken.FIELD_NAME) {
        Integer i = index.get(p.currentName());
        JsonToken token = p.nextToken();
        if (i == null) {
          p.skipChildren();
        } else if (token == JsonToken.VALUE_NULL) {
          values[i] = null;
        } else if (i == amount) {
          values[i] = token.isNumeric() ? (Object) p.getDoubleValue() : skipped(p, WRONG_TYPE);
        } else if (i == schemaVersion) {
          boolean isLong = token == JsonToken.VALUE_NUMBER_INT && p.getNumberType() != JsonParser.NumberType.BIG_INTEGER;
          values[i] = isLong ? (Object) p.getLongValue() : skipped(p, WRONG_TYPE);
        } else {
          values[i] = token == JsonToken.VALUE_STRING ? p.getText() : jsonText(p);
        }
      }
      if (p.currentToken() != JsonToken.END_OBJECT || p.nextToken() != null) {
        return null; // cut short, or more than one value
      }
      return values;
    } catch (IOException e) { // malformed JSON, bad encoding, nesting beyond Jackson's limit
      return null;
    }
  }

  private static Object skipped(JsonParser p, Object result) throws IOException {
    p.skipChildren();
    return result;
  }

  /** A non-string value of a string field as its JSON text, as Spark's JSON reader gives it. */
  private static String jsonText(JsonParser p) throws IOException {
    StringWriter out = new StringWriter();
    try (JsonGenerator g = JSON.createGenerator(out)) {
      g.copyCurrentStructure(p);
    }
    return out.toString();
  }

  private String names(Object[] values, Predicate<Object> test) {
    List<String> names = new ArrayList<>(2);
    for (int i = 0; i < values.length; i++) {
      if (test.test(values[i])) {
        names.add(fields[i]);
      }
    }
    return String.join(",", names);
  }

  /** Ids become state keys and PostgreSQL text: 1 to maxIdLength characters, no control characters, not JSON
   * containers. */
  boolean badId(String id) {
    int length = id.codePointCount(0, id.length());
    if (length == 0 || length > maxIdLength || id.charAt(0) == '{' || id.charAt(0) == '[') {
      return true;
    }
    for (int i = 0; i < id.length(); i++) {
      if (Character.isISOControl(id.charAt(i))) {
        return true;
      }
    }
    return false;
  }

  /** Epoch milliseconds of {@code 2026-11-28T14:07:00.123Z} (any offset), or null when it is not such a time. */
  static Long eventTimeMs(String text) {
    if (text.length() == 24 && text.charAt(23) == 'Z') {
      return utcMillis(text);
    }
    try {
      return OffsetDateTime.parse(text, EVENT_TIME).toInstant().toEpochMilli();
    } catch (DateTimeParseException | ArithmeticException e) {
      return null;
    }
  }

  /**
   * The producers' own form, {@code uuuu-MM-ddTHH:mm:ss.SSSZ}, read without the general formatter: it was a
   * third of the parser's time (`make bench-detector --stages`). Same result as the formatter, tested.
   */
  private static Long utcMillis(String t) {
    int year = digits(t, 0, 4), month = digits(t, 5, 2), day = digits(t, 8, 2);
    int hour = digits(t, 11, 2), minute = digits(t, 14, 2), second = digits(t, 17, 2), milli = digits(t, 20, 3);
    boolean separators = t.charAt(4) == '-' && t.charAt(7) == '-' && t.charAt(10) == 'T' && t.charAt(13) == ':'
        && t.charAt(16) == ':' && t.charAt(19) == '.';
    if (!separators || year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23
        || minute < 0 || minute > 59 || second < 0 || second > 59 || milli < 0
        || day > YearMonth.of(year, month).lengthOfMonth()) {
      return null;
    }
    long days = LocalDate.of(year, month, day).toEpochDay();
    return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000L + milli;
  }

  /** The decimal number in {@code t[from, from + n)}, or -1 unless all n characters are ASCII digits. */
  private static int digits(String t, int from, int n) {
    int value = 0;
    for (int i = from; i < from + n; i++) {
      char ch = t.charAt(i);
      if (ch < '0' || ch > '9') {
        return -1;
      }
      value = value * 10 + (ch - '0');
    }
    return value;
  }

  /** At most MAX_DETAIL characters, control characters replaced: a detail quotes input and is stored. */
  static String printable(String detail) {
    StringBuilder out = new StringBuilder(Math.min(detail.length(), MAX_DETAIL));
    for (int i = 0; i < detail.length() && out.length() < MAX_DETAIL; i++) {
      char ch = detail.charAt(i);
      out.append(Character.isISOControl(ch) ? '?' : ch);
    }
    return out.toString();
  }
}
