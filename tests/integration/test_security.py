"""Security defaults: no credential in any log, SQL built only from constants, loopback-only local services.

(The chart's side, no default password, no secret in values, non-root pods and the NetworkPolicies, is
checked in tests/charts.)
"""

from __future__ import annotations

import ast
import ipaddress
import os
import signal
import subprocess
from contextlib import closing
from pathlib import Path

import psutil
import pytest

from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.local_stack.postgres import READER_ROLE, LocalPostgres
from tests.integration import detector_runs as runs
from tests.integration.conftest import CACHE_DIR

SRC = Path(__file__).resolve().parents[2] / "src" / "fraud_detection"
DB_SECRET = "Pw-9f3kQ-never-logged"
KAFKA_SECRET = "Sasl-7Yx2-never-logged"


def with_password(url: str) -> str:
    """The test database's URL with a password in it (the embedded server trusts its socket, so it is unused)."""
    scheme, rest = url.split("://", 1)
    user, _, host = rest.partition("@")
    return f"{scheme}://{user.split(':')[0]}:{DB_SECRET}@{host}"


def test_no_credential_appears_in_any_command_output(kafka, topic, database_url, tmp_path):
    """Every command, on success and on failure, prints neither the database password nor the SASL one."""
    env = {**os.environ, "FRAUD_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "FRAUD_KAFKA__TOPIC": topic,
           "FRAUD_DATABASE_URL": with_password(database_url), "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR),
           "FRAUD_KAFKA__SASL_USERNAME": "fraud", "FRAUD_KAFKA__SASL_PASSWORD": KAFKA_SECRET,
           "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoint"), "FRAUD_LOG_LEVEL": "DEBUG"}
    commands = [
        ["db", "migrate"], ["check", "--postgres", "--kafka"],
        ["generate", "--count", "3000", "--rate", "3000", "--clock-speed", "60"],
        ["detect", "--until-drained"], ["evaluate"],
    ]
    failing = {**env, "FRAUD_DATABASE_URL": f"postgresql://fraud:{DB_SECRET}@127.0.0.1:1/fraud"}
    outputs = []
    for argv in commands:
        result = subprocess.run([*runs.CLI, *argv], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (argv, result.stderr[-2000:])
        outputs.append(result.stdout + result.stderr)
    for argv in (["db", "migrate"], ["evaluate"]):  # an unreachable database: the error names the host, not the secret
        result = subprocess.run([*runs.CLI, *argv], env=failing, capture_output=True, text=True, timeout=180)
        assert result.returncode == 1
        outputs.append(result.stdout + result.stderr)
    text = "\n".join(outputs)
    assert "event=detector_stopped" in text and "event=migrate_done" in text, "the commands did run"
    assert DB_SECRET not in text and KAFKA_SECRET not in text


@pytest.mark.timeout(420)
def test_a_sasl_password_of_every_printable_character_reaches_the_broker_unaltered(database_url, tmp_path):
    """SCRAM against a real broker with a password holding every printable ASCII character (quotes and
    backslashes included; the space last, since librdkafka drops a leading one and settings refuse it): the
    Python clients (librdkafka) and the detector's Spark source (a JAAS line) both authenticate, and the
    detector raises the alerts of what it read."""
    password = "".join(map(chr, range(0x21, 0x7F))) + " "
    broker = LocalKafka(tmp_path / "kafka", CACHE_DIR, port=free_port(), sasl_port=free_port(), heap="512m").start()
    try:
        broker.add_scram_user("fraud-app", password)
        broker.create_topic("sasl", partitions=2)
        burst = [runs.Event("c", f"t{i}", runs.base_ms() + i * 1000, 100) for i in range(7)]
        runs.produce_events(broker.bootstrap_servers, "sasl", burst)
        env = {**os.environ, "FRAUD_KAFKA__BOOTSTRAP_SERVERS": broker.sasl_bootstrap_servers,
               "FRAUD_KAFKA__TOPIC": "sasl", "FRAUD_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
               "FRAUD_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512", "FRAUD_KAFKA__SASL_USERNAME": "fraud-app",
               "FRAUD_KAFKA__SASL_PASSWORD": password, "FRAUD_DATABASE_URL": database_url,
               "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR), "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "cp"),
               "FRAUD_DETECTOR__KAFKA_RETRY_TIMEOUT": "10"}  # a refused login fails in seconds, not minutes
        wrong = {**env, "FRAUD_KAFKA__SASL_PASSWORD": password.replace("\\", "")}
        assert subprocess.run([*runs.CLI, "check", "--kafka"], env=wrong, capture_output=True).returncode == 1
        for argv in (["check", "--kafka"], ["detect", "--until-drained"]):
            result = subprocess.run([*runs.CLI, *argv], env=env, capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, (argv, result.stderr[-3000:])
        assert runs.live_alerts(database_url) == runs.oracle_alerts(burst)
    finally:
        broker.stop()


# SQL text must be a constant: string literals, their concatenation, or a module constant. Where a value
# has to be spliced in, the function doing it is listed here with the reason it is safe.
SPLICED = {
    ("local_stack/postgres.py", "create_database"): "the name is an identifier, quoted by psycopg2.sql.Identifier",
    ("local_stack/postgres.py", "serve_tcp"): "role and database quoted by psycopg2.sql.Identifier; the password is"
                                              " a parameter",
    ("storage/reports.py", "totals"): "_DETECTED is a constant fragment of the same module",
    ("storage/schema.py", "migrate"): "runs the packaged migration files themselves",
    ("storage/postgres.py", "fetch_all"): "passes its caller's SQL through; the callers are scanned here",
}
SQL_CALLS = {"execute", "execute_values", "fetch_all", "psql"}


def _constant(node: ast.AST, constants: set[str]) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant(node.left, constants) and _constant(node.right, constants)
    if isinstance(node, ast.JoinedStr):  # an f-string is constant only if every part is
        return all(isinstance(v, ast.Constant) or (isinstance(v, ast.FormattedValue)
                   and isinstance(v.value, ast.Name) and v.value.id in constants) for v in node.values)
    return isinstance(node, ast.Name) and node.id in constants


def sql_calls(tree: ast.Module):
    """(enclosing function, call, SQL argument) for every database call in a module."""
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name) and node.args:
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                if name in SQL_CALLS:
                    yield func.name, node, node.args[1] if name in ("execute_values", "fetch_all") else node.args[0]


