"""A real PostgreSQL server for the local stack: the one at ``FRAUD_DATABASE_URL`` when set, otherwise
an embedded server from the ``pgserver`` wheel with its data in an ignored folder. The embedded server
listens on a Unix socket only (no TCP port), and is stopped when the process that started it exits.
``serve_tcp`` adds a password-protected TCP listener for pods of a test cluster on this machine."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from fraud_detection.local_stack.forward import UnixSocketForwarder
from fraud_detection.local_stack.kafka import LocalStackError

log = logging.getLogger(__name__)

DATABASE = "fraud"


class LocalPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._server = None
        self._forwarder: UnixSocketForwarder | None = None

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

    def serve_tcp(self, host: str, port: int, role: str, password: str) -> str:
        """Listen on ``host:port`` for ``role`` only, with ``password`` (SCRAM); returns that role's URL.

        The TCP connections arrive on the Unix socket (see forward.py), which lets only ``role`` through; a
        pg_hba line ahead of pgserver's trust asks that role for its password."""
        if not role.isidentifier() or not re.fullmatch(r"[A-Za-z0-9_-]{16,}", password):
            raise ValueError("role must be a plain identifier and password 16+ characters of [A-Za-z0-9_-]")
        # psql takes no parameters: both are checked above to hold no quotes.
        self._server.psql(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                          f"CREATE ROLE {role} LOGIN; END IF; END $$;")
        self._server.psql(f"ALTER ROLE {role} PASSWORD '{password}'; ALTER DATABASE {DATABASE} OWNER TO {role};")
        hba = self.data_dir / "pg_hba.conf"
        rule = f"local {DATABASE} {role} scram-sha-256\n"
        if not hba.read_text().startswith(rule):
            hba.write_text(rule + hba.read_text())
        self._server.psql("SELECT pg_reload_conf();")
        info = self._server.get_postmaster_info()
        self._forwarder = UnixSocketForwarder(host, port, info.socket_dir / f".s.PGSQL.{info.port}", role).start()
        log.info("event=postgres_tcp host=%s port=%d role=%s", host, self._forwarder.port, role)
        return f"postgresql://{role}:{password}@{host}:{self._forwarder.port}/{DATABASE}"

    def stop(self) -> None:
        if self._forwarder is not None:
            self._forwarder.stop()
            self._forwarder = None
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("event=postgres_stopped")

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
