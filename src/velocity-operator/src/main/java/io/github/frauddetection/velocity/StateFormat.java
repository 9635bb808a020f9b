package io.github.frauddetection.velocity;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;

/**
 * How the operators store a bucket's cards: the checkpoint's state format, recorded beside it by
 * {@code detector/session.py} and fixed for the checkpoint's life.
 *
 * <p>Format 1 is the {@link BucketState} bean, stored by Spark's bean encoder as 17 array columns; turning it
 * into rows and back was a quarter of the operator's time (JFR, `make bench-detector`). Format 2 stores the
 * same fields as one binary value that this class writes and reads itself. New checkpoints use format 2;
 * checkpoints written before it existed keep format 1.
 */
abstract class StateFormat<S> implements Serializable {
  private static final long serialVersionUID = 1L;
  static final int BEAN = 1;
  static final int BYTES = 2;

  abstract Encoder<S> encoder();

  /** Every card in a bucket's state, by card id; fails if the state was built with another bucket count. */
  abstract Map<String, VelocityWindow> load(S state, int buckets, int threshold, long windowMs);

  abstract S save(Collection<VelocityWindow> cards, int buckets);

  static StateFormat<?> of(int version) {
    return switch (version) {
      case BEAN -> new Bean();
      case BYTES -> new Bytes();
      default -> throw new IllegalArgumentException(
          "unknown state format " + version + ": this version of the operator reads formats 1 and 2");
    };
  }

  static void checkBuckets(int stored, int buckets) {
    if (stored != buckets) {
      throw new IllegalStateException("the checkpoint's state was built with " + stored + " buckets, not "
          + buckets + ": keep FRAUD_DETECTOR__STATE_BUCKETS, or start a new checkpoint");
    }
  }

  static final class Bean extends StateFormat<BucketState> {
    private static final long serialVersionUID = 1L;

    @Override
    Encoder<BucketState> encoder() {
      return Encoders.bean(BucketState.class);
    }

    @Override
    Map<String, VelocityWindow> load(BucketState state, int buckets, int threshold, long windowMs) {
      checkBuckets(state.getBuckets(), buckets);
      return BucketCodec.load(state, threshold, windowMs);
    }

    @Override
    BucketState save(Collection<VelocityWindow> cards, int buckets) {
      return BucketCodec.save(cards, buckets);
    }
  }

  /** Bucket count, card count, then per card: id, transactions, alerts, each field in BucketState's order. */
  static final class Bytes extends StateFormat<byte[]> {
    private static final long serialVersionUID = 1L;

    @Override
    Encoder<byte[]> encoder() {
      return Encoders.BINARY();
    }

    @Override
    Map<String, VelocityWindow> load(byte[] state, int buckets, int threshold, long windowMs) {
      try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(state))) {
        checkBuckets(in.readInt(), buckets);
        int cardCount = in.readInt();
        Map<String, VelocityWindow> cards = new HashMap<>(cardCount * 2);
        for (int i = 0; i < cardCount; i++) {
          VelocityWindow w = new VelocityWindow(in.readUTF(), threshold, windowMs);
          int entries = in.readInt();
          w.entries.ensureCapacity(entries);
          for (int j = 0; j < entries; j++) {
            VelocityWindow.Entry e = new VelocityWindow.Entry(in.readLong(), in.readUTF(), in.readLong(), in.readLong());
            e.triggered = in.readBoolean();
            e.burstAlertId = readNullable(in);
            w.entries.add(e);
          }
          int alerts = in.readInt();
          for (int j = 0; j < alerts; j++) {
            VelocityWindow.AlertInfo a =
                new VelocityWindow.AlertInfo(in.readUTF(), in.readUTF(), in.readLong(), in.readLong());
            a.first = in.readLong();
            a.last = in.readLong();
            a.count = in.readLong();
            a.amount = in.readLong();
            w.alerts.add(a);
          }
          cards.put(w.cardId, w);
        }
        return cards;
      } catch (IOException e) {
        throw new UncheckedIOException("unreadable state (format 2)", e);
      }
    }

    @Override
    byte[] save(Collection<VelocityWindow> cards, int buckets) {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
      try (DataOutputStream out = new DataOutputStream(bytes)) {
        out.writeInt(buckets);
        out.writeInt(cards.size());
        for (VelocityWindow w : cards) {
          out.writeUTF(w.cardId);
          out.writeInt(w.entries.size());
          for (VelocityWindow.Entry e : w.entries) {
            out.writeLong(e.eventTime);
            out.writeUTF(e.transactionId);
            out.writeLong(e.amountCents);
            out.writeLong(e.kafkaTimestamp);
            out.writeBoolean(e.triggered);
            writeNullable(out, e.burstAlertId);
          }
          out.writeInt(w.alerts.size());
          for (VelocityWindow.AlertInfo a : w.alerts) {
            out.writeUTF(a.id);
            out.writeUTF(a.triggerId);
            out.writeLong(a.triggerKafkaTimestamp);
            out.writeLong(a.triggerEventTime);
            out.writeLong(a.first);
            out.writeLong(a.last);
            out.writeLong(a.count);
            out.writeLong(a.amount);
          }
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e); // a byte array does not fail
      }
      return bytes.toByteArray();
    }

    private static void writeNullable(DataOutputStream out, String s) throws IOException {
      out.writeBoolean(s != null);
      if (s != null) {
        out.writeUTF(s);
      }
    }

    private static String readNullable(DataInputStream in) throws IOException {
      return in.readBoolean() ? in.readUTF() : null;
    }
  }
}