def test_all_sql_is_parameterised():
    """Every query the package sends is constant text; values travel as parameters."""
    offenders, checked = set(), 0
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        constants = {t.id for node in tree.body if isinstance(node, ast.Assign) and _constant(node.value, set())
                     for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}
        for function, call, sql in sql_calls(tree):
            checked += 1
            where = (str(path.relative_to(SRC)), function)
            if not _constant(sql, constants) and where not in SPLICED:
                offenders.add(f"{where[0]}:{call.lineno} in {function}")
    assert checked >= 15, "the scan found the package's queries"
    assert offenders == set()


def _listening(pids: set[int]) -> set[str]:
    """Listening addresses of the processes, IPv4-mapped IPv6 (as Java binds) written as IPv4."""
    found = set()
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            ip = ipaddress.ip_address(c.laddr.ip)
            found.add(str(getattr(ip, "ipv4_mapped", None) or ip))
    return found


def _tree(pid: int) -> set[int]:
    process = psutil.Process(pid)
    return {pid, *(p.pid for p in process.children(recursive=True))}


def test_the_read_only_role_reads_what_readers_read_and_can_change_nothing(pg_server, database_url):
    """fraud_reader (Grafana's datasource, `evaluate`): SELECT on the tables and views readers query, not the
    dead letters' raw payloads; no INSERT, UPDATE, DELETE or TRUNCATE on any table, no new table, and no call
    of the functions that write."""
    import psycopg2
    from psycopg2.extensions import parse_dsn

    conn = psycopg2.connect(pg_server.uri(parse_dsn(database_url)["dbname"], READER_ROLE))
    conn.autocommit = True  # each refusal on its own
    with closing(conn), conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == (READER_ROLE,)
        for relation in ("alerts", "alert_outcomes", "episode_outcomes", "injected_attacks", "pipeline_metrics",
                         "detector_runs", "alert_outbox"):
            cur.execute(f"SELECT count(*) FROM {relation}")  # noqa: S608 - a constant list of names
        cur.execute("SELECT reason, count(*) FROM rejected_transactions GROUP BY 1")
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [t for (t,) in cur.fetchall()]
        assert len(tables) >= 11
        refused = ["SELECT raw_payload FROM rejected_transactions", "SELECT last_error FROM notification_deliveries",
                   "CREATE TABLE planted (x int)", "SELECT * FROM prune_history(now())",
                   "SELECT * FROM detector_apply('r', 0, now(), '[]', '[]', '[]', '[]')"]
        for table in tables:
            cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum = 1", (table,))
            (column,) = cur.fetchone()
            # Names from the catalog, for statements that must be refused:
            refused += [f"DELETE FROM {table}", f"TRUNCATE {table}", f"INSERT INTO {table} DEFAULT VALUES",  # noqa: S608
                        f"UPDATE {table} SET {column} = {column}"]  # noqa: S608
        for statement in refused:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)


