"""The Spark Structured Streaming detector: parse (valid vs rejected), the velocity operator, the sink."""
