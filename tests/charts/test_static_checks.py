"""Linters over the deployment files: hadolint (Dockerfiles), shellcheck (scripts), actionlint (workflows)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.charts.rendering import ROOT, tool

VENV_BIN = Path(sys.executable).parent
DOCKERFILES = sorted(ROOT.glob("images/*/Dockerfile"))
# Local-only images for k3s (linted too): the stand-in bases and the operators built from their tags.
STAND_IN_BASES = sorted([*ROOT.glob("k8s/k3s/**/*.Containerfile"), *ROOT.glob("k8s/k3s/**/Containerfile")])
SCRIPTS = sorted([*ROOT.glob("k8s/**/*.sh"), ROOT / ".ci" / "run"])
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def run(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_every_linted_set_is_present():
    """The globs find the files (an empty set would make the checks below pass vacuously)."""
    assert len(DOCKERFILES) == 2 and len(STAND_IN_BASES) >= 9 and len(SCRIPTS) >= 14 and len(WORKFLOWS) >= 3


@pytest.mark.parametrize("dockerfile", DOCKERFILES + STAND_IN_BASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_dockerfile_is_hadolint_clean(dockerfile):
    """hadolint reports nothing, info level included."""
    result = run(VENV_BIN / "hadolint", "--failure-threshold", "info", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_shellcheck_clean(script):
    """shellcheck reports nothing."""
    result = run(VENV_BIN / "shellcheck", "--severity=style", script)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_are_actionlint_clean():
    """actionlint (with shellcheck on run: blocks) reports nothing."""
    result = run(tool("actionlint"), "-shellcheck", VENV_BIN / "shellcheck", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_run_as_non_root_from_pinned_bases(dockerfile):
    """The final stage ends with a numeric non-root USER; every base image has a version tag (never `latest`)."""
    lines = [line.split() for line in dockerfile.read_text().splitlines() if line and not line.startswith("#")]
    users = [words[1] for words in lines if words[0] == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    text = dockerfile.read_text()
    bases = [words[1] for words in lines if words[0] == "FROM"]
    for base in bases:
        if base.startswith("${"):
            base = text.split(f"ARG {base[2:-1]}=")[1].split()[0]
        assert ":" in base and base.split(":")[1][0].isdigit(), f"{base} is not pinned to a version"


def base_images(dockerfile: Path) -> list[str]:
    """The image of each FROM line, build arguments resolved to their defaults, earlier stages left out."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile.read_text(), re.M))
    stages, bases = set(), []
    for words in (line.split() for line in dockerfile.read_text().splitlines() if line.startswith("FROM ")):
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[1])
        if image not in stages:
            bases.append(image)
        stages |= {words[3]} if len(words) == 4 else set()
    return bases


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_images_are_tags_their_publishers_rebuild(dockerfile):
    """Python and Maven bases take the minor tag their publisher rebuilds; only the Spark base pins its release."""
    bases = base_images(dockerfile)
    assert bases
    for base in bases:
        repository, tag = base.rsplit(":", 1)
        if repository == "apache/spark":
            assert re.match(r"\d+\.\d+\.\d+-", tag), base
        else:
            assert repository in ("python", "maven") and re.match(r"\d+\.\d+-[a-z]", tag), base


def test_python_code_runs_on_the_detector_images_python():
    """The package stays compatible with Python 3.10, the Python of the official Spark 4.0 image."""
    result = run(VENV_BIN / "vermin", "--no-tips", "--violations", "-t=3.10-", ROOT / "src" / "fraud_detection")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_lets_through_everything_the_images_copy():
    """Every COPY source of both Dockerfiles is inside the build context .dockerignore allows."""
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    source = source.rstrip("/")
                    assert (ROOT / source).exists(), source
                    assert any(source == a or source.startswith(a + "/") or a.startswith(source + "/")
                               for a in allowed), f"{source} ({dockerfile.parent.name}) is excluded by .dockerignore"


def test_generator_image_needs_no_pyspark():
    """The generator, the CLI's checks and migrations import without PySpark (its image has none)."""
    code = ("import sys; sys.modules['pyspark'] = None\n"
            "from fraud_detection.cli import main\n"
            "import fraud_detection.generator.generate, fraud_detection.storage.postgres, fraud_detection.heartbeat\n"
            "sys.exit(main(['check', '--heartbeat', '/nonexistent']))")
    result = run(sys.executable, "-c", code)
    assert result.returncode == 1 and "no heartbeat yet" in result.stderr, result.stderr
