"""FRAUD_NOTIFY__*: destinations and routes from the environment, secrets kept, bad values named."""

from __future__ import annotations

import pytest

from fraud_detection.cli import main
from fraud_detection.notifications.destinations import configured
from fraud_detection.notifications.routing import Route
from fraud_detection.settings import SettingsError, load_settings

SECRET = "whsec-0123456789abcdef"


def test_no_destination_by_default_and_notify_then_exits_2_saying_what_to_set(capsys):
    """Without a destination `notify` stops at once, naming the variables to set."""
    assert configured(load_settings().notify) == []
    assert main(["notify"]) == 2
    err = capsys.readouterr().err
    assert "FRAUD_NOTIFY__SLACK_WEBHOOK_URL" in err and "FRAUD_NOTIFY__SNS_TOPIC_ARN" in err


def test_destinations_and_their_routes_come_from_the_environment(monkeypatch):
    """Each configured destination gets the shared rules and its own minimum count, or the shared one."""
    monkeypatch.setenv("FRAUD_NOTIFY__SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T0/B0/xyz")
    monkeypatch.setenv("FRAUD_NOTIFY__WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("FRAUD_NOTIFY__WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("FRAUD_NOTIFY__RULES", "velocity,geo")
    monkeypatch.setenv("FRAUD_NOTIFY__MIN_COUNT", "8")
    monkeypatch.setenv("FRAUD_NOTIFY__SLACK_MIN_COUNT", "20")
    found = {d.name: d.route for d in configured(load_settings().notify)}
    rules = frozenset({"velocity", "geo"})
    assert found == {"slack": Route(rules, 20), "webhook": Route(rules, 8)}


def test_sns_takes_its_region_from_the_arn_and_needs_aws_credentials(monkeypatch):
    """The region defaults to the ARN's; with no credentials anywhere it stops at start, saying what to set."""
    pytest.importorskip("boto3", reason="SNS needs the sns extra (boto3)")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("FRAUD_NOTIFY__SNS_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:fraud-alerts")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    (sns,) = configured(load_settings().notify)
    assert sns.name == "sns" and sns.route == Route()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SettingsError, match="AWS_ACCESS_KEY_ID"):
        configured(load_settings().notify)


def test_secrets_and_urls_are_not_shown(monkeypatch):
    """Webhook URLs (they carry tokens) and the signing secret never appear in the settings' text forms."""
    monkeypatch.setenv("FRAUD_NOTIFY__SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T0/B0/tok3n")
    monkeypatch.setenv("FRAUD_NOTIFY__WEBHOOK_URL", "https://receiver.example/hook?key=k3y")
    monkeypatch.setenv("FRAUD_NOTIFY__WEBHOOK_SECRET", SECRET)
    settings = load_settings()
    for text in (repr(settings), str(settings), repr(configured(settings.notify))):
        assert "tok3n" not in text and "k3y" not in text and SECRET not in text


@pytest.mark.parametrize(("env", "named"), [
    ({"FRAUD_NOTIFY__WEBHOOK_URL": "https://receiver.example/hook"}, "FRAUD_NOTIFY__WEBHOOK_SECRET"),
    ({"FRAUD_NOTIFY__SLACK_WEBHOOK_URL": "file:///etc/passwd"}, "FRAUD_NOTIFY__SLACK_WEBHOOK_URL"),
    ({"FRAUD_NOTIFY__WEBHOOK_URL": "https://r.example", "FRAUD_NOTIFY__WEBHOOK_SECRET": "short"},
     "FRAUD_NOTIFY__WEBHOOK_SECRET"),
    ({"FRAUD_NOTIFY__SNS_TOPIC_ARN": "fraud-alerts"}, "FRAUD_NOTIFY__SNS_TOPIC_ARN"),
    ({"FRAUD_NOTIFY__MIN_COUNT": "0"}, "FRAUD_NOTIFY__MIN_COUNT"),
    ({"FRAUD_NOTIFY__RULES": "velocity;geo"}, "FRAUD_NOTIFY__RULES"),
    ({"FRAUD_NOTIFY__GIVE_UP_AFTER": "-1"}, "FRAUD_NOTIFY__GIVE_UP_AFTER"),
    ({"FRAUD_NOTIFY__TIMEOUT": "0"}, "FRAUD_NOTIFY__TIMEOUT"),
    ({"FRAUD_NOTIFY__RATE_LIMIT": "none"}, "FRAUD_NOTIFY__RATE_LIMIT"),
    ({"FRAUD_NOTIFY__GRAFANA_URL": "grafana:3000"}, "FRAUD_NOTIFY__GRAFANA_URL"),
])
def test_a_bad_notify_value_fails_at_start_naming_the_variable(monkeypatch, capsys, env, named):
    """Misconfiguration is found before anything is consumed: exit 2 naming the variable."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()
    assert main(["notify"]) == 2
    assert named in capsys.readouterr().err


@pytest.mark.parametrize("variable", ["SLACK_WEBHOOK_URL", "WEBHOOK_URL", "SNS_TOPIC_ARN"])
def test_any_destination_makes_notify_needed(monkeypatch, variable):
    """`make run` starts `notify` exactly when a destination is set; none is set by default."""
    assert not load_settings().notify.has_destination
    values = {"SLACK_WEBHOOK_URL": "https://hooks.slack.example/x", "WEBHOOK_URL": "https://receiver.example/hook",
              "SNS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:fraud"}
    monkeypatch.setenv(f"FRAUD_NOTIFY__{variable}", values[variable])
    monkeypatch.setenv("FRAUD_NOTIFY__WEBHOOK_SECRET", "a-signing-secret-of-32-characters")
    assert load_settings().notify.has_destination
