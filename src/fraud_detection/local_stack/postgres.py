"""A real PostgreSQL server for the local stack: the one at ``FRAUD_DATABASE_URL`` when set, otherwise
an embedded server from the ``pgserver`` wheel with its data in an ignored folder. The embedded server
listens on a Unix socket only (no TCP port), and is stopped when the process that started it exits.
``serve_tcp`` adds PostgreSQL's own TCP listener, for one role and database, for pods of a test cluster."""

from __future__ import annotations

import logging
import re
import socket
from contextlib import closing
from pathlib import Path

import psycopg2
from psycopg2 import sql

from fraud_detection.local_stack.kafka import LocalStackError

log = logging.getLogger(__name__)

DATABASE = "fraud"
# The read-only role of dashboards and reports (R__reader_role.sql): a login here, without a password on the
# socket, as every role of the embedded server.
READER_ROLE = "fraud_reader"
# pg_hba.conf's first lines once serve_tcp runs (the first matching line decides): over TCP, only the role,
# only to its database, with its password; every other role or database is refused, whatever follows.
_TCP_RULES = "host {database} {role} all scram-sha-256\nhost all all all reject\n"


class LocalPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._server = None
        self._listening_on_tcp = False

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
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,))
            if cur.fetchone() is None:  # before the migrations, which grant it what it may read
                cur.execute(f"CREATE ROLE {READER_ROLE} LOGIN")
        log.info("event=postgres_started data_dir=%s", self.data_dir)
        return self

    def uri(self, database: str, user: str = "postgres") -> str:
        """``user``'s URL of ``database`` on the socket, as the server runs now (serve_tcp moves its port)."""
        from pgserver.utils import PostmasterInfo

        if self._server is None:
            raise LocalStackError("the embedded PostgreSQL is not started")
        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        return f"postgresql://{user}:@/{database}?host={info.socket_dir}&port={info.port}"

    def _admin(self):
        conn = psycopg2.connect(self.uri("postgres"))
        conn.autocommit = True  # CREATE DATABASE runs outside a transaction
        return closing(conn)

    def create_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; returns its URL."""
        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.uri(name)

    @property
    def url(self) -> str:
        return self.uri(DATABASE)

    @property
    def reader_url(self) -> str:
        """The ``fraud`` database as the read-only role."""
        return self.uri(DATABASE, READER_ROLE)

    def serve_tcp(self, host: str, port: int, role: str, password: str) -> str:
        """PostgreSQL's own TCP listener on ``host:port`` (0: a free port) for ``role`` with ``password``
        (SCRAM), to the ``fraud`` database only, which it then owns; returns that URL. The server restarts to
        listen (it also moves its socket to the port); pg_hba refuses every other role and database on TCP."""
        from pgserver import pg_ctl

        if not role.isidentifier() or not re.fullmatch(r"[A-Za-z0-9_-]{16,}", password):
            raise ValueError("role must be a plain identifier and password 16+ characters of [A-Za-z0-9_-]")
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), (password,))
            cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(DATABASE),
                                                                        sql.Identifier(role)))
        hba = self.data_dir / "pg_hba.conf"
        rules = _TCP_RULES.format(database=DATABASE, role=role)
        hba.write_text(rules + hba.read_text().removeprefix(rules))
        port = port or _free_port(host)
        socket_dir = self._server.get_postmaster_info().socket_dir
        pg_ctl(["-w", "-l", str(self._server.log), "-o", f'-h "{host}" -p {port} -k "{socket_dir}"', "restart"],
               pgdata=self.data_dir, user=self._server.system_user, timeout=60)
        self._listening_on_tcp = True
        log.info("event=postgres_tcp host=%s port=%d role=%s", host, port, role)
        return f"postgresql://{role}:{password}@{host}:{port}/{DATABASE}"

    def stop(self) -> None:
        if self._server is None:
            return
        if self._listening_on_tcp:  # pgserver only stops the server process it started itself
            from pgserver import pg_ctl

            pg_ctl(["-w", "stop"], pgdata=self.data_dir, user=self._server.system_user, timeout=60)
            self._listening_on_tcp = False
        self._server.cleanup()
        self._server = None
        log.info("event=postgres_stopped")

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
