"""Render the chart with helm and look inside the result: objects, containers, env, schema validation."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fraud-detection"
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"
TOOLS = ROOT / ".cache" / "tools" / "bin"
KUBERNETES_VERSION = "1.34.0"
# The values files users install with; tests render each.
VALUES_FILES = {"default": [], "kind": [CHART / "values-kind.yaml"], "aws": [CHART / "values-aws.yaml"],
               "k3s": [CHART / "values-k3s.yaml"],
               "k3s-operators": [CHART / "values-kind.yaml", CHART / "values-k3s-operators.yaml"]}


def tool(name: str) -> str:
    """A pinned tool from k8s/tools.sh's folder, else from PATH; fails saying how to install it."""
    for candidate in (TOOLS / name, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    raise RuntimeError(f"{name} not found: run `bash k8s/tools.sh {name}` (make test does)")


def helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120)


def render(values: list[Path] = (), sets: dict[str, str] | None = None, release: str = "fraud",
           namespace: str = "fraud-detection") -> list[dict]:
    """The chart's objects (helm template), hooks and tests included."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    for path in values:
        args += ["--values", str(path)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    result = helm(*args)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def render_named(name: str) -> tuple[dict, ...]:
    return tuple(render(VALUES_FILES[name]))


class RenderError(RuntimeError):
    """helm template failed; the message is helm's."""


def schema_for(doc: dict) -> Path | None:
    """The custom resource's schema file (which may not exist), or None for a built-in kind."""
    group, _, version = doc["apiVersion"].rpartition("/")
    builtin = not group or "." not in group or group.endswith(".k8s.io")  # core, apps, rbac..., networking...
    if builtin and not (group and (CRD_SCHEMAS / group).is_dir()):
        return None
    return CRD_SCHEMAS / group / f"{doc['kind'].lower()}_{version}.json"


@cache
def _crd_validator(path: Path) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(json.loads(path.read_text()))


def validate(doc: dict) -> None:
    """Strict validation: custom resources against the operator schemas, built-ins against Kubernetes'."""
    path = schema_for(doc)
    if path is None:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        return
    if not path.exists():
        raise LookupError(f"no schema for {doc['apiVersion']} {doc['kind']} ({path.name}): unknown API version")
    _crd_validator(path).validate(doc)


@dataclass
class Container:
    owner: str  # kind/name of the object holding it
    name: str
    spec: dict

    @property
    def env(self) -> dict[str, dict]:
        return {e["name"]: e for e in self.spec.get("env", [])}


def env_values(container: dict, secret) -> dict[str, str]:
    """A container's env as its process sees it: plain values as they are, each Secret reference replaced
    by ``secret(secret_name, key)``."""
    env = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "fieldRef" in entry["valueFrom"]:  # the pod's own name or address, from the downward API
            env[entry["name"]] = entry["valueFrom"]["fieldRef"]["fieldPath"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secret(ref["name"], ref["key"])
    return env


def pod_specs(doc: dict) -> list[dict]:
    """Pod specs inside an object: a Pod, a workload's template, a SparkApplication's pod templates."""
    kind = doc["kind"]
    if kind == "Pod":
        return [doc["spec"]]
    if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return [doc["spec"]["template"]["spec"]]
    if kind == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    if kind == "SparkApplication":
        return [doc["spec"][role]["template"]["spec"] for role in ("driver", "executor")
                if "template" in doc["spec"][role]]
    if kind == "ConfigMap" and "executor.yaml" in doc.get("data", {}):  # the driver Deployment's executor template
        return [executor_template(doc)["spec"]]
    return []


def executor_template(config_map: dict) -> dict:
    return yaml.safe_load(config_map["data"]["executor.yaml"])


def containers(docs) -> list[Container]:
    found = []
    for doc in docs:
        owner = f"{doc['kind']}/{doc['metadata']['name']}"
        for pod in pod_specs(doc):
            for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
                found.append(Container(owner, c["name"], c))
    return found


def pod_labels(docs) -> dict[str, dict]:
    """component -> labels of the pods it runs (Deployment and CronJob templates, SparkApplication driver, test
    Pods)."""
    labels = {}
    for doc in docs:
        if doc["kind"] == "Deployment":
            found = doc["spec"]["template"]["metadata"]["labels"]
        elif doc["kind"] == "CronJob":
            found = doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        elif doc["kind"] == "SparkApplication":
            found = doc["spec"]["driver"]["labels"]
            assert doc["spec"]["executor"]["labels"] == found
        elif doc["kind"] == "Grafana":
            found = doc["spec"]["deployment"]["spec"]["template"]["metadata"]["labels"]
        elif doc["kind"] == "Pod":
            found = doc["metadata"]["labels"]
        elif doc["kind"] == "ConfigMap" and "executor.yaml" in doc.get("data", {}):
            found = executor_template(doc)["metadata"]["labels"]
        else:
            continue
        labels[found["app.kubernetes.io/component"]] = found
    return labels


def selects(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels, and matchExpressions with In) picks a pod with these labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def one(docs, kind: str, name_suffix: str = "") -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, f"expected one {kind} *{name_suffix}, found {[d['metadata']['name'] for d in matches]}"
    return matches[0]


def dockerfile_copies(path: Path) -> dict[str, str]:
    """Image path -> repository path, for single-file COPY lines of a Dockerfile."""
    copies = {}
    for line in path.read_text().splitlines():
        parts = shlex.split(line) if line.startswith("COPY ") and "--from" not in line else []
        if len(parts) == 3:
            copies[parts[2]] = parts[1]
    return copies
