import subprocess
import sys

import pytest

from fraud_detection.cli import build_parser, main

SUBCOMMANDS = [["generate"], ["replay"], ["detect"], ["evaluate"], ["db"], ["db", "migrate"], ["db", "prune"],
               ["check"], ["create-topic"], ["run"], ["grafana"], ["notify"], ["alerts"], ["alerts", "list"],
               ["alerts", "ack"], ["alerts", "resolve"]]


@pytest.mark.parametrize("words", SUBCOMMANDS)
def test_every_subcommand_has_help(words, capsys):
    """--help works on every subcommand and exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*words, "--help"])
    assert exit_info.value.code == 0
    assert "usage: fraud-detection" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    [], ["nonsense"], ["generate", "--rate", "0"], ["generate", "--rate", "fast"],
    ["generate", "--count", "5", "--duration", "3"], ["replay"], ["replay", "x.csv", "--speed", "-2"],
    ["generate", "--start-time", "next tuesday"], ["alerts"], ["alerts", "ack"], ["alerts", "reopen", "a1"],
    ["alerts", "list", "--status", "closed"], ["alerts", "list", "--limit", "0"],
    ["alerts", "resolve", "a1", "--by", " "], ["db", "prune", "--keep-days", "0"],
    ["db", "prune", "--keep-days", "1.5"],
])
def test_wrong_arguments_exit_2_with_a_message(argv, capsys):
    """Wrong arguments exit 2 and say what is wrong."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_invalid_environment_exits_2_naming_the_variable(monkeypatch, capsys):
    """A bad FRAUD_* value stops the command before it starts, naming the variable."""
    monkeypatch.setenv("FRAUD_KAFKA__PARTITIONS", "many")
    assert main(["db", "migrate"]) == 2
    assert "FRAUD_KAFKA__PARTITIONS" in capsys.readouterr().err


def test_missing_database_url_exits_2(capsys):
    """db migrate without FRAUD_DATABASE_URL says what to set."""
    assert main(["db", "migrate"]) == 2
    assert "FRAUD_DATABASE_URL" in capsys.readouterr().err


def test_alerts_without_a_database_url_exits_2(capsys):
    """Triage commands need FRAUD_DATABASE_URL (or a running local stack) and say so."""
    assert main(["alerts", "ack", "a1", "--by", "ann"]) == 2
    assert "FRAUD_DATABASE_URL" in capsys.readouterr().err


def test_ack_when_the_os_user_is_unknown_asks_for_by(monkeypatch, capsys):
    """No --by and no OS user name (a bare container): exit 2 asking for --by, before any connection."""
    def no_user():
        raise OSError("No username set in the environment")

    monkeypatch.setattr("getpass.getuser", no_user)
    monkeypatch.setenv("FRAUD_DATABASE_URL", "postgresql://unreachable.invalid/x")
    assert main(["alerts", "ack", "a1"]) == 2
    assert "give --by NAME" in capsys.readouterr().err


def test_installed_entry_point_runs():
    """The console script is installed and answers --version."""
    result = subprocess.run([sys.executable, "-m", "fraud_detection.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("fraud-detection ")


def test_replay_mapping_errors_exit_2(tmp_path, capsys):
    """A CSV without the mapped columns is an argument error: exit 2, naming the columns it has."""
    data = tmp_path / "x.csv"
    data.write_text("a,b\n1,2\n")
    assert main(["replay", str(data), "--no-ground-truth"]) == 2
    assert "its columns are a, b" in capsys.readouterr().err


def test_population_too_small_for_the_rate_exits_2(capsys):
    """Settings that cannot work together are refused before any connection, naming what to change."""
    assert main(["generate", "--rate", "100000", "--population", "1000", "--no-ground-truth"]) == 2
    assert "FRAUD_GENERATOR__POPULATION" in capsys.readouterr().err


def test_check_without_a_target_exits_2(capsys):
    """`check` needs to be told what to check."""
    assert main(["check"]) == 2
    assert "--postgres, --kafka and/or --heartbeat" in capsys.readouterr().err


def test_check_heartbeat_passes_fresh_and_fails_stale_or_missing(tmp_path):
    """The probe command: 0 for a heartbeat within --max-age, 1 for an old or absent one."""
    import os
    import time

    from fraud_detection.heartbeat import Heartbeat

    beat = tmp_path / "hb" / "heartbeat"
    assert main(["check", "--heartbeat", str(beat)]) == 1
    Heartbeat(beat).beat()
    assert main(["check", "--heartbeat", str(beat), "--max-age", "5"]) == 0
    old = time.time() - 60
    os.utime(beat, (old, old))
    assert main(["check", "--heartbeat", str(beat), "--max-age", "30"]) == 1


def test_the_command_line_loads_no_heavy_library_until_a_command_needs_it():
    """`fraud-detection --help` and the parser import neither numpy, PySpark, Kafka nor PostgreSQL clients."""
    code = ("import sys, fraud_detection.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('numpy', 'pyspark', 'confluent_kafka', 'psycopg2') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
