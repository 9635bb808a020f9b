import pytest

from fraud_detection.local_stack import kafka
from fraud_detection.local_stack.kafka import LocalStackError, ensure_jars


@pytest.mark.parametrize(("missing", "hint"), [("mvn", "install Apache Maven"), ("java", "install a Java 17+")])
def test_missing_tool_says_what_to_install(monkeypatch, tmp_path, missing, hint):
    """Without Java or Maven on PATH, preparing the broker fails with what to install."""
    real_which = kafka.shutil.which
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None if name == missing else real_which(name))
    with pytest.raises(LocalStackError, match=hint):
        ensure_jars(tmp_path)


def test_cached_jars_are_reused_without_maven(monkeypatch, tmp_path):
    """Once resolved for this pom, the jars are used as they are, with no Maven run."""
    libs = tmp_path / kafka.jar_folder_name()
    libs.mkdir()
    (libs / ".complete").touch()
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)
    assert ensure_jars(tmp_path) == libs


def test_database_url_file_is_private_and_removed_afterwards(tmp_path):
    """`make run` shares its embedded database URL with `make grafana` in an owner-only file, while it runs."""
    from fraud_detection.local_stack.run import url_file

    with url_file(tmp_path / "local" / "database.url", "postgresql://postgres:@/fraud?host=/tmp/x") as path:
        assert path.read_text() == "postgresql://postgres:@/fraud?host=/tmp/x"
        assert path.stat().st_mode & 0o077 == 0
    assert not path.exists()
