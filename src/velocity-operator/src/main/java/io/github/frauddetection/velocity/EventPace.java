package io.github.frauddetection.velocity;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * How fast event time runs against the clock, as the watermark's steps show it: real-time mode's
 * processing-time timers wait a stretch of event time divided by this pace.
 *
 * <p>Event time keeps pace with the clock on a live stream, but not always: a stream that catches up on a
 * backlog, or the generator's compressed clock, runs it many times faster. A timer that assumed pace 1
 * would then look at a card far later than its expiry, and the state would hold that many times more cards.
 *
 * <p>One per query and JVM ({@link #of}): every task of the query sees the same watermark, and processor
 * instances are new for each batch, so what earlier batches saw must outlive them. Only a hint: the
 * watermark, not this, decides when a card is dropped.
 */
final class EventPace {
  private static final Map<String, EventPace> BY_QUERY = new ConcurrentHashMap<>();
  /** The slowest pace assumed: a stalled stream waits a window (the caller's cap), never forever. */
  private static final double MIN_PACE = 1e-3;

  private long clockMs;
  private long watermarkMs;
  private double pace = 1.0;

  static EventPace of(String queryId) {
    return BY_QUERY.computeIfAbsent(queryId, id -> new EventPace());
  }

  /** A watermark seen at {@code nowMs}; a higher one than the last gives the pace since that one was seen. */
  synchronized void observe(long nowMs, long watermark) {
    if (watermark <= 0 || watermark <= watermarkMs) {
      return;
    }
    if (watermarkMs > 0 && nowMs > clockMs) {
      pace = Math.max(MIN_PACE, (watermark - watermarkMs) / (double) (nowMs - clockMs));
    }
    clockMs = nowMs;
    watermarkMs = watermark;
  }

  /** Clock milliseconds until the watermark moves {@code eventMs} further, at the last pace seen (1 before). */
  synchronized long clockMs(long eventMs) {
    return (long) Math.ceil(eventMs / pace);
  }
}
