"""A real PostgreSQL server for the local stack: the one at ``FRAUD_DATABASE_URL`` when set, otherwise
an embedded server from the ``pgserver`` wheel with its data in an ignored folder. The embedded server
listens on a Unix socket only (no TCP port), and is stopped when the process that started it exits."""

from __future__ import annotations

import logging
from pathlib import Path

from fraud_detection.local_stack.kafka import LocalStackError

log = logging.getLogger(__name__)

DATABASE = "fraud"


class LocalPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._server = None

    def start(self) -> LocalPostgres:
        try:
            import pgserver
        except ImportError:
            raise LocalStackError(
                "the embedded PostgreSQL needs the `pgserver` wheel: pip install -e '.[local]' "
                "(or set FRAUD_DATABASE_URL to a running server)"
            ) from None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        self.create_database(DATABASE)
        log.info("event=postgres_started data_dir=%s", self.data_dir)
        return self

    def create_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; returns its URL."""
        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        # psql takes no parameters; the name is checked to be a plain identifier above.
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")  # noqa: S608
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {name};")
        return self._server.get_uri(name)

    @property
    def url(self) -> str:
        if self._server is None:
            raise LocalStackError("the embedded PostgreSQL is not started")
        return self._server.get_uri(DATABASE)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("event=postgres_stopped")

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
