package io.github.frauddetection.sink;

import org.apache.spark.TaskContext;
import org.apache.spark.sql.ForeachWriter;
import org.apache.spark.sql.Row;

/**
 * The detector's sink: each task commits its partition's rows through {@code detector_apply}
 * (R__detector_sink.sql) in units of at most {@code unitRows} rows and about {@code unitChars} characters of
 * JSON, so that neither a backlog batch nor large rejected records are held in memory at once.
 *
 * <p>A unit carries no identity. Spark may run a task again with the same rows in another order (the shuffle
 * fetches blocks as they come; real-time mode's pipelined shuffle interleaves partitions), so "unit 0 of
 * partition 3" would not name the same rows twice. Instead every write is idempotent by content and the
 * function counts only what it changed: units applied again, whole or in part, in any order, add nothing.
 *
 * <p>Real-time mode ({@link #realTime}): a task runs for the whole checkpoint interval and {@code close} comes
 * only at its end, so each row is committed as it comes.
 *
 * <p>The batch's input row count is not known to a partition: Spark's progress brings it
 * (ProgressRecorder in detector/sink.py).
 */
public final class PostgresForeachWriter extends ForeachWriter<Row> {
  private static final long serialVersionUID = 1L;
  // Set by Spark on every job of a streaming query (StreamExecution.QUERY_ID_KEY): the query's id, which
  // stays the same across restarts from one checkpoint.
  private static final String QUERY_ID = "sql.streaming.queryId";

  private final PostgresTarget target;
  private final int unitRows;
  private final long unitChars;
  private transient String runId;
  private transient long batchId;
  private transient CommitUnit unit;

  /** Micro-batch mode: units of at most {@code unitRows} rows and about {@code unitChars} characters. */
  public PostgresForeachWriter(PostgresTarget target, int unitRows, long unitChars) {
    if (unitRows < 1 || unitChars < 1) {
      throw new IllegalArgumentException("unitRows and unitChars must be at least 1, got " + unitRows + ", "
          + unitChars);
    }
    this.target = target;
    this.unitRows = unitRows;
    this.unitChars = unitChars;
  }

  /** Real-time mode: each row committed as it arrives. */
  public static PostgresForeachWriter realTime(PostgresTarget target) {
    return new PostgresForeachWriter(target, 1, Long.MAX_VALUE);
  }

  @Override
  public boolean open(long partitionId, long epochId) {
    this.runId = TaskContext.get().getLocalProperty(QUERY_ID);
    if (runId == null) {
      throw new IllegalStateException("PostgresForeachWriter runs in a streaming query only");
    }
    this.batchId = epochId;
    this.unit = new CommitUnit();
    return true;
  }

  @Override
  public void process(Row row) {
    unit.add(row);
    if (unit.size() >= unitRows || unit.chars() >= unitChars) {
      flush();
    }
  }

  @Override
  public void close(Throwable error) {
    if (error == null && unit != null && unit.size() > 0) {
      flush();
    }
    unit = null;
  }

  private void flush() {
    target.commit(runId, batchId, unit);
    unit = new CommitUnit();
  }
}
