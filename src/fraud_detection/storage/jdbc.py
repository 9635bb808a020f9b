"""A PostgreSQL URL (libpq's form, as everywhere in this project) as the JDBC URL and properties the detector's
sink connects with (velocity-operator's sink package, in the JVM). Pure: no I/O."""

from __future__ import annotations

from urllib.parse import quote

from psycopg2.extensions import parse_dsn

# libpq parameters and their pgjdbc property names; anything else is refused rather than silently dropped.
_PROPERTIES = {
    "user": "user", "password": "password", "sslmode": "sslmode", "sslrootcert": "sslrootcert",
    "sslcert": "sslcert", "sslkey": "sslkey", "connect_timeout": "connectTimeout",
    "application_name": "ApplicationName",
}
# pgjdbc has no Unix sockets of its own; junixsocket (shipped beside the operator) provides them.
UNIX_SOCKET_FACTORY = "org.newsclub.net.unix.AFUNIXSocketFactory$FactoryArg"


class JdbcUrlError(ValueError):
    """The URL cannot be expressed for the JVM sink; the message says what to change."""


def jdbc_target(url: str) -> tuple[str, dict[str, str]]:
    """(``jdbc:postgresql://host:port/db``, connection properties) for ``url``; a host that is a directory
    means libpq's Unix socket there, reached through junixsocket."""
    try:
        params = parse_dsn(url)
    except Exception:  # noqa: BLE001 - psycopg2 raises ProgrammingError, whose text may quote the password
        raise JdbcUrlError("the database URL is not a PostgreSQL URL: postgresql://user:password@host:port/db"
                           ) from None
    host, port = params.pop("host", "localhost"), params.pop("port", "5432")
    database = params.pop("dbname", params.get("user", "postgres"))
    unknown = sorted(set(params) - set(_PROPERTIES))
    if unknown:
        raise JdbcUrlError(f"the detector's sink (in the JVM) cannot pass {', '.join(unknown)} to PostgreSQL's"
                           " JDBC driver: remove it from the database URL")
    if "," in host:
        raise JdbcUrlError("the detector's sink takes one PostgreSQL host; the database URL names several")
    properties = {_PROPERTIES[name]: value for name, value in params.items()}
    if host.startswith("/"):
        properties["socketFactory"] = UNIX_SOCKET_FACTORY
        properties["socketFactoryArg"] = f"{host}/.s.PGSQL.{port}"
        host = "localhost"  # not dialled: the factory connects to the socket
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    return f"jdbc:postgresql://{host}:{port}/{quote(database, safe='')}", properties
