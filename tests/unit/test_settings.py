import pytest

from fraud_detection.kafka_clients import client_config
from fraud_detection.settings import SettingsError, load_settings


def test_defaults_need_no_environment():
    """With no FRAUD_* variables the settings load with the documented defaults."""
    settings = load_settings()
    assert settings.kafka.topic == "transactions"
    assert settings.kafka.partitions == 2
    assert settings.generator.attack_interval == 20.0
    assert settings.database_url is None


def test_nested_variables_are_read(monkeypatch):
    """FRAUD_GROUP__FIELD sets a nested value."""
    monkeypatch.setenv("FRAUD_KAFKA__BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("FRAUD_GENERATOR__RATE", "250")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "broker:9092"
    assert settings.generator.rate == 250.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FRAUD_GENERATOR__RATE", "-1"),
        ("FRAUD_GENERATOR__RATE", "fast"),
        ("FRAUD_KAFKA__PARTITIONS", "0"),
        ("FRAUD_GENERATOR__CARD_SPACE", "Has Spaces"),
        ("FRAUD_LOG_LEVEL", "LOUD"),
        ("FRAUD_DETECTOR__LOCAL_HEAP", "2GB"),
        ("FRAUD_DETECTOR__LOCAL_HEAP", "0g"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch, name, value):
    """An invalid value fails at start with a message naming the variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_missing_database_url_says_what_to_set():
    """Asking for the database without FRAUD_DATABASE_URL names the variable."""
    with pytest.raises(SettingsError, match="FRAUD_DATABASE_URL"):
        load_settings().require_database_url()


def test_secrets_are_not_shown(monkeypatch):
    """The database URL and SASL password never appear in the settings' text forms."""
    monkeypatch.setenv("FRAUD_DATABASE_URL", "postgresql://app:hunter2@db/fraud")
    monkeypatch.setenv("FRAUD_KAFKA__SASL_PASSWORD", "s3cr3t")
    settings = load_settings()
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
    assert "s3cr3t" not in repr(settings)
    assert settings.require_database_url().endswith("@db/fraud")
    assert client_config(settings.kafka)["sasl.password"] == "s3cr3t"


def test_overrides_beat_the_environment(monkeypatch):
    """CLI flags (passed as overrides) take precedence over variables and are validated too."""
    monkeypatch.setenv("FRAUD_GENERATOR__RATE", "250")
    assert load_settings(generator={"rate": 10.0}).generator.rate == 10.0
    with pytest.raises(SettingsError, match="FRAUD_GENERATOR__CLOCK_SPEED"):
        load_settings(generator={"clock_speed": 0})


def test_transformwithstate_needs_the_rocksdb_state_store(monkeypatch):
    """transformWithState keeps state and timers in RocksDB column families: hdfs is refused, saying what to set."""
    monkeypatch.setenv("FRAUD_DETECTOR__OPERATOR", "transformwithstate")
    assert load_settings().detector.state_store == "rocksdb"
    monkeypatch.setenv("FRAUD_DETECTOR__STATE_STORE", "hdfs")
    with pytest.raises(SettingsError, match="FRAUD_DETECTOR__STATE_STORE=rocksdb"):
        load_settings()
    monkeypatch.setenv("FRAUD_DETECTOR__OPERATOR", "flatmap")
    with pytest.raises(SettingsError, match="FRAUD_DETECTOR__OPERATOR"):
        load_settings()


def test_realtime_mode_says_what_it_needs(monkeypatch):
    """Real-time mode runs transformWithState, checkpoints instead of pacing micro-batches, and needs a task
    slot for every Kafka and state partition at once: each refusal names the setting to change."""
    monkeypatch.setenv("FRAUD_DETECTOR__TRIGGER", "realtime")
    with pytest.raises(SettingsError, match="set FRAUD_DETECTOR__OPERATOR=transformwithstate"):
        load_settings()
    monkeypatch.setenv("FRAUD_DETECTOR__OPERATOR", "transformwithstate")
    with pytest.raises(SettingsError, match=r"2 Kafka partitions and 2 state partitions at once: set local\[4\]"):
        load_settings()  # the default local[2]
    monkeypatch.setenv("FRAUD_DETECTOR__MASTER", "local[4]")
    assert load_settings().detector.realtime_checkpoint_interval == 30
    monkeypatch.setenv("FRAUD_KAFKA__PARTITIONS", "6")
    with pytest.raises(SettingsError, match=r"set local\[8\]"):
        load_settings()
    monkeypatch.setenv("FRAUD_DETECTOR__MASTER", "k8s://https://api:6443")  # a cluster sizes its executors
    monkeypatch.setenv("FRAUD_DETECTOR__TRIGGER_INTERVAL", "5")
    with pytest.raises(SettingsError, match="REALTIME_CHECKPOINT_INTERVAL seconds instead"):
        load_settings()
    monkeypatch.setenv("FRAUD_DETECTOR__TRIGGER_INTERVAL", "0")
    monkeypatch.setenv("FRAUD_DETECTOR__REALTIME_CHECKPOINT_INTERVAL", "4")  # Spark's minimum is 5 s
    with pytest.raises(SettingsError, match="FRAUD_DETECTOR__REALTIME_CHECKPOINT_INTERVAL"):
        load_settings()


def test_a_variable_no_group_knows_is_refused_and_the_removed_sink_says_so(monkeypatch):
    """A typo in FRAUD_<GROUP>__<FIELD> fails naming it instead of being ignored; FRAUD_DETECTOR__SINK, which
    chose a sink before the JVM one became the only one, says to unset it."""
    monkeypatch.setenv("FRAUD_DETECTOR__TRIGER", "realtime")
    with pytest.raises(SettingsError, match="FRAUD_DETECTOR__TRIGER: Extra inputs are not permitted"):
        load_settings()
    monkeypatch.delenv("FRAUD_DETECTOR__TRIGER")
    monkeypatch.setenv("FRAUD_DETECTOR__SINK", "batch")
    with pytest.raises(SettingsError, match="FRAUD_DETECTOR__SINK is gone: .* unset it"):
        load_settings()
