package io.github.frauddetection.sink;

import java.io.Serializable;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Types;
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
 * with backoff for up to {@code retryTimeoutMs}, as the batch sink does: a failed call left nothing behind,
 * and one that did commit is recognised by its ledger row (in real-time mode, its writes are idempotent).
 */
public final class PostgresTarget implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(PostgresTarget.class);
  private static final String COMMIT =
      "SELECT alerts_new, alerts_updated FROM detector_commit(?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?::jsonb)";
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

  /** Commits the unit; {@code slice} null commits it without a ledger row (migration 0011). */
  void commit(String runId, long batchId, int partitionId, Integer slice, CommitUnit unit) {
    String alerts = unit.alertsJson();
    String merges = unit.mergesJson();
    String rejected = unit.rejectedJson();
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(retryTimeoutMs);
    long waitMs = 500;
    for (int attempt = 1; ; attempt++) {
      Connection connection = null;
      try {
        connection = take();
        try (PreparedStatement call = connection.prepareStatement(COMMIT)) {
          call.setString(1, runId);
          call.setLong(2, batchId);
          call.setInt(3, partitionId);
          if (slice == null) {
            call.setNull(4, Types.INTEGER);
          } else {
            call.setInt(4, slice);
          }
          call.setObject(5, OffsetDateTime.now(ZoneOffset.UTC));
          call.setNull(6, Types.BIGINT);
          call.setLong(7, unit.duplicates());
          call.setString(8, alerts);
          call.setString(9, merges);
          call.setString(10, rejected);
          call.executeQuery().close(); // no row: this unit was committed before
        }
        give(connection);
        return;
      } catch (SQLException e) {
        discard(connection);
        if (!unreachable(e) || System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitMs) > deadline) {
          throw new IllegalStateException("the JVM sink could not commit batch " + batchId + " partition "
              + partitionId + ": " + e.getMessage(), e);
        }
        LOG.warn("event=sink_retry batch_id={} partition={} attempt={} error={}", batchId, partitionId, attempt,
            e.getMessage());
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
