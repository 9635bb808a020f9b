"""Detection rules as plain Python: the semantics, and the oracle the Spark detector is tested against."""
