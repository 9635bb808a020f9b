"""The local stack's own set-up, against the real Maven."""

from __future__ import annotations

from fraud_detection.local_stack.kafka import ensure_jars, jar_folder_name


def test_broker_jars_land_in_a_relative_cache_folder(tmp_path, monkeypatch):
    """`make kafka-jars` passes `.cache`: the jars belong there, not under the pom's copy."""
    monkeypatch.chdir(tmp_path)
    libs = ensure_jars(tmp_path.joinpath("cache").relative_to(tmp_path))
    assert libs == tmp_path / "cache" / jar_folder_name()
    assert any(libs.glob("kafka-server-*.jar")), sorted(p.name for p in libs.rglob("*"))[:20]
