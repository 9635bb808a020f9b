# shellcheck shell=bash disable=SC2034  # read by the scripts that source this file
# The pinned versions of the cluster's operators and tools, in one place: k8s/operators.sh installs these charts,
# k8s/k3s/operators/*.sh build the same releases from their git tags where images cannot be pulled, and
# k8s/tools.sh fetches these tools. Sourced, never run.

# Operator charts, as their registries publish them: plain SemVer, no leading v (the OCI tags included). The
# git tags the k3s builds check out are derived from these.
STRIMZI_VERSION=1.2.0            # kafka.strimzi.io/v1, KRaft only; git tag 1.2.0
SPARK_OPERATOR_VERSION=2.5.2     # sparkoperator.k8s.io/v1beta2, Spark 4.0.4; git tag v2.5.2
CNPG_CHART_VERSION=0.29.0        # cloudnative-pg/charts tag cloudnative-pg-v0.29.0: CloudNativePG 1.30.x
CNPG_VERSION=1.30.0              # the operator that chart runs (its appVersion); git tag v1.30.0
GRAFANA_OPERATOR_VERSION=5.24.0  # git tag v5.24.0; the OCI chart tags dropped the v in December 2025
TRAEFIK_CHART_VERSION=37.0.0

# Tools (k8s/tools.sh; skaffold is also built from its tag by k8s/k3s/operators/skaffold.sh).
HELM_VERSION=v4.1.4
KIND_VERSION=v0.30.0
SKAFFOLD_VERSION=v2.24.0
ACTIONLINT_VERSION=v1.7.12
