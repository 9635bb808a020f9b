"""Shared test configuration: keep the developer's FRAUD_* environment out of the tests."""

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_fraud_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("FRAUD_"):
            monkeypatch.delenv(name)
