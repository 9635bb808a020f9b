"""Real services for the integration tests: one local Kafka broker and one embedded PostgreSQL per
session, started by the project's own local-stack code; a fresh topic and database per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.settings import load_settings
from fraud_detection.storage import postgres

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("FRAUD_TEST_CACHE_DIR", REPO / ".cache"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    with LocalKafka(tmp_path_factory.mktemp("kafka"), CACHE_DIR, port=free_port(), heap="512m") as broker:
        yield broker


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    with LocalPostgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (with the operator's jars) for the tests that run queries in-process."""
    from fraud_detection.detector.session import spark_session

    session = spark_session(load_settings(local={"cache_dir": CACHE_DIR}), "fraud-detection-tests")
    yield session
    session.stop()


@pytest.fixture
def topic(kafka):
    name = f"tx-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(name, partitions=3)
    return name


@pytest.fixture
def database_url(pg_server):
    """A fresh, migrated database for one test."""
    url = pg_server.create_database(f"test_{uuid.uuid4().hex[:12]}")
    postgres.migrate(url)
    return url


@pytest.fixture
def stack_env(kafka, topic, database_url, monkeypatch):
    """FRAUD_* variables pointing the components at this test's topic and database."""
    env = {
        "FRAUD_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FRAUD_KAFKA__TOPIC": topic,
        "FRAUD_DATABASE_URL": database_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def settings(stack_env):
    return load_settings()
