"""What the program tells users to run exists: every `make X` in a message is a Makefile target."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fraud_detection.kafka_clients import check_topic
from fraud_detection.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]


def test_every_make_target_a_message_names_exists():
    """A hint such as "start it (`make kafka`)" must name a real target (it once did not)."""
    targets = set(re.findall(r"^([a-zA-Z0-9_-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    named = {name for path in (ROOT / "src").rglob("*.py")
             for name in re.findall(r"`make ([a-z0-9-]+)", path.read_text())}
    assert named, "the messages name some make targets"
    assert named <= targets, named - targets


def test_an_unreachable_broker_names_the_command_that_starts_one():
    """`generate` or `replay` with no broker says to start the local stack or set the bootstrap servers."""
    with pytest.raises(ConnectionError, match=r"make stack.*FRAUD_KAFKA__BOOTSTRAP_SERVERS"):
        check_topic(KafkaSettings(bootstrap_servers="127.0.0.1:9"), timeout_s=2)
