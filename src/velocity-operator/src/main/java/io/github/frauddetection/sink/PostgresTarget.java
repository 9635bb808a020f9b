package io.github.frauddetection.sink;

import java.io.Serializable;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.Deque;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where the JVM sink commits: a PostgreSQL JDBC URL and its connection properties (credentials included:
 * they come from the detector's environment through detector/sink.py and are never logged). Connections
 * are kept per executor JVM and reused across tasks. A commit that finds PostgreSQL unreachable is retried
 * with backoff for up to {@code retryTimeoutMs}: a failed call left nothing behind, and one that did commit
 * before its answer was lost changes nothing when applied again (its writes are idempotent by content).
 */
public final class PostgresTarget implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(PostgresTarget.class);
  private static final String APPLY =
      "SELECT alerts_new FROM detector_apply(?, ?, ?, ?::jsonb, ?::jsonb, ?::jsonb, ?::jsonb)";
  private static final Map<String, Deque<Connection>> IDLE = new ConcurrentHashMap<>();

  private final String url;
  private final Properties properties;
  private final long retryTimeoutMs;

  public PostgresTarget(String url, Properties properties, long retryTimeoutMs) {
    if (!url.startsWith("jdbc:postgresql:")) {
      throw new IllegalArgumentException("not a PostgreSQL JDBC URL: " + url);
    }
    this.url = url;
    this.properties = properties;
    this.retryTimeoutMs = retryTimeoutMs;
  }

  /** Applies the unit's rows (R__detector_sink.sql), in one transaction. */
  void commit(String runId, long batchId, CommitUnit unit) {
    String alerts = unit.alertsJson();
    String merges = unit.mergesJson();
    String rejected = unit.rejectedJson();
    String duplicates = unit.duplicatesJson();
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(retryTimeoutMs);
    long waitMs = 500;
    for (int attempt = 1; ; attempt++) {
      Connection connection = null;
      try {
        connection = take();
        try (PreparedStatement call = connection.prepareStatement(APPLY)) {
          call.setString(1, runId);
          call.setLong(2, batchId);
          call.setObject(3, OffsetDateTime.now(ZoneOffset.UTC));
          call.setString(4, alerts);
          call.setString(5, merges);
          call.setString(6, rejected);
          call.setString(7, duplicates);
          call.executeQuery().close();
        }
        give(connection);
        return;
      } catch (SQLException e) {
        discard(connection);
        if (!unreachable(e) || System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitMs) > deadline) {
          throw new IllegalStateException("the sink could not commit rows of batch " + batchId + ": "
              + e.getMessage(), e);
        }
        LOG.warn("event=sink_retry batch_id={} attempt={} error={}", batchId, attempt, e.getMessage());
        sleep(waitMs);
        waitMs = Math.min(waitMs * 2, 10_000);
      }
    }
  }

  /** Connection failures (SQLSTATE class 08) and a server shutting down or starting (57P0x). */
  static boolean unreachable(SQLException e) {
    String state = e.getSQLState();
    return state != null && (state.startsWith("08") || state.startsWith("57P0"));
  }

  private Connection take() throws SQLException {
    Connection idle = IDLE.computeIfAbsent(key(), k -> new ConcurrentLinkedDeque<>()).pollFirst();
    if (idle != null) {
      return idle;
    }
    // The driver directly, not DriverManager: Spark loads it from spark.jars, which DriverManager ignores.
    Connection connection = new org.postgresql.Driver().connect(url, properties);
    connection.setAutoCommit(true); // one statement, the function, is the transaction
    return connection;
  }

  private void give(Connection connection) {
    IDLE.get(key()).offerFirst(connection);
  }

  private static void discard(Connection connection) {
    if (connection != null) {
      try {
        connection.close();
      } catch (SQLException ignored) {
        // Already broken; a new one is opened on the next attempt.
      }
    }
  }

  private String key() {
    return url + "#" + properties.getProperty("user", "");
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for PostgreSQL", e);
    }
  }

  @Override
  public String toString() {
    return "PostgresTarget(" + url + ")"; // never the properties: they hold the password
  }
}
