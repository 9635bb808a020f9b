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
  private transient String runId;
  private transient long batchId;
  private transient int partitionId;
  private transient int slice;
  private transient CommitUnit unit;

  public PostgresForeachWriter(PostgresTarget target, int sliceRows) {
    if (sliceRows < 1) {
      throw new IllegalArgumentException("sliceRows must be at least 1, got " + sliceRows);
    }
    this.target = target;
    this.sliceRows = sliceRows;
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
    target.commit(runId, batchId, partitionId, slice++, unit);
    unit = new CommitUnit();
  }
}
