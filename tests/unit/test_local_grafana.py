"""`make grafana`: the provisioning a plain Grafana reads, and the environment the command gives it."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from fraud_detection.cli import main
from fraud_detection.local_stack import grafana
from fraud_detection.local_stack.kafka import LocalStackError
from tests.charts.rendering import one, render_named


def test_tcp_url_gives_host_port_user_password_and_database():
    """A TCP URL maps onto the datasource fields; remote hosts default to TLS."""
    env = grafana.datasource_env("postgresql://fraud:p%40ss@db.example:6543/fraud")
    assert env == {"GRAFANA_PG_HOST": "db.example:6543", "GRAFANA_PG_USER": "fraud", "GRAFANA_PG_PASSWORD": "p@ss",
                   "GRAFANA_PG_DATABASE": "fraud", "GRAFANA_PG_SSLMODE": "require"}


def test_embedded_server_url_gives_its_socket_directory():
    """pgserver's socket-only URL becomes a socket-directory host, without TLS."""
    env = grafana.datasource_env("postgresql://postgres:@/fraud?host=/tmp/pgsock")
    assert (env["GRAFANA_PG_HOST"], env["GRAFANA_PG_DATABASE"], env["GRAFANA_PG_SSLMODE"]) == (
        "/tmp/pgsock", "fraud", "disable")


def test_grafana_binds_loopback_with_a_random_admin_password(tmp_path):
    """Loopback only, anonymous users may only view, the admin password is random and kept, not 'admin'."""
    password = grafana.admin_password(tmp_path)
    assert password == grafana.admin_password(tmp_path) and len(password) >= 24 and password != "admin"
    assert (tmp_path / "admin-password").stat().st_mode & 0o077 == 0
    env = grafana.grafana_env("postgresql://u:p@127.0.0.1/fraud", tmp_path, password)
    assert env["GF_SERVER_HTTP_ADDR"] == "127.0.0.1" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_PATHS_PROVISIONING"] == str(grafana.PROVISIONING)
    assert (grafana.DASHBOARDS / "fraud-detection.json").exists()


def test_missing_grafana_says_what_to_install(capsys):
    """Without a grafana binary the command fails naming what to install, before anything else."""
    with pytest.raises(LocalStackError, match="install Grafana"):
        grafana.find_grafana(which=lambda name: None)


def test_provisioning_holds_no_credentials_and_matches_the_dashboards_and_the_chart():
    """Every connection value comes from the environment; the uid is the one the dashboards and chart use."""
    (ds_file,) = (grafana.PROVISIONING / "datasources").glob("*.yaml")
    datasource = yaml.safe_load(ds_file.read_text())["datasources"][0]
    for key in ("url", "user"):
        assert re.fullmatch(r"\$\{GRAFANA_PG_\w+\}", datasource[key])
    assert re.fullmatch(r"\$\{GRAFANA_PG_\w+\}", datasource["secureJsonData"]["password"])
    referenced = set(re.findall(r"\$\{(\w+)\}", ds_file.read_text()))
    env = grafana.grafana_env("postgresql://u:p@127.0.0.1/fraud", grafana.PROVISIONING, "x")
    assert referenced <= set(env)
    chart = one(render_named("default"), "GrafanaDatasource")["spec"]
    assert (datasource["uid"], datasource["type"]) == (chart["uid"], chart["datasource"]["type"])
    for path in grafana.DASHBOARDS.glob("*.json"):
        uids = {p["datasource"]["uid"] for p in json.loads(path.read_text())["panels"]}
        assert uids == {datasource["uid"]}
    (provider,) = yaml.safe_load(next((grafana.PROVISIONING / "dashboards").glob("*.yaml")).read_text())["providers"]
    assert provider["options"]["path"] == "${GRAFANA_DASHBOARDS_DIR}" and "GRAFANA_DASHBOARDS_DIR" in env


def test_grafana_command_exits_1_with_the_install_hint_without_a_binary(monkeypatch, caplog):
    """`fraud-detection grafana` where Grafana is absent: exit 1 and the hint, not a traceback."""
    monkeypatch.setattr(grafana.shutil, "which", lambda name: None)
    assert main(["grafana"]) == 1
    assert "install Grafana" in caplog.text
