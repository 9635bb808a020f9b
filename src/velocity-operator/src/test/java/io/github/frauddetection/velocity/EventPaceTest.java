package io.github.frauddetection.velocity;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class EventPaceTest {
  @Test
  void eventTimeKeepsPaceWithTheClockUntilTwoWatermarksSayOtherwise() {
    EventPace pace = new EventPace();
    assertEquals(60_000, pace.clockMs(60_000));
    pace.observe(1_000, 0); // no watermark yet
    pace.observe(2_000, 500_000);
    assertEquals(60_000, pace.clockMs(60_000), "one watermark gives no pace");
    pace.observe(32_000, 1_100_000); // 600 s of event time in 30 s
    assertEquals(3_000, pace.clockMs(60_000));
  }

  @Test
  void onlyAHigherWatermarkMovesThePace() {
    EventPace pace = new EventPace();
    pace.observe(0, 100_000);
    pace.observe(10_000, 110_000);
    pace.observe(50_000, 110_000); // the same watermark, seen later: the stream is not slower for it
    pace.observe(60_000, 90_000);
    assertEquals(60_000, pace.clockMs(60_000));
    pace.observe(110_000, 160_000); // 50 s of event time in 100 s since 110,000 was first seen
    assertEquals(120_000, pace.clockMs(60_000));
  }

  @Test
  void aStalledStreamWaitsLongButNotForever() {
    EventPace pace = new EventPace();
    pace.observe(0, 100_000);
    pace.observe(3_600_000, 100_001);
    assertEquals(60_000_000, pace.clockMs(60_000), "the slowest pace assumed");
  }
}