def test_local_kafka_and_postgres_listen_on_loopback_or_a_socket(kafka, pg_server):
    """The broker's listeners are 127.0.0.1; the embedded PostgreSQL has no TCP listener at all."""
    def started_by(folder, name: str) -> set[int]:  # this session's, not another checkout's
        return {p.pid for p in psutil.process_iter(["cmdline"]) if name in (p.info["cmdline"] or [])
                and str(folder) in " ".join(p.info["cmdline"])}

    broker_pids = started_by(kafka.data_dir, "kafka.Kafka")
    assert broker_pids and _listening(broker_pids) == {"127.0.0.1"}
    postmaster = started_by(pg_server.data_dir, "-D")
    postgres_pids = postmaster | {c.pid for pid in postmaster for c in psutil.Process(pid).children()}
    assert postgres_pids and _listening(postgres_pids) == set()


@pytest.mark.timeout(240)
def test_local_detector_listens_on_loopback_only(kafka, topic, stack_env, tmp_path):
    """The detector's JVM (driver RPC, block manager) binds 127.0.0.1 in local mode."""
    env = {**os.environ, **stack_env, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoint"),
           "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR)}
    log_path = tmp_path / "detector.log"
    detector = runs.start_detector(env, log_path)
    try:
        runs.wait_for(lambda: "event=detector_started" in log_path.read_text(), 180, "the detector to start")
        addresses = _listening(_tree(detector.pid))
        assert addresses and addresses <= {"127.0.0.1"}, addresses
        detector.send_signal(signal.SIGTERM)
        assert detector.wait(60) == 0
    finally:
        runs.kill_group(detector)


def test_the_tcp_listener_for_cluster_pods_admits_only_its_role_to_its_database_with_its_password(pg_dir):
    """serve_tcp (the k3s e2e's PostgreSQL) is PostgreSQL's own listener with pg_hba rules: the role with its
    password connects and owns its database; a wrong password, another database (even one the role could open
    on the socket) and every other role (trusted on the socket) are refused on TCP."""
    import psycopg2

    server = LocalPostgres(pg_dir).start()
    try:
        server.create_database("other")
        password = "a-password-for-this-test-only"
        url = server.serve_tcp("127.0.0.1", 0, "fraud_app", password)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE owned_by_the_role (x int)")  # migrations need to create tables
            cur.execute("SELECT current_user, inet_server_addr() IS NOT NULL")
            assert cur.fetchone() == ("fraud_app", True), "a TCP connection as the role"
        conn.close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(url.replace(password, "not-the-password-at-all"))
        for database in ("other", "postgres", "template1"):
            with pytest.raises(psycopg2.OperationalError, match="rejects connection"):
                psycopg2.connect(url.replace("/fraud", f"/{database}"))
        with pytest.raises(psycopg2.OperationalError, match="rejects connection"):
            psycopg2.connect(url.replace(f"fraud_app:{password}", "postgres"))
        with psycopg2.connect(server.url) as conn, conn.cursor() as cur:  # the socket still serves the stack
            cur.execute("SELECT count(*) FROM owned_by_the_role")
        conn.close()
        with pytest.raises(ValueError, match="password"):
            server.serve_tcp("127.0.0.1", 0, "fraud_app", "short")
    finally:
        server.stop()
    assert not _listening({p.pid for p in psutil.process_iter(["cmdline"])
                           if str(pg_dir) in " ".join(p.info["cmdline"] or [])}), "stopped, listener and all"
