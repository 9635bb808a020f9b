"""The stateful velocity step: a small JVM operator (src/velocity-operator) that PySpark calls.

Two implementations of one rule, picked by ``FRAUD_DETECTOR__OPERATOR``: ``mapgroups`` (VelocityOperator,
flatMapGroupsWithState on buckets of cards) and ``transformwithstate`` (VelocityProcessor, per-card state
with event-time timers, RocksDB only). Same input, output rows and alert ids; a checkpoint is tied to one.

Why the JVM: per-card Python inside Spark's stateful operators (applyInPandasWithState,
transformWithStateInPandas) was measured at 1-2 ms per card per batch when this design was chosen, 50x
too slow; the Java operator runs at the speed of Spark's own aggregations (see BENCHMARKS.md). Its rule
is the Python oracle's, and the tests hold it to that.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fraud_detection.settings import Operator

log = logging.getLogger(__name__)

# The Maven project beside the Python package in a source checkout; images ship the built jars instead.
OPERATOR_PROJECT = Path(__file__).resolve().parents[2] / "velocity-operator"
OPERATOR_JAR = "velocity-operator.jar"

def snake_case(java_name: str) -> str:
    """The operator's output is a Java bean (``triggerEventTimeMs``); Python reads ``trigger_event_time_ms``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", java_name).lower()


class OperatorBuildError(RuntimeError):
    """The operator jar is missing and cannot be built here; the message says what to do."""


def _sources_digest(project: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted([project / "pom.xml", *project.glob("src/main/**/*.java")]):
        digest.update(path.relative_to(project).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_operator(cache_dir: Path, project: Path = OPERATOR_PROJECT) -> Path:
    """Build the jar with Maven into ``cache_dir`` once per version of its sources; returns the folder."""
    if not (project / "pom.xml").exists():
        raise OperatorBuildError(
            f"no operator sources at {project}: set FRAUD_DETECTOR__JARS_DIR to the folder with {OPERATOR_JAR}"
        )
    out = cache_dir.resolve() / f"velocity-operator-{_sources_digest(project)}"
    if (out / ".complete").exists():
        return out
    mvn = shutil.which("mvn")
    if mvn is None:
        raise OperatorBuildError("`mvn` is not on PATH: install Apache Maven 3.8+ (Debian: apt-get install maven)")
    log.info("event=operator_building dir=%s", out)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(project / "pom.xml"), "package", "-DskipTests",
         f"-Doperator.build.dir={out}"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise OperatorBuildError(f"Maven could not build the operator:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    (out / ".complete").touch()
    return out


# Real-time mode needs Spark 4.3 (`make spark-rt` installs it beside the pinned 4.0.4). Its Kafka connector is
# not served from Maven Central as mirrored here yet; the 4.2.0 one, whose source already implements
# real-time mode, runs on the 4.3 runtime, with the kafka-clients it was built with (docs/real-time-mode.md).
REALTIME_CONNECTOR = ("org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0",
                      "org.apache.spark:spark-token-provider-kafka-0-10_2.13:4.2.0",
                      "org.apache.kafka:kafka-clients:3.9.2")
_CONNECTOR_JARS = ("spark-sql-kafka-0-10_", "spark-token-provider-kafka-0-10_", "kafka-clients-")


def realtime_jars(cache_dir: Path) -> Path:
    """A jars folder for a Spark 4.3 detector (FRAUD_DETECTOR__JARS_DIR): the operator as built for 4.0.4,
    whose API it uses unchanged, with REALTIME_CONNECTOR in place of the 4.0.4 connector."""
    built = build_operator(cache_dir)
    out = cache_dir.resolve() / "spark-4.3" / f"jars-{built.name}"
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    (out / "jars").mkdir(parents=True)
    shutil.copy2(built / OPERATOR_JAR, out / OPERATOR_JAR)
    for jar in (built / "jars").glob("*.jar"):
        if not jar.name.startswith(_CONNECTOR_JARS):
            shutil.copy2(jar, out / "jars")
    for artifact in REALTIME_CONNECTOR:
        result = subprocess.run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={artifact}",
                                 f"-DoutputDirectory={out / 'jars'}"], capture_output=True, text=True)
        if result.returncode != 0:
            raise OperatorBuildError(f"Maven could not fetch {artifact}:\n{result.stdout[-2000:]}")
    (out / ".complete").touch()
    return out


def operator_jars(folder: Path) -> list[Path]:
    """The operator jar and the Kafka connector jars beside it (``jars/``), checked to exist."""
    jars = [folder / OPERATOR_JAR, *sorted((folder / "jars").glob("*.jar"))]
    if not jars[0].exists() or len(jars) == 1:
        raise OperatorBuildError(f"{folder} lacks {OPERATOR_JAR} and jars/*.jar: build it with `make operator`")
    return jars


def rule_name(spark) -> str:
    """The rule the operator's alerts name (DetectorOutput.VELOCITY_RULE, its one definition)."""
    return spark._jvm.io.github.frauddetection.velocity.DetectorOutput.VELOCITY_RULE  # noqa: SLF001 (py4j)


def apply_velocity(parsed: DataFrame, threshold: int, window_ms: int, state_buckets: int, operator: Operator,
                   state_format: int, realtime: bool = False):
    """Run the operator on parsed rows (with a watermark); one row per alert change or uncounted record.

    ``state_buckets`` applies to ``mapgroups`` only: ``transformwithstate`` keeps state per card.
    ``state_format`` is the checkpoint's (StateFormat in velocity-operator, session.claim_checkpoint).
    ``realtime``: for real-time mode, whose ``transformwithstate`` evicts by processing-time timers.
    """
    from pyspark.sql.classic.dataframe import DataFrame as ClassicDataFrame

    session = parsed.sparkSession
    velocity = session._jvm.io.github.frauddetection.velocity  # noqa: SLF001 (py4j gateway)
    jdf = parsed._jdf  # noqa: SLF001 (py4j: the operator takes the JVM DataFrame)
    if operator == "transformwithstate":
        jresult = velocity.VelocityProcessor.apply(jdf, threshold, window_ms, state_format, realtime)
    else:
        jresult = velocity.VelocityOperator.apply(jdf, threshold, window_ms, state_buckets, state_format)
    result = ClassicDataFrame(jresult, session)
    return result.select(*[F.col(java).alias(snake_case(java)) for java in result.columns])
