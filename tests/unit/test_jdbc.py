"""The database URL as the JVM sink's JDBC URL and properties."""

from __future__ import annotations

import pytest

from fraud_detection.storage.jdbc import UNIX_SOCKET_FACTORY, JdbcUrlError, jdbc_target


def test_a_tcp_url_keeps_its_host_port_database_and_credentials():
    assert jdbc_target("postgresql://fraud:p%40ss:w@db.internal:6543/alerts?sslmode=require") == (
        "jdbc:postgresql://db.internal:6543/alerts", {"user": "fraud", "password": "p@ss:w", "sslmode": "require"})


def test_the_local_stacks_unix_socket_goes_through_junixsocket():
    url, properties = jdbc_target("postgresql://postgres:@/fraud?host=/tmp/pg-abc")
    assert url == "jdbc:postgresql://localhost:5432/fraud"
    assert properties == {"user": "postgres", "socketFactory": UNIX_SOCKET_FACTORY,
                          "socketFactoryArg": "/tmp/pg-abc/.s.PGSQL.5432"}


def test_libpq_names_become_pgjdbc_names_and_an_ipv6_host_is_bracketed():
    url, properties = jdbc_target("postgresql://u@[::1]/d?connect_timeout=5&application_name=x")
    assert url == "jdbc:postgresql://[::1]:5432/d"
    assert properties == {"user": "u", "connectTimeout": "5", "ApplicationName": "x"}


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql://u:secret@h/d?options=-c%20x%3D1", "cannot pass options"),
    ("postgresql://u:secret@h1,h2/d", "one PostgreSQL host"),
    ("postgresql://u:secret@h/d?bogus=1", "not a PostgreSQL URL"),
])
def test_what_the_driver_cannot_take_fails_fast_without_echoing_the_password(url, says):
    with pytest.raises(JdbcUrlError, match=says) as raised:
        jdbc_target(url)
    assert "secret" not in str(raised.value)
