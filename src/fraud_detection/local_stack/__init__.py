"""The whole pipeline on one machine, without Kubernetes or Docker: a real Kafka broker, a real
PostgreSQL server and Spark in local mode, started and stopped by these modules."""
