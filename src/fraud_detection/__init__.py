"""Real-time card-fraud (velocity attack) detection on Kafka, Spark and PostgreSQL."""

__version__ = "0.1.0"
