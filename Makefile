# fraud-detection: `make run` runs the whole pipeline locally, `make test` runs the tests.
# Everything installs into ignored folders: .venv (Python), .cache (Maven jars, the operator jar),
# .local (service data), src/velocity-operator/target (Maven's test build).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OPERATOR_POM := src/velocity-operator/pom.xml
# Stamp of the last install; re-installs when pyproject.toml changes.
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test test-operator test-unit test-integration bench-generator bench-replay bench-detector operator kafka-jars clean clean-data

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(INSTALLED) ## Create the virtual environment and install the project with its test tools

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[detector,local,test]'
	@touch $@

run: venv ## Run the whole pipeline locally: Kafka, PostgreSQL, detector, generator, live view (Ctrl-C stops all)
	$(BIN)/fraud-detection run

test: venv test-operator ## Run all tests: operator (JUnit), unit, integration on real Kafka, Spark, PostgreSQL
	$(BIN)/pytest

test-operator: ## Run the velocity operator's JUnit tests
	mvn -q -B -f $(OPERATOR_POM) test

test-unit: venv ## Run the unit tests only (seconds, no services)
	$(BIN)/pytest tests/unit

test-integration: venv ## Run the integration tests only
	$(BIN)/pytest tests/integration

bench-generator: venv ## Measure generator throughput into the local broker (see BENCHMARKS.md)
	$(BIN)/python -m tests.benchmarks.bench_generator

bench-replay: venv ## Measure CSV replay (parse + send) of 300k gzip rows into the local broker
	$(BIN)/python -m tests.benchmarks.bench_replay

bench-detector: venv ## Detector vs the naive tumbling query (throughput, recall) and live alert latency
	$(BIN)/python -m tests.benchmarks.bench_detector

operator: venv ## Build the detector's operator jar and its Kafka connector jars into .cache
	$(BIN)/python -c 'from pathlib import Path; from fraud_detection.detector.velocity_state import build_operator; print(build_operator(Path(".cache")))'

kafka-jars: venv ## Resolve the Kafka broker jars from Maven Central into .cache
	$(BIN)/python -c 'from pathlib import Path; from fraud_detection.local_stack.kafka import ensure_jars; print(ensure_jars(Path(".cache")))'

clean-data: ## Delete the local stack's data (Kafka topics, PostgreSQL database)
	rm -rf .local

clean: clean-data ## Delete the virtual environment, caches and local data
	rm -rf $(VENV) .cache .pytest_cache .hypothesis build src/*.egg-info src/velocity-operator/target
