"""Real services for the integration tests: one local Kafka broker and one embedded PostgreSQL per
session, started by the project's own local-stack code; a fresh topic and database per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

import pytest

from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.settings import Operator, load_settings
from fraud_detection.storage import schema

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


@contextmanager
def outside_pytest_temp():
    """A folder for an embedded PostgreSQL's data outside /tmp/pytest-of-<user>: run as root, pgserver opens
    the data folder's parents to the server's own user, and any other pytest session that starts meanwhile
    (another terminal, a helper) closes that folder again, which stops the server."""
    path = Path(tempfile.mkdtemp(prefix="fraud-detection-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    with outside_pytest_temp() as folder, LocalPostgres(folder) as server:
        yield server


@pytest.fixture
def pg_dir():
    """A data folder for a test's own embedded PostgreSQL (see outside_pytest_temp)."""
    with outside_pytest_temp() as folder:
        yield folder


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (with the operator's jars) for the tests that run queries in-process."""
    from fraud_detection.detector.session import spark_session

    session = spark_session(load_settings(local={"cache_dir": CACHE_DIR}), "fraud-detection-tests")
    yield session
    session.stop()


@pytest.fixture(params=get_args(Operator))
def operator(request) -> str:
    """Each stateful operator in turn (FRAUD_DETECTOR__OPERATOR): they must give the same rows."""
    return request.param


@pytest.fixture
def topic(kafka):
    name = f"tx-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(name, partitions=3)
    return name


@pytest.fixture
def database_url(pg_server):
    """A fresh, migrated database for one test."""
    url = pg_server.create_database(f"test_{uuid.uuid4().hex[:12]}")
    schema.migrate(url)
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
