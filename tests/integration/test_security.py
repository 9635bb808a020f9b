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
from pathlib import Path

import psutil
import pytest

from fraud_detection.local_stack.postgres import LocalPostgres
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


# SQL text must be a constant: string literals, their concatenation, or a module constant. Where a value
# has to be spliced in, the function doing it is listed here with the reason it is safe.
SPLICED = {
    ("local_stack/postgres.py", "create_database"): "psql takes no parameters; the name is checked to be an identifier",
    ("local_stack/postgres.py", "serve_tcp"): "psql takes no parameters; role and password are checked: no quotes",
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


def test_the_tcp_listener_for_cluster_pods_admits_only_its_role_with_its_password(pg_dir):
    """serve_tcp (the k3s e2e's PostgreSQL): the role with its password connects and owns the database; a wrong
    password and every other role (trusted on the Unix socket) are refused."""
    import psycopg2

    server = LocalPostgres(pg_dir).start()
    try:
        password = "a-password-for-this-test-only"
        url = server.serve_tcp("127.0.0.1", 0, "fraud_app", password)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE owned_by_the_role (x int)")  # migrations need to create tables
            cur.execute("SELECT current_user")
            assert cur.fetchone() == ("fraud_app",)
        conn.close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(url.replace(password, "not-the-password-at-all"))
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(url.replace(f"fraud_app:{password}", "postgres"))
        with pytest.raises(ValueError, match="password"):
            server.serve_tcp("127.0.0.1", 0, "fraud_app", "short")
    finally:
        server.stop()
