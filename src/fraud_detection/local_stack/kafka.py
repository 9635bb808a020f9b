"""A single-node Apache Kafka broker in KRaft mode, from jars that Maven resolves (no Docker, no download
script): the same code serves ``make run`` and the integration tests. It listens on 127.0.0.1, unless a test
cluster's pods must reach it (then on that node's bridge address: still this machine only)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from importlib import resources
from pathlib import Path

from fraud_detection.kafka_clients import create_topic

log = logging.getLogger(__name__)

POM = resources.files(__package__).joinpath("pom.xml")
LOG4J_CONFIG = resources.files(__package__).joinpath("log4j2.properties")
START_TIMEOUT_S = 90.0


class LocalStackError(RuntimeError):
    """A local service could not be prepared or started; the message says what to do."""


def _require_tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocalStackError(f"`{name}` is not on PATH: {install_hint}")
    return path


def jar_folder_name(pom_text: str | None = None) -> str:
    """Named after the pom's hash, so a version bump resolves afresh."""
    text = POM.read_text() if pom_text is None else pom_text
    return f"kafka-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def ensure_jars(cache_dir: Path) -> Path:
    """The broker's jars, resolved by Maven into ``cache_dir`` once per version of pom.xml."""
    pom_text = POM.read_text()
    # Absolute: Maven resolves a relative output folder against the pom's folder, not ours.
    libs = cache_dir.absolute() / jar_folder_name(pom_text)
    if (libs / ".complete").exists():
        return libs
    mvn = _require_tool("mvn", "install Apache Maven 3.8+ (Debian: apt-get install maven)")
    _require_tool("java", "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)")
    libs.mkdir(parents=True, exist_ok=True)
    pom_copy = libs / "pom.xml"
    pom_copy.write_text(pom_text)
    log.info("event=kafka_jars_resolving dir=%s", libs)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom_copy), "dependency:copy-dependencies",
         f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise LocalStackError(
            f"Maven could not resolve the Kafka jars:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    (libs / ".complete").touch()
    return libs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class LocalKafka:
    """Start with ``with LocalKafka(...) as kafka:``; ``kafka.bootstrap_servers`` is then reachable."""

    def __init__(self, data_dir: Path, cache_dir: Path, port: int = 9092, controller_port: int | None = None,
                 heap: str = "1g", host: str = "127.0.0.1", sasl_port: int | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.cache_dir = Path(cache_dir).absolute()
        self.host = host  # the client listener's address; the controller's stays on loopback
        self.port = port
        # A second client listener with SASL/SCRAM, as managed brokers (MSK) have; users: add_scram_user.
        self.sasl_port = sasl_port
        self.controller_port = controller_port or free_port()
        self.heap = heap
        self._process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        if self.sasl_port is None:
            raise LocalStackError("this broker has no SASL listener: give LocalKafka a sasl_port")
        return f"{self.host}:{self.sasl_port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "broker.log"

    def _write_config(self) -> Path:
        config = self.data_dir / "server.properties"
        clients = [f"PLAINTEXT://{self.host}:{self.port}"]
        sasl = []
        if self.sasl_port is not None:
            clients.append(f"SASL_PLAINTEXT://{self.host}:{self.sasl_port}")
            sasl = ["sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512", "inter.broker.listener.name=PLAINTEXT",
                    *(f"listener.name.sasl_plaintext.{m}.sasl.jaas.config="
                      "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                      for m in ("scram-sha-256", "scram-sha-512"))]
        config.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners={','.join(clients)},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={','.join(clients)}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            *sasl,
            f"log.dirs={self.data_dir / 'log-dirs'}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=24",
            "",
        ]))
        return config

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp", f"{libs}/*", main, *args,
        ]

    def start(self) -> LocalKafka:
        if _port_open(self.port, self.host):
            raise LocalStackError(
                f"port {self.port} on {self.host} is taken: stop what listens there or set FRAUD_LOCAL__KAFKA_PORT"
            )
        libs = ensure_jars(self.cache_dir)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if not (self.data_dir / "log-dirs" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            formatted = subprocess.run(
                self._java(libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                           f"--config={config}"),
                capture_output=True, text=True,
            )
            if formatted.returncode != 0:
                raise LocalStackError(f"formatting the Kafka log directory failed:\n{formatted.stderr[-2000:]}")
        # A session of its own, so Ctrl-C in a terminal reaches the orchestrator, which stops the
        # broker last, after the producers have flushed.
        with open(self.data_dir / "logs" / "stdout.log", "ab") as out:
            self._process = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(config)), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()
        log.info("event=kafka_started bootstrap=%s pid=%d", self.bootstrap_servers, self._process.pid)
        return self

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + START_TIMEOUT_S
        admin = None  # created once the port is open, so librdkafka logs no refused connections
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LocalStackError(f"the Kafka broker exited with {self._process.returncode}; see {self.log_file}")
            if _port_open(self.port, self.host):
                admin = admin or AdminClient({"bootstrap.servers": self.bootstrap_servers})
                try:
                    admin.list_topics(timeout=2)
                    return
                except Exception:  # noqa: BLE001, S110 - not ready yet; retried until the deadline
                    pass
            time.sleep(0.2)
        self.stop()
        raise LocalStackError(f"the Kafka broker did not become ready in {START_TIMEOUT_S:.0f} s; see {self.log_file}")

    def create_topic(self, name: str, partitions: int) -> None:
        create_topic({"bootstrap.servers": self.bootstrap_servers}, name, partitions)

    def add_scram_user(self, name: str, password: str, mechanism: str = "SCRAM-SHA-512") -> None:
        """A user of the SASL listener (stored in the cluster's metadata), set over the plaintext one."""
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], 4096)
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        upsert = UserScramCredentialUpsertion(name, info, password.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM for a clean shutdown, SIGKILL if it does not end in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.info("event=kafka_stopped")

    def kill(self) -> None:
        """SIGKILL: the crash of a broker, for fault tests."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
