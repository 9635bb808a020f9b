"""A local Grafana (`make grafana`) on 127.0.0.1:3000 with the repository's provisioning and dashboards.

Grafana is not a wheel or a Maven artifact, so it is not installed here: a `grafana` (or `grafana-server`)
binary on PATH is used, and without one the command says what to install. Its database is the one of
`make run` (read from the URL file the local stack writes) or ``FRAUD_DATABASE_URL``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from fraud_detection.local_stack.kafka import LocalStackError

log = logging.getLogger(__name__)

PROVISIONING = Path(__file__).resolve().parent / "grafana_provisioning"
DASHBOARDS = Path(__file__).resolve().parents[3] / "charts" / "fraud-detection" / "dashboards"
PORT = 3000
INSTALL_HINT = (
    "no `grafana` or `grafana-server` on PATH: install Grafana 11 or newer (Debian/Ubuntu: Grafana's APT "
    "repository, package `grafana`; macOS: `brew install grafana`; or unpack the standalone tarball and put "
    "its bin/ on PATH), then run `make grafana` again. Set GRAFANA_HOME if its files are not beside the binary."
)


def find_grafana(which=None) -> tuple[list[str], Path]:
    """The command that starts the server and Grafana's home (its `public/` and `conf/` folders)."""
    which = which or shutil.which
    for name, args in (("grafana", ["server"]), ("grafana-server", [])):
        binary = which(name)
        if binary:
            real = Path(binary).resolve()
            candidates = [Path(os.environ["GRAFANA_HOME"])] if os.environ.get("GRAFANA_HOME") else [
                real.parent.parent, Path("/usr/share/grafana"), Path("/opt/homebrew/share/grafana"),
                Path("/usr/local/share/grafana")]
            home = next((c for c in candidates if (c / "conf" / "defaults.ini").exists()), candidates[0])
            return [binary, *args], home
    raise LocalStackError(INSTALL_HINT)


def datasource_env(database_url: str) -> dict[str, str]:
    """The datasource's GRAFANA_PG_* values from a PostgreSQL URL (TCP host:port or a Unix socket dir)."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise LocalStackError(f"not a PostgreSQL URL (scheme {parts.scheme!r}): set FRAUD_DATABASE_URL")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    socket_dir = query.get("host", "")
    # Grafana, like libpq, takes a path as a Unix socket directory (the embedded server has no TCP port).
    host = socket_dir if socket_dir.startswith("/") else f"{parts.hostname or '127.0.0.1'}:{parts.port or 5432}"
    local = host.startswith(("/", "127.", "localhost"))
    return {
        "GRAFANA_PG_HOST": host,
        "GRAFANA_PG_USER": unquote(parts.username or "postgres"),
        "GRAFANA_PG_PASSWORD": unquote(parts.password or ""),
        "GRAFANA_PG_DATABASE": parts.path.lstrip("/") or "postgres",
        "GRAFANA_PG_SSLMODE": query.get("sslmode", "disable" if local else "require"),
    }


def grafana_env(database_url: str, data_dir: Path, admin_password: str) -> dict[str, str]:
    """Grafana's whole configuration as GF_* variables: loopback only, our provisioning, no phoning home."""
    return {
        **datasource_env(database_url),
        "GRAFANA_DASHBOARDS_DIR": str(DASHBOARDS),
        "GF_PATHS_PROVISIONING": str(PROVISIONING),
        "GF_PATHS_DATA": str(data_dir / "data"),
        "GF_PATHS_LOGS": str(data_dir / "logs"),
        "GF_PATHS_PLUGINS": str(data_dir / "plugins"),
        "GF_SERVER_HTTP_ADDR": "127.0.0.1",
        "GF_SERVER_HTTP_PORT": str(PORT),
        "GF_SECURITY_ADMIN_USER": "admin",
        "GF_SECURITY_ADMIN_PASSWORD": admin_password,
        "GF_AUTH_ANONYMOUS_ENABLED": "true",  # read-only viewing on loopback; editing needs the admin login
        "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": str(DASHBOARDS / "fraud-detection.json"),
    }


def admin_password(data_dir: Path) -> str:
    """A random admin password, made once and kept (mode 0600) in the ignored data folder."""
    path = data_dir / "admin-password"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def run_grafana(database_url: str, data_dir: Path) -> int:
    command, home = find_grafana()
    password = admin_password(data_dir)
    env = {**os.environ, **grafana_env(database_url, data_dir, password)}
    log.info("event=grafana_starting url=http://127.0.0.1:%d home=%s admin_password_file=%s",
             PORT, home, data_dir / "admin-password")
    try:
        return subprocess.run([*command, "--homepath", str(home)], env=env, check=False).returncode
    except KeyboardInterrupt:
        return 0
