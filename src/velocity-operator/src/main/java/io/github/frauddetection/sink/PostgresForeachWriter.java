package io.github.frauddetection.sink;

import org.apache.spark.TaskContext;
import org.apache.spark.sql.ForeachWriter;
import org.apache.spark.sql.Row;

/**
 * The detector's sink as a ForeachWriter, the kind Spark's real-time mode runs (it has no foreachBatch):
 * each task commits its partition's rows through {@code detector_commit} (migration 0009), in slices of at
 * most {@code sliceRows} rows so that a backlog batch is not held in memory. A slice's ledger row makes a
 * task that Spark runs again write nothing; the function's writes are idempotent besides.
 *
 * <p>In real-time mode a task runs for the whole checkpoint interval and {@code close} comes only at its
 * end, so {@link #realTime} commits every row as it comes, without ledger rows: a batch run again may emit
 * its rows in another order, and the idempotent writes alone keep the result exact (migration 0011).
 *
 * <p>The batch's input row count is not known to a partition: Spark's progress brings it (ProgressRecorder
 * in detector/sink.py).
 */
public final class PostgresForeachWriter extends ForeachWriter<Row> {
  private static final long serialVersionUID = 1L;
  // Set by Spark on every job of a streaming query (StreamExecution.QUERY_ID_KEY): the query's id, which
  // stays the same across restarts from one checkpoint, as the batch sink's run id does.
  private static final String QUERY_ID = "sql.streaming.queryId";

  private final PostgresTarget target;
  private final int sliceRows;
  private final boolean ledger;
  private transient String runId;
  private transient long batchId;
  private transient int partitionId;
  private transient int slice;
  private transient CommitUnit unit;

  /** Micro-batch mode: slices of at most {@code sliceRows} rows, each recorded in the ledger. */
  public PostgresForeachWriter(PostgresTarget target, int sliceRows) {
    this(target, sliceRows, true);
  }

  private PostgresForeachWriter(PostgresTarget target, int sliceRows, boolean ledger) {
    if (sliceRows < 1) {
      throw new IllegalArgumentException("sliceRows must be at least 1, got " + sliceRows);
    }
    this.target = target;
    this.sliceRows = sliceRows;
    this.ledger = ledger;
  }

  /** Real-time mode: each row committed as it arrives, at least once. */
  public static PostgresForeachWriter realTime(PostgresTarget target) {
    return new PostgresForeachWriter(target, 1, false);
  }

  @Override
  public boolean open(long partitionId, long epochId) {
    this.runId = TaskContext.get().getLocalProperty(QUERY_ID);
    if (runId == null) {
      throw new IllegalStateException("PostgresForeachWriter runs in a streaming query only");
    }
    this.batchId = epochId;
    this.partitionId = Math.toIntExact(partitionId);
    this.slice = 0;
    this.unit = new CommitUnit();
    return true;
  }

  @Override
  public void process(Row row) {
    unit.add(row);
    if (unit.size() >= sliceRows) {
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
    target.commit(runId, batchId, partitionId, ledger ? Integer.valueOf(slice++) : null, unit);
    unit = new CommitUnit();
  }
}
